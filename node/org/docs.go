package org

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/mesh"
	"github.com/meshd/meshd/orgdoc"
	"github.com/meshd/meshd/pki"
)

var _ mesh.OrgDocs = (*Docs)(nil)

// Docs is the node's organisation document (docs/org.md): the store in
// DATA_DIR/org, the CAs that may sign it (mesh.identity.ca_files), and
// what is done with a new one. It implements mesh.OrgDocs: the mesh
// floods what Offer took.
type Docs struct {
	st    *orgdoc.Store
	cas   []*x509.Certificate
	now   func() time.Time
	log   *slog.Logger
	apply func(*orgdoc.Signed) // the document in force changed (nil: nothing to do)
	// fileGroups: the node's file names routing groups (mesh.routing_groups).
	fileGroups bool

	taken      prometheus.Counter
	refused    *prometheus.CounterVec // by reason
	notApplied prometheus.Counter     // taken, but no valid configuration with the node's file
	version    prometheus.GaugeFunc
}

// Open opens the store of cfg's node. Without an identity there is no CA
// to verify a document with: every document is refused.
func Open(cfg *config.Config, now func() time.Time, log *slog.Logger, reg prometheus.Registerer) (*Docs, error) {
	st, err := orgdoc.OpenStore(filepath.Join(cfg.Node.DataDir, "org"))
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	o := &Docs{st: st, now: now, log: log, fileGroups: len(cfg.Mesh.RoutingGroups) > 0}
	if cfg.HasIdentity() {
		if o.cas, err = pki.ReadCACerts(cfg.Mesh.Identity.CAFiles); err != nil {
			return nil, fmt.Errorf("node: mesh.identity.ca_files: %w", err)
		}
	}
	o.taken = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "meshd_org_documents_taken_total", Help: "Organisation documents verified, stored and put in force (newer than the one before).",
	})
	o.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshd_org_documents_refused_total", Help: "Organisation documents refused and not flooded on, by reason (stale, conflict, unsigned, bad_signature, invalid).",
	}, []string{"reason"})
	for _, r := range []string{"stale", "conflict", "unsigned", "bad_signature", "invalid"} {
		o.refused.WithLabelValues(r)
	}
	o.notApplied = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "meshd_org_documents_not_applied_total", Help: "Organisation documents taken but not applied: with this node's file they make no valid configuration (logged).",
	})
	o.version = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meshd_org_document_version", Help: "Version of the organisation document in force (0: none).",
	}, func() float64 { return float64(o.st.Version()) })
	if reg != nil {
		for _, c := range []prometheus.Collector{o.taken, o.refused, o.notApplied, o.version} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("node: org metrics: %w", err)
			}
		}
	}
	return o, nil
}

// Current is the encoded document in force (mesh.OrgDocs).
func (o *Docs) Current() ([]byte, uint64) {
	s, raw := o.st.Current()
	if s == nil {
		return nil, 0
	}
	return raw, s.Doc.Version
}

// Offer verifies and stores a document from anyone (mesh.OrgDocs): a
// refusal is logged and counted, and the document goes no further.
func (o *Docs) Offer(doc []byte, from string) (bool, error) {
	s, fresh, err := o.st.Offer(doc, o.cas, o.now())
	if err != nil {
		reason := refusalReason(err)
		o.refused.WithLabelValues(reason).Inc()
		level := slog.LevelWarn
		if reason == "stale" {
			level = slog.LevelInfo // a peer that missed an update hands its old copy on
		}
		o.log.Log(context.Background(), level, "organisation document refused", "via", from, "reason", reason, "err", err)
		return false, err
	}
	if !fresh {
		return false, nil
	}
	o.taken.Inc()
	o.log.Info("organisation document in force", "via", from, "version", s.Doc.Version, "comment", s.Doc.Comment)
	if o.apply != nil {
		o.apply(s)
	}
	return true, nil
}

func refusalReason(err error) string {
	switch {
	case errors.Is(err, orgdoc.ErrStale):
		return "stale"
	case errors.Is(err, orgdoc.ErrConflict):
		return "conflict"
	case errors.Is(err, orgdoc.ErrUnsigned):
		return "unsigned"
	case errors.Is(err, orgdoc.ErrBadSignature):
		return "bad_signature"
	}
	return "invalid"
}

// OnApply sets what is done with a document newly in force (the node
// applies it to its running parts).
func (o *Docs) OnApply(apply func(*orgdoc.Signed)) { o.apply = apply }

// NotApplied counts a document taken that the node could not apply.
func (o *Docs) NotApplied() { o.notApplied.Inc() }

// InForce is the document in force (nil: none, or no store: a
// standalone node).
func (o *Docs) InForce() *orgdoc.Signed {
	if o == nil {
		return nil
	}
	s, _ := o.st.Current()
	return s
}

// Version is the version of the document in force (0: none).
func (o *Docs) Version() uint64 { return o.st.Version() }

// Names reports whether a verified peer is a node of the organisation
// by its document: one the document in force names, or, on a node
// started from a short file that holds no document yet, any node of the
// organisation's CA, so that the first document can reach it over
// X-LINK2STATE (what it takes over that session is verified on its own:
// the document by the CA's signature, records by their groups' keys).
func (o *Docs) Names(who pki.Identity) bool {
	s := o.InForce()
	if s == nil {
		return !o.fileGroups
	}
	g, ok := s.Doc.Group(who.RG)
	if !ok {
		return false
	}
	_, ok = g.Node(who.Node)
	return ok
}

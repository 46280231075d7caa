package node

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshd/meshd/orgdoc"
	"github.com/meshd/meshd/pki"
)

// orgDocs is the node's organisation document (docs/org.md): the store in
// DATA_DIR/org, the CAs that may sign it (mesh.identity.ca_files), and
// what is done with a new one. It implements mesh.OrgDocs: the mesh
// floods what Offer took.
type orgDocs struct {
	st    *orgdoc.Store
	cas   []*x509.Certificate
	now   func() time.Time
	log   *slog.Logger
	apply func(*orgdoc.Signed) // the document in force changed (nil: nothing to do)

	taken      prometheus.Counter
	refused    *prometheus.CounterVec // by reason
	notApplied prometheus.Counter     // taken, but no valid configuration with the node's file
	version    prometheus.GaugeFunc
}

// newOrgDocs opens the store of cfg's node. Without an identity there is
// no CA to verify a document with: every document is refused.
func newOrgDocs(cfg *Config, now func() time.Time, log *slog.Logger, reg prometheus.Registerer) (*orgDocs, error) {
	st, err := orgdoc.OpenStore(filepath.Join(cfg.Node.DataDir, "org"))
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	o := &orgDocs{st: st, now: now, log: log}
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
func (o *orgDocs) Current() ([]byte, uint64) {
	s, raw := o.st.Current()
	if s == nil {
		return nil, 0
	}
	return raw, s.Doc.Version
}

// Offer verifies and stores a document from anyone (mesh.OrgDocs): a
// refusal is logged and counted, and the document goes no further.
func (o *orgDocs) Offer(doc []byte, from string) (bool, error) {
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

package edge

import (
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshd/meshd/edge/dkim"
)

// Mail leaving the organisation (an external connector: smarthost or MX)
// is signed with the keys of dkim.keys for its From: domain, at every
// attempt, never on a mesh hop.

// Signer is the node's DKIM signer and its counters. A reload (SIGHUP)
// replaces the keys (SetKeys): the next message is signed with the new ones.
type Signer struct {
	s      atomic.Pointer[dkim.Signer] // nil: no key
	signed *prometheus.CounterVec
	failed prometheus.Counter
}

// NewSigner loads the keys of c (dkim.keys) and registers the counters on reg.
func NewSigner(c dkim.Config, reg prometheus.Registerer) (*Signer, error) {
	s, err := dkim.New(c)
	if err != nil {
		return nil, err
	}
	d := &Signer{
		signed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_dkim_signatures_total", Help: "DKIM signatures added to mail leaving by an external connector, by signing domain and selector.",
		}, []string{"domain", "selector"}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshd_dkim_failures_total", Help: "Messages sent unsigned because signing failed.",
		}),
	}
	reg.MustRegister(d.signed, d.failed)
	d.s.Store(s)
	return d, nil
}

// SetKeys puts the keys of s in force (nil: none).
func (d *Signer) SetKeys(s *dkim.Signer) { d.s.Store(s) }

// Sign returns body with its DKIM signatures (delivery.Deps.Sign); body
// itself when no key applies or signing failed (logged: a message is
// never held back for want of a signature).
func (d *Signer) Sign(log *slog.Logger, body []byte) []byte {
	s := d.s.Load()
	if s == nil {
		return body
	}
	out, used, err := s.Sign(body)
	if err != nil {
		d.failed.Inc()
		log.Error("dkim signing failed: sending unsigned", "err", err)
		return body
	}
	for _, u := range used {
		dom, sel, _ := strings.Cut(u, " ")
		d.signed.WithLabelValues(strings.TrimPrefix(dom, "d="), strings.TrimPrefix(sel, "s=")).Inc()
	}
	return out
}

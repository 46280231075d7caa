package node

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

// dkimSigner is the node's signer and its counters. A reload (SIGHUP)
// replaces the signer: the next message is signed with the new keys.
type dkimSigner struct {
	s      atomic.Pointer[dkim.Signer] // nil: no key
	signed *prometheus.CounterVec
	failed prometheus.Counter
}

func (n *Node) newDKIM() (*dkimSigner, error) {
	s, err := dkim.New(n.cfg.DKIM)
	if err != nil {
		return nil, err
	}
	d := &dkimSigner{
		signed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_dkim_signatures_total", Help: "DKIM signatures added to mail leaving by an external connector, by signing domain and selector.",
		}, []string{"domain", "selector"}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshd_dkim_failures_total", Help: "Messages sent unsigned because signing failed.",
		}),
	}
	n.metrics.reg.MustRegister(d.signed, d.failed)
	d.s.Store(s)
	return d, nil
}

// signOutbound returns body with its DKIM signatures; body itself when no
// key applies or signing failed (logged: a message is never held back
// for want of a signature).
func (n *Node) signOutbound(log *slog.Logger, body []byte) []byte {
	s := n.dkim.s.Load()
	if s == nil {
		return body
	}
	out, used, err := s.Sign(body)
	if err != nil {
		n.dkim.failed.Inc()
		log.Error("dkim signing failed: sending unsigned", "err", err)
		return body
	}
	for _, u := range used {
		d, s, _ := strings.Cut(u, " ")
		n.dkim.signed.WithLabelValues(strings.TrimPrefix(d, "d="), strings.TrimPrefix(s, "s=")).Inc()
	}
	return out
}

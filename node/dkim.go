package node

import (
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshd/meshd/edge/dkim"
)

// Mail leaving the organisation (an external connector: smarthost or MX)
// is signed with the keys of dkim.keys for its From: domain, at every
// attempt, never on a mesh hop.

// dkimSigner is the node's signer and its counters.
type dkimSigner struct {
	s      *dkim.Signer
	signed *prometheus.CounterVec
	failed prometheus.Counter
}

func (n *Node) newDKIM() (*dkimSigner, error) {
	s, err := dkim.New(n.cfg.DKIM)
	if err != nil || s == nil {
		return nil, err
	}
	d := &dkimSigner{s: s,
		signed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_dkim_signatures_total", Help: "DKIM signatures added to mail leaving by an external connector, by signing domain and selector.",
		}, []string{"domain", "selector"}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshd_dkim_failures_total", Help: "Messages sent unsigned because signing failed.",
		}),
	}
	n.metrics.Registry().MustRegister(d.signed, d.failed)
	return d, nil
}

// signOutbound returns body with its DKIM signatures; body itself when no
// key applies or signing failed (logged: a message is never held back
// for want of a signature).
func (n *Node) signOutbound(log *slog.Logger, body []byte) []byte {
	if n.dkim == nil {
		return body
	}
	out, used, err := n.dkim.s.Sign(body)
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

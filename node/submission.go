package node

import (
	"crypto/tls"
	"fmt"

	"github.com/meshd/meshd/node/accept"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/edge"
	"github.com/meshd/meshd/node/passwd"
	"github.com/meshd/meshd/smtp"
)

// newSubmission builds a message submission listener (RFC 6409) on addr, or
// returns nil when addr is empty. key is its config key's last part and its
// name in logs and metrics; implicit selects TLS at connect (RFC 8314,
// listen.submissions) instead of STARTTLS (listen.submission).
func (n *Node) newSubmission(addr, key string, implicit bool, tlsCfg *tls.Config, limits smtp.Limits) (*smtp.Server, error) {
	if addr == "" {
		return nil, nil
	}
	if tlsCfg == nil {
		return nil, fmt.Errorf("node: listen.%s needs TLS (tls.cert_file or tls.self_signed)", key)
	}
	ln, err := n.listenSMTP("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("node: listen.%s: %w", key, err)
	}
	srv, err := smtp.NewServer(smtp.ServerConfig{
		Hostname:      n.cfg.Node.Hostname,
		Listener:      edge.Proxied(n.cfg, key, ln, n.log),
		TLS:           tlsCfg,
		Submission:    true,
		ImplicitTLS:   implicit,
		Limits:        limits,
		Policy:        n.edge.Policy(n.policy),
		Sink:          accept.New(n.sinks, "submission"),
		Auth:          users(n.cfg.Auth.Users),
		Logger:        n.log.With("listener", key),
		Now:           n.now,
		OnReply:       n.metrics.CountReply(key),
		OnBareLineEnd: n.metrics.CountBare(key),
		OnDataTooSlow: n.metrics.CountSlow(key),
	})
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("node: listen.%s: %w", key, err)
	}
	return srv, nil
}

// users is the submission authenticator over auth.users.
func users(us []config.User) *passwd.Users {
	hashes := make(map[string]string, len(us))
	for _, u := range us {
		hashes[u.Name] = u.Hash
	}
	return passwd.NewUsers(hashes)
}

package xlink

import (
	"context"
	"net"

	"github.com/meshd/meshd/smtp/dialogue"
)

// Listener wraps a mesh-facing net.Listener for a go-smtp server of the
// caller's own; every accepted connection is a dialogue.Conn running the
// Extension (and STARTTLS when Config.TLS is set). smtp.Server runs the
// Extension in its own follower instead (ServerConfig.Extensions).
type Listener struct {
	inner  net.Listener
	cfg    dialogue.Config
	cancel context.CancelFunc
}

// Listen returns a listener whose connections speak X-LINK2STATE on behalf
// of the go-smtp server that serves them. cfg.Store must be set. Close
// cancels in-flight Store.Install calls.
func Listen(inner net.Listener, cfg Config) net.Listener {
	ext := NewExtension(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	return &Listener{inner: inner, cancel: cancel, cfg: dialogue.Config{
		TLS: ext.cfg.TLS, CommandTimeout: ext.cfg.CommandTimeout, HandshakeTimeout: ext.cfg.HandshakeTimeout,
		Extensions: []dialogue.Extension{ext}, Context: ctx, Logger: ext.cfg.Logger,
	}}
}

// Accept waits for the next connection and wraps it.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.inner.Accept()
	if err != nil {
		return nil, err
	}
	return dialogue.New(c, &l.cfg), nil
}

// Close closes the inner listener and cancels running installs.
func (l *Listener) Close() error {
	l.cancel()
	return l.inner.Close()
}

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

package xlink

import (
	"context"
	"net"
)

// Listener wraps a mesh-facing net.Listener; every accepted connection is
// a *Conn that adds X-LINK2STATE (and STARTTLS when Config.TLS is set) in
// front of the go-smtp server that calls Accept.
type Listener struct {
	inner  net.Listener
	cfg    Config
	ctx    context.Context
	cancel context.CancelFunc
}

// Listen returns a listener whose connections speak X-LINK2STATE on behalf
// of the go-smtp server that serves them. cfg.Store must be set. Close
// cancels in-flight Store.Install calls.
func Listen(inner net.Listener, cfg Config) net.Listener {
	ctx, cancel := context.WithCancel(context.Background())
	return &Listener{inner: inner, cfg: cfg.withDefaults(), ctx: ctx, cancel: cancel}
}

// Accept waits for the next connection and wraps it.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.inner.Accept()
	if err != nil {
		return nil, err
	}
	return newConn(l.ctx, c, &l.cfg), nil
}

// Close closes the inner listener and cancels running installs.
func (l *Listener) Close() error {
	l.cancel()
	return l.inner.Close()
}

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

package testkit

import (
	"context"
	"net"
	"sync"
)

// PipeListener is a net.Listener whose connections are net.Pipe pairs
// made by its Dial: a network with no sockets, for tests that run inside a
// testing/synctest bubble (the bubble's clock cannot advance while a
// goroutine waits on a real socket, but it can while one waits on a pipe;
// pipe deadlines follow the bubble's clock).
type PipeListener struct {
	conns chan net.Conn

	once   sync.Once
	closed chan struct{}
}

// NewPipeListener returns a listener ready for Dial.
func NewPipeListener() *PipeListener {
	return &PipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

// Accept waits for a Dial and returns the listener's end of the pipe.
func (l *PipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close makes Accept and Dial fail with net.ErrClosed.
func (l *PipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr is a placeholder address ("pipe").
func (l *PipeListener) Addr() net.Addr { return pipeAddr{} }

// Dial connects to the listener whatever network and address it is given
// (the signature of net.Dialer.DialContext, for configurations that
// inject a dialer). It waits until Accept takes the connection.
func (l *PipeListener) Dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
	case <-ctx.Done():
	}
	client.Close()
	server.Close()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, &net.OpError{Op: "dial", Net: "pipe", Err: net.ErrClosed}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

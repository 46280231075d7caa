package dialogue

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Wire is an interposer's side towards the client: the accepted
// connection, the TLS session over it once the interposer has run
// STARTTLS, go-smtp's deadlines, and the writes to the client, which it
// serialises (go-smtp's replies and the interposer's own).
type Wire struct {
	raw       net.Conn
	deadlines *Deadlines

	wmu sync.Mutex  // serialises writes to the client; taken before any lock of the interposer's
	out ReplyBuffer // guarded by wmu

	tc atomic.Pointer[tlsSession] // nil until STARTTLS
}

type tlsSession struct {
	conn  *tls.Conn
	state tls.ConnectionState
}

// NewWire returns the Wire of raw, an accepted connection.
func NewWire(raw net.Conn) *Wire {
	return &Wire{raw: raw, deadlines: NewDeadlines(raw)}
}

// Deadlines returns go-smtp's deadlines on the accepted connection.
func (w *Wire) Deadlines() *Deadlines { return w.deadlines }

// conn returns what the client is reached through: the TLS session after
// STARTTLS, the accepted connection before.
func (w *Wire) conn() net.Conn {
	if s := w.tc.Load(); s != nil {
		return s.conn
	}
	return w.raw
}

// WriteReplies passes p, written by go-smtp, to the client: each complete
// reply line goes through filter, called with lock held (the
// interposer's lock over the state filter reads and changes), and what
// filter returns is written (see ReplyBuffer). It reports all of p
// written unless writing to the client fails.
func (w *Wire) WriteReplies(p []byte, lock sync.Locker, filter func(send, line []byte) []byte) (int, error) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	lock.Lock()
	send := w.out.Lines(p, filter)
	lock.Unlock()
	if len(send) > 0 {
		if _, err := w.conn().Write(send); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Reply writes b, reply lines of the interposer's own, within timeout,
// and gives the client timeout for its next line (see Deadlines.Reply).
func (w *Wire) Reply(timeout time.Duration, b []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	return w.deadlines.Reply(w.conn(), timeout, b)
}

// HandshakeError is StartTLS's error when the TLS handshake failed; the
// connection is closed then.
type HandshakeError struct {
	Err error
}

func (e *HandshakeError) Error() string { return "dialogue: TLS handshake: " + e.Err.Error() }
func (e *HandshakeError) Unwrap() error { return e.Err }

// StartTLS answers a STARTTLS command the interposer has accepted (RFC
// 3207 §4): it tells the client to go ahead ("220", written within
// timeout) and runs handshake on the server side of a TLS session with
// cfg over the accepted connection. On success the client is reached
// through the returned TLS session from then on; the caller reads the
// client through it and forgets what it learnt before (RFC 3207 §4.2).
// When the handshake fails the connection is closed and the error is a
// *HandshakeError.
func (w *Wire) StartTLS(cfg *tls.Config, timeout time.Duration, handshake func(*tls.Conn) error) (*tls.Conn, error) {
	if err := w.Reply(timeout, []byte("220 2.0.0 Ready to start TLS\r\n")); err != nil {
		return nil, err
	}
	tc := tls.Server(w.raw, cfg)
	if err := handshake(tc); err != nil {
		_ = w.raw.Close()
		return nil, &HandshakeError{Err: err}
	}
	w.tc.Store(&tlsSession{conn: tc, state: tc.ConnectionState()})
	return tc, nil
}

// TLS returns the state of the TLS session StartTLS established, and
// false before one.
func (w *Wire) TLS() (tls.ConnectionState, bool) {
	if s := w.tc.Load(); s != nil {
		return s.state, true
	}
	return tls.ConnectionState{}, false
}

// Close closes the connection. After STARTTLS it first sends the TLS
// close_notify, allowing it grace, and returns that close's error.
func (w *Wire) Close(grace time.Duration) error {
	s := w.tc.Load()
	if s == nil {
		return w.raw.Close()
	}
	_ = w.raw.SetWriteDeadline(time.Now().Add(grace))
	err := s.conn.Close()
	_ = w.raw.Close()
	return err
}

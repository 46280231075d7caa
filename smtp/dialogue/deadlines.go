package dialogue

import (
	"io"
	"net"
	"sync"
	"time"
)

// Deadlines sets the deadlines go-smtp asks for on the connection below
// an interposer and remembers them, so that they can be put back after
// the interposer wrote a reply of its own or ran a TLS handshake under
// its own deadlines.
type Deadlines struct {
	conn net.Conn

	mu    sync.Mutex
	read  time.Time
	write time.Time
}

// NewDeadlines returns the Deadlines of conn, none set yet.
func NewDeadlines(conn net.Conn) *Deadlines {
	return &Deadlines{conn: conn}
}

// SetDeadline is go-smtp's, for both directions.
func (d *Deadlines) SetDeadline(t time.Time) error {
	d.mu.Lock()
	d.read, d.write = t, t
	d.mu.Unlock()
	return d.conn.SetDeadline(t)
}

// SetReadDeadline is go-smtp's.
func (d *Deadlines) SetReadDeadline(t time.Time) error {
	d.mu.Lock()
	d.read = t
	d.mu.Unlock()
	return d.conn.SetReadDeadline(t)
}

// SetWriteDeadline is go-smtp's.
func (d *Deadlines) SetWriteDeadline(t time.Time) error {
	d.mu.Lock()
	d.write = t
	d.mu.Unlock()
	return d.conn.SetWriteDeadline(t)
}

// Restore puts back both deadlines go-smtp last asked for.
func (d *Deadlines) Restore() {
	d.mu.Lock()
	r, w := d.read, d.write
	d.mu.Unlock()
	_ = d.conn.SetReadDeadline(r)
	_ = d.conn.SetWriteDeadline(w)
}

// RestoreRead puts back the read deadline go-smtp last asked for.
func (d *Deadlines) RestoreRead() {
	d.mu.Lock()
	r := d.read
	d.mu.Unlock()
	_ = d.conn.SetReadDeadline(r)
}

// Reply writes b, a reply of the interposer's own, to wire (the
// connection or the TLS session over it) within timeout, puts back
// go-smtp's write deadline, and gives the client timeout for its next
// line.
func (d *Deadlines) Reply(wire io.Writer, timeout time.Duration, b []byte) error {
	d.mu.Lock()
	w := d.write
	d.mu.Unlock()
	_ = d.conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := wire.Write(b)
	_ = d.conn.SetWriteDeadline(w)
	_ = d.conn.SetReadDeadline(time.Now().Add(timeout))
	return err
}

package channel

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Message tracking rides on the channel's listener: a client greets with
// role 3 (track), the server answers WELCOME, the client sends one
// TRACKREQ with the keys it looks for (message IDs, Message-ID values,
// copy IDs) and reads one TRACKRESP with the matching events, then both
// close. Events are opaque byte strings to this package (the node writes
// them as JSON).
const (
	fTrackReq  frameType = 8
	fTrackResp frameType = 9
)

// RoleTrack is a message-tracking client (see TrackListener).
const RoleTrack Role = 3

const (
	maxTrackKeys   = 1000
	maxTrackEvents = 100_000
)

// TrackFunc answers a tracking request: every event whose message
// matches one of keys, each one encoded by the node.
type TrackFunc func(ctx context.Context, keys []string) [][]byte

func encodeTrackReq(keys []string) []byte {
	w := &writer{}
	w.u16(uint16(len(keys)))
	for _, k := range keys {
		w.str(k)
	}
	return w.b
}

func decodeTrackReq(p []byte) ([]string, error) {
	r := &reader{b: p}
	n := int(r.u16())
	if n > maxTrackKeys {
		return nil, fmt.Errorf("channel: track request: %d keys exceed %d", n, maxTrackKeys)
	}
	keys := make([]string, 0, n)
	for range n {
		keys = append(keys, r.str())
	}
	if err := r.end(); err != nil {
		return nil, fmt.Errorf("channel: track request: %w", err)
	}
	return keys, nil
}

func encodeTrackResp(events [][]byte) []byte {
	w := &writer{}
	w.u32(uint32(len(events)))
	for _, e := range events {
		w.bytes(e)
	}
	return w.b
}

func decodeTrackResp(p []byte) ([][]byte, error) {
	r := &reader{b: p}
	n := int(r.u32())
	if n > maxTrackEvents || n > len(p)/4 {
		return nil, fmt.Errorf("channel: track response: %d events out of range", n)
	}
	out := make([][]byte, 0, n)
	for range n {
		l := int(r.u32())
		out = append(out, bytes.Clone(r.take(l)))
	}
	if err := r.end(); err != nil {
		return nil, fmt.Errorf("channel: track response: %w", err)
	}
	return out, nil
}

// Track asks the channel listener at addr for the events of keys.
func Track(ctx context.Context, dial Dialer, tc *tls.Config, addr string, keys []string) ([][]byte, error) {
	if len(keys) > maxTrackKeys {
		keys = keys[:maxTrackKeys]
	}
	if dial == nil {
		d := &net.Dialer{Timeout: 5 * time.Second}
		dial = d.DialContext
	}
	conn, _, err := dialHello(ctx, dial, tc, addr, hello{Version: Version, Role: RoleTrack, Node: "track"})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := writeFrame(bufio.NewWriter(conn), fTrackReq, encodeTrackReq(keys)); err != nil {
		return nil, fmt.Errorf("channel: track %s: %w", addr, err)
	}
	t, p, err := readFrame(conn)
	if err != nil {
		return nil, fmt.Errorf("channel: track %s: %w", addr, err)
	}
	switch t {
	case fTrackResp:
		return decodeTrackResp(p)
	case fRefuse:
		return nil, decodeRefuse(p)
	}
	return nil, fmt.Errorf("channel: track %s: unexpected frame %d", addr, t)
}

// TrackListener wraps the channel's listener: connections that greet with
// role 3 are answered here with fn, every other connection is handed to
// the Server (or whoever calls Accept) with its first bytes intact. A
// connection that starts with a TLS handshake is passed through untouched
// (tracking is plaintext only). Close closes ln and waits for the
// tracking sessions.
func TrackListener(ln net.Listener, fn TrackFunc) net.Listener {
	ctx, cancel := context.WithCancel(context.Background())
	t := &trackListener{Listener: ln, fn: fn, ctx: ctx, cancel: cancel, conns: make(chan net.Conn), done: make(chan struct{})}
	t.wg.Add(1)
	go t.loop()
	return t
}

type trackListener struct {
	net.Listener
	fn     TrackFunc
	ctx    context.Context
	cancel context.CancelFunc
	conns  chan net.Conn
	done   chan struct{}
	err    error // set before done is closed
	wg     sync.WaitGroup
	once   sync.Once
}

func (t *trackListener) loop() {
	defer t.wg.Done()
	for {
		c, err := t.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && t.ctx.Err() == nil {
				continue
			}
			t.err = err
			close(t.done)
			return
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.sort(c)
		}()
	}
}

// sort reads the greeting of c and serves it or hands it on.
func (t *trackListener) sort(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [5]byte
	n, err := io.ReadFull(c, hdr[:1])
	if err == nil && hdr[0] != 0x16 { // 0x16: a TLS handshake record
		var m int
		m, err = io.ReadFull(c, hdr[1:])
		n += m
	}
	buf := append([]byte(nil), hdr[:n]...)
	if err == nil && hdr[0] != 0x16 {
		l := int(uint32(hdr[0])<<24 | uint32(hdr[1])<<16 | uint32(hdr[2])<<8 | uint32(hdr[3]))
		if frameType(hdr[4]) == fHello && l > 1 && l <= 1024 {
			p := make([]byte, l-1)
			if _, err = io.ReadFull(c, p); err == nil {
				if h, herr := decodeHello(p); herr == nil && h.Role == RoleTrack {
					t.serve(c, h)
					return
				}
			}
			buf = append(buf, p...)
		}
	}
	c.SetReadDeadline(time.Time{})
	pc := &prefixConn{Conn: c, r: io.MultiReader(bytes.NewReader(buf), c)}
	select {
	case t.conns <- pc:
	case <-t.ctx.Done():
		c.Close()
	}
}

func (t *trackListener) serve(c net.Conn, h hello) {
	defer c.Close()
	stop := context.AfterFunc(t.ctx, func() { c.Close() })
	defer stop()
	bw := bufio.NewWriter(c)
	if h.Version != Version {
		_ = writeFrame(bw, fRefuse, encodeRefuse(RefuseVersion, fmt.Sprintf("version %d not supported, want %d", h.Version, Version)))
		return
	}
	if err := writeFrame(bw, fWelcome, encodeWelcome("", "")); err != nil {
		return
	}
	typ, p, err := readFrame(c)
	if err != nil || typ != fTrackReq {
		_ = writeFrame(bw, fRefuse, encodeRefuse(RefuseBadGreeting, "expected TRACKREQ"))
		return
	}
	keys, err := decodeTrackReq(p)
	if err != nil {
		_ = writeFrame(bw, fRefuse, encodeRefuse(RefuseBadGreeting, err.Error()))
		return
	}
	ctx, cancel := context.WithTimeout(t.ctx, 20*time.Second)
	events := t.fn(ctx, keys)
	cancel()
	c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_ = writeFrame(bw, fTrackResp, encodeTrackResp(events))
}

func (t *trackListener) Accept() (net.Conn, error) {
	select {
	case c := <-t.conns:
		return c, nil
	case <-t.done:
		return nil, t.err
	}
}

func (t *trackListener) Close() error {
	var err error
	t.once.Do(func() {
		t.cancel()
		err = t.Listener.Close()
		t.wg.Wait()
	})
	return err
}

// prefixConn replays the bytes read while sorting a connection.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (p *prefixConn) Read(b []byte) (int, error) { return p.r.Read(b) }

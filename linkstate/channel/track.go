package channel

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
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

// RoleTrack is a message-tracking client (see ServerConfig.Track).
const RoleTrack Role = 3

const (
	maxTrackKeys   = 1000
	maxTrackEvents = 100_000
)

// TrackFunc (Funcs.TrackFunc) answers a tracking request: every event whose message
// matches one of keys, each one encoded by the node.
type TrackFunc func(ctx context.Context, keys []string) [][]byte

func encodeTrackReq(keys []string) []byte { return encodeList(keys) }

func decodeTrackReq(p []byte) ([]string, error) {
	return decodeList(p, maxTrackKeys, "track request", "keys")
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
	p, err := request(ctx, dial, tc, addr, hello{Version: Version, Role: RoleTrack, Node: "track"},
		fTrackReq, encodeTrackReq(keys), fTrackResp, 30*time.Second, "track")
	if err != nil {
		return nil, err
	}
	return decodeTrackResp(p)
}

// request runs the one-request roles of the channel (tracking, holds):
// HELLO as h, one request frame, one response frame of type resp (a
// REFUSE is returned as its error), all within timeout after the greeting.
func request(ctx context.Context, dial Dialer, tc *tls.Config, addr string, h hello, req frameType, body []byte, resp frameType, timeout time.Duration, what string) ([]byte, error) {
	if dial == nil {
		d := &net.Dialer{Timeout: 5 * time.Second}
		dial = d.DialContext
	}
	conn, _, err := dialHello(ctx, dial, tc, addr, h)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(time.Now().Add(timeout))
	if err := writeFrame(bufio.NewWriter(conn), req, body); err != nil {
		return nil, fmt.Errorf("channel: %s %s: %w", what, addr, err)
	}
	t, p, err := readFrame(conn)
	if err != nil {
		return nil, fmt.Errorf("channel: %s %s: %w", what, addr, err)
	}
	switch t {
	case resp:
		return p, nil
	case fRefuse:
		return nil, decodeRefuse(p)
	}
	return nil, fmt.Errorf("channel: %s %s: unexpected frame %d", what, addr, t)
}

// serveTrack answers one tracking client that has greeted (see
// ServerDelegate.Track): WELCOME, one TRACKREQ, one TRACKRESP.
func (s *Server) serveTrack(c net.Conn, bw *bufio.Writer) {
	if err := writeFrame(bw, fWelcome, encodeWelcome(s.cfg.Node, s.cfg.RG)); err != nil {
		return
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, p, err := readFrame(c)
	if err != nil || typ != fTrackReq {
		s.refuse(bw, RefuseBadGreeting, "expected TRACKREQ")
		return
	}
	keys, err := decodeTrackReq(p)
	if err != nil {
		s.refuse(bw, RefuseBadGreeting, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 20*time.Second)
	events := s.cfg.Delegate.Track(ctx, keys)
	cancel()
	c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_ = writeFrame(bw, fTrackResp, encodeTrackResp(events))
}

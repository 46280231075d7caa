package channel

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// A hop in doubt is resolved on the channel's listener too: a sender whose
// mesh hop sent a copy in full but never got the reply (RFC 5321 §6.1)
// greets with role 4 (holds), the server answers WELCOME, the client sends
// one HOLDSREQ with copy IDs and reads one HOLDSRESP with one answer per
// ID, in order, then both close. The node answers from its queue's
// committed state, never from its tracking log (which is not synced).
const (
	fHoldsReq  frameType = 10
	fHoldsResp frameType = 11
)

// RoleHolds is a sender resolving hops in doubt (see ServerConfig.Holds).
const RoleHolds Role = 4

// maxHoldsIDs bounds the IDs of one request.
const maxHoldsIDs = 1000

// Held is what a node knows of one copy ID.
type Held uint8

const (
	// HeldUnknown: the node never took the copy (or forgot it past its
	// dedup window): the sender may send it elsewhere.
	HeldUnknown Held = 0
	// HeldQueued: the copy is in the node's queue.
	HeldQueued Held = 1
	// HeldDone: the node took the copy and has finished with it
	// (delivered, handed on or bounced).
	HeldDone Held = 2
	// HeldQueuedSuspect: the copy is queued there, and the node asks its
	// routing group before it delivers it (a twin may exist,
	// docs/shadow.md).
	HeldQueuedSuspect Held = 3
	// HeldRelayed: the node handed the copy on whole to other mesh nodes
	// (done, for a sender in doubt; the node that took it answers now).
	HeldRelayed Held = 4
)

func (h Held) String() string {
	switch h {
	case HeldUnknown:
		return "unknown"
	case HeldQueued:
		return "queued"
	case HeldDone:
		return "done"
	case HeldQueuedSuspect:
		return "queued-suspect"
	case HeldRelayed:
		return "relayed"
	}
	return fmt.Sprintf("Held(%d)", uint8(h))
}

// HoldsFunc answers a holds request: one answer per ID, in order.
type HoldsFunc func(ctx context.Context, ids []string) []Held

func encodeHoldsReq(ids []string) []byte { return encodeList(ids) }

func decodeHoldsReq(p []byte) ([]string, error) {
	return decodeList(p, maxHoldsIDs, "holds request", "IDs")
}

func encodeHoldsResp(ans []Held) []byte {
	w := &writer{}
	w.u16(uint16(len(ans)))
	for _, a := range ans {
		w.u8(uint8(a))
	}
	return w.b
}

func decodeHoldsResp(p []byte, want int) ([]Held, error) {
	r := &reader{b: p}
	n := int(r.u16())
	if n != want {
		return nil, fmt.Errorf("channel: holds response: %d answers for %d IDs", n, want)
	}
	out := make([]Held, 0, n)
	for range n {
		h := Held(r.u8())
		if h > HeldRelayed {
			return nil, fmt.Errorf("channel: holds response: answer %d out of range", h)
		}
		out = append(out, h)
	}
	if err := r.end(); err != nil {
		return nil, fmt.Errorf("channel: holds response: %w", err)
	}
	return out, nil
}

// Holds asks the channel listener at addr what it holds of each copy ID
// (at most 1000). An error means no answer: the doubt stays.
func Holds(ctx context.Context, dial Dialer, tc *tls.Config, addr, self string, ids []string) ([]Held, error) {
	if len(ids) > maxHoldsIDs {
		return nil, fmt.Errorf("channel: holds: %d IDs exceed %d", len(ids), maxHoldsIDs)
	}
	p, err := request(ctx, dial, tc, addr, hello{Version: Version, Role: RoleHolds, Node: self},
		fHoldsReq, encodeHoldsReq(ids), fHoldsResp, 15*time.Second, "holds")
	if err != nil {
		return nil, err
	}
	return decodeHoldsResp(p, len(ids))
}

// serveHolds answers one holds client that has greeted (see
// ServerConfig.Holds): WELCOME, one HOLDSREQ, one HOLDSRESP.
func (s *Server) serveHolds(c net.Conn, bw *bufio.Writer) {
	if err := writeFrame(bw, fWelcome, encodeWelcome(s.cfg.Node, s.cfg.RG)); err != nil {
		return
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, p, err := readFrame(c)
	if err != nil || typ != fHoldsReq {
		s.refuse(bw, RefuseBadGreeting, "expected HOLDSREQ")
		return
	}
	ids, err := decodeHoldsReq(p)
	if err != nil {
		s.refuse(bw, RefuseBadGreeting, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	ans := s.cfg.Holds(ctx, ids)
	cancel()
	if len(ans) != len(ids) {
		s.refuse(bw, RefuseBadGreeting, "holds not answered")
		return
	}
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_ = writeFrame(bw, fHoldsResp, encodeHoldsResp(ans))
}

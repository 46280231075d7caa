package delivery

import (
	"testing"

	"github.com/meshd/meshd/queue"
)

// TestContentLeavingTheOrganisation: what a smarthost or MX (outside),
// an LMTP server (lmtpCopy) and a Maildir (localCopy, after its copy
// header) get of a message a mesh peer handed on (the peer's X-Meshd-*
// block at the top of the stored body, the hop header kept apart), and
// of a record without a hop header, whose whole header is scanned: no
// X-Meshd-* field in any spelling goes out of the organisation; local
// delivery keeps the trace and one X-Meshd-ID, this node's.
func TestContentLeavingTheOrganisation(t *testing.T) {
	const (
		hop   = "Received: from b1 by c1; Mon, 7 Dec 2026 20:00:00 +0000\r\n"
		peer  = "X-Meshd-ID: copy1\r\nX-Meshd-Origin: orig1\r\nX-Meshd-Trace: rga, rgb\r\n"
		msg   = "Received: from client by a1\r\nFrom: a@rga.test\r\nSubject: s\r\n\r\nX-Meshd-ID: in the body stays\r\n"
		whole = "Received: from b1 by c1\r\nX-Meshd-ID: copy1\r\nX-MESHD-origin: orig1\r\nFrom: a@rga.test\r\n" +
			"x-meshd-trace: rga,\r\n rgb\r\nX-Meshd-Age: 3\r\nSubject: s\r\n\r\nX-Meshd-ID: in the body stays\r\n"
		wholeOut = "Received: from b1 by c1\r\nFrom: a@rga.test\r\nSubject: s\r\n\r\nX-Meshd-ID: in the body stays\r\n"
	)
	withHop := &queue.Message{Envelope: queue.Envelope{ID: "copy1", HopHeader: []byte(hop), PeerFields: len(peer)}}
	noHop := &queue.Message{Envelope: queue.Envelope{ID: "copy1"}}
	for _, tc := range []struct {
		name string
		got  content
		want string
	}{
		{"outside, hop header", outside(withHop, []byte(peer+msg)), hop + msg},
		{"outside, no hop header", outside(noHop, []byte(whole)), wholeOut},
		{"lmtp, hop header", lmtpCopy(withHop, []byte(peer+msg)), "X-Meshd-ID: copy1\r\n" + hop + "X-Meshd-Trace: rga, rgb\r\n" + msg},
		{"maildir, hop header", localCopy(withHop, []byte(peer+msg)), hop + "X-Meshd-Trace: rga, rgb\r\n" + msg},
		{"stored, mesh hop source", stored(withHop, []byte(peer+msg)), hop + peer + msg},
	} {
		if got := string(tc.got.joined()); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

package smtp

import (
	"crypto/tls"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestRecheckPeers: a mesh peer's session that stops being a peer (its
// certificate no longer trusted after a reload, say) is closed with 421
// at its next MAIL, not served on as a stranger: at once after
// RecheckPeers, even with no RSET in between; without it, from the first
// MAIL after the next reset of the transaction (RSET, or a message's end).
func TestRecheckPeers(t *testing.T) {
	var peer atomic.Bool
	sink := &fakeSink{}
	srv := startServer(t, sink, func(c *ServerConfig) {
		c.Mesh = true
		c.MeshPeer = func(*Session, *tls.ConnectionState) bool { return peer.Load() }
	})
	message := func(w *wire, subject string) {
		t.Helper()
		w.cmd("MAIL FROM:<a@rga.test>", "250")
		w.cmd("RCPT TO:<b@rgb.test>", "250")
		w.cmd("DATA", "354")
		w.raw(msg(subject) + ".\r\n")
		w.expect("250")
	}
	peerMessages := func() int {
		n := 0
		for _, m := range sink.messages() {
			if m.sess.MeshPeer {
				n++
			}
		}
		return n
	}

	// RecheckPeers: the very next MAIL is refused.
	peer.Store(true)
	w := dialWire(t, srv.Addr().String())
	w.expect("220")
	w.cmd("EHLO a2.rga.meshd.test", "250")
	message(w, "one")
	w.cmd("NOOP", "250") // the reset after "one" has run: it was still a peer then
	peer.Store(false)
	srv.RecheckPeers()
	w.send("MAIL FROM:<a@rga.test>")
	if got := w.expect("421"); !strings.Contains(got, "4.7.0") {
		t.Fatalf("MAIL after RecheckPeers: %q", got)
	}
	w.expectClosed()

	// Without it: the reset of the transaction (RSET, or the end of a
	// message) asks again, and the next MAIL is refused.
	peer.Store(true)
	w = dialWire(t, srv.Addr().String())
	w.expect("220")
	w.cmd("EHLO a2.rga.meshd.test", "250")
	message(w, "two")
	w.cmd("NOOP", "250")
	peer.Store(false)
	w.cmd("RSET", "250")
	w.send("MAIL FROM:<a@rga.test>")
	w.expect("421")
	w.expectClosed()
	if got := peerMessages(); got != 2 {
		t.Fatalf("%d messages as a peer's, want 2 (one, two)", got)
	}
	if got := len(sink.messages()); got != 2 {
		t.Fatalf("%d messages, want 2", got)
	}
}

// TestPeerOverCapAtReset: a session that becomes a mesh peer only at a
// reset of its transaction (its node learnt by the mesh since its EHLO)
// while its peer already holds every slot of Limits.MaxConnsPerPeer gets
// 421 at its next MAIL. Closing it from within the reset deadlocked the
// session (go-smtp holds its connection lock there): the RSET was never
// answered and the server never shut down.
func TestPeerOverCapAtReset(t *testing.T) {
	var peers sync.Map // remote address -> a peer
	srv := startServer(t, &fakeSink{}, func(c *ServerConfig) {
		c.Mesh = true
		c.Limits.MaxConnsPerPeer = 1
		c.MeshPeer = func(s *Session, _ *tls.ConnectionState) bool {
			_, ok := peers.Load(s.RemoteAddr.String())
			return ok
		}
	})
	first := dialWire(t, srv.Addr().String())
	peers.Store(first.conn.LocalAddr().String(), true)
	first.expect("220")
	first.cmd("EHLO b1.rgb.meshd.test", "250")
	second := dialWire(t, srv.Addr().String())
	second.expect("220")
	second.cmd("EHLO b1.rgb.meshd.test", "250")
	peers.Store(second.conn.LocalAddr().String(), true)
	second.cmd("RSET", "250")
	second.send("MAIL FROM:<a@rgb.test>")
	second.expect("421")
	second.expectClosed()
	first.cmd("MAIL FROM:<a@rgb.test>", "250")
}

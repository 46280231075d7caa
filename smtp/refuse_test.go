package smtp

import (
	"testing"
)

// TestRefuseNew: a server that refuses new sessions answers a new
// connection 421 4.3.2 before any greeting; a session whose message is
// being queued gets its 250 and then 421 for its next command, whatever it is; an idle
// session gets 421 at its next MAIL; Transactions counts what is in
// progress; and RefuseNew(false) takes sessions again.
func TestRefuseNew(t *testing.T) {
	sink := &gateSink{release: make(chan struct{}), fakeSink: fakeSink{entered: make(chan struct{}, 1)}}
	srv := startServer(t, sink, nil)
	addr := srv.Addr().String()

	idle := dialWire(t, addr)
	idle.expect("220")
	idle.cmd("EHLO idle.test", "250")
	busy := queueing(t, addr, sink, "refuse")
	if n := srv.Transactions(); n != 1 {
		t.Fatalf("Transactions = %d with one message being queued, want 1", n)
	}

	srv.RefuseNew(true)
	fresh := dialWire(t, addr)
	fresh.expect("421 4.3.2")
	fresh.expectClosed()

	idle.send("MAIL FROM:<a@example.test>")
	idle.expect("421 4.3.2")
	idle.expectClosed()

	close(sink.release)
	busy.expect("250")
	busy.send("NOOP") // any command after the transaction
	busy.expect("421 4.3.2")
	busy.expectClosed()
	waitFor(t, "transactions ended", func() bool { return srv.Transactions() == 0 })
	if st := srv.ConnStats(); st.RefusedDraining != 1 {
		t.Fatalf("RefusedDraining = %d, want 1", st.RefusedDraining)
	}

	srv.RefuseNew(false)
	again := dialWire(t, addr)
	again.expect("220")
	again.cmd("EHLO again.test", "250")
	again.cmd("MAIL FROM:<a@example.test>", "250")
	if n := len(sink.messages()); n != 1 {
		t.Fatalf("%d messages accepted, want 1", n)
	}
}

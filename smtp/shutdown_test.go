package smtp

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// gateSink holds every Accept until release is closed (a commit that takes
// its time), then accepts.
type gateSink struct {
	fakeSink
	release chan struct{}
}

func (g *gateSink) Accept(ctx context.Context, s *Session, env Envelope, body []byte) error {
	if g.entered != nil {
		g.entered <- struct{}{}
	}
	select {
	case <-g.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.fakeSink.Accept(ctx, s, env, body)
}

// queueing opens a session that has sent a whole message, and returns once
// the message is in sink (held there until sink.release is closed).
func queueing(t *testing.T, addr string, sink *gateSink, subject string) *wire {
	t.Helper()
	w := dialWire(t, addr)
	w.expect("220")
	w.cmd("EHLO busy.test", "250")
	w.cmd("MAIL FROM:<a@example.test>", "250")
	w.cmd("RCPT TO:<b@example.test>", "250")
	w.cmd("DATA", "354")
	w.raw(msg(subject) + ".\r\n")
	<-sink.entered
	return w
}

// waitRefused waits until nothing accepts connections on addr any more.
func waitRefused(t *testing.T, addr string) {
	t.Helper()
	waitFor(t, "listener closed", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
}

// TestShutdownLetsCommandsFinish: Shutdown tells a session that waits for a
// command "421 4.3.2" at once, lets a session whose message is being queued
// get its 250 (then 421 for its next command), accepts no new connection,
// and returns once both are gone.
func TestShutdownLetsCommandsFinish(t *testing.T) {
	sink := &gateSink{release: make(chan struct{}), fakeSink: fakeSink{entered: make(chan struct{}, 1)}}
	srv := startServer(t, sink, nil)
	addr := srv.Addr().String()

	idle := dialWire(t, addr)
	idle.expect("220")
	idle.cmd("EHLO idle.test", "250")

	busy := queueing(t, addr, sink, "shutdown")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()

	idle.expect("421 4.3.2")
	idle.expectClosed()
	waitRefused(t, addr)
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) while a message was being queued", err)
	default:
	}

	close(sink.release)
	busy.expect("250")
	busy.send("MAIL FROM:<a@example.test>")
	busy.expect("421 4.3.2")
	busy.expectClosed()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return after the last session ended")
	}
	if n := len(sink.messages()); n != 1 {
		t.Fatalf("%d messages accepted, want 1", n)
	}
}

// TestShutdownGraceOver: when the grace ends first, the session is cut and
// the Sink's context is cancelled; no 250 is sent.
func TestShutdownGraceOver(t *testing.T) {
	sink := &gateSink{release: make(chan struct{}), fakeSink: fakeSink{entered: make(chan struct{}, 1)}}
	srv := startServer(t, sink, nil)
	busy := queueing(t, srv.Addr().String(), sink, "cut")

	// The grace is a context the test ends itself, once Shutdown is under
	// way (the listener refuses connections) and still waiting.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	waitRefused(t, srv.Addr().String())
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) before its grace ended", err)
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if rest := busy.expectClosed(); strings.Contains(rest, "250") {
		t.Fatalf("got %q after the grace ended", rest)
	}
	if n := len(sink.messages()); n != 0 {
		t.Fatalf("%d messages accepted, want 0", n)
	}
}

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

	busy := dialWire(t, addr)
	busy.expect("220")
	busy.cmd("EHLO busy.test", "250")
	busy.cmd("MAIL FROM:<a@example.test>", "250")
	busy.cmd("RCPT TO:<b@example.test>", "250")
	busy.cmd("DATA", "354")
	busy.raw(msg("shutdown") + ".\r\n")
	<-sink.entered // the message is being queued

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()

	idle.expect("421 4.3.2")
	idle.expectClosed()
	waitFor(t, "listener closed", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
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
	busy := dialWire(t, srv.Addr().String())
	busy.expect("220")
	busy.cmd("EHLO busy.test", "250")
	busy.cmd("MAIL FROM:<a@example.test>", "250")
	busy.cmd("RCPT TO:<b@example.test>", "250")
	busy.cmd("DATA", "354")
	busy.raw(msg("cut") + ".\r\n")
	<-sink.entered

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Fatalf("Shutdown returned after %v, before its grace ended", took)
	}
	if rest := busy.expectClosed(); strings.Contains(rest, "250") {
		t.Fatalf("got %q after the grace ended", rest)
	}
	if n := len(sink.messages()); n != 0 {
		t.Fatalf("%d messages accepted, want 0", n)
	}
}

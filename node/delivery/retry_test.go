package delivery

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/queue"
)

type noLocal struct{}

func (noLocal) IsLocal(string) bool { return false }

// attemptLog is a Tracker that keeps when each attempt was recorded.
type attemptLog struct {
	mu sync.Mutex
	at []time.Time
}

func (l *attemptLog) Attempted(*queue.Message, Attempt) {
	l.mu.Lock()
	l.at = append(l.at, time.Now())
	l.mu.Unlock()
}
func (l *attemptLog) DSNQueued(*queue.Message, string, string) {}
func (l *attemptLog) times() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.at...)
}

type noMetrics struct{}

func (noMetrics) Outcome(string, queue.Outcome) {}
func (noMetrics) Expired(int)                   {}
func (noMetrics) DSNQueued(string)              {}
func (noMetrics) DeadSkip()                     {}
func (noMetrics) InDoubt(string)                {}
func (noMetrics) GroupCheck(string)             {}
func (noMetrics) Shadow(string, int)            {}
func (noMetrics) ReplyLost(string)              {}

// TestRetryBackoffSchedule: a smarthost that cannot be reached is retried
// on the configured backoff (1m, then doubling), and the message is
// delivered once when it answers. The deliverer runs in a synctest bubble
// with an in-memory queue and the smarthost on pipes, so the seven
// minutes of the schedule pass on the bubble's clock.
func TestRetryBackoffSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config.Default()
		cfg.Outbound.Smarthost = "smarthost.test:25"
		cfg.Outbound.DeadTime = 30 * time.Second // shorter than the first retry: every attempt dials
		cfg.Queue.Retry = queue.Backoff{Initial: time.Minute, Max: time.Hour, Factor: 2, Jitter: 0}
		q, err := queue.Open(queue.Options{InMemory: true, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()

		ln := testkit.NewPipeListener()
		sink := testkit.NewSink(t, testkit.SinkOptions{Listener: ln})
		var mu sync.Mutex
		refuse := 3
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			defer mu.Unlock()
			if refuse > 0 {
				refuse--
				return nil, errors.New("connection refused")
			}
			return ln.Dial(ctx, network, addr)
		}
		track := &attemptLog{}
		d, err := New(cfg, Deps{Queue: q, Log: slog.New(slog.DiscardHandler), Now: time.Now, Local: noLocal{},
			Track: track, Metrics: noMetrics{}, Dial: dial})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		start := time.Now()
		env := queue.Envelope{ID: "retry-schedule-1", From: "a@example.test", Rcpts: []queue.Rcpt{{Addr: "b@remote.test"}}, ReceivedAt: start}
		if err := q.Enqueue(t.Context(), env, []byte("Subject: retry\r\n\r\nbody\r\n")); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		testkit.Until(t, time.Hour, "message delivered", func() bool { return len(sink.Messages()) == 1 })
		time.Sleep(time.Hour) // nothing more is sent
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}

		at := track.times()
		if len(at) != 4 || len(sink.Messages()) != 1 {
			t.Fatalf("%d attempts, %d messages delivered; want 4 attempts and the message once", len(at), len(sink.Messages()))
		}
		if first := at[0].Sub(start); first > time.Second {
			t.Errorf("first attempt %v after enqueue", first)
		}
		for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute} {
			if got := at[i+1].Sub(at[i]); got != want {
				t.Errorf("retry %d came %v after the attempt before, want %v", i+1, got, want)
			}
		}
	})
}

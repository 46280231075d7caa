package config

import (
	"testing"
	"time"
)

// TestRetryJitterZero: queue.retry.jitter: 0 retries exactly on the
// exponential schedule (it was read as the default 0.2), whatever the
// random draw.
func TestRetryJitterZero(t *testing.T) {
	cfg, err := Parse([]byte("queue:\n  retry:\n    initial: 2s\n    max: 1m\n    factor: 2\n    jitter: 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Queue.Retry
	for _, draw := range []float64{0, 0.25, 0.999} {
		for attempts, want := range map[int]time.Duration{1: 2 * time.Second, 2: 4 * time.Second, 3: 8 * time.Second} {
			if got := b.Next(attempts, func() float64 { return draw }); got != want {
				t.Errorf("attempt %d, draw %v: %v, want %v", attempts, draw, got, want)
			}
		}
	}
	// The default still spreads.
	def := Default().Queue.Retry
	if lo, hi := def.Next(1, func() float64 { return 0 }), def.Next(1, func() float64 { return 0.999 }); lo == hi {
		t.Errorf("default jitter 0.2 does not spread: %v and %v", lo, hi)
	}
}

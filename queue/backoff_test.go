package queue

import (
	"testing"
	"time"
)

func TestBackoffNext(t *testing.T) {
	fixed := func(v float64) func() float64 { return func() float64 { return v } }
	tests := []struct {
		name     string
		b        Backoff
		attempts int
		rnd      float64
		want     time.Duration
	}{
		{"defaults first", Backoff{}, 1, 0.5, time.Minute},
		{"defaults zero attempts", Backoff{}, 0, 0.5, time.Minute},
		{"defaults second", Backoff{}, 2, 0.5, 2 * time.Minute},
		{"defaults fourth", Backoff{}, 4, 0.5, 8 * time.Minute},
		{"defaults capped", Backoff{}, 7, 0.5, time.Hour},
		{"huge attempts capped", Backoff{}, 1 << 20, 0.5, time.Hour},
		{"jitter low", Backoff{}, 1, 0, 48 * time.Second},
		{"jitter high", Backoff{}, 1, 0.999999999, 72 * time.Second},
		{"jitter never exceeds max", Backoff{}, 10, 0.999999999, time.Hour},
		{"jitter below max when capped", Backoff{}, 10, 0, 48 * time.Minute},
		{"no jitter", Backoff{Jitter: -1}, 3, 0, 4 * time.Minute},
		{"custom", Backoff{Initial: 10 * time.Second, Max: time.Minute, Factor: 3, Jitter: -1}, 3, 0, 60 * time.Second},
		{"custom under cap", Backoff{Initial: 10 * time.Second, Max: 5 * time.Minute, Factor: 3, Jitter: -1}, 3, 0, 90 * time.Second},
		{"factor below one uses default", Backoff{Factor: 0.5, Jitter: -1}, 2, 0, 2 * time.Minute},
		{"max below initial", Backoff{Initial: time.Hour, Max: time.Minute, Jitter: -1}, 1, 0, time.Hour},
		{"full jitter floor", Backoff{Jitter: 5}, 1, 0, 0},
		{"zero jitter is none once any field is set", Backoff{Initial: time.Minute}, 1, 0, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.b.Next(tt.attempts, fixed(tt.rnd))
			if d := got - tt.want; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("Next(%d) = %v, want %v", tt.attempts, got, tt.want)
			}
		})
	}
}

func TestBackoffNextRandomInRange(t *testing.T) {
	b := Backoff{}
	for attempts := 1; attempts < 12; attempts++ {
		base := b.Next(attempts, func() float64 { return 0.5 })
		for range 200 {
			d := b.Next(attempts, nil)
			if d < time.Duration(float64(base)*0.8)-time.Millisecond || d > time.Hour {
				t.Fatalf("Next(%d) = %v, outside [0.8*%v, 1h]", attempts, d, base)
			}
		}
	}
}

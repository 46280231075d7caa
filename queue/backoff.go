package queue

import (
	"math"
	"math/rand/v2"
	"time"
)

// Backoff is an exponential retry schedule with jitter and a cap (the
// yaml keys are those of queue.retry in meshd's config). A zero Backoff
// means DefaultBackoff. In any other, a zero Initial or Max and a Factor
// below 1 take their defaults, and Jitter is as given: 0 (or negative) is
// none, above 1 is 1.
type Backoff struct {
	Initial time.Duration `yaml:"initial"`
	Max     time.Duration `yaml:"max"`
	Factor  float64       `yaml:"factor"`
	Jitter  float64       `yaml:"jitter"` // fraction: 0.2 spreads each delay over ±20%
}

// DefaultBackoff returns the schedule 1m, 2m, 4m, ... capped at 1h, each
// delay varied by ±20%.
func DefaultBackoff() Backoff {
	return Backoff{Initial: time.Minute, Max: time.Hour, Factor: 2, Jitter: 0.2}
}

func (b Backoff) withDefaults() Backoff {
	d := DefaultBackoff()
	if b == (Backoff{}) {
		return d
	}
	if b.Initial <= 0 {
		b.Initial = d.Initial
	}
	if b.Max <= 0 {
		b.Max = d.Max
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	if b.Factor < 1 {
		b.Factor = d.Factor
	}
	b.Jitter = min(max(b.Jitter, 0), 1)
	return b
}

// Next returns how long to wait before the next attempt when attempts
// attempts have been made already (attempts <= 1 gives Initial):
// Initial*Factor^(attempts-1), capped at Max, then spread by ±Jitter using
// rnd (a uniform value in [0,1); nil uses math/rand/v2). The result never
// exceeds Max and is never negative.
func (b Backoff) Next(attempts int, rnd func() float64) time.Duration {
	b = b.withDefaults()
	if attempts < 1 {
		attempts = 1
	}
	// Work in float64 and cap before converting so large attempt counts
	// cannot overflow time.Duration.
	d := float64(b.Initial) * math.Pow(b.Factor, float64(attempts-1))
	if d > float64(b.Max) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(b.Max)
	}
	if b.Jitter > 0 {
		if rnd == nil {
			rnd = rand.Float64
		}
		d *= 1 + b.Jitter*(2*rnd()-1)
	}
	if d > float64(b.Max) {
		d = float64(b.Max)
	}
	if d < 0 {
		d = 0
	}
	return time.Duration(d)
}

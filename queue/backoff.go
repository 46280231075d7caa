package queue

import (
	"math"
	"math/rand/v2"
	"time"
)

// Backoff is an exponential retry schedule with jitter and a cap. Zero fields
// take the defaults: Initial 1m, Max 1h, Factor 2, Jitter 0.2. A negative
// Jitter disables jitter.
type Backoff struct {
	Initial, Max time.Duration
	Factor       float64
	Jitter       float64 // fraction: 0.2 spreads each delay over ±20%
}

// Backoff defaults.
const (
	DefaultBackoffInitial = time.Minute
	DefaultBackoffMax     = time.Hour
	DefaultBackoffFactor  = 2.0
	DefaultBackoffJitter  = 0.2
)

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = DefaultBackoffInitial
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoffMax
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	if b.Factor < 1 {
		b.Factor = DefaultBackoffFactor
	}
	switch {
	case b.Jitter == 0:
		b.Jitter = DefaultBackoffJitter
	case b.Jitter < 0:
		b.Jitter = 0
	case b.Jitter > 1:
		b.Jitter = 1
	}
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

package linkstate

import (
	"fmt"
	"math"
	"time"
)

// DampingConfig configures connector flap damping, after BGP route-flap
// damping (RFC 2439 §4.2): every flap (a withdrawal: the connector going down) adds Penalty to a figure of
// merit that decays exponentially with HalfLife; once it exceeds Suppress
// the connector is held down until it decays to Reuse. The penalty is
// capped so that suppression never outlasts MaxSuppress after the last
// transition (RFC 2439 §4.2, "ceiling"). Zero fields take their value
// from DefaultDamping.
type DampingConfig struct {
	Penalty     float64       `yaml:"penalty"`      // added per flap (withdrawal)
	HalfLife    time.Duration `yaml:"half_life"`    // of the exponential decay
	Suppress    float64       `yaml:"suppress"`     // suppress when the penalty exceeds this
	Reuse       float64       `yaml:"reuse"`        // reuse when the penalty decays to this
	MaxSuppress time.Duration `yaml:"max_suppress"` // longest hold-down
}

// DefaultDamping returns the configuration used where fields are zero:
// with it, the third withdrawal within a few minutes suppresses the
// connector.
func DefaultDamping() DampingConfig {
	return DampingConfig{Penalty: 1000, HalfLife: 15 * time.Minute, Suppress: 2000, Reuse: 750, MaxSuppress: time.Hour}
}

// withDefaults fills zero fields from DefaultDamping.
func (c DampingConfig) withDefaults() DampingConfig {
	d := DefaultDamping()
	if c.Penalty != 0 {
		d.Penalty = c.Penalty
	}
	if c.HalfLife != 0 {
		d.HalfLife = c.HalfLife
	}
	if c.Suppress != 0 {
		d.Suppress = c.Suppress
	}
	if c.Reuse != 0 {
		d.Reuse = c.Reuse
	}
	if c.MaxSuppress != 0 {
		d.MaxSuppress = c.MaxSuppress
	}
	return d
}

// Validate checks a configuration (after defaults are applied).
func (c DampingConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Penalty < 0 || math.IsNaN(c.Penalty) || math.IsInf(c.Penalty, 0):
		return fmt.Errorf("linkstate: damping: penalty %v", c.Penalty)
	case c.HalfLife < time.Second:
		return fmt.Errorf("linkstate: damping: half-life %v below 1s", c.HalfLife)
	case !(c.Reuse > 0 && c.Reuse < c.Suppress) || math.IsInf(c.Suppress, 0):
		return fmt.Errorf("linkstate: damping: want 0 < reuse (%v) < suppress (%v)", c.Reuse, c.Suppress)
	case c.MaxSuppress < c.HalfLife/4:
		return fmt.Errorf("linkstate: damping: max suppress %v too short for half-life %v", c.MaxSuppress, c.HalfLife)
	case c.ceiling() <= c.Suppress:
		return fmt.Errorf("linkstate: damping: ceiling %.0f (reuse×2^(max suppress/half-life)) does not exceed suppress %v: nothing would ever be suppressed", c.ceiling(), c.Suppress)
	}
	return nil
}

// ceiling is the largest penalty kept: one that decays to Reuse in
// exactly MaxSuppress.
func (c DampingConfig) ceiling() float64 {
	return c.Reuse * math.Exp2(c.MaxSuppress.Seconds()/c.HalfLife.Seconds())
}

// Damper tracks the flap penalty of one connector. Time comes from the
// caller (injected clock); a Damper is not safe for concurrent use.
type Damper struct {
	cfg        DampingConfig
	ceil       float64
	penalty    float64   // as of last
	last       time.Time // time of the last update of penalty
	lastFlap   time.Time
	suppressed bool
}

// NewDamper returns a damper with a zero penalty. cfg is validated.
func NewDamper(cfg DampingConfig) (*Damper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Damper{cfg: cfg, ceil: cfg.ceiling()}, nil
}

// decay brings the penalty forward to now. Time never runs backwards for
// a damper: an earlier now is treated as last.
func (d *Damper) decay(now time.Time) {
	if d.last.IsZero() || !now.After(d.last) {
		if d.last.IsZero() {
			d.last = now
		}
		return
	}
	dt := now.Sub(d.last).Seconds()
	d.penalty *= math.Exp2(-dt / d.cfg.HalfLife.Seconds())
	if d.penalty < 1e-6 {
		d.penalty = 0
	}
	d.last = now
}

// update re-evaluates the suppressed flag at now.
func (d *Damper) update(now time.Time) {
	d.decay(now)
	switch {
	case !d.suppressed && d.penalty > d.cfg.Suppress:
		d.suppressed = true
	case d.suppressed && (d.penalty <= d.cfg.Reuse*(1+1e-9) || now.Sub(d.lastFlap) >= d.cfg.MaxSuppress):
		d.suppressed = false
	}
}

// Transition records one flap (withdrawal) at now and reports whether
// the connector is now suppressed.
func (d *Damper) Transition(now time.Time) bool {
	d.decay(now)
	d.penalty = math.Min(d.penalty+d.cfg.Penalty, d.ceil)
	d.lastFlap = now
	d.update(now)
	return d.suppressed
}

// Suppressed reports whether the connector is held down at now.
func (d *Damper) Suppressed(now time.Time) bool {
	d.update(now)
	return d.suppressed
}

// Penalty returns the decayed penalty at now.
func (d *Damper) Penalty(now time.Time) float64 {
	d.update(now)
	return d.penalty
}

// ReuseAt returns when a suppressed connector becomes usable again if it
// does not flap meanwhile (for the owner's timer); zero when it is not
// suppressed.
func (d *Damper) ReuseAt(now time.Time) time.Time {
	d.update(now)
	if !d.suppressed {
		return time.Time{}
	}
	wait := time.Duration(d.cfg.HalfLife.Seconds() * math.Log2(d.penalty/d.cfg.Reuse) * float64(time.Second))
	at := now.Add(wait)
	if limit := d.lastFlap.Add(d.cfg.MaxSuppress); limit.Before(at) {
		at = limit
	}
	return at
}

package linkstate

import (
	"fmt"
	"slices"
	"time"
)

// HysteresisConfig sets when a bridgehead pair changes state. A pair goes
// down after DownAfter consecutive failed observations (the node's glitch
// retries come before an observation is reported), and comes back up only
// after UpAfter consecutive successes spanning at least UpHold, so that a
// link which answers once between failures does not count as up.
type HysteresisConfig struct {
	UpAfter   int           // consecutive successes before up; default 3
	UpHold    time.Duration // and at least this long since the first of them; 0 = no hold
	DownAfter int           // consecutive failures before down; default 1
}

// DefaultHysteresis is used where fields are zero (UpHold stays 0).
var DefaultHysteresis = HysteresisConfig{UpAfter: 3, DownAfter: 1}

func (c HysteresisConfig) withDefaults() HysteresisConfig {
	if c.UpAfter <= 0 {
		c.UpAfter = DefaultHysteresis.UpAfter
	}
	if c.DownAfter <= 0 {
		c.DownAfter = DefaultHysteresis.DownAfter
	}
	if c.UpHold < 0 {
		c.UpHold = 0
	}
	return c
}

// StateConfig configures a ConnectorState.
type StateConfig struct {
	Hysteresis HysteresisConfig
	Damping    DampingConfig
}

// pair is the hysteresis state of one bridgehead pair.
type pair struct {
	up        bool
	succ      int       // consecutive successes while down
	firstSucc time.Time // first of them
	fail      int       // consecutive failures while up
}

// ConnectorState folds observations of one connector's bridgehead pairs
// into the state its RG master advertises. The connector is up when at
// least one pair is up; every change of that raw state to down (a
// withdrawal) is a flap for damping. Pairs start up (nothing observed
// against them yet).
// Time comes from the caller; a ConnectorState is not safe for
// concurrent use (its owner, the master, serialises observations).
type ConnectorState struct {
	hyst  HysteresisConfig
	damp  *Damper
	pairs map[[2]string]*pair
	rawUp bool // a pair is up, or none is known
}

// NewConnectorState returns the state of a connector with no pairs.
func NewConnectorState(cfg StateConfig) (*ConnectorState, error) {
	d, err := NewDamper(cfg.Damping)
	if err != nil {
		return nil, fmt.Errorf("linkstate: connector state: %w", err)
	}
	return &ConnectorState{hyst: cfg.Hysteresis.withDefaults(), damp: d, pairs: map[[2]string]*pair{}, rawUp: true}, nil
}

// Observe records one observation of the pair (source bridgehead node,
// target bridgehead host:port) at now: ok is a successful SMTP session or
// probe. It reports whether the connector's raw up state changed.
func (c *ConnectorState) Observe(now time.Time, source, target string, ok bool) bool {
	k := [2]string{source, target}
	p := c.pairs[k]
	if p == nil {
		p = &pair{up: true}
		c.pairs[k] = p
	}
	if ok {
		p.fail = 0
		if !p.up {
			if p.succ == 0 {
				p.firstSucc = now
			}
			p.succ++
			if p.succ >= c.hyst.UpAfter && now.Sub(p.firstSucc) >= c.hyst.UpHold {
				p.up, p.succ = true, 0
			}
		}
	} else {
		p.succ = 0
		if p.up {
			p.fail++
			if p.fail >= c.hyst.DownAfter {
				p.up, p.fail = false, 0
			}
		}
	}
	return c.recompute(now)
}

// Forget drops a pair that no longer exists (bridgehead removed from
// configuration).
func (c *ConnectorState) Forget(now time.Time, source, target string) bool {
	delete(c.pairs, [2]string{source, target})
	return c.recompute(now)
}

func (c *ConnectorState) recompute(now time.Time) bool {
	up := len(c.pairs) == 0
	for _, p := range c.pairs {
		if p.up {
			up = true
			break
		}
	}
	if up == c.rawUp {
		return false
	}
	c.rawUp = up
	// A flap is counted when the connector goes down (a withdrawal, as in
	// RFC 2439 practice): coming back is the other half of the same flap,
	// and a connector seen down once at start-up (its peer not yet
	// running) and then up is not penalised twice.
	if !up {
		c.damp.Transition(now)
	}
	return true
}

// RawUp reports whether at least one pair is up (or none is known),
// before damping and the bridge rule.
func (c *ConnectorState) RawUp() bool { return c.rawUp }

// Suppressed reports whether flap damping holds the connector down at now.
func (c *ConnectorState) Suppressed(now time.Time) bool { return c.damp.Suppressed(now) }

// Damper exposes the connector's damper (for ReuseAt timers and metrics).
func (c *ConnectorState) Damper() *Damper { return c.damp }

// Pairs returns the pair states sorted by (source, target).
func (c *ConnectorState) Pairs() []PairState {
	out := make([]PairState, 0, len(c.pairs))
	for k, p := range c.pairs {
		out = append(out, PairState{Source: k[0], Target: k[1], Up: p.up})
	}
	slices.SortFunc(out, cmpPair)
	return out
}

// Advertised is the state the master puts in its record at now: up when
// a pair is up and damping does not suppress it. A bridge (the only path
// between its ends, see Bridges) is always advertised up and never
// suppressed: routing around it is impossible, so mail waits in its queue.
func (c *ConnectorState) Advertised(now time.Time, bridge bool) (up, suppressed bool) {
	if bridge {
		return true, false
	}
	suppressed = c.damp.Suppressed(now)
	return c.RawUp() && !suppressed, suppressed
}

// Apply writes the advertised state at now into k (Pairs, Suppressed,
// Bridge), so that k.Up() equals the first result of Advertised.
func (c *ConnectorState) Apply(now time.Time, bridge bool, k *Connector) {
	_, k.Suppressed = c.Advertised(now, bridge)
	k.Bridge = bridge
	k.Pairs = c.Pairs()
}

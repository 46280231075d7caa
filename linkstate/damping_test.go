package linkstate

import (
	"math"
	"testing"
	"time"
)

func TestDampingConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  DampingConfig
		ok   bool
	}{
		{"defaults", DampingConfig{}, true},
		{"custom", DampingConfig{Penalty: 500, HalfLife: time.Minute, Suppress: 1200, Reuse: 400, MaxSuppress: 10 * time.Minute}, true},
		{"reuse above suppress", DampingConfig{Suppress: 500, Reuse: 800}, false},
		{"negative penalty", DampingConfig{Penalty: -1}, false},
		{"NaN penalty", DampingConfig{Penalty: math.NaN()}, false},
		{"half-life too short", DampingConfig{HalfLife: time.Millisecond}, false},
		{"ceiling below suppress", DampingConfig{HalfLife: time.Hour, MaxSuppress: 20 * time.Minute}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestDamper walks RFC 2439 behaviour with the defaults (penalty 1000,
// half-life 15m, suppress 2000, reuse 750, max 60m).
func TestDamper(t *testing.T) {
	type step struct {
		at         time.Duration // since t0
		flap       bool          // a transition at this time
		suppressed bool
		penalty    float64 // expected, ±1
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"one flap decays by half-life", []step{
			{0, true, false, 1000},
			{15 * time.Minute, false, false, 500},
			{30 * time.Minute, false, false, 250},
		}},
		{"two quick flaps stay under suppress", []step{
			{0, true, false, 1000},
			{time.Second, true, false, 1999.2},
		}},
		{"three quick flaps suppress", []step{
			{0, true, false, 1000},
			{time.Second, true, false, 1999.2},
			{2 * time.Second, true, true, 2998.5},
		}},
		{"reuse once decayed to reuse threshold", []step{
			{0, true, false, 1000},
			{0, true, false, 2000},
			{0, true, true, 3000},
			// 3000 -> 750 takes two half-lives.
			{30*time.Minute - time.Second, false, true, 751},
			{30 * time.Minute, false, false, 750},
		}},
		{"slow flaps never suppress", []step{
			{0, true, false, 1000},
			{15 * time.Minute, true, false, 1500},
			{30 * time.Minute, true, false, 1750},
			{45 * time.Minute, true, false, 1875},
			{60 * time.Minute, true, false, 1937.5},
		}},
		{"ceiling bounds suppression to max suppress", []step{
			// ceiling = 750 × 2^(60/15) = 12000
			{0, true, false, 1000}, {0, true, false, 2000}, {0, true, true, 3000}, {0, true, true, 4000},
			{0, true, true, 5000}, {0, true, true, 6000}, {0, true, true, 7000}, {0, true, true, 8000},
			{0, true, true, 9000}, {0, true, true, 10000}, {0, true, true, 11000}, {0, true, true, 12000},
			{0, true, true, 12000}, {0, true, true, 12000},
			{59 * time.Minute, false, true, 785.5},
			{60 * time.Minute, false, false, 750},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewDamper(DampingConfig{})
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				var sup bool
				if s.flap {
					sup = d.Transition(now)
				} else {
					sup = d.Suppressed(now)
				}
				if sup != s.suppressed {
					t.Errorf("step %d (+%v): suppressed = %v, want %v", i, s.at, sup, s.suppressed)
				}
				if p := d.Penalty(now); math.Abs(p-s.penalty) > 1 {
					t.Errorf("step %d (+%v): penalty %.1f, want %.1f", i, s.at, p, s.penalty)
				}
			}
		})
	}
}

func TestDamperReuseAt(t *testing.T) {
	d, err := NewDamper(DampingConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if !d.ReuseAt(t0).IsZero() {
		t.Error("ReuseAt set while not suppressed")
	}
	for range 3 {
		d.Transition(t0)
	}
	at := d.ReuseAt(t0)
	if want := t0.Add(30 * time.Minute); at.Sub(want).Abs() > time.Second {
		t.Fatalf("ReuseAt = %v, want %v", at, want)
	}
	if !d.Suppressed(at.Add(-time.Second)) || d.Suppressed(at) {
		t.Error("ReuseAt is not the moment of reuse")
	}
}

// TestDamperBoundsAdvertisements: a connector flapping every 10 s for 3 h
// changes advertised state a bounded number of times.
func TestDamperBoundsAdvertisements(t *testing.T) {
	d, err := NewDamper(DampingConfig{})
	if err != nil {
		t.Fatal(err)
	}
	changes, prev := 0, false
	for s := time.Duration(0); s < 3*time.Hour; s += 10 * time.Second {
		if sup := d.Transition(t0.Add(s)); sup != prev {
			changes++
			prev = sup
		}
	}
	if changes != 1 {
		t.Errorf("suppression changed %d times during continuous flapping, want 1", changes)
	}
}

package linkstate

import (
	"reflect"
	"testing"
	"time"
)

type obs struct {
	at     time.Duration
	src    string
	tgt    string
	ok     bool
	rawUp  bool // connector raw state after the observation
	change bool // Observe's result
}

func TestConnectorStateHysteresis(t *testing.T) {
	// Damping off in effect: a huge suppress threshold.
	noDamp := DampingConfig{Penalty: 1, Suppress: 1e9, Reuse: 1, MaxSuppress: 24 * time.Hour}
	tests := []struct {
		name string
		hyst HysteresisConfig
		obs  []obs
	}{
		{"failure takes the only pair down", HysteresisConfig{}, []obs{
			{0, "a", "x:25", true, true, false},
			{1, "a", "x:25", false, false, true},
		}},
		{"down after N failures", HysteresisConfig{DownAfter: 3}, []obs{
			{0, "a", "x:25", false, true, false},
			{1, "a", "x:25", false, true, false},
			{2, "a", "x:25", true, true, false}, // a success resets the count
			{3, "a", "x:25", false, true, false},
			{4, "a", "x:25", false, true, false},
			{5, "a", "x:25", false, false, true},
		}},
		{"up after N consecutive successes", HysteresisConfig{UpAfter: 3}, []obs{
			{0, "a", "x:25", false, false, true},
			{1, "a", "x:25", true, false, false},
			{2, "a", "x:25", true, false, false},
			{3, "a", "x:25", false, false, false}, // a failure resets the count
			{4, "a", "x:25", true, false, false},
			{5, "a", "x:25", true, false, false},
			{6, "a", "x:25", true, true, true},
		}},
		{"up after a hold time too", HysteresisConfig{UpAfter: 2, UpHold: 10 * time.Second}, []obs{
			{0, "a", "x:25", false, false, true},
			{1, "a", "x:25", true, false, false},
			{2, "a", "x:25", true, false, false}, // 2 successes but only 1s held
			{5, "a", "x:25", true, false, false},
			{11, "a", "x:25", true, true, true}, // 10s since the first success
		}},
		{"up while one pair of two is up", HysteresisConfig{}, []obs{
			{0, "a", "x:25", false, false, true},
			{1, "b", "x:25", true, true, true}, // new pairs start up
			{2, "b", "x:25", false, false, true},
			{3, "a", "y:25", true, true, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewConnectorState(StateConfig{Hysteresis: tt.hyst, Damping: noDamp})
			if err != nil {
				t.Fatal(err)
			}
			if !c.RawUp() {
				t.Fatal("a connector with no observations must be up")
			}
			for i, o := range tt.obs {
				ch := c.Observe(t0.Add(o.at*time.Second), o.src, o.tgt, o.ok)
				if ch != o.change || c.RawUp() != o.rawUp {
					t.Errorf("obs %d: changed %v up %v, want %v %v", i, ch, c.RawUp(), o.change, o.rawUp)
				}
			}
		})
	}
}

func TestConnectorStateAdvertised(t *testing.T) {
	newState := func(t *testing.T) *ConnectorState {
		c, err := NewConnectorState(StateConfig{Hysteresis: HysteresisConfig{UpAfter: 1}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	flap := func(c *ConnectorState, n int) {
		for i := range n {
			c.Observe(t0, "a", "x:25", i%2 == 1) // down, up, down, ...
		}
	}
	tests := []struct {
		name                 string
		flaps                int
		bridge               bool
		wantUp, wantSuppress bool
	}{
		{"fresh", 0, false, true, false},
		{"down", 1, false, false, false},
		{"back up", 2, false, true, false},
		{"two flaps are tolerated", 4, false, true, false},
		{"flapping, up but suppressed", 6, false, false, true},
		{"flapping, down and suppressed", 5, false, false, true},
		{"bridge down is advertised up", 1, true, true, false},
		{"bridge flapping is never suppressed", 5, true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newState(t)
			flap(c, tt.flaps)
			up, sup := c.Advertised(t0, tt.bridge)
			if up != tt.wantUp || sup != tt.wantSuppress {
				t.Errorf("Advertised = %v, %v; want %v, %v", up, sup, tt.wantUp, tt.wantSuppress)
			}
			// The record carries the same answer to routing.
			k := Connector{ID: "c", From: "rg1", To: "rg2", Cost: 1}
			c.Apply(t0, tt.bridge, &k)
			if k.Up() != tt.wantUp || k.Suppressed != tt.wantSuppress || k.Bridge != tt.bridge {
				t.Errorf("Apply: Up() %v Suppressed %v Bridge %v", k.Up(), k.Suppressed, k.Bridge)
			}
		})
	}
}

func TestConnectorStateReuseAndPairs(t *testing.T) {
	c, err := NewConnectorState(StateConfig{Hysteresis: HysteresisConfig{UpAfter: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		c.Observe(t0, "a", "x:25", i%2 == 1) // three withdrawals
	}
	c.Observe(t0, "b", "x:25", true)
	if up, _ := c.Advertised(t0, false); up {
		t.Fatal("suppressed connector advertised up")
	}
	at := c.Damper().ReuseAt(t0)
	if up, sup := c.Advertised(at, false); !up || sup {
		t.Errorf("at ReuseAt: up %v suppressed %v", up, sup)
	}
	want := []PairState{{Source: "a", Target: "x:25", Up: true}, {Source: "b", Target: "x:25", Up: true}}
	if got := c.Pairs(); !reflect.DeepEqual(got, want) {
		t.Errorf("Pairs = %+v", got)
	}
	c.Forget(at, "a", "x:25")
	if got := c.Pairs(); len(got) != 1 || got[0].Source != "b" {
		t.Errorf("after Forget: %+v", got)
	}
}

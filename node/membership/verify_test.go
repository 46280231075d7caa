package membership

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
)

// TestUnverifiedMemberNeverCounts: a member that joins with the pool's
// key and the highest priority but cannot prove its name stays out of
// the view (never master) and is listed as unverified with the reason;
// once it can prove it, it counts.
func TestUnverifiedMemberNeverCounts(t *testing.T) {
	key := []byte("0123456789abcdef")
	var allowRogue atomic.Bool
	verify := func(_ context.Context, m Member) (time.Time, error) {
		if m.Name == "rogue" && !allowRogue.Load() {
			return time.Time{}, errors.New("no certificate")
		}
		return time.Time{}, nil
	}
	startV := func(name string, prio uint32, seeds ...string) *Pool {
		p, err := Start(Config{Name: name, Meta: Meta{RG: "rg1", SMTP: "127.0.0.1:25", LinkState: "127.0.0.1:691", Priority: prio},
			Bind: "127.0.0.1:0", Seeds: seeds, Key: key, Fast: true, Logger: quiet, Verify: verify, VerifyRetry: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := startV("a", 0)
	defer a.Close()
	b := startV("b", 0, a.Addr())
	defer b.Close()
	testkit.Eventually(t, 5*time.Second, "a and b", sameView([]string{"a", "b"}, "a", a, b))
	rogue, _ := start(t, "rogue", "rg1", 1000, key, a.Addr())
	defer rogue.Close()
	testkit.Eventually(t, 5*time.Second, "rogue listed unverified", func() error {
		for _, p := range []*Pool{a, b} {
			v := p.View()
			if len(v.Unverified) != 1 || v.Unverified[0].Name != "rogue" || v.Unverified[0].Reason != "no certificate" {
				return errors.New(p.cfg.Name + " does not list the rogue as unverified")
			}
		}
		return nil
	})
	// Sampled over several verification retries: it never counts.
	for range 10 {
		if err := sameView([]string{"a", "b"}, "a", a, b)(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // sampling across retries, not waiting for a condition
	}
	allowRogue.Store(true)
	testkit.Eventually(t, 5*time.Second, "proven member counts", sameView([]string{"rogue", "a", "b"}, "rogue", a, b))
	if v := a.View(); len(v.Unverified) != 0 {
		t.Fatalf("still unverified: %+v", v.Unverified)
	}
}

// TestCountedMemberProvesItselfAgain: a member that counts is verified
// again every Reverify; once it can no longer prove its name (its
// certificate no longer trusted, say) it stops counting, while it stays in
// the gossip pool.
func TestCountedMemberProvesItselfAgain(t *testing.T) {
	var refuseB atomic.Bool
	startV := refusingPools(t, &refuseB, func(c *Config) { c.Reverify = 300 * time.Millisecond })
	a := startV("a")
	defer a.Close()
	b := startV("b", a.Addr())
	defer b.Close()
	testkit.Eventually(t, 5*time.Second, "a and b", sameView([]string{"a", "b"}, "a", a, b))
	refuseB.Store(true)
	testkit.Eventually(t, 5*time.Second, "b no longer counted at a", func() error {
		v := a.View()
		if len(v.Members) != 1 || len(v.Unverified) != 1 || v.Unverified[0].Reason != "certificate no longer trusted" {
			return fmt.Errorf("a's view: %+v", v)
		}
		return nil
	})
}

// TestRecheckDropsMemberAtOnce: after the trust changes, Recheck makes a
// counted member prove itself again at once, not at the next Reverify
// (an hour here): one that no longer can stops counting, and OnDropped
// hears it with Recheck's reason; one that still can keeps counting.
func TestRecheckDropsMemberAtOnce(t *testing.T) {
	var refuseB atomic.Bool
	dropped := make(chan string, 4)
	startV := refusingPools(t, &refuseB, func(c *Config) {
		name := c.Name
		c.Reverify = time.Hour
		c.OnDropped = func(member, reason string) { dropped <- name + ":" + member + ":" + reason }
	})
	a := startV("a")
	defer a.Close()
	b := startV("b", a.Addr())
	defer b.Close()
	c := startV("c", a.Addr())
	defer c.Close()
	testkit.Eventually(t, 5*time.Second, "a, b and c", sameView([]string{"a", "b", "c"}, "a", a, b, c))
	refuseB.Store(true)
	a.Recheck("ca_changed")
	testkit.Eventually(t, 5*time.Second, "b no longer counted at a", func() error {
		v := a.View()
		if _, ok := v.Member("b"); ok || len(v.Unverified) != 1 || v.Unverified[0].Name != "b" {
			return fmt.Errorf("a's view: %+v", v)
		}
		return nil
	})
	select {
	case got := <-dropped:
		if got != "a:b:ca_changed" {
			t.Fatalf("OnDropped told %q, want a:b:ca_changed", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnDropped not told of b")
	}
	if _, ok := a.View().Member("c"); !ok {
		t.Fatalf("c, which still proves itself, stopped counting at a: %+v", a.View())
	}
}

// refusingPools returns a starter of verifying pools in one routing group
// whose proofs all pass, except member b's while refuseB is set (its
// certificate no longer trusted, say); mod adjusts each pool's Config.
func refusingPools(t *testing.T, refuseB *atomic.Bool, mod func(*Config)) func(name string, seeds ...string) *Pool {
	verify := func(_ context.Context, m Member) (time.Time, error) {
		if m.Name == "b" && refuseB.Load() {
			return time.Time{}, errors.New("certificate no longer trusted")
		}
		return time.Time{}, nil
	}
	return func(name string, seeds ...string) *Pool {
		c := Config{Name: name, Meta: Meta{RG: "rg1", SMTP: "127.0.0.1:25", LinkState: "127.0.0.1:691"},
			Bind: "127.0.0.1:0", Seeds: seeds, Key: []byte("0123456789abcdef"), Fast: true, Logger: quiet, Verify: verify,
			VerifyRetry: 100 * time.Millisecond}
		mod(&c)
		p, err := Start(c)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
}

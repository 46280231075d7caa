package netem

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/meshd/meshd/internal/testkit"
)

// startMember runs a memberlist instance for host over a netem transport, with intervals short
// enough for a test.
func startMember(t *testing.T, nw *Network, host string) *memberlist.Memberlist {
	t.Helper()
	return startMemberAt(t, nw, host, "127.0.0.1:0")
}

func startMemberAt(t *testing.T, nw *Network, host, bind string) *memberlist.Memberlist {
	t.Helper()
	gt, err := nw.Host(host).GossipTransport(bind)
	if err != nil {
		t.Fatal(err)
	}
	cfg := memberlist.DefaultLocalConfig()
	cfg.Name = host
	cfg.Transport = gt
	cfg.LogOutput = io.Discard
	cfg.ProbeInterval = 50 * time.Millisecond
	cfg.ProbeTimeout = 25 * time.Millisecond
	cfg.GossipInterval = 20 * time.Millisecond
	cfg.PushPullInterval = 200 * time.Millisecond
	cfg.TCPTimeout = time.Second
	cfg.SuspicionMult = 2
	cfg.GossipToTheDeadTime = time.Minute // so that a healed node hears it was declared dead and refutes
	m, err := memberlist.Create(cfg)
	if err != nil {
		gt.Shutdown()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	return m
}

// join joins m to seed, retrying on a loaded machine.
func join(t *testing.T, m *memberlist.Memberlist, seed string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := m.Join([]string{seed})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s join %s: %v", m.LocalNode().Name, seed, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// view lists the members m knows of: alive ones by name, suspect ones marked; dead and left
// members are not listed (memberlist's Members omits them).
func view(m *memberlist.Memberlist) string {
	var names []string
	for _, n := range m.Members() {
		switch n.State {
		case memberlist.StateAlive:
			names = append(names, n.Name)
		case memberlist.StateSuspect:
			names = append(names, n.Name+"(suspect)")
		default:
			names = append(names, fmt.Sprintf("%s(%d)", n.Name, n.State))
		}
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// waitAlive polls until every member sees exactly want as alive.
func waitAlive(t *testing.T, ms map[string]*memberlist.Memberlist, want map[string]string, within time.Duration) {
	t.Helper()
	waitAliveRejoin(t, ms, want, within, nil)
}

// waitAliveRejoin is waitAlive calling rejoin at every poll, as an application's reconnect
// loop does (memberlist itself stops talking to members it declared dead once the broadcasts
// about them are done, so a healed partition is merged by a Join).
func waitAliveRejoin(t *testing.T, ms map[string]*memberlist.Memberlist, want map[string]string, within time.Duration, rejoin func()) {
	t.Helper()
	testkit.Eventually(t, within, "membership", func() error {
		if rejoin != nil {
			rejoin()
		}
		var diff []string
		for name, w := range want {
			if got := view(ms[name]); got != w {
				diff = append(diff, fmt.Sprintf("%s sees [%s] want [%s]", name, got, w))
			}
		}
		if len(diff) > 0 {
			return errors.New(strings.Join(diff, "; "))
		}
		return nil
	})
}

func TestGossipCutAndHeal(t *testing.T) {
	nw := newNet(t)
	ms := map[string]*memberlist.Memberlist{}
	for _, h := range []string{"n1", "n2", "n3"} {
		ms[h] = startMember(t, nw, h)
	}
	seed := ms["n1"].LocalNode().Address()
	for _, h := range []string{"n2", "n3"} {
		join(t, ms[h], seed)
	}
	all := "n1,n2,n3"
	waitAlive(t, ms, map[string]string{"n1": all, "n2": all, "n3": all}, 10*time.Second)

	nw.Isolate("n3")
	waitAlive(t, ms, map[string]string{"n1": "n1,n2", "n2": "n1,n2", "n3": "n3"}, 15*time.Second)
	if st := nw.LinkStats("n1", "n3"); st.PacketsDropped == 0 {
		t.Fatalf("no gossip packets dropped n1->n3: %+v", st)
	}

	// While isolated, n3 cannot join: its push-pull streams are refused.
	if _, err := ms["n3"].Join([]string{seed}); err == nil {
		t.Fatal("isolated n3 joined")
	}

	nw.Unisolate("n3")
	rejoin := func() { _, _ = ms["n3"].Join([]string{seed}) }
	waitAliveRejoin(t, ms, map[string]string{"n1": all, "n2": all, "n3": all}, 20*time.Second, rejoin)
	if st := nw.LinkStats("n1", "n3"); st.PacketsSent == 0 {
		t.Fatalf("no gossip packets passed n1->n3: %+v", st)
	}
}

func TestGossipPairCutAndCrash(t *testing.T) {
	nw := newNet(t)
	ms := map[string]*memberlist.Memberlist{}
	for _, h := range []string{"n1", "n2", "n3"} {
		ms[h] = startMember(t, nw, h)
	}
	seed := ms["n1"].LocalNode().Address()
	for _, h := range []string{"n2", "n3"} {
		join(t, ms[h], seed)
	}
	all := "n1,n2,n3"
	waitAlive(t, ms, map[string]string{"n1": all, "n2": all, "n3": all}, 10*time.Second)

	// Cut n3 from both others with Partition; n1 and n2 declare it dead.
	nw.Partition([]string{"n1", "n2"}, []string{"n3"})
	waitAlive(t, ms, map[string]string{"n1": "n1,n2", "n2": "n1,n2"}, 15*time.Second)
	nw.HealAll()
	rejoin := func() { _, _ = ms["n3"].Join([]string{seed}) }
	waitAliveRejoin(t, ms, map[string]string{"n1": all, "n2": all, "n3": all}, 20*time.Second, rejoin)

	// Crash n2: its transport closes; the others declare it dead.
	nw.Crash("n2")
	waitAlive(t, ms, map[string]string{"n1": "n1,n3", "n3": "n1,n3"}, 15*time.Second)
	if _, err := nw.Host("n2").GossipTransport("127.0.0.1:0"); err == nil {
		t.Fatal("crashed host started a gossip transport")
	}

	// Restart n2 on its old address, as a restarted node would, and rejoin.
	old := ms["n2"]
	bind := old.LocalNode().Address()
	if err := old.Shutdown(); err != nil {
		t.Fatal(err)
	}
	nw.Restart("n2")
	ms["n2"] = startMemberAt(t, nw, "n2", bind)
	join(t, ms["n2"], seed)
	waitAlive(t, ms, map[string]string{"n1": all, "n2": all, "n3": all}, 20*time.Second)
}

package node

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshd/meshd/node/config"

	"github.com/meshd/meshd/queue"
)

// inDoubtMesh is rga (a1, a2: a2 the master, so that it stays up, as a3
// in harness/scenarios/bridgehead-crash) and rgb (b1), joined both ways,
// with mesh.in_doubt_timeout a minute and the shadows checked every 200ms
// (deliveredOnce waits for their release); it returns once the LSDBs
// agree.
func inDoubtMesh(t *testing.T) *testMesh {
	tm := newTestMeshWith(t, map[string][]string{"rga": {"a1", "a2"}, "rgb": {"b1"}},
		[]meshLink{{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10}},
		func(c *config.Config) {
			c.Mesh.InDoubtTimeout = time.Minute
			c.Mesh.ShadowCheck = 200 * time.Millisecond
			if c.Node.Name == "a2" {
				c.Mesh.Priority = 10
			}
		})
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)
	return tm
}

// TestMeshHopInDoubtDeliversOnce: b1 hands a copy to a1; a1 commits it and
// is killed (its network first) before its 250 reaches b1 — the RFC 5321
// §6.1 lost reply — and b1's mesh SMTP path to a1 stays cut afterwards.
// b1 must not give the copy to a2: it holds the hop in doubt, asks a1 on
// port 691 (down: no answer) until a1 is back on its data directory,
// learns that a1 holds the copy, and records the hop done. Every message
// is delivered exactly once.
func TestMeshHopInDoubtDeliversOnce(t *testing.T) {
	tm := inDoubtMesh(t)
	a1Mesh := tm.meshL["a1"]
	var cut atomic.Bool
	var once sync.Once
	crashed := make(chan struct{})
	var lostID atomic.Value
	tm.mu.Lock()
	tm.dialHook = func(node, addr string, dial func() (net.Conn, error)) (net.Conn, error) {
		if node == "b1" && addr == a1Mesh && cut.Load() {
			return nil, errors.New("test: b1's mesh SMTP path to a1 is cut")
		}
		return dial()
	}
	tm.queuedHook = func(node, id string) {
		if node != "a1" {
			return
		}
		once.Do(func() {
			// Committed: a1 dies before its reply leaves.
			lostID.Store(id)
			cut.Store(true)
			tm.nw.Crash("a1")
			go func() { tm.crash("a1"); close(crashed) }()
		})
	}
	tm.mu.Unlock()

	// Mail until one copy has gone to a1 and a1 was killed after its commit.
	// b1 never crashes; its node is read once, before a1's crash (which
	// writes tm.nodes from the hook's goroutine) can start.
	tm.mu.Lock()
	sender := tm.nodes["b1"]
	tm.mu.Unlock()
	var accepted []string
	for i := 0; i < 40 && !cut.Load(); i++ {
		id := fmt.Sprintf("<doubt%d@test>", i)
		if err := tm.sendTo("b1", "dave@rga.test", id); err != nil {
			t.Fatalf("send %s: %v", id, err)
		}
		accepted = append(accepted, id)
		poll(t, 20*time.Second, id+" relayed, or a1 killed", func() error {
			if cut.Load() || sender.q.Stats().Messages == 0 {
				return nil
			}
			return errors.New("b1 still holds it")
		})
	}
	if !cut.Load() {
		t.Fatal("no copy went to a1")
	}
	<-crashed
	t.Logf("a1 killed after committing copy %v", lostID.Load())
	b1 := tm.nodes["b1"]
	// b1 holds the copy in doubt (durably) and gives it to nobody else.
	var channelAddr string
	poll(t, 10*time.Second, "doubt recorded at b1", func() error {
		msgs, _ := b1.q.List(queue.Filter{})
		for _, m := range msgs {
			for _, r := range m.Recipients {
				if r.Doubt != nil && r.Doubt.Node == "a1" && r.Doubt.CopyID == lostID.Load() {
					channelAddr = r.Doubt.Channel
					return nil
				}
			}
		}
		return fmt.Errorf("no recipient in doubt about a1 among %d messages", len(msgs))
	})
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if b1.q.Stats().Messages == 0 {
			t.Fatal("b1 gave up the copy while a1, which may hold it, was down")
		}
	}
	// a1 comes back on its data directory and its port-691 address (a
	// deployment's fixed port; the test's was chosen at the first start).
	cfg := tm.cfgs["a1"]
	cfg.Listen.Linkstate = channelAddr
	tm.cfgs["a1"] = cfg
	tm.start("a1")
	tm.deliveredOnce(t, "rga", accepted)
	if v := counterOf(t, b1, "meshd_mesh_in_doubt_total", "result", "held"); v != 1 {
		t.Errorf("meshd_mesh_in_doubt_total{result=held} = %v, want 1", v)
	}
	if v := counterOf(t, b1, "meshd_mesh_in_doubt_total", "result", "timeout"); v != 0 {
		t.Errorf("meshd_mesh_in_doubt_total{result=timeout} = %v, want 0", v)
	}
	t.Logf("%d messages, each delivered once; in doubt: recorded %v, unanswered %v, held %v",
		len(accepted), counterOf(t, b1, "meshd_mesh_in_doubt_total", "result", "recorded"),
		counterOf(t, b1, "meshd_mesh_in_doubt_total", "result", "unanswered"), counterOf(t, b1, "meshd_mesh_in_doubt_total", "result", "held"))
}

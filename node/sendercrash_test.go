package node

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The sending side of a mesh hop killed mid-attempt (docs/indoubt.md,
// "sender killed"): b1 hands a copy to a node of rga and is killed — its
// queue halted at that instant, so nothing it does afterwards reaches its
// disk, then the node closed as kill -9 leaves it — and restarted on its
// data directory. b1's mesh SMTP path to the node that had the copy stays
// cut, so a copy routed anew after the restart goes to the other node of
// rga. Every message, those sent before and after the crash, is delivered
// exactly once.

// senderCrashMesh is inDoubtMesh and the cut b1 → node flag the dial
// hook reads.
func senderCrashMesh(t *testing.T) (*testMesh, *sync.Map) {
	var cut sync.Map // mesh address → true: b1's mesh SMTP path there is cut
	return inDoubtMesh(t), &cut
}

// bigBody is a message of about 256 KiB, so that its transfer spans many
// writes and a hook can fire in the middle of it.
func bigBody(rcpt, msgID string) string {
	return fmt.Sprintf("From: s@sender.test\r\nTo: %s\r\nMessage-ID: %s\r\nSubject: sender crash\r\n\r\n%s",
		rcpt, msgID, strings.Repeat(strings.Repeat("x", 76)+"\r\n", 3300))
}

// deliveredOnce waits until every accepted message is delivered in rg
// and the mesh has settled: every node up, its queue empty and no shadow
// held. Settled, nothing can deliver a copy any more (a queued copy, one
// in doubt or a shadow resubmitted later would be a late duplicate), so
// the count then is final: every message delivered in rg exactly once. A
// second copy fails the test as soon as it shows.
func (tm *testMesh) deliveredOnce(t *testing.T, rg string, accepted []string) {
	t.Helper()
	poll(t, 60*time.Second, "every message delivered once in "+rg+" and the mesh settled", func() error {
		// Settled before the count and again after it: a copy delivered
		// while the count is read was in a queue at the first look.
		if err := tm.settled(rg); err != nil {
			return err
		}
		got := tm.delivered(rg)
		for id, c := range got {
			if c > 1 {
				t.Fatalf("%s delivered %d times in %s", id, c, rg)
			}
		}
		for _, id := range accepted {
			if got[id] == 0 {
				return fmt.Errorf("%s not delivered", id)
			}
		}
		return tm.settled(rg)
	})
}

// settled is nil when every node of the mesh is up with an empty queue and
// no shadow copy. The nodes of rg, where the mail ends, are looked at
// last: a copy handed on during the look goes towards them, so it is seen
// where it arrives.
func (tm *testMesh) settled(rg string) error {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	var names []string
	for _, g := range sortedRGs(tm.rgs) {
		if g != rg {
			names = append(names, tm.rgs[g]...)
		}
	}
	for _, name := range append(names, tm.rgs[rg]...) {
		n := tm.nodes[name]
		if n == nil {
			return fmt.Errorf("%s is down", name)
		}
		if k := n.q.Stats().Messages; k != 0 {
			return fmt.Errorf("%s still holds %d messages", name, k)
		}
		if k := n.q.ShadowStats().Count; k != 0 {
			return fmt.Errorf("%s still holds %d shadows", name, k)
		}
	}
	return nil
}

// restartSender waits for the crash of b1, restarts it, and checks that
// every accepted message is delivered in rga exactly once and b1's queue
// is empty.
func restartSender(t *testing.T, tm *testMesh, crashed <-chan struct{}, accepted []string) *Node {
	<-crashed
	b1 := tm.start("b1")
	poll(t, 30*time.Second, "LSDB convergence after b1's restart", tm.converged)
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("<after%d-%d@test>", i, time.Now().UnixNano())
		if err := tm.sendTo("b1", "dave@rga.test", id); err != nil {
			t.Fatalf("send %s after the restart: %v", id, err)
		}
		accepted = append(accepted, id)
	}
	tm.deliveredOnce(t, "rga", accepted)
	return b1
}

// TestSenderKilledAfterFinalDotDeliversOnce: the node of rga that takes
// the copy commits it, and b1 dies then — after its final dot, before it
// reads the 250. After its restart b1 must ask that node (port 691) and
// record the hop done, not route the copy to the other node.
func TestSenderKilledAfterFinalDotDeliversOnce(t *testing.T) {
	tm, cut := senderCrashMesh(t)
	tm.mu.Lock()
	sender := tm.nodes["b1"]
	tm.mu.Unlock()
	var once sync.Once
	var took, lostID atomic.Value
	crashed := make(chan struct{})
	tm.mu.Lock()
	tm.dialHook = func(node, addr string, dial func() (net.Conn, error)) (net.Conn, error) {
		if _, ok := cut.Load(addr); ok && node == "b1" {
			return nil, errors.New("test: b1's mesh SMTP path to " + addr + " is cut")
		}
		return dial()
	}
	tm.queuedHook = func(node, id string) {
		if node != "a1" && node != "a2" {
			return
		}
		once.Do(func() {
			// Committed at node, its 250 not yet sent: b1 dies now.
			sender.q.Halt()
			took.Store(node)
			lostID.Store(id)
			cut.Store(tm.meshL[node], true)
			tm.nw.Crash("b1")
			go func() { tm.crash("b1"); close(crashed) }()
		})
	}
	tm.mu.Unlock()

	id := "<killed-after-dot@test>"
	if err := send(sender.SMTPAddr(), "s@sender.test", []string{"dave@rga.test"}, bigBody("dave@rga.test", id)); err != nil {
		t.Fatalf("send %s: %v", id, err)
	}
	b1 := restartSender(t, tm, crashed, []string{id})
	if v := counterOf(t, b1, "meshd_mesh_in_doubt_total", "result", "held"); v != 1 {
		t.Errorf("meshd_mesh_in_doubt_total{result=held} = %v at b1 after its restart, want 1", v)
	}
	t.Logf("b1 killed after its final dot to %v (copy %v); after the restart it asked, and every message was delivered once", took.Load(), lostID.Load())
}

// TestSenderKilledMidBodyDeliversOnce: b1 dies while the body is on its
// way (no node took the copy). After its restart b1 asks the node it was
// sending to, hears "unknown", and routes the copy along the current
// routes: delivered once, not stranded.
func TestSenderKilledMidBodyDeliversOnce(t *testing.T) {
	tm, cut := senderCrashMesh(t)
	tm.mu.Lock()
	sender := tm.nodes["b1"]
	tm.mu.Unlock()
	rga := map[string]string{tm.meshL["a1"]: "a1", tm.meshL["a2"]: "a2"}
	var once sync.Once
	var armed atomic.Bool
	crashed := make(chan struct{})
	tm.mu.Lock()
	tm.dialHook = func(node, addr string, dial func() (net.Conn, error)) (net.Conn, error) {
		if node != "b1" || rga[addr] == "" {
			return dial()
		}
		if _, ok := cut.Load(addr); ok {
			return nil, errors.New("test: b1's mesh SMTP path to " + addr + " is cut")
		}
		c, err := dial()
		if err != nil || !armed.Load() {
			return c, err
		}
		// Probes write little: only the session that carries the body
		// passes the limit.
		return &killAfter{Conn: c, limit: 64 << 10, armed: &armed, kill: func() {
			once.Do(func() {
				// Half the body is out: b1 dies now.
				sender.q.Halt()
				cut.Store(addr, true)
				tm.nw.Crash("b1")
				go func() { tm.crash("b1"); close(crashed) }()
			})
		}}, nil
	}
	tm.mu.Unlock()

	armed.Store(true)
	id := "<killed-mid-body@test>"
	if err := send(sender.SMTPAddr(), "s@sender.test", []string{"dave@rga.test"}, bigBody("dave@rga.test", id)); err != nil {
		t.Fatalf("send %s: %v", id, err)
	}
	b1 := restartSender(t, tm, crashed, []string{id})
	if v := counterOf(t, b1, "meshd_mesh_in_doubt_total", "result", "unknown"); v != 1 {
		t.Errorf("meshd_mesh_in_doubt_total{result=unknown} = %v at b1 after its restart, want 1", v)
	}
}

// killAfter runs kill, once for all its kind, when more than limit bytes
// were written on it, and fails that write.
type killAfter struct {
	net.Conn
	limit   int
	written atomic.Int64
	armed   *atomic.Bool // cleared by the first kill: later sessions pass
	kill    func()
}

func (k *killAfter) Write(p []byte) (int, error) {
	if k.written.Add(int64(len(p))) > int64(k.limit) && k.armed.CompareAndSwap(true, false) {
		k.kill()
		return 0, errors.New("test: sender killed")
	}
	return k.Conn.Write(p)
}

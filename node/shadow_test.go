package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/delivery"
)

// shadowMesh is the triangle with fast shadow checks.
func shadowMesh(t *testing.T, shadows bool) *testMesh {
	return newTestMeshWith(t,
		map[string][]string{"rga": {"a1", "a2"}, "rgb": {"b1", "b2"}, "rgc": {"c1", "c2"}},
		[]meshLink{
			{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10},
			{"bc", "rgb", "rgc", 10}, {"cb", "rgc", "rgb", 10},
			{"ac", "rga", "rgc", 50}, {"ca", "rgc", "rga", 50},
		}, func(c *config.Config) {
			c.Mesh.ShadowCheck = 200 * time.Millisecond
			c.Mesh.ShadowTimeout = 5 * time.Second
			if !shadows {
				c.Queue.MaxShadowBytes = 0
			}
		})
}

// A bridgehead in the middle of the path is killed and its data directory
// taken away while 500 messages stream through it: the previous hop's
// shadows bring every message to rgc exactly once. Then the same bridgehead comes back with its old data
// directory and forwards what it still held: nothing is delivered twice.
func TestMeshShadowBridgeheadDiskLost(t *testing.T) {
	tm := shadowMesh(t, true)
	tm.dumpQueuesOnFailure(t)
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)
	poll(t, 10*time.Second, "route", tm.pathIs("a1", "rgc.test", "rga>rgb>rgc"))
	const total = 500
	var mu sync.Mutex
	accepted := map[string]bool{}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		got := tm.delivered("rgc")
		for id := range accepted {
			if got[id] != 1 {
				t.Logf("%s delivered %d times; its tracking events:", id, got[id])
				for _, l := range tm.trackingOf(id) {
					t.Logf("  %s", l)
				}
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < total; i += 4 {
				if ctx.Err() != nil {
					return
				}
				id := fmt.Sprintf("<d%d@test>", i)
				for try := 0; try < 50; try++ { // a refused message is sent again, as a client would
					if err := tm.sendTo([]string{"a1", "a2"}[i%2], fmt.Sprintf("u%d@rgc.test", i%5), id); err == nil {
						mu.Lock()
						accepted[id] = true
						mu.Unlock()
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	poll(t, 60*time.Second, "stream under way", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(accepted) < total/3 {
			return fmt.Errorf("%d accepted", len(accepted))
		}
		return nil
	})
	// b1 loses its disk; c1, one of rgc's two delivering nodes, crashes
	// at the same time (its disk kept), so the resubmitted copies go to c2
	// although c1 may have delivered some of them already: c2 asks c1
	// before it delivers them (the group check, docs/shadow.md).
	dir := tm.cfgs["b1"].Node.DataDir
	// c1 has run long enough to have saved what records of rgb listed (a
	// node's memory of them is saved within a quarter second).
	poll(t, 10*time.Second, "c1's saved memory of rgb's nodes", func() error {
		b, err := os.ReadFile(filepath.Join(tm.cfgs["c1"].Node.DataDir, "mesh-listed.json"))
		if err != nil {
			return err
		}
		var saved map[string]map[string]json.RawMessage
		if err := json.Unmarshal(b, &saved); err != nil {
			return err
		}
		for _, name := range tm.rgs["rgb"] {
			if saved["rgb"][name] == nil {
				return fmt.Errorf("no %s in %s", name, b)
			}
		}
		return nil
	})
	tm.crash("b1")
	// c1 comes back while the record of rgb that b1's empty disk
	// originates may still leave b2 out: c1 must still believe b2's hops
	// (the nodes recent records listed outlive its restart in
	// mesh-listed.json, node/mesh/listed.go).
	tm.crash("c1")
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	tm.start("b1") // an empty disk: a new incarnation
	poll(t, 60*time.Second, "shadows resubmitted", func() error {
		if tm.resubmitted() == 0 {
			return errors.New("none yet")
		}
		return nil
	})
	c1 := tm.start("c1")
	// The first record of rgb that c1 holds after its restart: while b1's
	// empty disk keeps it apart from b2, each originates rgb's record with
	// itself only. c1 must know both at once, from what it remembered of
	// the records before its crash (not only from records since).
	var lists []string
	poll(t, 20*time.Second, "c1 holds a record of rgb", func() error {
		r, ok := c1.Mesh().LSDB().Snapshot().Get("rgb")
		if !ok {
			return errors.New("none yet")
		}
		lists = lists[:0]
		for _, mb := range r.Members {
			lists = append(lists, mb.Name)
		}
		return nil
	})
	var unknown []string
	for _, name := range tm.rgs["rgb"] {
		if !c1.Mesh().KnowsNode("rgb", name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		t.Errorf("c1, restarted, holds rgb's record listing %v and does not know %v: their hops would be mail from outside", lists, unknown)
	} else {
		t.Logf("c1 restarted: its first record of rgb lists %v; it knows all of %v", lists, tm.rgs["rgb"])
	}
	wg.Wait()
	mu.Lock()
	n := len(accepted)
	mu.Unlock()
	if n != total {
		t.Fatalf("only %d of %d messages accepted", n, total)
	}
	allOnce := func() error {
		got := tm.delivered("rgc")
		for id := range accepted {
			if got[id] == 0 {
				return fmt.Errorf("%s not delivered (%d of %d so far)", id, len(got), n)
			}
		}
		return nil
	}
	poll(t, 120*time.Second, "every accepted message delivered", allOnce)
	dups := func() int {
		d := 0
		for id, c := range tm.delivered("rgc") {
			if c != 1 {
				t.Errorf("%s delivered %d times: %q", id, c, tm.copiesOf("rgc", id))
				d++
			}
		}
		return d
	}
	if d := dups(); d > 0 {
		t.Fatalf("%d duplicated after the disk loss", d)
	}
	t.Logf("after losing b1's disk: %d accepted, %d delivered exactly once; %s", n, len(tm.delivered("rgc")), tm.shadowCounts())

	// The old disk comes back.
	tm.crash("b1")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir+".old", dir); err != nil {
		t.Fatal(err)
	}
	b1 := tm.start("b1")
	poll(t, 60*time.Second, "b1's old queue drained", func() error {
		if st := b1.q.Stats(); st.Messages > 0 {
			return fmt.Errorf("%d messages still queued at b1", st.Messages)
		}
		return nil
	})
	if d := dups(); d > 0 {
		t.Fatalf("%d duplicated after the old disk came back", d)
	}
	t.Logf("b1 back with its old disk: still %d delivered exactly once; %s", len(tm.delivered("rgc")), tm.shadowCounts())
}

// copiesOf describes the mailbox copies of the message msgID in rg: the
// node, the copy ID it was delivered under and its trace, for a failure.
func (tm *testMesh) copiesOf(rg, msgID string) []string {
	var out []string
	for _, name := range tm.rgs[rg] {
		root := filepath.Join(tm.cfgs[name].Node.DataDir, "maildir")
		filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			if m := msgIDRe.FindSubmatch(b); m == nil || string(m[1]) != msgID {
				return nil
			}
			hdr, _, _ := strings.Cut(string(b), "\r\nFrom:")
			out = append(out, name+": "+strings.ReplaceAll(hdr, "\r\n", " | "))
			return nil
		})
	}
	return out
}

// shadowCounts sums the shadow and group-check counters of the live nodes.
func (tm *testMesh) shadowCounts() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	sum := map[string]float64{}
	for _, n := range tm.nodes {
		if n == nil {
			continue
		}
		for _, ev := range []string{delivery.ShadowReleased, delivery.ShadowResubmitted} {
			sum[ev] += shadowCounter(n, "meshd_shadow_events_total", "event", ev)
		}
		for _, r := range []string{delivery.GroupCheckDeliver, delivery.GroupCheckTwin, delivery.GroupCheckWait, delivery.GroupCheckTimeout} {
			sum["check "+r] += shadowCounter(n, "meshd_shadow_group_checks_total", "result", r)
		}
	}
	return fmt.Sprintf("shadows released %.0f, resubmitted %.0f; group checks: deliver %.0f, twin %.0f, wait %.0f, timeout %.0f",
		sum[delivery.ShadowReleased], sum[delivery.ShadowResubmitted], sum["check deliver"], sum["check twin"], sum["check wait"], sum["check timeout"])
}

// resubmitted counts the shadows the live nodes resubmitted.
func (tm *testMesh) resubmitted() float64 {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	sum := 0.0
	for _, n := range tm.nodes {
		if n != nil {
			sum += shadowCounter(n, "meshd_shadow_events_total", "event", delivery.ShadowResubmitted)
		}
	}
	return sum
}

// shadowCounter is the value of n's counter name{label="value"} (0 when
// never counted or unreadable).
func shadowCounter(n *Node, name, label, value string) float64 {
	fams, err := n.metrics.Registry().Gather()
	if err != nil {
		return 0
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// trackingOf is every tracking event, at every node and in every data
// directory a test moved aside (name.old), of the message whose
// Message-ID is msgID and of the queue IDs those events name.
func (tm *testMesh) trackingOf(msgID string) []string {
	var files []string
	for _, c := range tm.cfgs {
		for _, d := range []string{c.Node.DataDir, c.Node.DataDir + ".old"} {
			m, _ := filepath.Glob(filepath.Join(d, "track.log*"))
			files = append(files, m...)
		}
	}
	var lines []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" {
				lines = append(lines, f+": "+l)
			}
		}
	}
	keys := map[string]bool{strings.Trim(msgID, "<>"): true}
	idRe := regexp.MustCompile(`"(?:id|copy|origin|copy_id)":"([^"]+)"`)
	for range 3 { // IDs reached through IDs
		for _, l := range lines {
			for k := range keys {
				if strings.Contains(l, k) {
					for _, m := range idRe.FindAllStringSubmatch(l, -1) {
						keys[m[1]] = true
					}
					break
				}
			}
		}
	}
	var out []string
	for _, l := range lines {
		for k := range keys {
			if strings.Contains(l, k) {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

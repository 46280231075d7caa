package node

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/queue"
)

// TestDrainStandaloneRefused: a standalone node has nobody to hand its
// mail to; the drain endpoints say so (409) and change nothing, and they
// need the token like every state change.
func TestDrainStandaloneRefused(t *testing.T) {
	n := startNode(t, testConfig(t), Options{})
	adminCall(t, n, "POST", "/api/node/drain", false, http.StatusUnauthorized, nil)
	adminCall(t, n, "POST", "/api/node/drain", true, http.StatusConflict, nil)
	adminCall(t, n, "GET", "/api/node/drain", false, http.StatusConflict, nil)
	mustSend(t, n.SMTPAddr(), "a@example.test", []string{"b@example.test"}, message("still in service"))
}

// TestDrainHandsQueueToMember: a1 holds mail it cannot deliver (its link
// to rgb is cut, its own mailbox fails); drained through the admin API it
// refuses new sessions with 421 4.3.2, hands everything to a2, which
// delivers each message exactly once (local mail into its own mailbox),
// stays draining across a restart, and takes mail again after undrain.
func TestDrainHandsQueueToMember(t *testing.T) {
	tm := newTestMeshWith(t, map[string][]string{"rga": {"a1", "a2"}, "rgb": {"b1"}},
		[]meshLink{{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10}},
		func(c *config.Config) {
			c.Mesh.ShadowCheck = 100 * time.Millisecond // Done waits two rounds with shadows on
			if c.Node.Name == "a1" {
				// A mailbox that cannot be written: local mail waits in a1's queue.
				blocked := filepath.Join(c.Node.DataDir, "mailbox-is-a-file")
				if err := os.WriteFile(blocked, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				c.Delivery.Maildir = blocked
				c.Queue.MaxShadowBytes = 1 << 20 // shadows on: Done waits for the shadow checks
			}
		})
	poll(t, 20*time.Second, "mesh converged", tm.converged)
	// a1 cannot reach b1 (one way: b1 still reaches a1).
	tm.mu.Lock()
	tm.dialHook = func(node, addr string, dial func() (net.Conn, error)) (net.Conn, error) {
		if node == "a1" && addr == tm.meshL["b1"] {
			return nil, errors.New("test: a1 cut off from b1")
		}
		return dial()
	}
	tm.mu.Unlock()
	a1 := tm.nodes["a1"]
	var ids []string
	for i := range 4 {
		for _, rcpt := range []string{"bob@rgb.test", "carol@rga.test"} {
			id := fmt.Sprintf("<drain-%d-%s>", i, rcpt[:3])
			if err := tm.sendTo("a1", rcpt, id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
	}
	poll(t, 10*time.Second, "a1 holds all 8 after an attempt", func() error {
		msgs, _ := a1.Queue().List(queue.Filter{})
		tried := 0
		for _, m := range msgs {
			if m.Recipients[0].Attempts > 0 {
				tried++
			}
		}
		if tried != 8 {
			return fmt.Errorf("%d of %d queued messages attempted", tried, len(msgs))
		}
		return nil
	})

	if v := a1.Mesh().View(); v.Master != "a1" {
		t.Fatalf("before the drain the master is %q, want a1", v.Master)
	}
	var st adminapi.DrainStatus
	adminCall(t, a1, "POST", "/api/node/drain", false, http.StatusUnauthorized, nil)
	adminCall(t, a1, "POST", "/api/node/drain", true, http.StatusOK, &st)
	if !st.Draining || st.Since == nil || !slices.Equal(st.Members, []string{"a2"}) {
		t.Fatalf("drain answer %+v", st)
	}
	if err := tm.sendTo("a1", "bob@rgb.test", "<refused>"); !strings.HasPrefix(replyCode(err), "421 4.3.2") {
		t.Fatalf("new session on a draining node: %v (%q), want 421 4.3.2", err, replyCode(err))
	}
	// Empty is not yet done with shadows on: the first reading of an
	// empty queue starts two mesh.shadow_check rounds.
	poll(t, 20*time.Second, "a1's queue empty", func() error {
		adminCall(t, a1, "GET", "/api/node/drain", false, http.StatusOK, &st)
		if st.Queued != 0 || st.Transactions != 0 {
			return fmt.Errorf("holds mail: %+v", st)
		}
		return nil
	})
	if st.Done {
		t.Fatalf("done at the first reading of an empty queue, with shadows on: %+v", st)
	}
	poll(t, 20*time.Second, "a1 drained", func() error {
		adminCall(t, a1, "GET", "/api/node/drain", false, http.StatusOK, &st)
		if !st.Done {
			return fmt.Errorf("not done: %+v", st)
		}
		return nil
	})
	poll(t, 20*time.Second, "every message delivered once", func() error {
		got := tm.delivered("rgb")
		for id, c := range tm.delivered("rga") {
			got[id] += c
		}
		for _, id := range ids {
			if got[id] != 1 {
				return fmt.Errorf("%s delivered %d times", id, got[id])
			}
		}
		if len(got) != len(ids) {
			return fmt.Errorf("%d messages delivered, want %d", len(got), len(ids))
		}
		return nil
	})
	// The explanation says why a1 hands mail on, and a2 sees a1 drain.
	var tr adminapi.Trace
	adminCall(t, a1, "GET", "/api/mesh/trace?rcpt=x@rgb.test", false, http.StatusOK, &tr)
	if !strings.Contains(strings.Join(tr.Lines, "\n"), "draining: a1 hands this mail to another member of rga instead of remote") {
		t.Fatalf("trace at a1 does not explain the drain:\n%s", strings.Join(tr.Lines, "\n"))
	}
	poll(t, 10*time.Second, "a2 sees a1 drain and is master", func() error {
		if got := tm.nodes["a2"].Mesh().DrainingMembers(); !slices.Equal(got, []string{"a1"}) {
			return fmt.Errorf("a2: draining members %v", got)
		}
		// a1 was master (same priority, first by name); draining, it
		// hands the role on, so stopping it later moves nothing.
		if v := tm.nodes["a2"].Mesh().View(); v.Master != "a2" {
			return fmt.Errorf("a2 sees master %q", v.Master)
		}
		return nil
	})
	// Another group goes around it: b1's probes meet the 421 greeting and
	// its pair towards a1 goes down, so a1 is only a last resort there.
	if d, _ := tm.nodes["b1"].Mesh().Routes().Route("x", "rga.test"); len(d.NextHops) != 2 {
		t.Fatalf("b1 -> rga.test: next hops %v, want a1 and a2", d.NextHops)
	}
	poll(t, 10*time.Second, "b1's pair towards a1 down", func() error {
		d, err := tm.nodes["b1"].Mesh().Routes().Route("x", "rga.test")
		if err != nil || len(d.NextHops) != 2 || d.NextHops[0].Node != "a2" || d.NextHops[1].Up {
			return fmt.Errorf("b1 -> rga.test: %v next hops %v", err, d.NextHops)
		}
		return nil
	})
	if m := adminCall(t, a1, "GET", "/metrics", false, http.StatusOK, nil); !strings.Contains(m, "meshd_node_draining 1") {
		t.Fatal("meshd_node_draining is not 1 while draining")
	}
	if page := adminCall(t, a1, "GET", "/status/", false, http.StatusOK, nil); !strings.Contains(page, "DRAINING since") ||
		!strings.Contains(page, "drained: it can be stopped") {
		t.Fatal("the status page does not say that a1 drains")
	}

	// The drain is durable: a restarted a1 still refuses new sessions.
	tm.crash("a1")
	a1 = tm.start("a1")
	if !a1.Drainer().Draining() {
		t.Fatal("a1 forgot its drain across a restart")
	}
	if err := tm.sendTo("a1", "bob@rgb.test", "<refused-2>"); !strings.HasPrefix(replyCode(err), "421 4.3.2") {
		t.Fatalf("restarted draining node: %v, want 421 4.3.2", err)
	}

	tm.mu.Lock()
	tm.dialHook = nil
	tm.mu.Unlock()
	adminCall(t, a1, "POST", "/api/node/undrain", true, http.StatusOK, &st)
	if st.Draining {
		t.Fatalf("undrain answer %+v", st)
	}
	if err := tm.sendTo("a1", "bob@rgb.test", "<back>"); err != nil {
		t.Fatalf("after undrain: %v", err)
	}
	poll(t, 20*time.Second, "mail after undrain delivered", func() error {
		if tm.delivered("rgb")["<back>"] != 1 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if m := adminCall(t, a1, "GET", "/metrics", false, http.StatusOK, nil); !strings.Contains(m, "meshd_node_draining 0") {
		t.Fatal("meshd_node_draining is not 0 after undrain")
	}
	if page := adminCall(t, a1, "GET", "/status/", false, http.StatusOK, nil); strings.Contains(page, "DRAINING") {
		t.Fatal("the status page says a1 drains after undrain")
	}
}

package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/linkstate/channel"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/tracking"
)

// TestTrackAcrossMesh sends a message across three routing groups of real
// nodes and follows it from the first node's admin API, starting from its
// Message-ID header.
// TestTrackAcrossMesh follows a message over two hops through the
// tracking events of three nodes, with the link-state channel (which
// carries the tracking requests) in plaintext and under mesh.require_tls.
func TestTrackAcrossMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node mesh")
	}
	for _, requireTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("require_tls=%v", requireTLS), func(t *testing.T) { trackAcrossMesh(t, requireTLS) })
	}
}

func trackAcrossMesh(t *testing.T, requireTLS bool) {
	tm := newTestMeshWith(t, map[string][]string{"rga": {"a1"}, "rgb": {"b1"}, "rgc": {"c1"}},
		[]meshLink{{"ab", "rga", "rgb", 10}, {"bc", "rgb", "rgc", 10}, {"ac", "rga", "rgc", 50},
			{"ba", "rgb", "rga", 10}, {"cb", "rgc", "rgb", 10}, {"ca", "rgc", "rga", 50}},
		func(c *config.Config) { c.Mesh.RequireTLS = requireTLS })
	a1 := tm.nodes["a1"]
	poll(t, 30*time.Second, "a1 routes to rgc over rgb", func() error {
		tab := a1.Mesh().Routes()
		if tab == nil {
			return fmt.Errorf("no table")
		}
		rg, ok := tab.RG("rgc")
		if !ok || !rg.Reachable || rg.Cost != 20 {
			return fmt.Errorf("rgc: %+v", rg)
		}
		return nil
	})
	body := "From: alice@rga.test\r\nTo: bob@rgc.test\r\nMessage-ID: <track-1@client.test>\r\nSubject: t\r\n\r\nhi\r\n"
	mustSend(t, a1.SMTPAddr(), "alice@rga.test", []string{"bob@rgc.test"}, body)

	var res tracking.Result
	poll(t, 30*time.Second, "delivered in rgc", func() error {
		resp, err := http.Get("http://" + a1.AdminAddr().String() + "/api/track/%3Ctrack-1@client.test%3E")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
		}
		res = tracking.Result{}
		if err := json.Unmarshal(b, &res); err != nil {
			return err
		}
		if n := len(res.Events); n == 0 || res.Events[n-1].Event != tracking.Delivered {
			return fmt.Errorf("%d events", n)
		}
		return nil
	})
	// A hop may be deferred and retried on the way (a route still
	// settling); the hops themselves must come in order.
	var got []string
	var hops []tracking.Event
	for _, ev := range res.Events {
		if ev.Event == tracking.Deferred {
			continue
		}
		got = append(got, ev.Node+":"+ev.Event)
		hops = append(hops, ev)
	}
	want := "a1:received a1:relayed b1:received b1:relayed c1:received c1:delivered"
	if strings.Join(got, " ") != want {
		t.Fatalf("events %q, want %q", strings.Join(got, " "), want)
	}
	if r := hops[1]; r.NextHop != "b1" || r.Connector != "ab" || r.CopyID != hops[2].ID {
		t.Errorf("relay event %+v does not name b1, ab and the copy b1 received", r)
	}
	if res.Events[0].MessageID != "track-1@client.test" {
		t.Errorf("received event has Message-ID %q", res.Events[0].MessageID)
	}
	// The answer of one node, over its port-691 listener.
	evs := a1.trk.Answer(context.Background(), []string{res.Events[0].ID})
	if len(evs) != 2 {
		t.Errorf("a1 answers %d events for its own ID, want 2 (received, relayed)", len(evs))
	}
	// Other nodes ask b1 over its link-state listener with mutual TLS:
	// a plaintext request (no certificate) is refused whatever
	// mesh.require_tls says, since the mesh runs with identities.
	var b1 string
	for _, m := range tm.nodes["b1"].Mesh().View().Members {
		if m.Name == "b1" {
			b1 = m.Meta.LinkState
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := channel.Track(ctx, nil, nil, b1, []string{hops[2].ID})
	if err == nil {
		t.Errorf("b1 answered a plaintext tracking request (require_tls %v)", requireTLS)
	}
}

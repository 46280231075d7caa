package mesh

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/meshd/meshd/linkstate/channel"
)

// TestSyncRefusedGreetingKeepsPairDown: a target bridgehead that drains
// greets every session with 421 4.3.2. The X-LINK2STATE sessions this
// node opens to it must not count as reaching it (the prober, which sees
// the same greeting, holds the pair down): otherwise every round of
// sessions would bring the pair up again and it would flap.
func TestSyncRefusedGreetingKeepsPairDown(t *testing.T) {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		client, server := net.Pipe()
		go func() {
			defer server.Close()
			_, _ = server.Write([]byte("421 4.3.2 Service not available: this node is draining, try another host\r\n"))
			_, _ = io.Copy(io.Discard, server)
		}()
		return client, nil
	}
	m := &Mesh{cfg: Config{
		Node:       "a1",
		Connectors: []Connector{{Name: "ab", To: "rgb", Targets: []string{"b1:25"}}},
		Probe:      ProbeConfig{Interval: time.Second, Keepalive: 10 * time.Second, Timeout: 2 * time.Second, GlitchRetries: 2, GlitchDelay: 50 * time.Millisecond, UpAfter: 2},
		Dial:       dial,
		Now:        time.Now,
	}, log: slog.New(slog.DiscardHandler)}
	m.probe = newProber(m)
	k := pairKey{"ab", "a1", "b1:25"}
	m.probe.pairs[k].up, m.probe.pairs[k].known = false, true
	m.probe.observe = func(channel.Observation) {}
	s := newSyncer(m)
	for range 3 {
		s.session(context.Background(), syncTarget{connector: "ab", addr: "b1:25"})
	}
	if m.probe.pairs[k].up {
		t.Fatal("X-LINK2STATE sessions refused with a 421 greeting brought the pair up")
	}
	if st := m.Stats(); st.SyncFailures != 3 {
		t.Fatalf("%d failed sessions counted, want 3", st.SyncFailures)
	}
}

package node

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/harness/extern"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/config"
)

func TestMeshDSNRoutedBackThroughTheMesh(t *testing.T) {
	tm := triangleMesh(t)
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)
	// rgc's Maildir refuses the mailbox name: a permanent failure there
	// makes a DSN that has to find its way back to rga's sender.
	body := "From: s@rga.test\r\nTo: bad/user@rgc.test\r\nMessage-ID: <dsn1@test>\r\nSubject: will bounce\r\n\r\nx\r\n"
	if err := send(tm.nodes["a1"].SMTPAddr(), "s@rga.test", []string{"bad/user@rgc.test"}, body); err != nil {
		t.Fatal(err)
	}
	var report string
	poll(t, 30*time.Second, "DSN in the sender's mailbox in rga", func() error {
		for _, name := range tm.rgs["rga"] {
			for _, m := range mailboxMessages(tm.cfgs[name], "rga.test", "s") {
				if strings.Contains(m, "multipart/report") && strings.Contains(m, "<dsn1@test>") {
					report = m
					return nil
				}
			}
		}
		return fmt.Errorf("no DSN yet")
	})
	for _, want := range []string{"report-type=delivery-status", "Action: failed", "Final-Recipient: rfc822; bad/user@rgc.test", "X-Meshd-Trace: rgc"} {
		if !strings.Contains(report, want) {
			t.Errorf("DSN lacks %q:\n%s", want, report)
		}
	}
}

func mailboxMessages(cfg config.Config, domain, user string) []string {
	var out []string
	root := cfg.Delivery.Maildir
	if root == "" {
		root = filepath.Join(cfg.Node.DataDir, "maildir")
	}
	for _, sub := range []string{"new", "cur"} {
		files, _ := filepath.Glob(filepath.Join(root, domain, user, sub, "*"))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil {
				out = append(out, string(b))
			}
		}
	}
	return out
}

// TestMeshListenerAdvertisesLinkStateToSwaks: swaks, a client we did not
// write, sees X-LINK2STATE in the EHLO reply of the mesh listener and not
// in that of the public one.
func TestMeshListenerAdvertisesLinkStateToSwaks(t *testing.T) {
	swaks := extern.Require(t, extern.FindSwaks)
	tm := newTestMesh(t, map[string][]string{"rga": {"a1"}, "rgb": {"b1"}},
		[]meshLink{{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10}})
	a1 := tm.nodes["a1"]
	// As node b1 (its certificate: X-LINK2STATE is for authenticated
	// peers, identity_test.go shows who else is not offered it).
	b1 := tm.cfgs["b1"].Mesh.Identity
	ehlo := func(addr string) string {
		out, err := exec.Command(swaks, "--server", addr, "--tls", "--tls-cert", b1.CertFile, "--tls-key", b1.KeyFile,
			"--quit-after", "EHLO", "--ehlo", "peer.test").CombinedOutput()
		if err != nil {
			t.Fatalf("swaks %s: %v\n%s", addr, err, out)
		}
		return string(out)
	}
	if out := ehlo(a1.MeshAddr().String()); !strings.Contains(out, "250-X-LINK2STATE") {
		t.Errorf("mesh listener does not advertise X-LINK2STATE:\n%s", out)
	}
	if out := ehlo(a1.SMTPAddr().String()); strings.Contains(out, "X-LINK2STATE") {
		t.Errorf("public listener advertises X-LINK2STATE:\n%s", out)
	}
}

// BenchmarkMeshThroughput measures end-to-end delivery across three
// routing groups: messages submitted at a1 travel rga → rgb's bridgehead
// → rgc's bridgehead → Maildir, each hop a durable queue with synced
// commits. Ten SMTP sessions submit at once. Reported as delivered
// messages per second (wall time from the first submission to the last
// Maildir delivery).
//
// mtls is the default (every hop mutual TLS with verified node
// certificates, shadows on); mtls-noshadow is the same with
// queue.max_shadow_bytes 0, the peer that gives the cost of shadows (and
// what scripts/bench-compare's mesh-noshadow measure runs against an older
// build's mtls, from before shadows were on by default); plaintext is
// mesh.insecure_plaintext, the peer measured in the same run to give the
// cost of TLS on hops.
//
// Besides the rates it reports what does not depend on the machine's load,
// summed over the three nodes' queues per delivered message: commits/msg
// (synced transactions; fewer when more operations share one), ops/msg
// (the operations they carried) and qbytes/msg (keys and values written to
// badger, queue.CommittedBytes).
func BenchmarkMeshThroughput(b *testing.B) {
	b.Run("mtls", func(b *testing.B) { benchMeshThroughput(b, nil) })
	b.Run("mtls-noshadow", func(b *testing.B) {
		benchMeshThroughput(b, func(c *config.Config) { c.Queue.MaxShadowBytes = 0 })
	})
	b.Run("plaintext", func(b *testing.B) {
		benchMeshThroughput(b, func(c *config.Config) {
			c.Mesh.InsecurePlaintext, c.Mesh.Identity, c.Mesh.GossipKey = true, config.Identity{}, ""
		})
	})
}

// deliveredPoll is how often BenchmarkMeshThroughput looks for the last
// delivery. The pause between the last Maildir file and the look that sees
// it counts in msgs/s, so it is fixed, and the same as in the builds that
// scripts/bench-compare sets this one against (cfa7835 polled every 20 ms):
// testkit.Eventually's backoff to 50 ms made the same run 20 ms slower on average, about
// 1% of a 1000-message run.
const deliveredPoll = 20 * time.Millisecond

func benchMeshThroughput(b *testing.B, mod func(*config.Config)) {
	tm := newTestMeshWith(b, map[string][]string{"rga": {"a1"}, "rgb": {"b1"}, "rgc": {"c1"}},
		[]meshLink{{"ab", "rga", "rgb", 10}, {"bc", "rgb", "rgc", 10}, {"ba", "rgb", "rga", 10}, {"cb", "rgc", "rgb", 10}}, mod)
	poll(b, 20*time.Second, "LSDB convergence", tm.converged)
	poll(b, 10*time.Second, "route", tm.pathIs("a1", "rgc.test", "rga>rgb>rgc"))
	body := strings.Repeat("meshd throughput benchmark line of text.\r\n", 100) // about 4 KiB
	const sessions = 10
	stats := func() (txns, ops, bytes uint64) {
		for _, n := range tm.nodes {
			t, o := n.Queue().CommitStats()
			txns, ops, bytes = txns+t, ops+o, bytes+n.Queue().CommittedBytes()
		}
		return txns, ops, bytes
	}
	txns0, ops0, bytes0 := stats()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var failed int
	var mu sync.Mutex
	for s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := s; i < b.N; i += sessions {
				msg := fmt.Sprintf("From: s@rga.test\r\nTo: u@rgc.test\r\nMessage-ID: <tp%d@test>\r\n\r\n%s", i, body)
				if err := send(tm.nodes["a1"].SMTPAddr(), "s@rga.test", []string{"u@rgc.test"}, msg); err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	submitted := time.Since(start)
	if failed > 0 {
		b.Fatalf("%d submissions failed", failed)
	}
	// Count files, not Message-IDs: reading every copy on each poll would
	// load the machine we measure.
	inbox := filepath.Join(tm.cfgs["c1"].Node.DataDir, "maildir", "rgc.test", "u", "new")
	testkit.EventuallyEvery(b, deliveredPoll, 10*time.Minute, "all delivered", func() error {
		files, _ := os.ReadDir(inbox)
		if len(files) < b.N {
			return fmt.Errorf("%d of %d delivered", len(files), b.N)
		}
		return nil
	})
	el := time.Since(start)
	b.StopTimer()
	txns1, ops1, bytes1 := stats()
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N)/submitted.Seconds(), "accepted/s")
	b.ReportMetric(float64(txns1-txns0)/float64(b.N), "commits/msg")
	b.ReportMetric(float64(ops1-ops0)/float64(b.N), "ops/msg")
	b.ReportMetric(float64(bytes1-bytes0)/float64(b.N), "qbytes/msg")
}

package main_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshd/meshd/harness/extern"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/adminapi"
)

// shadowLine is three single-node routing groups in a line, as real meshd
// processes: a1 (rga) -> b1 (rgb) -> c1 (rgc), connectors both ways between
// neighbours and none from rga to rgc, so all mail from a1 for rgc.test goes
// through b1, the bridgehead in the middle. c1 delivers rgc.test into its
// Maildir.
type shadowLine struct {
	a1, b1, c1 *meshNode
}

// shadowLineBytes is queue.max_shadow_bytes when shadows are on.
const shadowLineBytes = 1 << 30

// startShadowLine starts the line with shadows on (queue.max_shadow_bytes
// 1 GiB) or off (0); meshKeys (mesh.shadow_check, mesh.shadow_timeout:
// docs/shadow.md) are merged into every node's mesh section.
func startShadowLine(t testing.TB, shadows bool, meshKeys map[string]any) *shadowLine {
	t.Helper()
	maxShadow := 0
	if shadows {
		maxShadow = shadowLineBytes
	}
	lab := startLab(t, labOptions{
		Members: []labMember{
			{Name: "a1", RG: "rga", Links: []labLink{{Name: "ab", To: "rgb"}}},
			{Name: "b1", RG: "rgb", Links: []labLink{{Name: "ba", To: "rga"}, {Name: "bc", To: "rgc"}}},
			{Name: "c1", RG: "rgc", Links: []labLink{{Name: "cb", To: "rgb"}}},
		},
		Node: nodeOptions{Extra: map[string]any{
			"queue": map[string]any{"max_shadow_bytes": maxShadow},
			"mesh":  meshKeys,
		}},
	})
	lab.waitPath("a1", "u@rgc.test", "rga>rgb>rgc", 60*time.Second)
	return &shadowLine{a1: lab.node("a1"), b1: lab.node("b1"), c1: lab.node("c1")}
}

// inbox is c1's Maildir for addr, new and cur.
func (l *shadowLine) inbox(addr string) []string {
	local, domain, _ := strings.Cut(addr, "@")
	box := filepath.Join(l.c1.Maildir, domain, local)
	return []string{filepath.Join(box, "new"), filepath.Join(box, "cur")}
}

// shadowCount is the number of shadow copies n holds (GET /api/queue/shadow).
func (n *meshNode) shadowCount() (int, error) {
	var s adminapi.ShadowList
	err := n.adminGet("/api/queue/shadow", &s)
	return s.Count, err
}

// pyStream sends count messages over one SMTP session with Python's
// smtplib, printing "ack I" once message I got its 250 (a refused or
// broken session is opened again, and the message sent again, up to 20
// times). Before message gateAt it waits, at most 120s, for the file gate
// to exist: the stream cannot end before the test has done what it does
// in the middle of it.
const pyStream = `
import os, smtplib, sys, time
host, port, count, gate_at, gate, prefix, rcpt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7]
s = None
for i in range(count):
    if i == gate_at:
        deadline = time.time() + 120
        while not os.path.exists(gate) and time.time() < deadline:
            time.sleep(0.05)
    msg = ("From: alice@rga.test\r\nTo: %s\r\nMessage-ID: <%s-%d@e2e.test>\r\nSubject: shadow %d\r\n\r\n" % (rcpt, prefix, i, i)) + "a line of the lost-disk stream\r\n" * 40
    for attempt in range(20):
        try:
            if s is None:
                s = smtplib.SMTP(host, port, local_hostname="py.e2e.test", timeout=30)
            s.sendmail("alice@rga.test", [rcpt], msg.encode())
            print("ack %d" % i, flush=True)
            break
        except (smtplib.SMTPException, OSError) as e:
            print("retry %d %s" % (i, e), flush=True)
            try:
                s.close()
            except Exception:
                pass
            s = None
            time.sleep(0.2)
if s is not None:
    try:
        s.quit()
    except Exception:
        pass
`

// stream is a running pyStream client.
type stream struct {
	acks   atomic.Int64
	cmd    *exec.Cmd
	done   chan struct{}
	prefix string
	count  int
	gate   string
	log    strings.Builder // written only by the reader goroutine until done is closed
}

func startStream(t *testing.T, addr, rcpt string, count, gateAt int) *stream {
	t.Helper()
	bin := extern.Require(t, extern.FindPython3)
	host, port := splitHostPort(t, addr)
	s := &stream{done: make(chan struct{}), prefix: "lost-" + strconv.FormatInt(time.Now().UnixNano(), 36), count: count,
		gate: filepath.Join(t.TempDir(), "gate")}
	s.cmd = exec.Command(bin, "-c", pyStream, host, strconv.Itoa(port), strconv.Itoa(count), strconv.Itoa(gateAt), s.gate, s.prefix, rcpt)
	s.cmd.Stderr = &s.log
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("e2e: python stream: %v", err)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ack ") {
				s.acks.Add(1)
			} else {
				s.log.WriteString(sc.Text() + "\n")
			}
		}
		_, _ = io.Copy(io.Discard, out)
		_ = s.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
	})
	return s
}

// open lets a stream waiting at its gate go on.
func (s *stream) open(t *testing.T) {
	if err := os.WriteFile(s.gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (s *stream) msgID(i int) string { return fmt.Sprintf("<%s-%d@e2e.test>", s.prefix, i) }

// tally compares what arrived with the count messages sent: the ones
// missing, and the ones delivered more than once.
func (s *stream) tally(arrived map[string]int) (missing, dups []string) {
	for i := range s.count {
		switch c := arrived[s.msgID(i)]; {
		case c == 0:
			missing = append(missing, s.msgID(i))
		case c > 1:
			dups = append(dups, fmt.Sprintf("%s x%d", s.msgID(i), c))
		}
	}
	return missing, dups
}

// copyDir copies the tree at src to dst (cp -a: a node's data directory,
// taken while the node is down).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", src, dst, err, out)
	}
}

// first returns at most k of s, for a failure message.
func first(s []string, k int) []string { return s[:min(k, len(s))] }

// TestE2EShadowBridgeheadDiskLost is issue 16's lost disk with real
// processes: Python's smtplib streams 500 messages into a1 for rgc.test,
// through b1 (rgb, the only way to rgc). Mid-stream c1 is killed -9 (its
// disk kept), so b1 holds what it takes; once it holds at least 40
// messages b1 is killed -9, its data directory copied aside and deleted,
// and b1 restarted on an empty one; c1 comes back. Every message is in
// c1's Maildir exactly once (by Message-ID): a1 resubmits its shadows of
// the copies the lost disk had said 250 for. Then b1 is killed again and
// restarted on its OLD data directory, and forwards what it held: once
// every queue is empty, still nothing is delivered twice.
//
// With MESHD_E2E_SHADOWS=off the line runs with queue.max_shadow_bytes 0,
// and the test fails: the copies on b1's lost disk are lost.
func TestE2EShadowBridgeheadDiskLost(t *testing.T) {
	shadows := os.Getenv("MESHD_E2E_SHADOWS") != "off"
	l := startShadowLine(t, shadows, map[string]any{"shadow_check": "200ms", "shadow_timeout": "4s"})
	const total, held = 500, 40
	const rcpt = "carol@rgc.test"
	arrived := func() map[string]int { return messageIDs(t, l.inbox(rcpt)...) }
	s := startStream(t, l.a1.SMTP, rcpt, total, total*4/5)

	// The stream goes all the way to c1 before anything fails.
	if !testkit.Poll(90*time.Second, func() bool { return len(arrived()) >= 50 }) {
		t.Fatalf("c1 delivered %d messages after 90s (%d acknowledged by a1)", len(arrived()), s.acks.Load())
	}
	l.c1.Kill()
	var atB1 int
	if !testkit.Poll(60*time.Second, func() bool {
		k, err := l.b1.queueLen()
		atB1 = k
		return err == nil && k >= held
	}) {
		t.Fatalf("b1 holds %d messages 60s after c1 went down, want at least %d (%d acknowledged by a1)", atB1, held, s.acks.Load())
	}
	shadowsAtA1, _ := l.a1.shadowCount()
	l.b1.Kill()
	ackAtKill := s.acks.Load()
	old := filepath.Join(t.TempDir(), "b1-data")
	copyDir(t, l.b1.DataDir, old)
	if err := os.RemoveAll(l.b1.DataDir); err != nil {
		t.Fatal(err)
	}
	l.b1.Start() // an empty data directory: the disk is lost
	s.open(t)
	l.c1.Start()
	t.Logf("b1 killed -9 holding at least %d messages (c1 down), %d of %d acknowledged by a1 then, a1 holding %d shadows; b1 restarted on an empty data directory",
		atB1, ackAtKill, total, shadowsAtA1)
	if ackAtKill >= total {
		t.Fatalf("all %d messages were acknowledged before b1 was killed: not mid-stream", total)
	}

	select {
	case <-s.done:
	case <-time.After(120 * time.Second):
		t.Fatalf("the client had %d of %d acknowledged after 120s", s.acks.Load(), total)
	}
	if got := s.acks.Load(); got != total {
		t.Fatalf("a1 acknowledged %d of %d messages; client log:\n%s", got, total, s.log.String())
	}
	var missing, dups []string
	if !testkit.Poll(90*time.Second, func() bool {
		missing, dups = s.tally(arrived())
		return len(missing) == 0
	}) {
		t.Fatalf("%d of %d acknowledged messages lost (not in c1's Maildir 90s after the stream; shadows on: %v), e.g. %q",
			len(missing), total, shadows, first(missing, 5))
	}
	if len(dups) > 0 {
		t.Fatalf("after the disk loss %d messages delivered more than once: %q", len(dups), first(dups, 10))
	}
	t.Logf("after the disk loss: %d of %d delivered, 0 lost, 0 duplicated", total-len(missing), total)

	// The old disk comes back, with the copies b1 held when it was killed;
	// c1 is down until b1 is seen holding them, so they do go on to c1.
	l.b1.Kill()
	l.c1.Kill()
	if err := os.RemoveAll(l.b1.DataDir); err != nil {
		t.Fatal(err)
	}
	copyDir(t, old, l.b1.DataDir)
	l.b1.Start()
	var oldHeld int
	if !testkit.Poll(30*time.Second, func() bool {
		k, err := l.b1.queueLen()
		oldHeld = k
		return err == nil && k >= atB1
	}) {
		t.Fatalf("b1 on its old data directory holds %d messages, want the %d it held when killed", oldHeld, atB1)
	}
	l.c1.Start()
	t.Logf("b1 restarted on its old data directory, holding %d messages (all delivered meanwhile)", oldHeld)
	// Settled: every queue empty and every shadow released (a shadow a1
	// kept for a copy the wiped disk had taken is resubmitted once more).
	var state string
	if !testkit.Poll(90*time.Second, func() bool {
		state = ""
		for name, n := range map[string]*meshNode{"a1": l.a1, "b1": l.b1, "c1": l.c1} {
			q, err1 := n.queueLen()
			sh, err2 := n.shadowCount()
			if err1 != nil || err2 != nil || q+sh > 0 {
				state += fmt.Sprintf(" %s: %d queued, %d shadows (%v %v);", name, q, sh, err1, err2)
			}
		}
		return state == ""
	}) {
		t.Fatalf("not settled 90s after b1 came back with its old disk:%s", state)
	}
	missing, dups = s.tally(arrived())
	if len(missing) > 0 || len(dups) > 0 {
		t.Fatalf("after b1 came back with its old disk: %d missing %q, %d duplicated %q", len(missing), first(missing, 5), len(dups), first(dups, 10))
	}
	t.Logf("b1 back with its old data directory: every queue empty, no shadows left; still %d delivered once, 0 duplicated", total)
}

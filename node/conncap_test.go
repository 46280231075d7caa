package node

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/node/config"

	"github.com/meshd/meshd/harness/extern"
)

// capAttackScript is the intruder of issue 18 finding 7, in python3: it
// opens argv[2] connections to each address in argv[1] (comma-separated)
// and holds them idle (each read its 220 greeting), prints "held N",
// then on each line of stdin runs one probe against the first address:
// "mail" (over the cap: EHLO, then MAIL; prints the reply to MAIL) or
// "idle" (over the cap: prints how long until the server closed it).
const capAttackScript = `
import socket, sys, time
addrs, n = sys.argv[1].split(","), int(sys.argv[2])
def conn(a):
    host, port = a.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=20)
    f = s.makefile("rb")
    return s, f
held = []
for a in addrs:
    for i in range(n):
        s, f = conn(a)
        g = f.readline()
        if not g.startswith(b"220"):
            print("greeting", g, flush=True); sys.exit(1)
        held.append((s, f))
# A connection over the cap (another client from this address, such as a
# mesh hop of a1 still open) is closed once limits.peer_auth_timeout runs
# out: replace the closed ones until a whole window passes without one, so
# that what is held is within the cap.
import select
for _ in range(8):
    time.sleep(1.5)
    dead = [i for i, (s, f) in enumerate(held) if select.select([s], [], [], 0)[0] and s.recv(1, socket.MSG_PEEK) == b""]
    if not dead:
        break
    for i in dead:
        held[i][0].close()
        a = addrs[i // n]
        s, f = conn(a)
        f.readline()
        held[i] = (s, f)
print("held", len(held), flush=True)
def probe(cmd):
    s, f = conn(addrs[0])
    g = f.readline()
    if cmd == "mail":
        s.sendall(b"EHLO intruder.test\r\n")
        while True:
            l = f.readline()
            if not l or l[3:4] != b"-":
                break
        s.sendall(b"MAIL FROM:<x@intruder.test>\r\n")
        print("mail", f.readline().decode().strip() or "closed", flush=True)
    else:
        t0 = time.time()
        s.settimeout(15)
        try:
            r = s.recv(100)
        except socket.timeout:
            r = b"timeout"
        print("idle %s %.1f %s" % (g.decode().strip()[:3], time.time() - t0, "closed" if r == b"" else r), flush=True)
    s.close()
for line in sys.stdin:
    try:
        probe(line.strip())
    except OSError as e:
        print("error", e, flush=True)
`

// TestPerIPCapCannotCutMeshLinks: all nodes share 127.0.0.1, as in the
// demo. A local process fills the per-IP cap (4 here) of both rgb
// bridgeheads' mesh listeners and holds it. Mesh hops and probes from a1
// (the same address) are admitted on probation, authenticate with their
// node certificate and go on: connector ab's pairs stay up, mail sent
// before, during and after the attack is delivered once each. The
// intruder's own connections over the cap get 421 at MAIL, or are closed
// when limits.peer_auth_timeout (1s) runs out.
func TestPerIPCapCannotCutMeshLinks(t *testing.T) {
	py := extern.Require(t, extern.FindPython3)
	tm := newTestMeshWith(t, map[string][]string{"rga": {"a1"}, "rgb": {"b1", "b2"}},
		[]meshLink{{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10}},
		func(c *config.Config) { c.Limits.MaxConnsPerIP, c.Limits.PeerAuthTimeout = 4, time.Second })
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)
	poll(t, 20*time.Second, "route a1 to rgb", tm.pathIs("a1", "rgb.test", "rga>rgb"))
	if err := tm.sendTo("a1", "bob@rgb.test", "<cap-before@test>"); err != nil {
		t.Fatal(err)
	}
	b1, b2 := tm.nodes["b1"], tm.nodes["b2"]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-c", capAttackScript, b1.MeshAddr().String()+","+b2.MeshAddr().String(), "4")
	in, _ := cmd.StdinPipe()
	outp, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); cmd.Wait() }()
	out := bufio.NewReader(outp)
	if l, err := out.ReadString('\n'); err != nil || l != "held 8\n" {
		t.Fatalf("intruder: %q %v", l, err)
	}
	// The intruder over the cap: not a peer, so no mail and no idling.
	fmt.Fprintln(in, "mail")
	if l, _ := out.ReadString('\n'); !strings.HasPrefix(l, "mail 421 4.7.0") {
		t.Errorf("intruder's MAIL over the per-IP cap: %q", l)
	}
	fmt.Fprintln(in, "idle")
	if l, _ := out.ReadString('\n'); !strings.HasPrefix(l, "idle 220") || !strings.HasSuffix(l, "closed\n") {
		t.Errorf("intruder's idle connection over the per-IP cap: %q", l)
	}
	for i := range 5 {
		if err := tm.sendTo("a1", "bob@rgb.test", fmt.Sprintf("<cap-during-%d@test>", i)); err != nil {
			t.Fatal(err)
		}
	}
	a1 := tm.nodes["a1"]
	// Probes of ab's pairs run every 300ms: sampled over 3s, both pairs
	// stay up (before, each probe met 421 and the pairs went down).
	for range 15 {
		rec, _ := a1.Mesh().LSDB().Snapshot().Get("rga")
		for _, k := range rec.Connectors {
			for _, p := range k.Pairs {
				if k.ID == "ab" && !p.Up {
					t.Fatalf("pair %+v of ab down during the attack", p)
				}
			}
		}
		time.Sleep(200 * time.Millisecond) // sampling the record, not waiting for a condition
	}
	if err := tm.sendTo("a1", "bob@rgb.test", "<cap-after@test>"); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "mail before, during and after delivered once", func() error {
		d := tm.delivered("rgb")
		want := []string{"<cap-before@test>", "<cap-after@test>"}
		for i := range 5 {
			want = append(want, fmt.Sprintf("<cap-during-%d@test>", i))
		}
		for _, id := range want {
			if d[id] != 1 {
				return fmt.Errorf("delivered %v", d)
			}
		}
		if len(d) != len(want) {
			return fmt.Errorf("delivered %v", d)
		}
		return nil
	})
	m := metricsText(t, b1) + metricsText(t, b2)
	for _, want := range []string{`meshd_smtp_connections_refused_total{listener="mesh",reason="probation"}`, `meshd_smtp_connections{kind="public",listener="mesh"} 4`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "meshd_smtp_connection"))
		}
	}
}

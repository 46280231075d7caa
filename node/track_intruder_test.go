package node

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/harness/extern"
	"github.com/meshd/meshd/pki"
)

// trackClientScript is a port-691 tracking client in python3 (ssl
// module), as an intruder would write one from the wire format in
// linkstate/channel/doc.go. argv: addr cert key mode key-to-ask.
// mode "ask" sends HELLO (role 3, track) and one TRACKREQ; mode "post"
// sends HELLO and then a TRACKRESP of its own, carrying a forged event.
// It prints one line: "events N hit|miss", "refused CODE TEXT" or
// "tls-refused ERR".
const trackClientScript = `
import socket, ssl, struct, sys
addr, cert, key, mode, ask = sys.argv[1:6]
host, port = addr.rsplit(":", 1)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if cert:
    ctx.load_cert_chain(cert, key)
def s16(x):
    b = x.encode()
    return struct.pack(">H", len(b)) + b
def frame(t, p):
    return struct.pack(">IB", len(p) + 1, t) + p
def exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("closed")
        b += c
    return b
def read(s):
    n, t = struct.unpack(">IB", exact(s, 5))
    return t, exact(s, n - 1)
def refused(p):
    code = p[0]
    n = struct.unpack(">H", p[1:3])[0]
    return "refused %d %s" % (code, p[3:3+n].decode())
try:
    s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=10))
    s.sendall(frame(1, b"MESHD691" + struct.pack(">HB", 1, 3) + s16("track") + s16("")))
    t, p = read(s)
    if t == 3:
        print(refused(p)); sys.exit(0)
    if mode == "ask":
        s.sendall(frame(8, struct.pack(">H", 1) + s16(ask)))
    else:
        ev = ('{"event":"delivered","message_id":"%s","node":"a1"}' % ask).encode()
        s.sendall(frame(9, struct.pack(">I", 1) + struct.pack(">I", len(ev)) + ev))
    t, p = read(s)
    if t == 3:
        print(refused(p)); sys.exit(0)
    if t == 9:
        n = struct.unpack(">I", p[:4])[0]
        print("events %d %s" % (n, "hit" if ask.strip("<>").encode() in p else "miss")); sys.exit(0)
    print("frame %d" % t)
except (ssl.SSLError, ConnectionError, EOFError, OSError) as e:
    print("tls-refused %s" % e)
`

// TestTrackIntruderOnPort691 plays the intruder of issue 11 against the
// tracking role of port 691 with a python3 client: without a
// certificate, with a certificate of another CA, with one of our CA
// naming a routing group the mesh does not know, and with one naming a
// node the LSDB does not list in its group, asking for tracking data is
// refused; posting a tracking answer of its own (a forged event) is
// refused and leaves no event. A real node's certificate (b1, of another
// routing group of the organisation) still gets a1's events, and mail
// before and after is delivered once.
func TestTrackIntruderOnPort691(t *testing.T) {
	py := extern.Require(t, extern.FindPython3)
	tm := newTestMesh(t, map[string][]string{"rga": {"a1"}, "rgb": {"b1"}},
		[]meshLink{{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10}})
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)
	poll(t, 20*time.Second, "route a1 to rgb", tm.pathIs("a1", "rgb.test", "rga>rgb"))
	if err := tm.sendTo("a1", "bob@rgb.test", "<trk-before@test>"); err != nil {
		t.Fatal(err)
	}
	poll(t, 20*time.Second, "first mail delivered", func() error {
		if got := tm.delivered("rgb")["<trk-before@test>"]; got != 1 {
			return fmt.Errorf("%d copies", got)
		}
		return nil
	})
	a1 := tm.nodes["a1"]
	caDir := filepath.Dir(tm.cfgs["a1"].Mesh.Identity.CAFiles[0])
	_, ours, err := pki.Lab(caDir, pki.Identity{Node: "x1", RG: "rgx"}, pki.Identity{Node: "b9", RG: "rgb"})
	if err != nil {
		t.Fatal(err)
	}
	_, foreign, err := pki.Lab(t.TempDir(), pki.Identity{Node: "b1", RG: "rgb"})
	if err != nil {
		t.Fatal(err)
	}
	b1 := tm.cfgs["b1"].Mesh.Identity
	run := func(cert, key, mode, ask string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, py, "-c", trackClientScript, a1.LinkStateAddr(), cert, key, mode, ask).CombinedOutput()
		if err != nil {
			t.Fatalf("python3 track client: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, c := range []struct{ name, cert, key string }{
		{"no certificate", "", ""},
		{"another CA", foreign["b1"][0], foreign["b1"][1]},
		{"a routing group the mesh does not know", ours["x1"][0], ours["x1"][1]},
		{"a node not in its group's record", ours["b9"][0], ours["b9"][1]},
	} {
		if got := run(c.cert, c.key, "ask", "<trk-before@test>"); strings.HasPrefix(got, "events") {
			t.Errorf("%s: tracking data served: %s", c.name, got)
		} else {
			t.Logf("%s: %s", c.name, got)
		}
	}
	// The legitimate client: a node of another routing group.
	if got := run(b1.CertFile, b1.KeyFile, "ask", "<trk-before@test>"); !strings.HasPrefix(got, "events") || !strings.HasSuffix(got, "hit") {
		t.Fatalf("b1's tracking request: %s", got)
	}
	// Posting tracking records: the listener answers requests only.
	for _, cert := range [][2]string{{b1.CertFile, b1.KeyFile}, {"", ""}} {
		if got := run(cert[0], cert[1], "post", "<trk-forged@test>"); strings.HasPrefix(got, "events") || got == "frame 9" {
			t.Errorf("posted tracking answer taken: %s", got)
		}
	}
	if got := run(b1.CertFile, b1.KeyFile, "ask", "<trk-forged@test>"); got != "events 0 miss" {
		t.Errorf("forged event found: %s", got)
	}
	if err := tm.sendTo("a1", "bob@rgb.test", "<trk-after@test>"); err != nil {
		t.Fatal(err)
	}
	poll(t, 20*time.Second, "mail before and after delivered once", func() error {
		d := tm.delivered("rgb")
		if d["<trk-before@test>"] != 1 || d["<trk-after@test>"] != 1 || len(d) != 2 {
			return fmt.Errorf("delivered %v", d)
		}
		return nil
	})
}

package smtp

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/meshd/meshd/harness/extern"
)

// truncScript is the attacker of issue 18 finding 3, with python3's raw
// sockets: a proper message, then BDAT 1000 LAST with 51 bytes and a
// close, then DATA cut before the final dot and a close, then the
// client's proper retry by BDAT. It prints each reply it waited for.
const truncScript = `
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)

def session():
    s = socket.create_connection((host, int(port)), timeout=20)
    f = s.makefile("rb")
    def reply():
        out = []
        while True:
            l = f.readline().decode()
            out.append(l.strip())
            if len(l) < 4 or l[3] != "-":
                return " | ".join(out)
    def cmd(line):
        s.sendall(line.encode() + b"\r\n")
        return reply()
    reply()
    cmd("EHLO attacker.example")
    cmd("MAIL FROM:<s@sender.test>")
    cmd("RCPT TO:<bob@local.test>")
    return s, f, reply, cmd

def body(tag):
    return ("Subject: %s\r\n\r\n" % tag + "x" * 60 + "\r\n").encode()

s, f, reply, cmd = session()
b = body("before")
s.sendall(b"BDAT %d LAST\r\n" % len(b) + b)
print("before:", reply())
s.close()

s, f, reply, cmd = session()
s.sendall(b"BDAT 1000 LAST\r\n" + body("truncated")[:51])
s.shutdown(socket.SHUT_WR)
print("truncated:", f.read().decode().strip() or "(closed)")
s.close()

s, f, reply, cmd = session()
print("data:", cmd("DATA"))
s.sendall(body("cut-data"))
s.shutdown(socket.SHUT_WR)
print("cut:", f.read().decode().strip() or "(closed)")
s.close()

s, f, reply, cmd = session()
b = body("retry")
s.sendall(b"BDAT 40\r\n" + b[:40])
print("chunk:", reply())
s.sendall(b"BDAT %d LAST\r\n" % (len(b) - 40) + b[40:])
print("retry:", reply())
cmd("QUIT")
`

// TestAttackTruncatedBDATIsNotQueued: a BDAT chunk shorter than declared
// at EOF, and DATA cut before its final dot, are failed transactions;
// the message before and the client's retry are each accepted once.
func TestAttackTruncatedBDATIsNotQueued(t *testing.T) {
	py := extern.Require(t, extern.FindPython3) // missing: run scripts/install-deps
	sink := &fakeSink{}
	s := startServer(t, sink, nil)
	out, err := exec.Command(py, "-c", truncScript, s.Addr().String()).CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	t.Logf("attacker transcript:\n%s", out)
	for _, want := range []string{"before: 250", "data: 354", "chunk: 250", "retry: 250"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
	if strings.Contains(string(out), "truncated: 250") || strings.Contains(string(out), "cut: 250") {
		t.Errorf("a truncated transaction got 250")
	}
	// The sink is called before the 250 goes out; once the last session
	// ended, every accepted message is in it.
	waitFor(t, "sessions closed", func() bool { return s.dialogs.count() == 0 })
	got := map[string]int{}
	for _, m := range sink.messages() {
		if sub := subjectRe.FindSubmatch(m.body); sub != nil {
			got[string(sub[1])]++
		}
	}
	want := map[string]int{"before": 1, "retry": 1}
	if len(got) != len(want) || got["before"] != 1 || got["retry"] != 1 {
		t.Fatalf("accepted messages by subject = %v, want %v", got, want)
	}
}

var subjectRe = regexp.MustCompile(`(?m)^Subject: (\S+)\r$`)

// count is how many sessions are open.
func (d *dialogs) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.open)
}

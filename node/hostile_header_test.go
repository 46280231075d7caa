package node

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/harness/extern"
	"github.com/meshd/meshd/meshid"
)

// pySendScript sends one message per argv triple (rcpt, message-id,
// extra-header) with python3's smtplib and prints each DATA reply.
const pySendScript = `
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
args = sys.argv[2:]
for i in range(0, len(args), 3):
    rcpt, mid, extra = args[i:i+3]
    s = smtplib.SMTP(host, int(port), timeout=20)
    s.ehlo("attacker.example")
    s.mail("s@sender.test")
    s.rcpt(rcpt)
    msg = "From: s@sender.test\r\nTo: %s\r\nMessage-ID: %s\r\n%sSubject: header test\r\n\r\nbody %s\r\n" % (rcpt, mid, extra, mid)
    code, text = s.data(msg.encode("utf-8"))
    print(code, text.decode())
    s.quit()
`

func pySend(t *testing.T, py, addr string, triples ...string) string {
	t.Helper()
	out, err := exec.Command(py, append([]string{"-c", pySendScript, addr}, triples...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("python3 smtplib: %v\n%s", err, out)
	}
	return string(out)
}

var queuedIDRe = regexp.MustCompile(`queued as (\S+)`)

// TestAttackFoldedMeshHeaderCannotReplaceMail plays finding 1 of issue 18
// with python3's smtplib: a message's origin ID is visible in its 250
// reply; an outsider then sends mail to the public listener carrying
// X-Meſhd-Origin (U+017F) and X-MESHD-ORIGIN with that ID. Neither is
// believed: the forged messages get copy IDs of their own, so every
// message, real and forged, before and after, is delivered exactly once.
func TestAttackFoldedMeshHeaderCannotReplaceMail(t *testing.T) {
	py := extern.Require(t, extern.FindPython3) // missing: run scripts/install-deps
	tm := newTestMesh(t, map[string][]string{"rga": {"a1"}, "rgc": {"c1"}},
		[]meshLink{{"ac", "rga", "rgc", 10}, {"ca", "rgc", "rga", 10}})
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)
	poll(t, 10*time.Second, "route", tm.pathIs("a1", "rgc.test", "rga>rgc"))
	a1 := tm.nodes["a1"].SMTPAddr().String()

	out := pySend(t, py, a1, "bob@rgc.test", "<real@test>", "")
	m := queuedIDRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no queue ID in the 250 reply: %s", out)
	}
	id := strings.ToLower(m[1])
	if !meshid.Valid(id) {
		t.Fatalf("queue ID %q from the reply is not a mesh ID", id)
	}
	poll(t, 20*time.Second, "real message delivered", func() error {
		if n := tm.delivered("rgc")["<real@test>"]; n != 1 {
			return fmt.Errorf("%d copies", n)
		}
		return nil
	})
	var forged []string
	for i, h := range []string{"X-Me\u017fhd-Origin", "X-MESHD-ORIGIN", "x-meshd-origin \t", "X-Meshd-ID", "X-Meshd-\u212aey"} {
		forged = append(forged, "bob@rgc.test", fmt.Sprintf("<forged%d@test>", i), fmt.Sprintf("%s: %s\r\n", h, id))
	}
	pySend(t, py, a1, forged...)
	pySend(t, py, a1, "bob@rgc.test", "<after@test>", "")
	want := []string{"<real@test>", "<after@test>"}
	for i := 0; i < len(forged)/3; i++ {
		want = append(want, fmt.Sprintf("<forged%d@test>", i))
	}
	poll(t, 30*time.Second, "every message delivered exactly once", func() error {
		got := tm.delivered("rgc")
		for _, w := range want {
			if got[w] != 1 {
				return fmt.Errorf("%s: %d copies (all: %v)", w, got[w], got)
			}
		}
		return nil
	})
	// No forged spelling reached the mailbox as a header of ours.
	b := readOneMessage(t, tm, "rgc", "<forged1@test>")
	if strings.Contains(b, id) {
		t.Fatalf("the forged origin ID survived into the delivered copy:\n%s", b)
	}
}

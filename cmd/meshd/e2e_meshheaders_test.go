package main_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/routing"
)

var queuedAs = regexp.MustCompile(`queued as (\S+)`)

// meshFields lists the header fields of msg whose name starts with
// X-Meshd- in any case (smtp-sink dumps with LF line ends).
func meshFields(msg string) []string {
	hdr, _, _ := strings.Cut(strings.ReplaceAll(msg, "\r\n", "\n"), "\n\n")
	var out []string
	for _, line := range strings.Split(hdr, "\n") {
		if strings.HasPrefix(strings.ToLower(line), "x-meshd-") {
			out = append(out, line)
		}
	}
	return out
}

// countWith counts the messages that contain sub.
func countWith(msgs []string, sub string) int {
	n := 0
	for _, m := range msgs {
		if strings.Contains(m, sub) {
			n++
		}
	}
	return n
}

// TestE2EMeshHeadersStayInside: mail from a client of b1 leaves the
// organisation at a1 (b1 → a1 over a mesh hop, then a1's external
// connector to Postfix's smtp-sink). The mesh hop carries the X-Meshd-*
// fields (carol's copy at c1, two hops away, shows the trace rgb, rga);
// smtp-sink receives none of them. An outsider (python3's smtplib) then
// sends mail carrying forged X-Meshd-* fields: the copy ID and origin of
// the message before (believed, b1 would take the forged message for a
// resend of it and drop it), a trace naming rgb twice (believed, b1 would
// refuse it as a loop), and fields of names meshd does not use. Each is
// accepted, none is believed, none reaches smtp-sink (also from a
// message sent to a1, which leaves at the node it entered) or carol's mailbox,
// and every message, before, forged and after, is delivered exactly once.
func TestE2EMeshHeadersStayInside(t *testing.T) {
	om := startOrgMesh(t, 0, 0)
	for _, rcpt := range []string{"x@far.example", "carol@rgc.test"} {
		if !testkit.Poll(30*time.Second, func() bool {
			d, err := om.b1.trace(rcpt)
			return err == nil && d.Kind == routing.Remote
		}) {
			t.Fatalf("b1 has no route to %s", rcpt)
		}
	}
	tag := uniq(t)
	msg := func(rcpt, mid, extra string) string {
		return "From: out@rgb.test\r\nTo: " + rcpt + "\r\nMessage-ID: <" + mid + "@" + tag + ">\r\n" + extra +
			"Subject: mesh headers\r\n\r\nbody of " + mid + "\r\n"
	}
	var sendTo func(n *meshNode, rcpt, mid, extra string) string
	send := func(rcpt, mid, extra string) string {
		t.Helper()
		return sendTo(om.b1, rcpt, mid, extra)
	}
	sendTo = func(n *meshNode, rcpt, mid, extra string) string {
		t.Helper()
		r := pythonSMTP(t, n.SMTP, step("ehlo"), step("mail", "out@rgb.test"), step("rcpt", rcpt), step("data", msg(rcpt, mid, extra)))
		if r[3].Code != 250 {
			t.Fatalf("DATA of %s for %s: %v", mid, rcpt, r[3])
		}
		return r[3].Text
	}
	m := queuedAs.FindStringSubmatch(send("x@far.example", "before", ""))
	if m == nil {
		t.Fatal("no queue ID in the 250 reply of the message before")
	}
	id := strings.ToLower(m[1])
	if _, ok := om.sink.waitMessage(30*time.Second, "<before@"+tag+">"); !ok {
		t.Fatalf("the message before did not reach smtp-sink; a1's log:\n%s", om.a1.logTail())
	}
	forged := "X-Meshd-ID: " + id + "\r\nX-Meshd-Origin: " + id + "\r\nx-MESHD-trace: rgb, rga, rgb\r\n" +
		"X-Meshd-Age: 999h suspect\r\nX-Meshd-Node: b1.rgb\r\n\tcontinued\r\n"
	send("x@far.example", "forged", forged)
	sendTo(om.a1, "x@far.example", "forged-exit", forged) // leaves at the node it entered
	send("carol@rgc.test", "forged-in", forged)
	send("x@far.example", "after", "")
	send("carol@rgc.test", "after-in", "")

	for _, mid := range []string{"before", "forged", "forged-exit", "after"} {
		if _, ok := om.sink.waitMessage(30*time.Second, "<"+mid+"@"+tag+">"); !ok {
			t.Fatalf("%s did not reach smtp-sink", mid)
		}
	}
	waitMailbox(t, om.c1.Maildir, "carol@rgc.test", 30*time.Second, "<after-in@"+tag+">")
	waitMailbox(t, om.c1.Maildir, "carol@rgc.test", 30*time.Second, "<forged-in@"+tag+">")
	for _, n := range []*meshNode{om.b1, om.a1, om.c1} {
		n.waitQueueEmpty(30 * time.Second)
	}

	out := om.sink.Messages()
	for _, mid := range []string{"before", "forged", "forged-exit", "after"} {
		if k := countWith(out, "<"+mid+"@"+tag+">"); k != 1 {
			t.Errorf("smtp-sink received %s %d times", mid, k)
		}
	}
	for _, s := range out {
		if f := meshFields(s); len(f) > 0 {
			t.Errorf("mesh header fields left the organisation: %q in\n%s", f, s)
		}
		if strings.Contains(s, "continued") || strings.Contains(s, "rgb, rga") {
			t.Errorf("a forged field or the mesh's trace reached smtp-sink:\n%s", s)
		}
	}
	box := mailbox(om.c1.Maildir, "carol@rgc.test")
	for _, mid := range []string{"forged-in", "after-in"} {
		if k := countWith(box, "<"+mid+"@"+tag+">"); k != 1 {
			t.Errorf("carol's mailbox holds %s %d times", mid, k)
		}
	}
	for _, c := range box {
		// The mesh's own fields: c1's X-Meshd-ID, the trace of the two
		// hops and the last hop's age (docs/config.md), nothing the
		// outsider wrote.
		got := meshFields(c)
		want := []string{"X-Meshd-ID: ", "X-Meshd-Trace: rgb, rga", "X-Meshd-Age: "}
		if len(got) != len(want) || !strings.HasPrefix(got[0], want[0]) || got[1] != want[1] || !strings.HasPrefix(got[2], want[2]) || strings.Contains(got[0], id) {
			t.Errorf("carol's copy has mesh fields %q, want %q (not %s):\n%s", got, want, id, c)
		}
		if strings.Contains(c, "continued") || strings.Contains(c, "999h") {
			t.Errorf("a forged field reached carol's mailbox:\n%s", c)
		}
	}
	t.Logf("smtp-sink: %d messages, no X-Meshd-* field; carol: %d copies with the mesh's own trace", len(out), len(box))
}

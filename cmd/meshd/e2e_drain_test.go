package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/adminapi"
)

// drainPair is one routing group, rga, of two meshd processes: a1, whose
// local delivery is LMTP to a port nobody listens on (so mail for
// rga.test waits in its queue), and a2, which delivers into its Maildir.
func startDrainPair(t *testing.T) (a1, a2 *meshNode) {
	t.Helper()
	deadLMTP := freeAddrs(t, 1, nil)[0]
	lab := startLab(t, labOptions{
		Members: []labMember{
			{Name: "a1", RG: "rga", Extra: map[string]any{"delivery": map[string]any{"mode": "lmtp", "lmtp": deadLMTP}}},
			{Name: "a2", RG: "rga"},
		},
		Node: nodeOptions{Reserved: []string{deadLMTP}, Extra: map[string]any{
			// a drain is done two rounds after the queue is empty, with shadows on
			"mesh": map[string]any{"shadow_check": "200ms"},
		}},
	})
	a1, a2 = lab.node("a1"), lab.node("a2")
	if !testkit.Poll(30*time.Second, func() bool {
		var m adminapi.Members
		return a1.adminGet("/api/mesh/members", &m) == nil && len(m.Members) == 2
	}) {
		t.Fatal("a1 and a2 never saw each other in rga's gossip")
	}
	return a1, a2
}

var drainSubjectRe = regexp.MustCompile(`(?m)^Subject: (drain-\S+)`)

// subjects counts the messages in a2's mailbox for addr by Subject.
func subjects(n *meshNode, addr string) map[string]int {
	out := map[string]int{}
	for _, m := range mailbox(n.Maildir, addr) {
		if s := drainSubjectRe.FindStringSubmatch(m); s != nil {
			out[strings.TrimSpace(s[1])]++
		}
	}
	return out
}

// TestE2ENodeDrain: a1 holds 20 messages for rga.test (its LMTP server is
// down). `meshctl node drain -wait` returns once a1 holds nothing: every
// message was handed to a2 and is in a2's mailbox once. New sessions at a1
// get 421 4.3.2 (python smtplib), the drain survives a kill -9, `meshctl
// node undrain` brings a1 back into service, a second drain takes the
// mail it took meanwhile, and a1's data directory is then deleted: nothing
// is lost, nothing is duplicated.
func TestE2ENodeDrain(t *testing.T) {
	a1, a2 := startDrainPair(t)
	const rcpt = "bob@rga.test"
	var steps [][]any
	var want []string
	for i := range 20 {
		subj := fmt.Sprintf("drain-%s-%d", uniq(t), i)
		want = append(want, subj)
		steps = append(steps, step("sendmail", "alice@rga.test", []string{rcpt},
			"From: alice@rga.test\r\nTo: "+rcpt+"\r\nSubject: "+subj+"\r\n\r\nheld at a1 until the drain\r\n"))
	}
	for i, r := range pythonSMTP(t, a1.SMTP, steps...) {
		if r.Code != 250 {
			t.Fatalf("message %d to a1: %v", i, r)
		}
	}
	if !testkit.Poll(10*time.Second, func() bool { k, err := a1.queueLen(); return err == nil && k == 20 }) {
		t.Fatal("a1 does not hold the 20 messages")
	}
	if got := subjects(a2, rcpt); len(got) != 0 {
		t.Fatalf("a2 delivered %d messages before the drain", len(got))
	}

	out, code := meshctl(t, "-admin", a1.Admin, "node", "drain", "-wait", "-timeout", "60s", "-interval", "200ms")
	if code != 0 || !strings.Contains(out, "drained: a1 holds no mail") {
		t.Fatalf("meshctl node drain -wait: exit %d\n%s", code, out)
	}
	t.Logf("meshctl node drain -wait:\n%s", strings.TrimSpace(out))
	checkOnce := func(want []string) {
		t.Helper()
		var got map[string]int
		if !testkit.Poll(20*time.Second, func() bool { got = subjects(a2, rcpt); return len(got) == len(want) }) {
			t.Fatalf("a2's mailbox holds %d distinct messages, want %d", len(got), len(want))
		}
		for _, s := range want {
			if got[s] != 1 {
				t.Fatalf("%s is in a2's mailbox %d times", s, got[s])
			}
		}
	}
	checkOnce(want)

	// New sessions are refused, before any greeting.
	refused := func() {
		t.Helper()
		out, code := swaks(t, "--server", a1.SMTP, "--from", "alice@rga.test", "--to", rcpt, "--quit-after", "EHLO")
		if code == 0 || !strings.Contains(out, "421 4.3.2") {
			t.Fatalf("swaks to a draining a1: exit %d, want a 421 4.3.2 greeting:\n%s", code, out)
		}
	}
	refused()
	out, code = meshctl(t, "-admin", a1.Admin, "trace", rcpt)
	if !strings.Contains(out, "draining: a1 hands this mail to another member of rga instead of local") || !strings.Contains(out, "next hop (chosen): a2 ") {
		t.Fatalf("meshctl trace at a draining a1: exit %d\n%s", code, out)
	}
	out, code = meshctl(t, "-admin", a2.Admin, "members")
	if code != 0 || !regexp.MustCompile(`(?m)^draining: a1 `).MatchString(out) {
		t.Fatalf("meshctl members at a2 does not show a1 draining: exit %d\n%s", code, out)
	}

	// Durable: after kill -9 a1 comes back draining.
	a1.Kill()
	a1.Start()
	refused()
	// Done again once it has been empty for two shadow-check rounds
	// (400ms here): the restart starts that count anew.
	testkit.Eventually(t, 30*time.Second, "a1 drained again after restart", func() error {
		out, code := meshctl(t, "-admin", a1.Admin, "-json", "node", "status")
		var st adminapi.DrainStatus
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil || !st.Draining || !st.Done || st.Since == nil {
			return fmt.Errorf("meshctl node status after restart: exit %d\n%s", code, out)
		}
		return nil
	})

	// Undrain: a1 takes mail again (and holds it: its LMTP is still down).
	out, code = meshctl(t, "-admin", a1.Admin, "node", "undrain")
	if code != 0 || !strings.Contains(out, "node a1 (rga): in service") {
		t.Fatalf("meshctl node undrain: exit %d\n%s", code, out)
	}
	last := fmt.Sprintf("drain-%s-after", uniq(t))
	if r := pythonSMTP(t, a1.SMTP, step("sendmail", "alice@rga.test", []string{rcpt},
		"From: alice@rga.test\r\nTo: "+rcpt+"\r\nSubject: "+last+"\r\n\r\nafter undrain\r\n")); r[0].Code != 250 {
		t.Fatalf("a1 after undrain: %v", r[0])
	}
	if !testkit.Poll(10*time.Second, func() bool { k, err := a1.queueLen(); return err == nil && k == 1 }) {
		t.Fatal("a1 in service again does not hold the new message")
	}
	out, code = meshctl(t, "-admin", a1.Admin, "node", "drain", "-wait", "-timeout", "60s", "-interval", "200ms")
	if code != 0 {
		t.Fatalf("second drain: exit %d\n%s", code, out)
	}

	// The drained node's data directory goes; every message is still there once.
	if err := a1.Stop(); err != nil {
		t.Fatalf("stop a1: %v", err)
	}
	if err := os.RemoveAll(a1.DataDir); err != nil {
		t.Fatal(err)
	}
	checkOnce(append(want, last))
	a2.waitQueueEmpty(10 * time.Second)
	t.Logf("21 messages handed from a1 to a2 in two drains, each delivered once; a1's data directory removed")
}

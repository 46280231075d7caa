package main_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/harness/extern"
)

// pyRaw sends each command line (given as JSON strings of code points < 256, sent as those
// octets, so NUL and raw UTF-8 bytes pass unchanged) and prints the final reply line to each.
const pyRaw = `
import json, socket, sys
host, port, lines = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
s = socket.create_connection((host, port), timeout=30)
f = s.makefile("rb")
def reply():
    while True:
        l = f.readline()
        if not l:
            return "EOF"
        if l[3:4] != b"-":
            return l.decode("utf-8", "replace").rstrip()
out = [reply()]
for line in lines:
    s.sendall(line.encode("latin-1") + b"\r\n")
    out.append(reply())
print(json.dumps(out))
`

func rawSMTP(t *testing.T, addr string, lines ...string) []string {
	t.Helper()
	py := extern.Require(t, extern.FindPython3)
	host, port := splitHostPort(t, addr)
	js, _ := json.Marshal(lines)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c", pyRaw, host, strconv.Itoa(port), string(js)).Output()
	if err != nil {
		t.Fatalf("python raw client: %v\n%s", err, out)
	}
	var replies []string
	if err := json.Unmarshal(out, &replies); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	return replies[1:] // without the greeting
}

// latin1 spells the UTF-8 octets of s as code points < 256 for rawSMTP.
func latin1(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}

// TestE2EAddressSyntax plays a client sending addresses that would be queued and then bounce (to
// a forged sender) or vanish: NUL and control characters, malformed local parts, UTF-8 without
// SMTPUTF8. Each is refused at MAIL or RCPT with the code RFC 5321/6531 give; RCPT
// TO:<postmaster> without a domain is accepted and delivered (RFC 5321 §4.5.1); mail before and
// after is delivered exactly once.
func TestE2EAddressSyntax(t *testing.T) {
	n := startNode(t, nodeOptions{})
	id := uniq(t)
	send := func(subject, to string) {
		t.Helper()
		msg := "From: sender@remote.test\r\nTo: " + to + "\r\nSubject: " + subject + "\r\n\r\nbody\r\n"
		r := pythonSMTP(t, n.SMTP, step("sendmail", "sender@remote.test", []string{to}, msg))
		if r[0].Code != 250 || r[0].Text != "{}" {
			t.Fatalf("sending %s: %v", subject, r)
		}
	}
	send(id+"-before", "bob@example.test")

	for _, tc := range []struct {
		name, mail, rcpt, want string
	}{
		{"NUL in recipient", "MAIL FROM:<sender@remote.test>", "RCPT TO:<user@foreign.example\x00@example.test>", "501 5.5.2"},
		{"control character in recipient", "MAIL FROM:<sender@remote.test>", "RCPT TO:<bo\x01b@example.test>", "501 5.5.2"},
		{"leading dot", "MAIL FROM:<sender@remote.test>", "RCPT TO:<.bob@example.test>", "553 5.1.3"},
		{"double dot", "MAIL FROM:<sender@remote.test>", "RCPT TO:<bo..b@example.test>", "553 5.1.3"},
		{"UTF-8 without SMTPUTF8", "MAIL FROM:<sender@remote.test>", latin1("RCPT TO:<jöran@example.test>"), "553 5.6.7"},
		{"NUL in sender", "MAIL FROM:<send\x00er@remote.test>", "", "501 5.5.2"},
		{"UTF-8 sender without SMTPUTF8", latin1("MAIL FROM:<jöran@remote.test>"), "", "553 5.6.7"},
	} {
		lines := []string{"EHLO attacker.test", tc.mail}
		if tc.rcpt != "" {
			lines = append(lines, tc.rcpt)
		}
		r := rawSMTP(t, n.SMTP, append(lines, "QUIT")...)
		got := r[len(lines)-1]
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: reply %q, want %s (all: %q)", tc.name, got, tc.want, r)
		}
	}
	r := rawSMTP(t, n.SMTP, "EHLO client.test", latin1("MAIL FROM:<jöran@remote.test> SMTPUTF8"),
		latin1("RCPT TO:<bob@example.test>"), "RSET", "QUIT")
	if !strings.HasPrefix(r[1], "250") || !strings.HasPrefix(r[2], "250") {
		t.Errorf("UTF-8 with SMTPUTF8: %q, want 250 to MAIL and RCPT", r)
	}

	send(id+"-postmaster", "postmaster")
	send(id+"-after", "bob@example.test")
	n.waitQueueEmpty(30 * time.Second)
	waitMailbox(t, n.Maildir, "postmaster@example.test", 10*time.Second, "Subject: "+id+"-postmaster")
	count := map[string]int{}
	for _, m := range mailbox(n.Maildir, "bob@example.test") {
		for _, s := range []string{"-before", "-after"} {
			if strings.Contains(m, "Subject: "+id+s+"\r\n") {
				count[s]++
			}
		}
	}
	if count["-before"] != 1 || count["-after"] != 1 || len(mailbox(n.Maildir, "bob@example.test")) != 2 {
		t.Errorf("bob's mailbox: %v of %d messages, want before and after once each", count, len(mailbox(n.Maildir, "bob@example.test")))
	}
}

package main_test

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/harness/extern"
)

// pyCut is a raw-socket client that opens a transaction and then closes the connection in the
// middle of its content: "bdat" declares a chunk of 1000 octets with LAST and sends fewer,
// "data" sends DATA content without the final dot. It prints the replies it read.
const pyCut = `
import socket, sys
host, port, mode, body = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].encode()
s = socket.create_connection((host, port), timeout=30)
f = s.makefile("rb")
def reply():
    lines = []
    while True:
        l = f.readline()
        if not l:
            return "EOF"
        lines.append(l.decode().rstrip())
        if l[3:4] != b"-":
            return lines[-1]
out = [reply()]
for cmd in (b"EHLO cut.e2e.test", b"MAIL FROM:<sender@remote.test>", b"RCPT TO:<bob@example.test>"):
    s.sendall(cmd + b"\r\n")
    out.append(reply())
if mode == "bdat":
    s.sendall(b"BDAT 1000 LAST\r\n" + body)
else:
    s.sendall(b"DATA\r\n")
    out.append(reply())
    s.sendall(body)
s.shutdown(socket.SHUT_WR)
s.close()
print("|".join(out))
`

// TestE2ETruncatedContentNotQueued plays a client whose connection ends in the middle of a
// message: BDAT 1000 LAST followed by 51 octets, and DATA content without its final dot. Neither
// may be queued: the client saw no reply and will send the message again (here, with smtplib),
// so queueing the cut copy would deliver a truncated message and then a duplicate. Mail sent
// before and after is delivered exactly once.
func TestE2ETruncatedContentNotQueued(t *testing.T) {
	py := extern.Require(t, extern.FindPython3)
	n := startNode(t, nodeOptions{})
	host, port := splitHostPort(t, n.SMTP)
	id := uniq(t)
	message := func(subject string) string {
		return "From: sender@remote.test\r\nTo: bob@example.test\r\nSubject: " + subject +
			"\r\nMessage-ID: <" + subject + "@remote.test>\r\n\r\nthe whole body\r\n"
	}
	send := func(subject string) {
		t.Helper()
		r := pythonSMTP(t, n.SMTP, step("sendmail", "sender@remote.test", []string{"bob@example.test"}, message(subject)))
		if r[0].Code != 250 || r[0].Text != "{}" {
			t.Fatalf("sending %s: %v", subject, r)
		}
	}
	send(id + "-before")

	for _, mode := range []string{"bdat", "data"} {
		subject := id + "-" + mode
		cut := message(subject)[:51]
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		out, err := exec.CommandContext(ctx, py, "-c", pyCut, host, strconv.Itoa(port), mode, cut).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s: python: %v\n%s", mode, err, out)
		}
		if strings.Contains(string(out), "250 2.0.0 OK queued") {
			t.Errorf("%s: the cut message got a queued reply: %s", mode, out)
		}
		// The client saw no reply: it sends the message again, whole.
		send(subject)
	}
	send(id + "-after")

	n.waitQueueEmpty(30 * time.Second)
	for _, suffix := range []string{"-before", "-bdat", "-data", "-after"} {
		waitMailbox(t, n.Maildir, "bob@example.test", 10*time.Second, "Subject: "+id+suffix)
	}
	// A queued cut copy holds no Subject line (51 octets end in the To: field): count every
	// message, and each whole one by its Subject.
	all := mailbox(n.Maildir, "bob@example.test")
	count := map[string]int{}
	for _, m := range all {
		for _, suffix := range []string{"-before", "-bdat", "-data", "-after"} {
			if strings.Contains(m, "Subject: "+id+suffix+"\r\n") {
				count[suffix]++
			}
		}
		if !strings.Contains(m, "the whole body") {
			t.Errorf("a truncated message was delivered:\n%s", m)
		}
	}
	if len(all) != 4 {
		t.Errorf("mailbox holds %d messages, want 4 (before, bdat, data, after once each): %v", len(all), count)
	}
	for _, suffix := range []string{"-before", "-bdat", "-data", "-after"} {
		if count[suffix] != 1 {
			t.Errorf("message %s delivered %d times, want exactly once", suffix, count[suffix])
		}
	}
}

package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/harness/extern"
	"github.com/meshd/meshd/internal/testkit"
)

// sink is a running Postfix smtp-sink that dumps every message it accepts into DumpDir.
type sink struct {
	t       testing.TB
	Addr    string
	Port    int
	DumpDir string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  *bytes.Buffer
}

// startSink runs smtp-sink on 127.0.0.1:port (port 0 = a free one) with extra flags (e.g.
// "-r", "rcpt" to answer RCPT with a 4xx), waits for its greeting, and kills it in t.Cleanup.
func startSink(t testing.TB, port int, flags ...string) *sink {
	t.Helper()
	pf := extern.RequirePostfix(t)
	if port == 0 {
		port = extern.FreePort(t)
	}
	s := &sink{t: t, Port: port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), DumpDir: t.TempDir()}
	args := []string{"-h", "sink.e2e.test", "-d", filepath.Join(s.DumpDir, "msg.")}
	if os.Geteuid() == 0 {
		// smtp-sink refuses to run as root without a user to switch to; root keeps the dump
		// directory (created by this test) writable.
		args = append(args, "-u", "root")
	}
	args = append(args, flags...)
	args = append(args, s.Addr, "64")
	out := &bytes.Buffer{}
	cmd := exec.Command(pf.SMTPSink(), args...)
	cmd.Env = pf.Env()
	cmd.Stdout, cmd.Stderr = &lockedWriter{w: out, mu: &s.mu}, &lockedWriter{w: out, mu: &s.mu}
	if err := cmd.Start(); err != nil {
		t.Fatalf("e2e: start smtp-sink: %v", err)
	}
	s.cmd, s.out, s.done = cmd, out, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("smtp-sink %s %v output:\n%s", s.Addr, flags, s.output())
		}
	})
	if !testkit.Poll(10*time.Second, func() bool {
		select {
		case <-s.done:
			return true
		default:
		}
		return smtpGreets(s.Addr) == nil
	}) || s.exited() {
		t.Fatalf("e2e: smtp-sink on %s did not start:\n%s", s.Addr, s.output())
	}
	return s
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (s *sink) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

func (s *sink) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Stop kills smtp-sink and waits until it is gone (and its port is free again).
func (s *sink) Stop() {
	if !s.exited() {
		_ = s.cmd.Process.Kill()
	}
	<-s.done
}

// Messages returns the dumped transactions (envelope pseudo-headers X-Mail-Args, X-Rcpt-Args,
// then the message as received), oldest name first.
func (s *sink) Messages() []string {
	ents, _ := os.ReadDir(s.DumpDir)
	var out []string
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(s.DumpDir, e.Name())); err == nil {
			out = append(out, string(b))
		}
	}
	return out
}

// waitMessage waits until a dumped message contains every one of subs and returns it.
func (s *sink) waitMessage(timeout time.Duration, subs ...string) (string, bool) {
	var found string
	ok := testkit.Poll(timeout, func() bool {
		for _, m := range s.Messages() {
			if containsAll(m, subs...) {
				found = m
				return true
			}
		}
		return false
	})
	return found, ok
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// swaks runs swaks with args (plus a timeout and no hostname lookups) and returns its
// transcript and exit code.
func swaks(t testing.TB, args ...string) (string, int) {
	t.Helper()
	bin := extern.Require(t, extern.FindSwaks)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args = append([]string{"--timeout", "30s", "--helo", "client.e2e.test"}, args...)
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("e2e: swaks %v: %v\n%s", args, err, out)
		}
		code = ee.ExitCode()
	}
	return string(out), code
}

// pySMTP drives Python's smtplib through steps and returns one reply per step. Each step is
// a list: ["ehlo"], ["starttls"], ["docmd", "RCPT TO:<a@b>"], ["mail", "a@b"], ["rcpt", "c@d"],
// ["data", "text"], ["login", user, pass], ["sendmail", from, [to...], msg], ["touch", path]
// (creates path: tells the test a step was reached), ["getreply"] (waits for a reply the server
// sends on its own).
// A reply is [code, text]; an smtplib exception becomes its SMTP code (or -1) and its text.
// The script is given inline so that the test needs nothing but python3.
const pySMTP = `
import json, smtplib, ssl, sys
host, port, steps = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
out = []
s = smtplib.SMTP(host, port, local_hostname="py.e2e.test", timeout=30)
def reply(r):
    code, msg = r
    return [code, msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)]
for st in steps:
    op = st[0]
    try:
        if op == "ehlo": out.append(reply(s.ehlo()))
        elif op == "starttls": out.append(reply(s.starttls(context=ctx)))
        elif op == "docmd": out.append(reply(s.docmd(st[1])))
        elif op == "mail": out.append(reply(s.mail(st[1], st[2] if len(st) > 2 else [])))
        elif op == "rcpt": out.append(reply(s.rcpt(st[1])))
        elif op == "data": out.append(reply(s.data(st[1].encode())))
        elif op == "login": out.append(reply(s.login(st[1], st[2])))
        elif op == "features": out.append([0, " ".join(sorted(s.esmtp_features))])
        elif op == "touch":
            open(st[1], "w").close()
            out.append([0, ""])
        elif op == "getreply": out.append(reply(s.getreply()))
        elif op == "sendmail":
            refused = s.sendmail(st[1], st[2], st[3].encode())
            out.append([250, json.dumps({k: reply(v) for k, v in refused.items()})])
        else: raise ValueError("unknown step " + op)
    except smtplib.SMTPRecipientsRefused as e:
        first = list(e.recipients.values())[0]
        out.append(reply(first))
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError, smtplib.SMTPAuthenticationError,
            smtplib.SMTPResponseException) as e:
        out.append([e.smtp_code, e.smtp_error.decode("utf-8", "replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)])
    except smtplib.SMTPException as e:
        out.append([-1, type(e).__name__ + ": " + str(e)])
try:
    s.quit()
except Exception:
    pass
print(json.dumps(out))
`

type pyReply struct {
	Code int
	Text string
}

func (r pyReply) String() string { return fmt.Sprintf("%d %s", r.Code, r.Text) }

func pythonSMTP(t testing.TB, addr string, steps ...[]any) []pyReply {
	t.Helper()
	bin := extern.Require(t, extern.FindPython3)
	host, port := splitHostPort(t, addr)
	js, err := json.Marshal(steps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-c", pySMTP, host, strconv.Itoa(port), string(js))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("e2e: python smtplib %s: %v\n%s%s", js, err, out, stderr.String())
	}
	var raw [][2]any
	if err := json.Unmarshal(bytes.TrimSpace(out), &raw); err != nil {
		t.Fatalf("e2e: python output %q: %v", out, err)
	}
	replies := make([]pyReply, len(raw))
	for i, r := range raw {
		code, _ := r[0].(float64)
		text, _ := r[1].(string)
		replies[i] = pyReply{Code: int(code), Text: text}
	}
	if len(replies) != len(steps) {
		t.Fatalf("e2e: python gave %d replies for %d steps: %v\n%s", len(replies), len(steps), replies, stderr.String())
	}
	return replies
}

// step builds one pySMTP step.
func step(op string, args ...any) []any { return append([]any{op}, args...) }

// mailbox returns the messages delivered to addr in the Maildir tree rooted at root
// (<root>/<domain>/<localpart>/{new,cur}), sorted by file name.
func mailbox(root, addr string) []string {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok {
		return nil
	}
	var names []string
	for _, sub := range []string{"new", "cur"} {
		d := filepath.Join(root, strings.ToLower(domain), local, sub)
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			names = append(names, filepath.Join(d, e.Name()))
		}
	}
	sort.Strings(names)
	var out []string
	for _, p := range names {
		if b, err := os.ReadFile(p); err == nil {
			out = append(out, string(b))
		}
	}
	return out
}

// waitMailbox waits until addr's mailbox holds a message containing every one of subs.
func waitMailbox(t testing.TB, root, addr string, timeout time.Duration, subs ...string) string {
	t.Helper()
	var found string
	if !testkit.Poll(timeout, func() bool {
		for _, m := range mailbox(root, addr) {
			if containsAll(m, subs...) {
				found = m
				return true
			}
		}
		return false
	}) {
		t.Fatalf("e2e: no message with %q in the mailbox of %s after %v (it holds %d messages)",
			subs, addr, timeout, len(mailbox(root, addr)))
	}
	return found
}

// uniq returns a string unique to this test run, for Subjects and Message-IDs.
func uniq(t testing.TB) string {
	return fmt.Sprintf("%s-%d", strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()), time.Now().UnixNano())
}

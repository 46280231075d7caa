package extern

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestMissingErrorNamesInstallScript(t *testing.T) {
	_, err := findProgram("meshd-no-such-tool", filepath.Join(t.TempDir(), "nope"))
	if err == nil {
		t.Fatal("found a tool that does not exist")
	}
	if !errors.Is(err, ErrMissing) {
		t.Errorf("errors.Is(%v, ErrMissing) = false", err)
	}
	if !strings.Contains(err.Error(), "scripts/install-deps") || !strings.Contains(err.Error(), "meshd-no-such-tool") {
		t.Errorf("error %q does not name the tool and scripts/install-deps", err)
	}
}

func TestFindPostfixHonoursEnv(t *testing.T) {
	root := t.TempDir()
	t.Setenv(EnvPostfixDir, root)
	p := &Postfix{Root: root}
	for _, f := range []string{p.SMTPSink(), p.SMTPSource(), filepath.Join(p.DaemonDir(), "smtpd")} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got, err := FindPostfix()
	if err != nil {
		t.Fatal(err)
	}
	if got.Root != root {
		t.Errorf("FindPostfix().Root = %q, want %q", got.Root, root)
	}
	var ld string
	for _, kv := range got.Env() {
		if v, ok := strings.CutPrefix(kv, "LD_LIBRARY_PATH="); ok {
			ld = v
		}
	}
	if !strings.HasPrefix(ld, filepath.Join(root, "usr/lib/postfix")) {
		t.Errorf("LD_LIBRARY_PATH = %q, want it to start with the tree's lib dir", ld)
	}
}

func TestToolsInstalled(t *testing.T) {
	for name, find := range map[string]func() (string, error){
		"swaks": FindSwaks, "python3": FindPython3, "dnsmasq": FindDNSMasq,
		"smtp-sink": FindSMTPSink, "smtp-source": FindSMTPSource, "postfix daemon dir": FindPostfixDaemonDir,
	} {
		t.Run(name, func(t *testing.T) {
			p := Require(t, find)
			if _, err := os.Stat(p); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFreePort(t *testing.T) {
	port := FreePort(t)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("FreePort returned %d which cannot be bound: %v", port, err)
	}
	l.Close()
}

func query(t *testing.T, server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).ExchangeContext(ctx, m, server)
	if err != nil {
		t.Fatalf("query %s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return r
}

func TestStartDNSMasq(t *testing.T) {
	d := StartDNSMasq(t,
		Local("example.test"),
		MX("example.test", "mx1.example.test", 10),
		MX("example.test", "mx2.example.test", 20),
		NullMX("null.example.test"),
		Host("mx1.example.test", "127.0.0.2", "::2"),
		Host("mx2.example.test", "127.0.0.3"),
		CNAME("alias.example.test", "mx2.example.test"),
		TXT("txt.example.test", "hello"),
	)
	tests := []struct {
		name  string
		qtype uint16
		rcode int
		want  []string // answer RRs' data, in any order
	}{
		{"example.test", dns.TypeMX, dns.RcodeSuccess, []string{"10 mx1.example.test.", "20 mx2.example.test."}},
		{"null.example.test", dns.TypeMX, dns.RcodeSuccess, []string{"0 ."}},
		{"mx1.example.test", dns.TypeA, dns.RcodeSuccess, []string{"127.0.0.2"}},
		{"mx1.example.test", dns.TypeAAAA, dns.RcodeSuccess, []string{"::2"}},
		{"mx2.example.test", dns.TypeMX, dns.RcodeSuccess, nil}, // NODATA
		{"alias.example.test", dns.TypeA, dns.RcodeSuccess, []string{"mx2.example.test.", "127.0.0.3"}},
		{"txt.example.test", dns.TypeTXT, dns.RcodeSuccess, []string{`"hello"`}},
		{"nx.example.test", dns.TypeMX, dns.RcodeNameError, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name+"/"+dns.TypeToString[tc.qtype], func(t *testing.T) {
			r := query(t, d.Addr, tc.name, tc.qtype)
			if r.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
			}
			var got []string
			for _, rr := range r.Answer {
				got = append(got, strings.TrimPrefix(rr.String(), rr.Header().String()))
			}
			if !sameSet(got, tc.want) {
				t.Errorf("answers %q, want %q", got, tc.want)
			}
		})
	}
	if !strings.Contains(d.Output(), "query[MX] example.test") {
		t.Errorf("dnsmasq log does not show the queries:\n%s", d.Output())
	}
	d.Stop()
	if err := probeDNS(d.Addr, probeQuery()); err == nil {
		t.Error("dnsmasq still answers after Stop")
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestStartSMTPSinkReceives(t *testing.T) {
	s := StartSMTPSink(t, "", SinkOptions{Hostname: "sink.example.test"})
	body := "Subject: one\r\n\r\nfirst body line\r\n"
	if err := smtp.SendMail(s.Addr, nil, "alice@example.test", []string{"bob@example.test", "carol@example.test"}, []byte(body)); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	msgs := s.WaitMessages(t, 1, 10*time.Second)
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.From != "alice@example.test" {
		t.Errorf("From = %q", m.From)
	}
	if strings.Join(m.Rcpts, ",") != "bob@example.test,carol@example.test" {
		t.Errorf("Rcpts = %q", m.Rcpts)
	}
	if m.ClientAddr != "127.0.0.1" || m.Proto != "ESMTP" || m.Helo != "localhost" {
		t.Errorf("client %q proto %q helo %q", m.ClientAddr, m.Proto, m.Helo)
	}
	if !strings.Contains(string(m.Data), "Subject: one\n\nfirst body line\n") {
		t.Errorf("data does not hold the message:\n%s", m.Data)
	}
	if !strings.Contains(string(m.Data), "by sink.example.test") && !strings.Contains(string(m.Data), "smtp-sink") {
		t.Errorf("data lacks smtp-sink's Received header:\n%s", m.Data)
	}
}

func TestStartSMTPSinkReject(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts SinkOptions
		code string
	}{
		{"hard", SinkOptions{HardReject: []string{"RCPT"}}, "5"},
		{"soft", SinkOptions{SoftReject: []string{"RCPT"}}, "4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := StartSMTPSink(t, "", tc.opts)
			err := smtp.SendMail(s.Addr, nil, "a@example.test", []string{"b@example.test"}, []byte("Subject: x\r\n\r\nx\r\n"))
			if err == nil || !strings.HasPrefix(err.Error(), tc.code) {
				t.Fatalf("SendMail error %v, want a %sxx rejection", err, tc.code)
			}
			// smtp-sink dumps the aborted transaction too, but without recipient or content.
			msgs, _ := s.Messages()
			for _, m := range msgs {
				if len(m.Rcpts) != 0 || strings.Contains(string(m.Data), "Subject: x") {
					t.Errorf("rejected recipient was dumped: %+v", m)
				}
			}
		})
	}
}

func TestStartSMTPSinkFixedAddr(t *testing.T) {
	addr := FreeAddr(t)
	s := StartSMTPSink(t, addr, SinkOptions{})
	if s.Addr != addr {
		t.Fatalf("Addr = %q, want %q", s.Addr, addr)
	}
}

func TestSwaksToSMTPSink(t *testing.T) {
	swaks := Require(t, FindSwaks)
	s := StartSMTPSink(t, "", SinkOptions{})
	host, port, _ := net.SplitHostPort(s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, swaks, "--server", host, "--port", port, "--from", "s@example.test",
		"--to", "r@example.test", "--header", "Subject: via swaks", "--body", "swaks body").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	msgs := s.WaitMessages(t, 1, 10*time.Second)
	if !strings.Contains(string(msgs[0].Data), "Subject: via swaks") || msgs[0].Rcpts[0] != "r@example.test" {
		t.Errorf("unexpected dump: %+v", msgs[0])
	}
}

func TestSMTPSourceToSMTPSink(t *testing.T) {
	pf := RequirePostfix(t)
	s := StartSMTPSink(t, "", SinkOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, pf.SMTPSource(), "-m", "3", "-s", "1", "-f", "src@example.test",
		"-t", "dst@example.test", "-l", "200", s.Addr)
	cmd.Env = pf.Env()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("smtp-source: %v\n%s", err, out)
	}
	msgs := s.WaitMessages(t, 3, 10*time.Second)
	for _, m := range msgs {
		if m.From != "src@example.test" || len(m.Rcpts) != 1 || m.Rcpts[0] != "dst@example.test" {
			t.Errorf("unexpected envelope %q -> %q", m.From, m.Rcpts)
		}
	}
}

func TestParseSinkDump(t *testing.T) {
	raw := "X-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\nX-Helo-Args: h.test\n" +
		"X-Mail-Args: <a@x.test> SIZE=10 BODY=8BITMIME\nX-Rcpt-Args: <b@y.test>\nX-Rcpt-Args: <c@y.test> NOTIFY=NEVER\n" +
		"Received: from h\nX-Other: kept\n\nbody\n"
	m := ParseSinkDump([]byte(raw))
	if m.From != "a@x.test" || m.MailArgs != "<a@x.test> SIZE=10 BODY=8BITMIME" {
		t.Errorf("From %q MailArgs %q", m.From, m.MailArgs)
	}
	if strings.Join(m.Rcpts, ",") != "b@y.test,c@y.test" {
		t.Errorf("Rcpts %q", m.Rcpts)
	}
	if string(m.Data) != "Received: from h\nX-Other: kept\n\nbody\n" {
		t.Errorf("Data %q", m.Data)
	}
}

// fakeTB records how Require ended a test.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestRequireMissingFailsUnlessSkipSet(t *testing.T) {
	missingTool := func() (string, error) { return findProgram("meshd-no-such-tool") }
	for _, tc := range []struct {
		env                 string
		wantFatal, wantSkip bool
	}{
		{"", true, false},
		{"0", true, false},
		{"1", false, true},
	} {
		t.Setenv(EnvSkip, tc.env)
		f := &fakeTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			Require(f, missingTool)
		}()
		<-done
		if (f.fatal != "") != tc.wantFatal || (f.skip != "") != tc.wantSkip {
			t.Errorf("%s=%q: fatal %q skip %q", EnvSkip, tc.env, f.fatal, f.skip)
		}
		if msg := f.fatal + f.skip; !strings.Contains(msg, "scripts/install-deps") {
			t.Errorf("%s=%q: message %q does not name scripts/install-deps", EnvSkip, tc.env, msg)
		}
	}
}

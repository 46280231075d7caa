package extern

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SinkOptions configure StartSMTPSink. The zero value accepts every message with ESMTP.
type SinkOptions struct {
	Hostname   string   // -h: name in the greeting and Received: header (default "smtp-sink.test")
	LMTP       bool     // -L: speak LMTP instead of SMTP
	HardReject []string // -f: commands answered with a 5xx error, e.g. "RCPT"
	SoftReject []string // -r: commands answered with a 4xx error
	Disconnect []string // -q: commands after which the connection is dropped without reply
	Args       []string // further smtp-sink options, verbatim
	Backlog    int      // listen backlog (default 64)
}

// SMTPSink is a running Postfix smtp-sink that dumps every completed transaction to a file.
type SMTPSink struct {
	Addr    string // "127.0.0.1:PORT"
	DumpDir string // one file per transaction
	proc    *process
}

// SinkMessage is one transaction smtp-sink received, read back from its dump file.
type SinkMessage struct {
	File       string
	ClientAddr string
	Proto      string   // "SMTP", "ESMTP", "LMTP"
	Helo       string   // HELO/EHLO argument
	From       string   // reverse path without <>
	MailArgs   string   // the whole MAIL FROM argument, ESMTP parameters included
	Rcpts      []string // forward paths without <>
	Data       []byte   // message content as smtp-sink stored it (LF line ends, its Received: first)
}

// Output returns what smtp-sink printed so far.
func (s *SMTPSink) Output() string { return s.proc.out.String() }

// Stop kills smtp-sink before the test ends (t.Cleanup does it otherwise).
func (s *SMTPSink) Stop() { s.proc.stop() }

// StartSMTPSink runs smtp-sink listening on addr ("" or a port 0 address picks a free port on
// 127.0.0.1), waits for its 220 greeting and kills it in t.Cleanup. Each completed transaction is
// dumped into DumpDir; read them with Messages or WaitMessages. Running as root, smtp-sink must
// drop privileges, so it runs as "nobody" and DumpDir belongs to that user.
func StartSMTPSink(t testing.TB, addr string, opts SinkOptions) *SMTPSink {
	t.Helper()
	pf := RequirePostfix(t)
	dir, err := os.MkdirTemp("", "meshd-smtp-sink-")
	if err != nil {
		t.Fatalf("extern: smtp-sink: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	dump := filepath.Join(dir, "dump")
	if err := os.Mkdir(dump, 0o755); err != nil {
		t.Fatalf("extern: smtp-sink: %v", err)
	}
	var privArgs []string
	if os.Geteuid() == 0 {
		if err := giveToNobody(dir, dump); err != nil {
			t.Fatalf("extern: smtp-sink: %v", err)
		}
		privArgs = []string{"-u", "nobody"}
	}
	host, port := "127.0.0.1", 0
	if addr != "" {
		h, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("extern: smtp-sink address %q: %v", addr, err)
		}
		if h != "" {
			host = h
		}
		port, _ = strconv.Atoi(p)
	}
	fixedPort := port != 0
	var lastOut string
	for attempt := 0; attempt < 5; attempt++ {
		if !fixedPort {
			port = FreePort(t)
		}
		s := &SMTPSink{Addr: net.JoinHostPort(host, strconv.Itoa(port)), DumpDir: dump}
		args := append([]string{}, privArgs...)
		args = append(args, sinkArgs(opts, dump)...)
		backlog := opts.Backlog
		if backlog <= 0 {
			backlog = 64
		}
		args = append(args, s.Addr, strconv.Itoa(backlog))
		cmd := exec.Command(pf.SMTPSink(), args...)
		cmd.Env = pf.Env()
		s.proc, err = startProcess(cmd)
		if err != nil {
			t.Fatalf("extern: start %s: %v", pf.SMTPSink(), err)
		}
		if err := waitGreeting(s, 10*time.Second); err == nil {
			s.proc.cleanup(t, "smtp-sink")
			return s
		} else if !s.proc.exited() || fixedPort {
			s.proc.stop()
			t.Fatalf("extern: smtp-sink on %s: %v\n%s", s.Addr, err, s.proc.out.String())
		}
		lastOut = s.proc.out.String()
	}
	t.Fatalf("extern: smtp-sink did not start:\n%s", lastOut)
	return nil
}

func sinkArgs(opts SinkOptions, dump string) []string {
	hostname := opts.Hostname
	if hostname == "" {
		hostname = "smtp-sink.test"
	}
	// A template without strftime escapes: smtp-sink appends a random hex suffix per file.
	args := []string{"-h", hostname, "-d", filepath.Join(dump, "msg.")}
	if opts.LMTP {
		args = append(args, "-L")
	}
	if len(opts.HardReject) > 0 {
		args = append(args, "-f", strings.Join(opts.HardReject, ","))
	}
	if len(opts.SoftReject) > 0 {
		args = append(args, "-r", strings.Join(opts.SoftReject, ","))
	}
	if len(opts.Disconnect) > 0 {
		args = append(args, "-q", strings.Join(opts.Disconnect, ","))
	}
	return append(args, opts.Args...)
}

// giveToNobody lets the unprivileged smtp-sink traverse dir and write into dump.
func giveToNobody(dir, dump string) error {
	u, err := user.Lookup("nobody")
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	return os.Chown(dump, uid, gid)
}

// waitGreeting polls until the sink answers 220 or the deadline passes.
func waitGreeting(s *SMTPSink, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if s.proc.exited() {
			return fmt.Errorf("exited: %v", s.proc.err)
		}
		lastErr = greet(s.Addr)
		if lastErr == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	return fmt.Errorf("no greeting within %v: %w", timeout, lastErr)
}

func greet(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "220") {
		return fmt.Errorf("greeting %q", strings.TrimSpace(line))
	}
	_, _ = c.Write([]byte("QUIT\r\n"))
	return nil
}

// Messages reads every dumped transaction, oldest first.
func (s *SMTPSink) Messages() ([]SinkMessage, error) {
	entries, err := os.ReadDir(s.DumpDir)
	if err != nil {
		return nil, fmt.Errorf("extern: smtp-sink dump %s: %w", s.DumpDir, err)
	}
	type file struct {
		name string
		mod  time.Time
	}
	var files []file
	for _, e := range entries {
		if e.Type().IsRegular() {
			if info, err := e.Info(); err == nil {
				files = append(files, file{e.Name(), info.ModTime()})
			}
		}
	}
	sort.Slice(files, func(i, j int) bool {
		if !files[i].mod.Equal(files[j].mod) {
			return files[i].mod.Before(files[j].mod)
		}
		return files[i].name < files[j].name
	})
	msgs := make([]SinkMessage, 0, len(files))
	for _, f := range files {
		path := filepath.Join(s.DumpDir, f.name)
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("extern: smtp-sink dump %s: %w", path, err)
		}
		m := ParseSinkDump(raw)
		m.File = path
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// WaitMessages polls until at least n transactions were dumped and returns them; it fails the
// test at the deadline. smtp-sink writes a dump file in one go at the end of a transaction but
// not atomically, so the files must also look the same on two polls in a row.
func (s *SMTPSink) WaitMessages(t testing.TB, n int, timeout time.Duration) []SinkMessage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var prev []SinkMessage
	for {
		msgs, err := s.Messages()
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) >= n && sameDumps(prev, msgs) {
			return msgs
		}
		prev = msgs
		if time.Now().After(deadline) {
			t.Fatalf("extern: smtp-sink %s: %d messages after %v, want %d", s.Addr, len(msgs), timeout, n)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

func sameDumps(a, b []SinkMessage) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].File != b[i].File || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}

// ParseSinkDump splits an smtp-sink dump file into its envelope attributes and content.
func ParseSinkDump(raw []byte) SinkMessage {
	var m SinkMessage
	rest := raw
	for len(rest) > 0 {
		line, after, _ := bytes.Cut(rest, []byte("\n"))
		name, value, ok := strings.Cut(string(line), ": ")
		if !ok {
			break
		}
		switch name {
		case "X-Client-Addr":
			m.ClientAddr = value
		case "X-Client-Proto":
			m.Proto = value
		case "X-Helo-Args":
			m.Helo = value
		case "X-Mail-Args":
			m.MailArgs = value
			m.From = angleAddr(value)
		case "X-Rcpt-Args":
			m.Rcpts = append(m.Rcpts, angleAddr(value))
		default:
			m.Data = rest
			return m
		}
		rest = after
	}
	m.Data = rest
	return m
}

// angleAddr returns the address inside the leading <...> of an SMTP path argument.
func angleAddr(arg string) string {
	arg = strings.TrimSpace(arg)
	if strings.HasPrefix(arg, "<") {
		if end := strings.IndexByte(arg, '>'); end > 0 {
			return arg[1:end]
		}
	}
	addr, _, _ := strings.Cut(arg, " ")
	return addr
}

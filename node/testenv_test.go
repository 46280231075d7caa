package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/mx"
	"github.com/meshd/meshd/queue"
)

// testConfig is a valid config on loopback free ports with its data in a
// temporary directory and a fast retry schedule.
func testConfig(t *testing.T) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Node.DataDir = t.TempDir()
	cfg.Listen = config.Listen{SMTP: "127.0.0.1:0", Submission: "127.0.0.1:0", Admin: "127.0.0.1:0"}
	cfg.Queue.Retry = queue.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond, Factor: 2, Jitter: 0}
	cfg.Outbound.ConnectTimeout = 2 * time.Second
	cfg.Outbound.CommandTimeout = 5 * time.Second
	cfg.Outbound.DeadTime = 0
	return cfg
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startNode builds and starts a node; it is closed when the test ends.
func startNode(t *testing.T, cfg config.Config, opts Options) *Node {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	n, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := n.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// send submits one message with net/smtp (a client we did not write) and
// returns the server's error, a *textproto.Error for SMTP replies.
func send(addr net.Addr, from string, rcpts []string, body string) error {
	c, err := smtp.Dial(addr.String())
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, body); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func mustSend(t *testing.T, addr net.Addr, from string, rcpts []string, body string) {
	t.Helper()
	if err := send(addr, from, rcpts, body); err != nil {
		t.Fatalf("send to %v: %v", rcpts, err)
	}
}

// replyCode returns the SMTP code of err ("" when err is not a reply).
func replyCode(err error) string {
	var te *textproto.Error
	if errors.As(err, &te) {
		return fmt.Sprintf("%d %s", te.Code, strings.SplitN(te.Msg, " ", 2)[0])
	}
	return ""
}

func message(subject string) string {
	return "From: <alice@example.test>\r\nTo: <bob@example.test>\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + subject + "@client.test>\r\n\r\nbody of " + subject + "\r\n"
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testkit.Until(t, d, what, cond)
}

// mailbox returns the contents of the messages in a Maildir's new/.
func mailbox(t *testing.T, cfg config.Config, addr string) []string {
	t.Helper()
	local, domain, _ := strings.Cut(addr, "@")
	dir := filepath.Join(cfg.Delivery.Maildir, domain, local, "new")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// remoteMTA is an in-process go-smtp server standing in for a smarthost or
// an MX. rcptReply decides each RCPT: nil accepts.
type remoteMTA struct {
	addr      net.Addr
	mu        sync.Mutex
	msgs      []remoteMsg
	rcptCalls map[string]int
	rcptReply func(rcpt string, call int) error
}

type remoteMsg struct {
	From  string
	Rcpts []string
	Body  string
}

func startRemote(t *testing.T, rcptReply func(rcpt string, call int) error) *remoteMTA {
	t.Helper()
	return startRemoteWith(t, rcptReply, nil)
}

// startRemoteWith is startRemote with mod applied to the go-smtp server
// before it starts (mod may be nil).
func startRemoteWith(t *testing.T, rcptReply func(rcpt string, call int) error, mod func(*gosmtp.Server)) *remoteMTA {
	t.Helper()
	r := &remoteMTA{rcptCalls: map[string]int{}, rcptReply: rcptReply}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return &remoteSession{r: r}, nil
	}))
	srv.Domain = "remote.test"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	if mod != nil {
		mod(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr()
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return r
}

func (r *remoteMTA) received() []remoteMsg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]remoteMsg(nil), r.msgs...)
}

type remoteSession struct {
	r    *remoteMTA
	from string
	to   []string
}

func (s *remoteSession) Reset()        { s.from, s.to = "", nil }
func (s *remoteSession) Logout() error { return nil }
func (s *remoteSession) Mail(from string, _ *gosmtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *remoteSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.r.mu.Lock()
	s.r.rcptCalls[to]++
	call := s.r.rcptCalls[to]
	s.r.mu.Unlock()
	if s.r.rcptReply != nil {
		if err := s.r.rcptReply(to, call); err != nil {
			return err
		}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *remoteSession) Data(r io.Reader) error {
	var b bytes.Buffer
	if _, err := io.Copy(&b, r); err != nil {
		return err
	}
	s.r.mu.Lock()
	s.r.msgs = append(s.r.msgs, remoteMsg{From: s.from, Rcpts: s.to, Body: b.String()})
	s.r.mu.Unlock()
	return nil
}

// fakeResolver answers MX lookups from a table.
type fakeResolver map[string]struct {
	hosts []mx.Host
	err   error
}

func (f fakeResolver) Lookup(_ context.Context, domain string) ([]mx.Host, error) {
	e, ok := f[domain]
	if !ok {
		return nil, fmt.Errorf("lookup %s: %w", domain, mx.ErrNoHost)
	}
	return e.hosts, e.err
}

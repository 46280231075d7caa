package node

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/mx"
	"github.com/meshd/meshd/queue"
)

func TestLMTPDelivery(t *testing.T) {
	remote := &remoteMTA{rcptCalls: map[string]int{}, rcptReply: func(rcpt string, _ int) error {
		if strings.HasPrefix(rcpt, "nouser@") {
			return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
		}
		return nil
	}}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) { return &remoteSession{r: remote}, nil }))
	srv.LMTP = true
	srv.Domain = "lmtp.test"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })

	cfg := testConfig(t)
	cfg.Delivery = config.Delivery{Mode: "lmtp", LMTP: ln.Addr().String()}
	n := startNode(t, cfg, Options{})
	mustSend(t, n.SMTPAddr(), "alice@example.test", []string{"bob@example.test", "nouser@example.test"}, message("lmtp"))
	// The message for bob, then the DSN for nouser to alice, both by LMTP.
	waitFor(t, 5*time.Second, "LMTP deliveries", func() bool { return len(remote.received()) == 2 })
	got := remote.received()
	if len(got[0].Rcpts) != 1 || got[0].Rcpts[0] != "bob@example.test" || !strings.Contains(got[0].Body, "Subject: lmtp") {
		t.Errorf("LMTP message: rcpts %v", got[0].Rcpts)
	}
	if got[1].From != "" || got[1].Rcpts[0] != "alice@example.test" || !strings.Contains(got[1].Body, "nouser@example.test") {
		t.Errorf("DSN by LMTP: from %q rcpts %v", got[1].From, got[1].Rcpts)
	}
	waitFor(t, 5*time.Second, "queue empty", func() bool { return n.Queue().Stats().Messages == 0 })
}

// countingDialer counts outbound dials and refuses every one.
type countingDialer struct{ n atomic.Int32 }

func (d *countingDialer) Dial(context.Context, string, string) (net.Conn, error) {
	d.n.Add(1)
	return nil, errors.New("connection refused (test)")
}

func TestDeadDestinationNotRedialled(t *testing.T) {
	cfg := testConfig(t)
	cfg.Outbound.Smarthost = "127.0.0.1:1"
	cfg.Outbound.DeadTime = time.Hour
	cfg.Queue.Retry = queue.Backoff{Initial: time.Hour, Max: time.Hour, Factor: 1}
	cfg.Relay.AllowNetworks = []string{"127.0.0.1"}
	d := &countingDialer{}
	n := startNode(t, cfg, Options{Dial: d.Dial})
	mustSend(t, n.SMTPAddr(), "alice@example.test", []string{"x@far.test"}, message("dead-1"))
	waitFor(t, 5*time.Second, "first attempt", func() bool { return d.n.Load() >= 1 })
	mustSend(t, n.SMTPAddr(), "alice@example.test", []string{"y@far.test"}, message("dead-2"))
	waitFor(t, 5*time.Second, "second message attempted", func() bool {
		msgs, _ := n.Queue().List(queue.Filter{})
		for _, m := range msgs {
			if m.Recipients[0].Addr == "y@far.test" && m.Recipients[0].LastError != "" {
				return strings.Contains(m.Recipients[0].LastError, "unreachable recently")
			}
		}
		return false
	})
	if got := d.n.Load(); got != 1 && got != 2 { // the smtp client may dial twice (TLS fallback)
		t.Errorf("dialled %d times; the dead destination must not be dialled for the second message", got)
	}
	if counterOf(t, n, "meshd_delivery_dead_destination_skips_total") < 1 {
		t.Error("dead-destination skip not counted")
	}
}

// TestPerDestinationConcurrencyCap holds every RCPT at the smarthost and
// checks that no more than max_per_destination sessions are open to it.
func TestPerDestinationConcurrencyCap(t *testing.T) {
	var cur, peak atomic.Int32
	release := make(chan struct{})
	var once sync.Once
	remote := startRemote(t, func(string, int) error {
		c := cur.Add(1)
		for {
			p := peak.Load()
			if c <= p || peak.CompareAndSwap(p, c) {
				break
			}
		}
		<-release
		cur.Add(-1)
		return nil
	})
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	cfg := testConfig(t)
	cfg.Outbound.Smarthost = remote.addr.String()
	cfg.Outbound.MaxPerDestination = 2
	cfg.Relay.AllowNetworks = []string{"127.0.0.1"}
	n := startNode(t, cfg, Options{})
	for i := range 6 {
		mustSend(t, n.SMTPAddr(), "alice@example.test", []string{"r@far.test"}, message("cap-"+string(rune('a'+i))))
	}
	waitFor(t, 5*time.Second, "two sessions busy", func() bool { return cur.Load() == 2 })
	once.Do(func() { close(release) })
	waitFor(t, 10*time.Second, "all delivered", func() bool { return len(remote.received()) == 6 })
	if p := peak.Load(); p != 2 {
		t.Errorf("peak concurrent deliveries to the smarthost = %d, want 2", p)
	}
}

// TestSlowDestinationDoesNotBlockOthers parks many messages on a destination
// that never answers and checks that mail for another domain still flows.
func TestSlowDestinationDoesNotBlockOthers(t *testing.T) {
	release := make(chan struct{})
	slow := startRemote(t, func(string, int) error { <-release; return nil })
	t.Cleanup(func() { close(release) })
	fast := startRemote(t, nil)
	_, slowPort, _ := net.SplitHostPort(slow.addr.String())
	_, fastPort, _ := net.SplitHostPort(fast.addr.String())
	cfg := testConfig(t)
	cfg.Relay.AllowNetworks = []string{"127.0.0.1"}
	cfg.Outbound.MaxConcurrent = 2
	cfg.Outbound.MaxPerDestination = 1
	// Both remotes listen on 127.0.0.1 with different ports; the dialer maps
	// the MX host's name to its port.
	ports := map[string]string{"127.0.0.10": slowPort, "127.0.0.20": fastPort}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		var d net.Dialer
		return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", ports[host]))
	}
	res := fakeResolver{
		"slow.test": {hosts: []mx.Host{{Name: "mx.slow.test", Addrs: []string{"127.0.0.10"}}}},
		"fast.test": {hosts: []mx.Host{{Name: "mx.fast.test", Addrs: []string{"127.0.0.20"}}}},
	}
	n := startNode(t, cfg, Options{Resolver: res, Dial: dial})
	for i := range 20 {
		mustSend(t, n.SMTPAddr(), "alice@example.test", []string{"u@slow.test"}, message("slow-"+string(rune('a'+i))))
	}
	mustSend(t, n.SMTPAddr(), "alice@example.test", []string{"v@fast.test"}, message("fast"))
	waitFor(t, 5*time.Second, "fast domain delivered while the slow one hangs", func() bool { return len(fast.received()) == 1 })
	if got := len(slow.received()); got != 0 {
		t.Errorf("slow remote completed %d messages while held", got)
	}
}

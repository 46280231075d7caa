package channel

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Dialer opens a TCP connection; the harness injects one that can cut
// links.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// ClientConfig configures a member's side of the channel.
type ClientConfig struct {
	Node, RG string
	TLS      *tls.Config // when set, connections are TLS
	Dial     Dialer      // default net.Dialer

	// OnRecords receives records from the master: the whole LSDB on each
	// new connection (full), then deltas. Called from one goroutine.
	OnRecords func(full bool, recs [][]byte)
	// Observations returns every observation this member holds now; they
	// are sent in full on each new connection so a new master learns them.
	Observations func() []Observation
	// OnConnected is told the master's name whenever a session starts ("")
	// and when it ends (connected=false).
	OnConnected func(master string, connected bool)

	PingInterval time.Duration // default 10s
	Logger       *slog.Logger
}

// Client keeps one connection to the current master.
type Client struct {
	cfg ClientConfig
	log *slog.Logger

	mu     sync.Mutex
	master string             // address of the master's listener
	cancel context.CancelFunc // of the session loop for master
	done   chan struct{}
	send   chan []Observation
	hand   chan [][]byte
	admin  chan adminMsg
	up     atomic.Bool // a session with the master is established (not under mu: SetMaster waits for sessions while holding it)
	closed bool
}

// NewClient returns an idle client; SetMaster starts it.
func NewClient(cfg ClientConfig) *Client {
	if cfg.Dial == nil {
		d := &net.Dialer{Timeout: 5 * time.Second}
		cfg.Dial = d.DialContext
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = 10 * time.Second
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Client{cfg: cfg, log: logger.With("component", "ls-channel"),
		send: make(chan []Observation, 64), hand: make(chan [][]byte, 64),
		admin: make(chan adminMsg, 16)}
}

// SetMaster points the client at the master's channel address; "" stops
// it (this node is the master itself, or there is none).
func (c *Client) SetMaster(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || addr == c.master {
		return
	}
	c.stopLocked()
	c.master = addr
	if addr == "" {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.done = make(chan struct{})
	go c.run(ctx, addr, c.done)
}

// Observe sends observations to the master now if a session is up; either
// way they go again with the full set on the next session.
func (c *Client) Observe(obs ...Observation) {
	select {
	case c.send <- obs:
	default:
		// The session is behind or down: the full set on reconnect covers it.
	}
}

// Hand passes records learned elsewhere to the master, which installs
// them and pushes them to every member. Records that cannot be handed now
// are not lost for the group: the bridgehead's next sync brings them again.
func (c *Client) Hand(recs [][]byte) {
	select {
	case c.hand <- recs:
	default:
	}
}

type adminMsg struct {
	connector string
	state     AdminState
}

// ErrNoSession: there is no session with a master to send through.
var ErrNoSession = errors.New("channel: no session with the master")

// Admin sends an operator's connector override to the master.
func (c *Client) Admin(connector string, st AdminState) error {
	if !c.up.Load() {
		return ErrNoSession
	}
	select {
	case c.admin <- adminMsg{connector, st}:
		return nil
	default:
		return fmt.Errorf("channel: admin queue full")
	}
}

func (c *Client) setUp(up bool) { c.up.Store(up) }

// Close stops the client and waits for its goroutine.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.stopLocked()
	return nil
}

func (c *Client) stopLocked() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
		c.cancel, c.done = nil, nil
	}
}

func (c *Client) run(ctx context.Context, addr string, done chan struct{}) {
	defer close(done)
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := c.session(ctx, addr)
		if ctx.Err() != nil {
			return
		}
		c.log.Debug("link-state session ended", "peer", addr, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (c *Client) session(ctx context.Context, addr string) error {
	conn, welcome, err := dialHello(ctx, c.cfg.Dial, c.cfg.TLS, addr, hello{Version: Version, Role: RoleMember, Node: c.cfg.Node, RG: c.cfg.RG})
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if c.cfg.OnConnected != nil {
		c.cfg.OnConnected(welcome, true)
		defer c.cfg.OnConnected(welcome, false)
	}
	c.setUp(true)
	defer c.setUp(false)
	bw := bufio.NewWriter(conn)
	if c.cfg.Observations != nil {
		if obs := c.cfg.Observations(); len(obs) > 0 {
			if err := writeFrame(bw, fObserve, encodeObservations(obs)); err != nil {
				return err
			}
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- c.readLoop(conn) }()
	ping := time.NewTicker(c.cfg.PingInterval)
	defer ping.Stop()
	for {
		var err error
		select {
		case err = <-errc:
			return err
		case obs := <-c.send:
			err = writeFrame(bw, fObserve, encodeObservations(obs))
		case recs := <-c.hand:
			err = writeFrame(bw, fRecords, encodeRecords(false, recs))
		case a := <-c.admin:
			err = writeFrame(bw, fAdmin, encodeAdmin(a.connector, a.state))
		case <-ping.C:
			err = writeFrame(bw, fPing, nil)
		}
		if err != nil {
			conn.Close()
			<-errc
			return err
		}
	}
}

func (c *Client) readLoop(conn net.Conn) error {
	for {
		conn.SetReadDeadline(time.Now().Add(3 * c.cfg.PingInterval))
		t, p, err := readFrame(conn)
		if err != nil {
			return err
		}
		switch t {
		case fPing:
		case fRecords:
			full, recs, err := decodeRecords(p)
			if err != nil {
				return err
			}
			if c.cfg.OnRecords != nil {
				c.cfg.OnRecords(full, recs)
			}
		default:
			return fmt.Errorf("channel: unexpected frame type %d from master", t)
		}
	}
}

// dialHello connects, greets and reads the server's answer. It returns
// the connection and the server's node name.
func dialHello(ctx context.Context, dial Dialer, tc *tls.Config, addr string, h hello) (net.Conn, string, error) {
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("channel: dial %s: %w", addr, err)
	}
	if tc != nil {
		tlsConn := tls.Client(conn, tc)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, "", fmt.Errorf("channel: tls %s: %w", addr, err)
		}
		conn = tlsConn
	}
	bw := bufio.NewWriter(conn)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := writeFrame(bw, fHello, encodeHello(h)); err != nil {
		conn.Close()
		return nil, "", fmt.Errorf("channel: hello %s: %w", addr, err)
	}
	t, p, err := readFrame(conn)
	if err != nil {
		conn.Close()
		return nil, "", fmt.Errorf("channel: welcome from %s: %w", addr, err)
	}
	conn.SetDeadline(time.Time{})
	switch t {
	case fRefuse:
		conn.Close()
		return nil, "", decodeRefuse(p)
	case fWelcome:
		r := &reader{b: p}
		v, node, _ := r.u16(), r.str(), r.str()
		if err := r.end(); err != nil || v != Version {
			conn.Close()
			return nil, "", fmt.Errorf("channel: bad welcome from %s (version %d): %v", addr, v, err)
		}
		return conn, node, nil
	default:
		conn.Close()
		return nil, "", fmt.Errorf("channel: unexpected frame %d from %s", t, addr)
	}
}

// Dump reads the whole LSDB from any node's channel listener, as
// meshctl's `lsdb -from` does.
func Dump(ctx context.Context, dial Dialer, tc *tls.Config, addr string) ([][]byte, error) {
	if dial == nil {
		d := &net.Dialer{Timeout: 5 * time.Second}
		dial = d.DialContext
	}
	conn, _, err := dialHello(ctx, dial, tc, addr, hello{Version: Version, Role: RoleDump, Node: "meshctl"})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	t, p, err := readFrame(conn)
	if err != nil {
		return nil, fmt.Errorf("channel: dump %s: %w", addr, err)
	}
	if t != fRecords {
		return nil, fmt.Errorf("channel: dump %s: unexpected frame %d", addr, t)
	}
	_, recs, err := decodeRecords(p)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("channel: dump %s", addr), err)
	}
	return recs, nil
}

package proxyproto

import (
	"bufio"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Config configures a Listener.
type Config struct {
	// Allow lists the balancers: only connections from these networks may
	// (and must) begin with a PROXY header.
	Allow []netip.Prefix
	// Timeout bounds the wait for the header; default 5s.
	Timeout time.Duration
	// Refusal is written to a connection from any other source before it
	// is closed (for SMTP, a 554 reply); nil writes nothing.
	Refusal []byte
	Logger  *slog.Logger
}

// Listener returns only connections whose header has been read. Headers
// are read in a goroutine per connection, so a slow balancer connection
// never holds up the accept loop.
type Listener struct {
	inner net.Listener
	cfg   Config
	log   *slog.Logger

	ready chan net.Conn
	errc  chan error
	done  chan struct{}

	mu      sync.Mutex
	pending map[net.Conn]struct{} // header being read; closed by Close
	closed  bool
	wg      sync.WaitGroup
	once    sync.Once
}

// NewListener starts accepting on inner; Close stops it.
func NewListener(inner net.Listener, cfg Config) *Listener {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	l := &Listener{inner: inner, cfg: cfg, log: cfg.Logger, ready: make(chan net.Conn),
		errc: make(chan error, 1), done: make(chan struct{}), pending: map[net.Conn]struct{}{}}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.inner.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.errc <- err
			return
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			_ = c.Close()
			continue
		}
		l.pending[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.handshake(c)
	}
}

func (l *Listener) allowed(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, _ := netip.AddrFromSlice(ta.IP)
	ip = ip.Unmap()
	for _, p := range l.cfg.Allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (l *Listener) handshake(c net.Conn) {
	defer l.wg.Done()
	pc, err := l.readHeader(c)
	l.mu.Lock()
	delete(l.pending, c)
	l.mu.Unlock()
	if err != nil {
		_ = c.Close()
		return
	}
	select {
	case l.ready <- pc:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *Listener) readHeader(c net.Conn) (net.Conn, error) {
	peer := c.RemoteAddr()
	if !l.allowed(peer) {
		l.log.Warn("proxyproto: connection refused: source not allowed to send PROXY headers", "peer", peer.String())
		if l.cfg.Refusal != nil {
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Write(l.cfg.Refusal)
		}
		return nil, errors.New("source not allowed")
	}
	_ = c.SetReadDeadline(time.Now().Add(l.cfg.Timeout))
	br := bufio.NewReader(c)
	h, err := ReadHeader(br)
	if err != nil {
		l.log.Warn("proxyproto: connection dropped: bad PROXY header", "peer", peer.String(), "err", err)
		return nil, err
	}
	_ = c.SetReadDeadline(time.Time{})
	pc := &Conn{Conn: c, br: br, remote: peer, local: c.LocalAddr()}
	if h.Source != nil {
		pc.remote, pc.local = h.Source, h.Dest
	}
	return pc, nil
}

// Accept returns the next connection that has passed its header.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case err := <-l.errc:
		l.errc <- err // every later Accept fails the same way
		return nil, err
	}
}

// Close stops accepting, closes connections still sending their header
// and waits for the goroutines.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		l.mu.Lock()
		l.closed = true
		for c := range l.pending {
			_ = c.Close()
		}
		l.mu.Unlock()
		close(l.done)
		err = l.inner.Close()
		l.wg.Wait()
	})
	return err
}

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Conn is a connection whose PROXY header has been read: RemoteAddr and
// LocalAddr are the ones the balancer named.
type Conn struct {
	net.Conn
	br            *bufio.Reader
	remote, local net.Addr
}

func (c *Conn) Read(p []byte) (int, error) { return c.br.Read(p) }

// RemoteAddr is the client's address as the balancer gave it.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// LocalAddr is the address the client connected to, as the balancer gave it.
func (c *Conn) LocalAddr() net.Addr { return c.local }

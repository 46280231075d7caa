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
	"time"
)

// ServerDelegate is what a Server asks of its node: who the master is,
// who may connect, the records to serve, and what to do with what members
// send. The master's callbacks (Observe, HandRecords, Admin, SessionEnded)
// are called from the member's connection goroutine and must not block
// for long.
type ServerDelegate interface {
	// Master returns the current master of the routing group.
	Master() string
	// Authorize reports whether node is a live member of our routing
	// group connecting from remote.
	Authorize(node string, remote net.Addr) bool
	// Identify names the peer from its verified certificate (called only
	// when ServerConfig.Identities is set). ok false refuses the
	// connection.
	Identify(cs *tls.ConnectionState) (node, rg string, ok bool)
	// Records returns the whole LSDB, encoded, for a new member or a dump.
	Records() [][]byte
	// Observe receives a member session's observations (master only).
	Observe(s Session, obs []Observation)
	// HandRecords receives records a member learned elsewhere (over
	// X-LINK2STATE) and hands to the master (master only).
	HandRecords(s Session, recs [][]byte)
	// Admin receives an operator's connector override sent through a
	// member (master only).
	Admin(s Session, connector string, st AdminState)
	// SessionEnded is called once when a member session that was
	// welcomed ends: what it set (its observations) ends with it, or
	// after a lease (issue 18: state set by a peer ends with its session).
	SessionEnded(s Session)
	// AllowTrack decides whether a message-tracking client (role 3) at
	// remote is served: nil serves it, ErrTrackNotServed answers that
	// this listener serves no tracking, any other error refuses the peer.
	// Tracking events carry addresses and subjects of mail, so a node lets
	// only its mesh peers in.
	AllowTrack(remote net.Addr) error
	// Track answers a tracking request: every event whose message
	// matches one of keys, each one encoded by the node.
	Track(ctx context.Context, keys []string) [][]byte
}

// ErrTrackNotServed is what ServerDelegate.AllowTrack returns on a node
// that answers no tracking requests.
var ErrTrackNotServed = errors.New("channel: message tracking is not served on this listener")

// Session names one member connection to the master: the member's node
// name and a number unique on this Server.
type Session struct {
	Node string
	ID   uint64
}

// ServerConfig configures the listening side, which every node runs: the
// master serves members, any node serves dumps and tracking.
type ServerConfig struct {
	Listener net.Listener // required
	TLS      *tls.Config  // when set, every connection is TLS
	Node, RG string
	Delegate ServerDelegate // required

	// Holds answers senders resolving a hop in doubt (role 4); nil
	// refuses them. Delegate.AllowTrack and Identities guard it as they
	// guard tracking: only the mesh's own nodes may ask.
	Holds HoldsFunc
	// Identities (with TLS requiring client certificates) names every
	// peer from its verified certificate through Delegate.Identify: a
	// member's HELLO must claim exactly the node and routing group its
	// certificate names, and dumps and tracking are for the
	// organisation's nodes only. Off: peers are not identified (labs).
	Identities bool

	// IdleTimeout drops a member that sends nothing (not even PING) for
	// this long. Default 30s.
	IdleTimeout time.Duration
	Logger      *slog.Logger

	// MaxConns bounds the connections open at once on the listener;
	// default 256. MaxPendingPerIP bounds those from one address that have
	// not sent an accepted HELLO yet (their frames are also capped at
	// MaxHelloFrame); default 8. A connection over either cap is closed
	// at once.
	MaxConns, MaxPendingPerIP int
	// MaxSkew is how far ahead of Now an observation's time may lie; one
	// beyond is dropped (a year-9999 observation would otherwise win
	// every later comparison). Default 5m.
	MaxSkew time.Duration
	Now     func() time.Time // default time.Now
}

// Funcs adapts functions to a ServerDelegate; a nil field is a hook
// that accepts (Authorize, Identify) or ignores (the rest), and nil Track
// serves no tracking.
type Funcs struct {
	MasterFunc       func() string
	AuthorizeFunc    func(node string, remote net.Addr) bool
	IdentifyFunc     func(cs *tls.ConnectionState) (node, rg string, ok bool)
	RecordsFunc      func() [][]byte
	ObserveFunc      func(s Session, obs []Observation)
	HandRecordsFunc  func(s Session, recs [][]byte)
	AdminFunc        func(s Session, connector string, st AdminState)
	SessionEndedFunc func(s Session)
	AllowTrackFunc   func(remote net.Addr) error
	TrackFunc        TrackFunc
}

func (f Funcs) Master() string {
	if f.MasterFunc == nil {
		return ""
	}
	return f.MasterFunc()
}

func (f Funcs) Authorize(node string, remote net.Addr) bool {
	return f.AuthorizeFunc == nil || f.AuthorizeFunc(node, remote)
}

func (f Funcs) Identify(cs *tls.ConnectionState) (string, string, bool) {
	if f.IdentifyFunc == nil {
		return "", "", false
	}
	return f.IdentifyFunc(cs)
}

func (f Funcs) Records() [][]byte {
	if f.RecordsFunc == nil {
		return nil
	}
	return f.RecordsFunc()
}

func (f Funcs) Observe(s Session, obs []Observation) {
	if f.ObserveFunc != nil {
		f.ObserveFunc(s, obs)
	}
}

func (f Funcs) HandRecords(s Session, recs [][]byte) {
	if f.HandRecordsFunc != nil {
		f.HandRecordsFunc(s, recs)
	}
}

func (f Funcs) Admin(s Session, connector string, st AdminState) {
	if f.AdminFunc != nil {
		f.AdminFunc(s, connector, st)
	}
}

func (f Funcs) SessionEnded(s Session) {
	if f.SessionEndedFunc != nil {
		f.SessionEndedFunc(s)
	}
}

func (f Funcs) AllowTrack(remote net.Addr) error {
	switch {
	case f.TrackFunc == nil:
		return ErrTrackNotServed
	case f.AllowTrackFunc == nil:
		return nil
	}
	return f.AllowTrackFunc(remote)
}

func (f Funcs) Track(ctx context.Context, keys []string) [][]byte {
	if f.TrackFunc == nil {
		return nil
	}
	return f.TrackFunc(ctx, keys)
}

// Stats counts what the server refused, for metrics.
type Stats struct {
	ConnsAccepted    uint64 // connections served (under the caps)
	ConnsRefused     uint64 // over MaxConns or MaxPendingPerIP
	ObservationsSkew uint64 // observations dropped for their time
	SessionsReplaced uint64 // member sessions closed for a newer one of the same node
}

// Server is the port-691 listener of one node.
type Server struct {
	cfg    ServerConfig
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	members map[*memberConn]struct{}
	session uint64         // last Session.ID handed out
	conns   int            // open connections
	pending map[string]int // pre-HELLO connections per remote IP
	stats   Stats
}

// memberConn is one connected member; out is drained by its writer.
type memberConn struct {
	Session
	node   string
	conn   net.Conn
	out    chan []byte // encoded RECORDS payloads
	once   sync.Once
	closed chan struct{}
}

func (m *memberConn) close() {
	m.once.Do(func() {
		m.conn.Close()
		close(m.closed)
	})
}

const memberQueue = 256

// NewServer starts serving cfg.Listener.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Delegate == nil {
		cfg.Delegate = Funcs{}
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 256
	}
	if cfg.MaxPendingPerIP <= 0 {
		cfg.MaxPendingPerIP = 8
	}
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, log: logger.With("component", "ls-channel"),
		ctx: ctx, cancel: cancel, members: map[*memberConn]struct{}{}, pending: map[string]int{},
	}
	s.wg.Add(1)
	go s.accept()
	return s
}

// Addr is the listening address.
func (s *Server) Addr() net.Addr { return s.cfg.Listener.Addr() }

// Members returns the names of the members connected now.
func (s *Server) Members() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for m := range s.members {
		names = append(names, m.node)
	}
	return names
}

// Push sends changed records to every connected member. A member whose
// queue is full is dropped: on reconnect it gets the whole LSDB again.
func (s *Server) Push(recs [][]byte) {
	if len(recs) == 0 {
		return
	}
	payload := encodeRecords(false, recs)
	s.mu.Lock()
	defer s.mu.Unlock()
	for m := range s.members {
		select {
		case m.out <- payload:
		default:
			s.log.Warn("member too slow, dropping its connection", "peer", m.node)
			m.close()
		}
	}
}

// DropMembers closes every member connection (called when this node
// stops being master: members then find the new one).
func (s *Server) DropMembers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for m := range s.members {
		m.close()
	}
}

// Recheck checks the certificate of every member session again with
// trusted (after the node's trusted CAs changed) and closes each session
// whose certificate fails, logged with the reason; it returns the members
// whose sessions it closed. A session without TLS is not checked.
func (s *Server) Recheck(trusted func(*tls.ConnectionState) error) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var dropped []string
	for m := range s.members {
		tc, ok := m.conn.(*tls.Conn)
		if !ok {
			continue
		}
		st := tc.ConnectionState()
		if err := trusted(&st); err != nil {
			s.dropLocked(m, "member session dropped: its certificate is no longer trusted", "err", err)
			dropped = append(dropped, m.node)
		}
	}
	return dropped
}

// DropNotMembers closes the session of every member for which member
// reports false (it no longer counts in the group's gossip: it left, or
// its proof failed), logged, and returns their names. The channel checks
// membership at HELLO (Delegate.Authorize); the master calls this on every
// change of its group's view, so a node that stops counting does not keep
// feeding it observations through a session opened while it counted.
func (s *Server) DropNotMembers(member func(node string) bool) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var dropped []string
	for m := range s.members {
		if member(m.node) {
			continue
		}
		s.dropLocked(m, "member session dropped: it no longer counts as a member of the group")
		dropped = append(dropped, m.node)
	}
	return dropped
}

// dropLocked closes member session m, logged with why and attrs, and
// forgets it. Under s.mu.
func (s *Server) dropLocked(m *memberConn, why string, attrs ...any) {
	s.log.Warn(why, append([]any{"peer", m.node, "remote", m.conn.RemoteAddr().String(), "session", m.ID}, attrs...)...)
	delete(s.members, m)
	m.close()
}

// Close stops the listener and every connection and waits for them.
func (s *Server) Close() error {
	s.cancel()
	err := s.cfg.Listener.Close()
	s.DropMembers()
	s.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("channel: close: %w", err)
	}
	return nil
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.cfg.Listener.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("accept failed", "err", err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		ip := remoteIP(c.RemoteAddr())
		if !s.admit(ip) {
			c.Close()
			continue
		}
		if s.cfg.TLS != nil {
			c = tls.Server(c, s.cfg.TLS)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.leave()
			s.handle(c, ip)
		}()
	}
}

// Stats returns the refusal counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

func remoteIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// admit counts a new connection from ip as open and pending, unless a cap
// is reached.
func (s *Server) admit(ip string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns >= s.cfg.MaxConns || s.pending[ip] >= s.cfg.MaxPendingPerIP {
		s.stats.ConnsRefused++
		return false
	}
	s.conns++
	s.pending[ip]++
	s.stats.ConnsAccepted++
	return true
}

// greeted ends ip's pending count for one connection (once per connection).
func (s *Server) greeted(ip string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[ip]--; s.pending[ip] <= 0 {
		delete(s.pending, ip)
	}
}

func (s *Server) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns--
}

func (s *Server) handle(c net.Conn, ip string) {
	defer c.Close()
	pending := true
	defer func() {
		if pending {
			s.greeted(ip)
		}
	}()
	// Close on shutdown even while blocked in a read.
	stop := context.AfterFunc(s.ctx, func() { c.Close() })
	defer stop()
	bw := bufio.NewWriter(c)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	t, p, err := readFrameMax(c, MaxHelloFrame)
	if err != nil || t != fHello {
		s.refuse(bw, RefuseBadGreeting, "expected HELLO")
		return
	}
	h, err := decodeHello(p)
	if err != nil {
		s.refuse(bw, RefuseBadGreeting, err.Error())
		return
	}
	peer := c.RemoteAddr()
	certNode, certRG, authed := s.identify(c)
	d := s.cfg.Delegate
	var trackErr error
	if h.Role == RoleTrack || h.Role == RoleHolds {
		trackErr = d.AllowTrack(peer)
	}
	switch {
	case s.cfg.Identities && !authed:
		s.log.Warn("refusing peer without a node certificate of the organisation", "remote", peer.String(), "claimed", h.Node)
		s.refuse(bw, RefuseUnknownPeer, "a node certificate of this organisation is required")
		return
	case s.cfg.Identities && h.Role == RoleMember && (h.Node != certNode || h.RG != certRG):
		s.log.Warn("refusing member whose HELLO is not its certificate", "remote", peer.String(), "claimed", h.Node+"@"+h.RG, "certificate", certNode+"@"+certRG)
		s.refuse(bw, RefuseUnknownPeer, fmt.Sprintf("HELLO claims %s@%s, the certificate names %s@%s", h.Node, h.RG, certNode, certRG))
		return
	case h.Version != Version:
		s.refuse(bw, RefuseVersion, fmt.Sprintf("version %d not supported, want %d", h.Version, Version))
		return
	case h.Role == RoleDump:
		if err := writeFrame(bw, fWelcome, encodeWelcome(s.cfg.Node, s.cfg.RG)); err != nil {
			return
		}
		_ = writeFrame(bw, fRecords, encodeRecords(true, d.Records()))
		return
	case h.Role == RoleTrack && errors.Is(trackErr, ErrTrackNotServed):
		s.refuse(bw, RefuseBadGreeting, "message tracking is not served on this listener")
		return
	case h.Role == RoleTrack && trackErr != nil:
		s.log.Warn("refusing tracking request", "remote", peer.String(), "err", trackErr)
		s.refuse(bw, RefuseUnknownPeer, "message tracking is for the mesh's own nodes")
		return
	case h.Role == RoleTrack:
		s.serveTrack(c, bw)
		return
	case h.Role == RoleHolds && s.cfg.Holds == nil:
		s.refuse(bw, RefuseBadGreeting, "hops in doubt are not resolved on this listener")
		return
	case h.Role == RoleHolds && trackErr != nil && !errors.Is(trackErr, ErrTrackNotServed):
		s.log.Warn("refusing holds request", "remote", peer.String())
		s.refuse(bw, RefuseUnknownPeer, "holds requests are for the mesh's own nodes")
		return
	case h.Role == RoleHolds:
		s.serveHolds(c, bw)
		return
	case h.RG != s.cfg.RG:
		s.refuse(bw, RefuseWrongRG, fmt.Sprintf("this is routing group %q", s.cfg.RG))
		return
	case !d.Authorize(h.Node, peer):
		s.log.Warn("refusing unknown member", "peer", h.Node, "remote", peer.String())
		s.refuse(bw, RefuseUnknownPeer, fmt.Sprintf("%q is not a member of %q", h.Node, s.cfg.RG))
		return
	}
	if master := d.Master(); master != s.cfg.Node {
		s.refuse(bw, RefuseNotMaster, master)
		return
	}
	pending = false
	s.greeted(ip)
	s.serveMember(c, bw, h.Node)
}

// identify names the TLS peer through cfg.Identify (the handshake has
// already run when the HELLO frame was read).
func (s *Server) identify(c net.Conn) (node, rg string, ok bool) {
	tc, isTLS := c.(*tls.Conn)
	if !s.cfg.Identities || !isTLS {
		return "", "", false
	}
	st := tc.ConnectionState()
	return s.cfg.Delegate.Identify(&st)
}

func (s *Server) refuse(bw *bufio.Writer, code int, text string) {
	_ = writeFrame(bw, fRefuse, encodeRefuse(code, text))
}

func (s *Server) serveMember(c net.Conn, bw *bufio.Writer, node string) {
	m := &memberConn{node: node, conn: c, out: make(chan []byte, memberQueue), closed: make(chan struct{})}
	// Register before taking the snapshot so no push falls in between.
	// One session per member: the newest wins and the older is closed
	// (its observations end with it, as any ended session's). The peer
	// proved the name with its certificate, so a second session is that
	// node again, most often restarted while its old session is
	// half-open here (no FIN from a dead host: the old one would live
	// until IdleTimeout, holding the member's place and observations).
	// Refusing the newcomer would shut the real node out for that long.
	// A thief of the node's key can act as the node everywhere anyway;
	// here it shows as sessions replacing each other, logged with both
	// addresses and counted, and ends with the certificate's trust.
	s.mu.Lock()
	s.session++
	m.Session = Session{Node: node, ID: s.session}
	for old := range s.members {
		if old.node != node {
			continue
		}
		s.stats.SessionsReplaced++
		s.log.Warn("member session replaced by a newer one of the same node", "peer", node,
			"remote", c.RemoteAddr().String(), "previous", old.conn.RemoteAddr().String(), "session", old.ID)
		delete(s.members, old)
		old.close()
	}
	s.members[m] = struct{}{}
	s.mu.Unlock()
	// Asked again now that the session is registered: a member that
	// stopped counting between its HELLO and here was not among the
	// sessions DropNotMembers closed, and would otherwise stay.
	if !s.cfg.Delegate.Authorize(node, c.RemoteAddr()) {
		s.mu.Lock()
		delete(s.members, m)
		s.mu.Unlock()
		s.log.Warn("refusing unknown member", "peer", node, "remote", c.RemoteAddr().String())
		s.refuse(bw, RefuseUnknownPeer, fmt.Sprintf("%q is not a member of %q", node, s.cfg.RG))
		m.close()
		return
	}
	defer func() {
		s.mu.Lock()
		delete(s.members, m)
		s.mu.Unlock()
		m.close()
		s.cfg.Delegate.SessionEnded(m.Session)
	}()
	if err := writeFrame(bw, fWelcome, encodeWelcome(s.cfg.Node, s.cfg.RG)); err != nil {
		return
	}
	if err := writeFrame(bw, fRecords, encodeRecords(true, s.cfg.Delegate.Records())); err != nil {
		return
	}
	s.log.Info("member connected", "peer", node)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.writeLoop(m, bw)
	}()
	s.readLoop(m, c)
	m.close()
	<-done
	s.log.Info("member disconnected", "peer", node)
}

func (s *Server) writeLoop(m *memberConn, bw *bufio.Writer) {
	ping := time.NewTicker(s.cfg.IdleTimeout / 3)
	defer ping.Stop()
	for {
		var err error
		select {
		case p := <-m.out:
			m.conn.SetWriteDeadline(time.Now().Add(s.cfg.IdleTimeout))
			err = writeFrame(bw, fRecords, p)
		case <-ping.C:
			m.conn.SetWriteDeadline(time.Now().Add(s.cfg.IdleTimeout))
			err = writeFrame(bw, fPing, nil)
		case <-m.closed:
			return
		}
		if err != nil {
			m.close()
			return
		}
	}
}

func (s *Server) readLoop(m *memberConn, c net.Conn) {
	for {
		c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		t, p, err := readFrame(c)
		if err != nil {
			return
		}
		switch t {
		case fPing:
		case fObserve:
			obs, err := decodeObservations(p)
			if err != nil {
				s.log.Warn("bad observations, dropping member", "peer", m.node, "err", err)
				return
			}
			obs = s.inSkew(m.node, obs)
			if len(obs) > 0 {
				s.cfg.Delegate.Observe(m.Session, obs)
			}
		case fRecords:
			_, recs, err := decodeRecords(p)
			if err != nil {
				s.log.Warn("bad records, dropping member", "peer", m.node, "err", err)
				return
			}
			if len(recs) > 0 {
				s.cfg.Delegate.HandRecords(m.Session, recs)
			}
		case fAdmin:
			name, st, err := decodeAdmin(p)
			if err != nil {
				s.log.Warn("bad admin frame, dropping member", "peer", m.node, "err", err)
				return
			}
			s.cfg.Delegate.Admin(m.Session, name, st)
		default:
			s.log.Warn("unexpected frame from member", "peer", m.node, "type", t)
			return
		}
	}
}

// inSkew drops the observations dated more than MaxSkew ahead of now.
func (s *Server) inSkew(node string, obs []Observation) []Observation {
	now := s.cfg.Now()
	kept := obs[:0]
	for _, o := range obs {
		// Only the future is bounded: a member's held observations can be
		// old, and an old one loses every comparison anyway.
		if o.At.Sub(now) > s.cfg.MaxSkew {
			s.log.Warn("observation outside the clock skew dropped", "peer", node, "connector", o.Connector, "at", o.At)
			s.mu.Lock()
			s.stats.ObservationsSkew++
			s.mu.Unlock()
			continue
		}
		kept = append(kept, o)
	}
	return kept
}

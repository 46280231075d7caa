package smtp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/meshd/meshd/smtp/dialogue"
)

// ErrServerClosed is returned by Start and Serve after Close.
var ErrServerClosed = errors.New("smtp: server closed")

// Server is an SMTP or submission listener built on go-smtp.
type Server struct {
	cfg    ServerConfig
	limits Limits
	// live holds the limits SetLimits may change while sessions run (the
	// ones meshd checks itself: header size, Received count, data timeout).
	live atomic.Pointer[Limits]
	log  *slog.Logger
	now  func() time.Time

	gs      *gosmtp.Server
	ln      *capListener
	dialogs *dialogs // the sessions' connections, for Shutdown

	// ctx is the parent of every Sink call; cancelled by Close.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	started   bool
	closed    bool
	serveDone chan struct{}
	serveErr  error

	closeOnce sync.Once
	closeErr  error

	// RefuseNew (refuse.go): whether new sessions are refused, the
	// transactions in progress, the connections refused, and the
	// goroutines answering them.
	refusing atomic.Bool
	inTx     atomic.Int64
	refused  atomic.Uint64
	refuseWG sync.WaitGroup

	peerEpoch atomic.Uint64 // RecheckPeers calls; each session compares its own
}

// NewServer validates cfg, applies the default limits and binds the listener
// (cfg.Listener, or a new TCP listener on cfg.Addr), so Addr is valid as soon
// as it returns. Nothing is accepted before Start or Serve; Close releases
// the listener in every case.
func NewServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:    cfg,
		limits: cfg.Limits.withDefaults(),
		log:    cfg.Logger,
		now:    cfg.Now,
	}
	s.live.Store(&s.limits)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.cfg.Hostname == "" {
		s.cfg.Hostname = "localhost"
	}
	l := cfg.Listener
	if l == nil {
		var err error
		l, err = net.Listen("tcp", cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("smtp: listen %s: %w", cfg.Addr, err)
		}
	}
	s.ln = newCapListener(l, s.limits, s.log)
	s.ln.onReply = s.cfg.OnReply
	s.ln.probation = s.cfg.Mesh && s.cfg.MeshPeer != nil
	s.dialogs = newDialogs()
	s.ctx, s.cancel = context.WithCancel(context.Background())

	gs := gosmtp.NewServer(gosmtp.BackendFunc(s.newSession))
	gs.Domain = s.cfg.Hostname
	// STARTTLS is terminated by the dialogue follower (dialog.go), which presents plaintext to
	// go-smtp; go-smtp therefore never sees TLS and would refuse AUTH, so
	// the session enforces "AUTH only after TLS" itself (AuthMechanisms,
	// Auth).
	gs.TLSConfig = nil
	gs.AllowInsecureAuth = true
	gs.MaxMessageBytes = s.limits.MaxMessageBytes
	gs.MaxRecipients = s.limits.MaxRecipients
	gs.MaxLineLength = s.limits.MaxLineLength
	gs.ReadTimeout = s.limits.CommandTimeout
	gs.WriteTimeout = s.limits.CommandTimeout
	gs.EnableSMTPUTF8 = true
	gs.EnableDSN = true
	gs.ErrorLog = errorLog{s.log}
	s.gs = gs
	return s, nil
}

// SetLimits changes, for every message whose data starts from now on, the
// limits that can change while the server runs: MaxHeaderBytes,
// MaxReceived, DataTimeout, DataTotalTimeout, and the connection caps
// (MaxConnsPerIP, MaxConns, MaxConnsPerPeer, PeerAuthTimeout) for
// connections accepted from now on (zero keeps the current value). The others are go-smtp's, which
// it reads while sessions run, and are fixed at NewServer.
func (s *Server) SetLimits(l Limits) {
	cur := *s.live.Load()
	if l.MaxHeaderBytes > 0 {
		cur.MaxHeaderBytes = l.MaxHeaderBytes
	}
	if l.MaxReceived > 0 {
		cur.MaxReceived = l.MaxReceived
	}
	if l.DataTimeout > 0 {
		cur.DataTimeout = l.DataTimeout
	}
	if l.DataTotalTimeout > 0 {
		cur.DataTotalTimeout = l.DataTotalTimeout
	}
	if l.MaxConnsPerIP > 0 {
		cur.MaxConnsPerIP = l.MaxConnsPerIP
	}
	if l.MaxConns > 0 {
		cur.MaxConns = l.MaxConns
	}
	if l.MaxConnsPerPeer > 0 {
		cur.MaxConnsPerPeer = l.MaxConnsPerPeer
	}
	if l.PeerAuthTimeout > 0 {
		cur.PeerAuthTimeout = l.PeerAuthTimeout
	}
	s.ln.setLimits(cur)
	s.live.Store(&cur)
}

// ConnStats returns the listener's connection counts (caps, probation).
func (s *Server) ConnStats() ConnStats {
	st := s.ln.connStats()
	st.RefusedDraining = s.refused.Load()
	return st
}

// Limits returns the limits in force.
func (s *Server) Limits() Limits { return *s.live.Load() }

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Start begins accepting connections in the background.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrServerClosed
	}
	if s.started {
		return nil
	}
	s.started = true
	s.serveDone = make(chan struct{})
	go func() {
		defer close(s.serveDone)
		var ln net.Listener = s.ln
		starttls := s.cfg.TLS
		if s.cfg.ImplicitTLS {
			ln, starttls = implicitTLSListener{Listener: s.ln, cfg: s.cfg.TLS, timeout: s.limits.CommandTimeout}, nil
		}
		ln = refuseListener{Listener: ln, s: s}
		err := s.gs.Serve(newDialogListener(ln, dialogue.Config{
			TLS: starttls, CommandTimeout: s.limits.CommandTimeout, LineBuffer: s.limits.MaxLineLength + 2,
			Extensions: s.cfg.Extensions, OnReply: s.cfg.OnReply, Context: s.ctx, Logger: s.log,
		}, s.dialogs))
		if err != nil && !s.isClosed() {
			s.log.Error("smtp: accept loop stopped", "addr", s.Addr().String(), "err", err)
			s.serveErr = fmt.Errorf("smtp: serve %s: %w", s.Addr(), err)
		}
	}()
	s.log.Info("smtp: listening", "addr", s.Addr().String(), "submission", s.cfg.Submission, "mesh", s.cfg.Mesh)
	return nil
}

// Serve accepts connections until ctx is done (then it closes the server and
// returns nil), Close is called (nil), or the listener fails (that error).
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return s.Close()
	case <-s.serveDone:
		return s.serveErr
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops accepting, cuts open connections, cancels Sink calls in flight
// and waits for every connection goroutine to return.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return s.Shutdown(ctx)
}

// Shutdown stops accepting and lets the sessions end on their own until ctx
// is done: a client waiting between commands is told "421 4.3.2" and
// disconnected at once (RFC 5321 §3.8); one in the middle of a command
// (content arriving, or the message being queued) gets that command's reply
// first, then the 421 instead of its next command. So a message whose
// commit is under way still gets its 250 and is not sent again by its
// client. When ctx ends, whatever is still open is cut as by Close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		started := s.started
		s.mu.Unlock()

		if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.closeErr = fmt.Errorf("smtp: close listener %s: %w", s.ln.Addr(), err)
		}
		// Once go-smtp's accept loop has returned it starts no more
		// connection goroutines, so the wait below covers all of them.
		if started {
			<-s.serveDone
		}
		if ctx.Err() == nil {
			if n := s.dialogs.drain(ctx); n > 0 {
				s.log.Warn("smtp: shutdown grace over, cutting sessions", "addr", s.Addr().String(), "sessions", n)
			}
		}
		s.cancel()
		s.ln.closeAll()
		s.refuseWG.Wait()
		// Shutdown waits for go-smtp's connection goroutines; all their
		// connections are closed, so it returns once handlers unwind.
		_ = s.gs.Shutdown(context.Background())
	})
	return s.closeErr
}

// errorLog adapts go-smtp's internal error log (connection-level failures
// such as TLS handshakes or resets) to slog.
type errorLog struct{ l *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	e.l.Info("smtp: connection error", "err", fmt.Sprintf(format, v...))
}

func (e errorLog) Println(v ...any) {
	e.l.Info("smtp: connection error", "err", fmt.Sprint(v...))
}

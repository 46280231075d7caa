package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"golang.org/x/sync/errgroup"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/node/accept"
	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/delivery"
	"github.com/meshd/meshd/node/drain"
	"github.com/meshd/meshd/node/edge"
	"github.com/meshd/meshd/node/identity"
	"github.com/meshd/meshd/node/mesh"
	"github.com/meshd/meshd/node/metrics"
	"github.com/meshd/meshd/node/org"
	"github.com/meshd/meshd/node/relay"
	"github.com/meshd/meshd/node/tracking"
	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/smtp"
)

// Options are the parts of a node that tests (and embedders) inject. Every
// field is optional.
type Options struct {
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Dial opens outbound connections (MX, smarthost, LMTP); default net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Resolver looks up MX hosts; default an mx.Resolver on outbound.dns_server.
	Resolver MXResolver
	// OutboundTLS is the client TLS config for STARTTLS to other servers;
	// default verifies nothing (opportunistic TLS, RFC 7435).
	OutboundTLS *tls.Config
	// Listen opens every listener of the node; default net.Listen. The
	// harness injects one whose connections it can cut.
	Listen func(network, addr string) (net.Listener, error)
	// GossipTransport, when set, carries the routing group's gossip
	// instead of memberlist's own UDP/TCP transport on listen.gossip.
	GossipTransport func(bind string) (memberlist.NodeAwareTransport, error)
	// LogLevel, when set, is the level of Logger's handler: Reload sets it
	// from log.level. Without it a change of log.level needs a restart.
	LogLevel *slog.LevelVar
	// Reload, when set, reads the node's configuration file again and
	// applies it (usually via Node.Reload); the admin API's POST
	// /api/reload (meshctl reload) calls it.
	Reload func() (ReloadReport, error)

	// afterQueued, set by tests of this package, runs when a message is
	// committed to the queue, before the client hears the reply.
	afterQueued func(id string)
	// reverify, set by tests of this package, is how often counted gossip
	// members prove their names again (0: membership's default).
	reverify time.Duration
}

// Node is one meshd process: SMTP listeners, queue, delivery scheduler and
// admin API. Create it with New, run it with Start, stop it with Close.
type Node struct {
	cfg     config.Config
	log     *slog.Logger
	now     func() time.Time
	q       *queue.Queue
	metrics *metrics.Node
	policy  *relay.Policy
	id      *identity.Node // mesh identities
	copyKey []byte         // keys copy IDs (meshroute.go): derived from mesh.org_key

	smtpSrv *smtp.Server
	subSrv  *smtp.Server // nil when listen.submission is empty
	subsSrv *smtp.Server // implicit TLS (RFC 8314); nil when listen.submissions is empty
	adminLn net.Listener // nil when listen.admin is empty
	admin   *http.Server

	del    *delivery.Deliverer
	trk    *tracking.Log    // message-tracking log
	finder *tracking.Finder // asks the mesh for tracking events (GET /api/track)
	peers  *shadowPeers     // asks other nodes what they hold of copies (shadow.go)
	edge   *edge.Inbound    // filters.milters and authres: mail entering the organisation
	dkim   *edge.Signer     // dkim.keys: mail leaving it

	// Mesh side; nil for a standalone node.
	mesh       *mesh.Mesh
	org        *org.Docs          // the organisation document; nil when standalone
	keyring    *linkstate.Keyring // the mesh's; a new document adds groups and keys (org.go)
	meshClosed atomic.Bool
	meshSrv    *smtp.Server
	listen     func(network, addr string) (net.Listener, error)
	listenSMTP func(network, addr string) (net.Listener, error) // SMTP listeners (listenNoKeepAlive)
	sinks      *accept.Deps                                     // what every listener's sink queues through

	drain *drain.Drainer // meshctl node drain (docs/drain.md)

	mu      sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	g       *errgroup.Group

	closeOnce sync.Once
	closeErr  error

	// Reload (reload.go): the configuration in force, which starts as cfg
	// and changes in the keys a reload applies; the certificate offered by
	// every listener; the hooks of Options.
	reloadMu sync.Mutex
	live     atomic.Pointer[config.Config]
	tlsCert  atomic.Pointer[tls.Certificate]
	logLevel *slog.LevelVar
	reloadFn func() (ReloadReport, error)
}

// New opens the queue in cfg.Node.DataDir, loads or generates the TLS
// certificate and binds every listener (so the addresses are known at
// once), but accepts and delivers nothing until Start. cfg must have passed
// Validate (config.Load and config.Parse do that).
func New(cfg config.Config, opts Options) (n *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("node", cfg.Node.Name, "rg", cfg.Node.RoutingGroup)
	cfg = org.Startup(cfg, log) // the organisation document this node took
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	n = &Node{cfg: cfg, log: log, now: now, policy: relay.New(cfg), listen: opts.Listen, logLevel: opts.LogLevel, reloadFn: opts.Reload}
	n.live.Store(&cfg)
	n.listenSMTP = n.listen
	if n.listen == nil {
		n.listen, n.listenSMTP = net.Listen, listenNoKeepAlive
	}
	// Undo what was set up so far if a later step fails (the named result
	// is nil by then, so keep our own pointer).
	built := n
	defer func() {
		if err != nil {
			built.closeMesh(false)
			built.closeParts()
		}
	}()

	if err := os.MkdirAll(cfg.Node.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: create data dir: %w", err)
	}
	if n.trk, err = tracking.Open(cfg.Node.DataDir, cfg.Node.Name, cfg.Node.RoutingGroup, now, log); err != nil {
		return nil, err
	}
	n.finder = &tracking.Finder{Log: n.trk, Peers: n.trackPeers, Dial: opts.Dial}
	tlsCfg, err := identity.LoadTLS(cfg.TLS, cfg.Node.DataDir, cfg.Node.Hostname, now())
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		// Every listener asks for the certificate at each handshake, so a
		// reload can renew it for new sessions.
		n.tlsCert.Store(&tlsCfg.Certificates[0])
		tlsCfg.Certificates, tlsCfg.GetCertificate = nil, n.currentCert
	}
	n.q, err = queue.Open(queue.Options{
		Dir:         cfg.Node.DataDir + "/queue",
		MaxMessages: cfg.Queue.MaxMessages,
		MaxBytes:    cfg.Queue.MaxBytes,
		// Not unbounded when 0: the deliverer keeps no shadows then.
		MaxShadowBytes: max(cfg.Queue.MaxShadowBytes, 1),
		DedupWindow:    cfg.Queue.DedupWindow,
		Now:            now,
		Logger:         log,
		GCInterval:     cfg.Queue.GCInterval,
		// The body stored is the message as received plus the fields
		// prepended on the way (Received:, the mesh's X-Meshd-*).
		MaxBodyBytes: cfg.Limits.MaxMessageBytes + int64(cfg.Limits.MaxHeaderBytes),
	})
	if err != nil {
		return nil, fmt.Errorf("node: open queue: %w", err)
	}
	n.metrics = metrics.New(func() (int, int64) { s := n.q.Stats(); return s.Messages, s.Bytes })
	n.metrics.RegisterShadow(n.q.ShadowStats, func() int64 { return n.cfg.Queue.MaxShadowBytes })
	n.peers = newShadowPeers(n)
	n.edge = edge.NewInbound(cfg, n.trk, n.metrics.Registry(), now, log)
	if n.dkim, err = edge.NewSigner(cfg.DKIM, n.metrics.Registry()); err != nil {
		return nil, err
	}
	if n.id, err = identity.New(cfg, n.policy, n.metrics.Registry(), now, log); err != nil {
		return nil, err
	}
	n.copyKey = cfg.CopyIDKey()
	n.sinks = &accept.Deps{RG: cfg.Node.RoutingGroup, Postmaster: cfg.LocalDomains[0], Now: now, Log: log,
		Queue: n.q, Track: n.trk, Metrics: n.metrics, Edge: n.edge, AfterQueued: opts.afterQueued}

	limits := cfg.Limits.Limits
	smtpLn, err := n.listenSMTP("tcp", cfg.Listen.SMTP)
	if err != nil {
		return nil, fmt.Errorf("node: listen.smtp: %w", err)
	}
	smtpLn = edge.Proxied(cfg, "smtp", smtpLn, log)
	n.smtpSrv, err = smtp.NewServer(smtp.ServerConfig{
		Hostname:      cfg.Node.Hostname,
		Listener:      smtpLn,
		TLS:           tlsCfg,
		Mesh:          len(cfg.Relay.MeshPeers) > 0,
		MeshPeer:      func(s *smtp.Session, cs *tls.ConnectionState) bool { return n.id.Peer(s.RemoteAddr, cs) },
		Limits:        limits,
		Policy:        n.edge.Policy(n.policy),
		Sink:          accept.New(n.sinks, "smtp"),
		Logger:        log.With("listener", "smtp"),
		Now:           now,
		OnReply:       n.metrics.CountReply("smtp"),
		OnBareLineEnd: n.metrics.CountBare("smtp"),
		OnDataTooSlow: n.metrics.CountSlow("smtp"),
	})
	if err != nil {
		return nil, fmt.Errorf("node: listen.smtp: %w", err)
	}
	if n.subSrv, err = n.newSubmission(cfg.Listen.Submission, "submission", false, tlsCfg, limits); err != nil {
		return nil, err
	}
	if n.subsSrv, err = n.newSubmission(cfg.Listen.Submissions, "submissions", true, tlsCfg, limits); err != nil {
		return nil, err
	}
	n.metrics.RegisterConns(func() map[string]*smtp.Server {
		return map[string]*smtp.Server{"smtp": n.smtpSrv, "submission": n.subSrv, "submissions": n.subsSrv, "mesh": n.meshSrv}
	})
	var guard adminapi.GuardConfig
	if cfg.Listen.Admin != "" {
		n.adminLn, err = n.listen("tcp", cfg.Listen.Admin)
		if err != nil {
			return nil, fmt.Errorf("node: listen.admin: %w", err)
		}
		token, err := adminapi.LoadOrCreateToken(cfg.Admin.TokenFile)
		if err != nil {
			_ = n.adminLn.Close()
			return nil, fmt.Errorf("node: admin.token_file: %w", err)
		}
		guard = adminapi.GuardConfig{
			Token: token, TokenFile: cfg.Admin.TokenFile, Listener: n.adminLn.Addr(), Hosts: cfg.Admin.Hosts,
			ReadsNeedToken: cfg.Admin.Auth == config.AdminAuthAll,
			OnRefused:      n.metrics.AdminRefused,
		}
		n.admin = &http.Server{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	}
	if cfg.MeshEnabled() {
		if err := n.setupMesh(tlsCfg, limits, opts); err != nil {
			return nil, err
		}
	}
	if n.del, err = n.newDeliverer(opts); err != nil {
		return nil, err
	}
	n.edge.SetDSNs(n.del) // a filter's removed recipients get their DSN
	if n.drain, err = n.loadDrain(); err != nil {
		return nil, err
	}
	n.metrics.Registry().MustRegister(n.drain.Gauge())
	if n.admin != nil {
		// Last: the API serves every part built above.
		n.admin.Handler = adminapi.Guard(guard, n.adminHandler())
	}
	return n, nil
}

// Start begins accepting mail, delivering and serving the admin API. The
// goroutines it starts belong to the node and stop in Close.
func (n *Node) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("node: start: node is closed")
	}
	if n.started {
		return nil
	}
	n.started = true
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	g, ctx := errgroup.WithContext(ctx)
	n.g = g
	g.Go(func() error { return n.del.Run(ctx) })
	if err := n.smtpSrv.Start(); err != nil {
		return fmt.Errorf("node: start smtp: %w", err)
	}
	if err := n.startMesh(ctx, g); err != nil {
		return err
	}
	for name, srv := range map[string]*smtp.Server{"submission": n.subSrv, "submissions": n.subsSrv} {
		if srv != nil {
			if err := srv.Start(); err != nil {
				return fmt.Errorf("node: start %s: %w", name, err)
			}
		}
	}
	if n.admin != nil {
		g.Go(func() error {
			if err := n.admin.Serve(n.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("node: admin: %w", err)
			}
			return nil
		})
	}
	n.log.Info("node started", n.listenAttrs()...)
	return nil
}

// Run starts the node and blocks until ctx is done, then closes it.
func (n *Node) Run(ctx context.Context) error {
	if err := n.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	return n.Close()
}

// Close stops the listeners (cutting open sessions: a message whose 250 was
// not sent is not acknowledged, the client will resend), stops delivery,
// waits for every goroutine and closes the queue.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		n.mu.Unlock()
		n.closeErr = n.closeParts()
		n.log.Info("node stopped")
	})
	return n.closeErr
}

func (n *Node) closeParts() error {
	var errs []error
	n.drainSMTP()
	if n.smtpSrv != nil {
		errs = append(errs, n.smtpSrv.Close())
	}
	errs = append(errs, n.closeMesh(false))
	for _, srv := range []*smtp.Server{n.subSrv, n.subsSrv} {
		if srv != nil {
			errs = append(errs, srv.Close())
		}
	}
	if n.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := n.admin.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("node: close admin: %w", err))
		}
		cancel()
	} else if n.adminLn != nil {
		errs = append(errs, n.adminLn.Close())
	}
	if n.cancel != nil {
		n.cancel()
		errs = append(errs, n.g.Wait())
	}
	if n.del != nil {
		errs = append(errs, n.del.Close())
	}
	if n.q != nil {
		errs = append(errs, n.q.Close())
	}
	if n.trk != nil {
		errs = append(errs, n.trk.Close())
	}
	return errors.Join(errs...)
}

// config.Config returns the node's validated configuration.
func (n *Node) Config() config.Config { return n.cfg }

// Queue returns the node's queue (for the harness and tests).
func (n *Node) Queue() *queue.Queue { return n.q }

// SMTPAddr is the address of the public SMTP listener.
func (n *Node) SMTPAddr() net.Addr { return n.smtpSrv.Addr() }

// SubmissionAddr is the address of the submission listener, nil when disabled.
func (n *Node) SubmissionAddr() net.Addr {
	if n.subSrv == nil {
		return nil
	}
	return n.subSrv.Addr()
}

// AdminAddr is the address of the admin HTTP listener, nil when disabled.
func (n *Node) AdminAddr() net.Addr {
	if n.adminLn == nil {
		return nil
	}
	return n.adminLn.Addr()
}

// Listeners maps listener names (smtp, submission, admin) to addresses.
func (n *Node) Listeners() map[string]string {
	m := map[string]string{"smtp": n.SMTPAddr().String()}
	if a := n.SubmissionAddr(); a != nil {
		m["submission"] = a.String()
	}
	if n.subsSrv != nil {
		m["submissions"] = n.subsSrv.Addr().String()
	}
	if a := n.AdminAddr(); a != nil {
		m["admin"] = a.String()
	}
	return m
}

func (n *Node) listenAttrs() []any {
	var attrs []any
	for k, v := range n.Listeners() {
		attrs = append(attrs, k, v)
	}
	return attrs
}

// listenNoKeepAlive opens an SMTP listener whose connections have no TCP
// keep-alive: every SMTP session already ends on its command and data
// timeouts (RFC 5321 §4.5.3.2), and keep-alive costs four setsockopt calls
// per accepted connection, a measurable share of accepting one message
// per connection.
func listenNoKeepAlive(network, addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(context.Background(), network, addr)
}

// drainSMTP shuts the SMTP listeners (smtp, submission, mesh) down together,
// letting sessions finish the command they are in for up to
// limits.shutdown_grace (smtp.Server.Shutdown): a client whose message is
// being queued gets its 250 rather than a cut connection, after which it
// would send the message again. The Close calls that follow are no-ops for
// servers shut down here.
func (n *Node) drainSMTP() {
	ctx, cancel := context.WithTimeout(context.Background(), n.live.Load().Limits.ShutdownGrace)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range n.smtpServers() {
		wg.Go(func() { _ = s.Shutdown(ctx) })
	}
	wg.Wait()
}

// smtpServers are the node's SMTP listeners: smtp, submission, submissions
// and mesh, those configured.
func (n *Node) smtpServers() []*smtp.Server {
	var out []*smtp.Server
	for _, s := range []*smtp.Server{n.smtpSrv, n.subSrv, n.subsSrv, n.meshSrv} {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// loadDrain builds the drainer over every SMTP listener, the mesh and the
// queue, and puts a drain saved before a restart back in force.
func (n *Node) loadDrain() (*drain.Drainer, error) {
	d := drain.Deps{Node: n.cfg.Node.Name, RG: n.cfg.Node.RoutingGroup, DataDir: n.cfg.Node.DataDir,
		Shadows: n.cfg.Queue.MaxShadowBytes > 0, ShadowCheck: n.cfg.Mesh.ShadowCheck,
		Queue: n.q, Retry: n.del.RetryAll, Now: n.now, Log: n.log}
	for _, s := range n.smtpServers() {
		d.Servers = append(d.Servers, s)
	}
	if n.mesh != nil {
		d.Mesh = n.mesh
	}
	return drain.Load(d)
}

// Drainer takes the node out of service and back (meshctl node drain).
func (n *Node) Drainer() *drain.Drainer { return n.drain }

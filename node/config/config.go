package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/meshd/meshd/edge/authres"
	"github.com/meshd/meshd/edge/dkim"
	"github.com/meshd/meshd/edge/milter"
	"github.com/meshd/meshd/internal/yamlkey"
	"github.com/meshd/meshd/node/mesh"
	"github.com/meshd/meshd/node/mx"
	"github.com/meshd/meshd/node/passwd"
	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/smtp"
)

// Config is the configuration of one node, read from one YAML file. Every
// key is documented in docs/config.md; Default holds every default.
type Config struct {
	Node         Node             `yaml:"node"`
	Listen       Listen           `yaml:"listen"`
	TLS          TLS              `yaml:"tls"`
	LocalDomains []string         `yaml:"local_domains"`
	Delivery     Delivery         `yaml:"delivery"`
	Outbound     Outbound         `yaml:"outbound"`
	Limits       Limits           `yaml:"limits"`
	Queue        Queue            `yaml:"queue"`
	Relay        Relay            `yaml:"relay"`
	Auth         Auth             `yaml:"auth"`
	Admin        Admin            `yaml:"admin"`
	Log          Log              `yaml:"log"`
	Mesh         Mesh             `yaml:"mesh"`
	Connectors   []mesh.Connector `yaml:"connectors"`
	Filters      Filters          `yaml:"filters"`
	DKIM         dkim.Config      `yaml:"dkim"`
	AuthRes      authres.Config   `yaml:"authres"`
}

// Filters holds the content filters of mail entering the organisation
// (node/filter.go).
type Filters struct {
	// Milters are asked in order, after DATA and before the 250.
	Milters []milter.Config `yaml:"milters"`
}

// Node names the node and says where it keeps its state.
type Node struct {
	// Name is the node's name, unique in the mesh.
	Name string `yaml:"name"`
	// RoutingGroup is the routing group (site) the node belongs to.
	RoutingGroup string `yaml:"routing_group"`
	// DataDir holds the queue, generated TLS material and (by default) the Maildir tree.
	DataDir string `yaml:"data_dir"`
	// Hostname is used in the SMTP greeting, Received headers, HELO and DSNs.
	// Empty means <name>.<routing_group>.meshd.test.
	Hostname string `yaml:"hostname"`
}

// Listen holds listen addresses (host:port). Port 0 picks a free port;
// an empty address disables the listener (except smtp, which is required).
type Listen struct {
	SMTP       string `yaml:"smtp"`
	Submission string `yaml:"submission"`
	// Submissions is message submission with implicit TLS (RFC 8314, 465).
	Submissions string `yaml:"submissions"`
	// ProxyProtocolFrom lists the load balancers (CIDRs) whose connections
	// begin with a PROXY header on the listeners named in ProxyProtocol.
	ProxyProtocolFrom []string `yaml:"proxy_protocol_from"`
	// ProxyProtocol names those listeners (smtp, submission, submissions);
	// default [smtp] when ProxyProtocolFrom is set.
	ProxyProtocol []string `yaml:"proxy_protocol"`
	Admin         string   `yaml:"admin"`
	Linkstate     string   `yaml:"linkstate"`
	Gossip        string   `yaml:"gossip"`
	// Mesh is the mesh-facing SMTP listener: other nodes send mail and
	// X-LINK2STATE here. Empty runs a standalone node (no mesh).
	Mesh string `yaml:"mesh"`
}

// TLS configures the certificate offered with STARTTLS.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// SelfSigned generates (once, stored in data_dir) a self-signed certificate
	// when no cert_file is configured. With it off and no certificate, STARTTLS
	// is not offered.
	SelfSigned bool `yaml:"self_signed"`
}

// Delivery says how mail for local domains is delivered.
type Delivery struct {
	// Mode is "maildir" or "lmtp".
	Mode string `yaml:"mode"`
	// Maildir is the Maildir root; empty means <data_dir>/maildir.
	Maildir string `yaml:"maildir"`
	// LMTP is the host:port of the LMTP server used with mode lmtp.
	LMTP string `yaml:"lmtp"`
}

// Outbound governs delivery to other domains.
type Outbound struct {
	Smarthost         string        `yaml:"smarthost"`
	DNSServer         string        `yaml:"dns_server"`
	MXPort            int           `yaml:"mx_port"`
	HeloName          string        `yaml:"helo_name"`
	ConnectTimeout    time.Duration `yaml:"connect_timeout"`
	CommandTimeout    time.Duration `yaml:"command_timeout"`
	MaxPerDestination int           `yaml:"max_per_destination"`
	MaxMXHosts        int           `yaml:"max_mx_hosts"`
	RequireTLS        bool          `yaml:"require_tls"`
	// DeadTime is how long a destination that could not be reached is skipped
	// before it is dialled again.
	DeadTime time.Duration `yaml:"dead_time"`
	// MaxConcurrent caps all outbound deliveries of the node at once.
	MaxConcurrent int `yaml:"max_concurrent"`
}

// Limits are the SMTP server limits (smtp.Limits, whose keys sit at
// the same level) and the node's shutdown grace.
type Limits struct {
	smtp.Limits `yaml:",inline"`
	// ShutdownGrace is how long sessions in the middle of a command may
	// finish it at shutdown.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
}

// Queue bounds the queue and sets the retry schedule.
type Queue struct {
	MaxMessages  int           `yaml:"max_messages"`
	MaxBytes     int64         `yaml:"max_bytes"`
	DedupWindow  time.Duration `yaml:"dedup_window"`
	Retry        queue.Backoff `yaml:"retry"`
	DelayWarning time.Duration `yaml:"delay_warning"`
	Lifetime     time.Duration `yaml:"lifetime"`
	GCInterval   time.Duration `yaml:"gc_interval"`
	// MaxShadowBytes bounds the shadow copies of handed-on messages
	// (docs/shadow.md); 0 keeps no shadows at all.
	MaxShadowBytes int64 `yaml:"max_shadow_bytes"`
}

// Relay lists who may relay to non-local domains without AUTH.
type Relay struct {
	AllowNetworks []string `yaml:"allow_networks"`
	MeshPeers     []string `yaml:"mesh_peers"`
}

// Auth holds the submission users.
type Auth struct {
	Users []User `yaml:"users"`
}

// Admin protects the admin API (listen.admin); see adminapi.Guard.
type Admin struct {
	// Auth is "writes" (the token is required for state-changing requests;
	// reads are open to whoever reaches the listener) or "all" (every
	// request needs it). A listener on a non-loopback address needs "all".
	Auth string `yaml:"auth"`
	// TokenFile holds the token; created (0600) at first start. Empty means
	// <data_dir>/admin.token.
	TokenFile string `yaml:"token_file"`
	// Hosts are host names, besides localhost and the listener's
	// addresses, that the Host header of a request may carry.
	Hosts []string `yaml:"hosts"`
}

// Admin auth modes.
const (
	AdminAuthWrites = "writes"
	AdminAuthAll    = "all"
)

// User is one submission user with a bcrypt or argon2id password hash.
type User struct {
	Name string `yaml:"name"`
	Hash string `yaml:"hash"`
}

// Log sets the log level (debug, info, warn, error) and format (text, json).
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Default returns the embedded defaults: one node on loopback high
// ports, data in ./meshd-data, local domain example.test. It is the single
// place where defaults live; a config file overrides it key by key.
func Default() Config {
	return Config{
		Node: Node{
			Name:         "n1",
			RoutingGroup: "rg1",
			DataDir:      "./meshd-data",
		},
		Listen: Listen{
			SMTP:       "127.0.0.1:2525",
			Submission: "127.0.0.1:2587",
			Admin:      "127.0.0.1:8025",
			Linkstate:  "127.0.0.1:6910",
			Gossip:     "127.0.0.1:7946",
		},
		TLS:          TLS{SelfSigned: true},
		Admin:        Admin{Auth: AdminAuthWrites},
		LocalDomains: []string{"example.test"},
		Delivery:     Delivery{Mode: "maildir"},
		Outbound: Outbound{
			MXPort:            25,
			ConnectTimeout:    smtp.DefaultClientConfig().ConnectTimeout,
			CommandTimeout:    smtp.DefaultClientConfig().CommandTimeout,
			MaxPerDestination: 4,
			MaxMXHosts:        mx.DefaultMaxHosts,
			DeadTime:          5 * time.Minute,
			MaxConcurrent:     64,
		},
		Limits: Limits{Limits: smtp.DefaultLimits(), ShutdownGrace: 10 * time.Second},
		Queue: Queue{
			MaxMessages:  100000,
			MaxBytes:     10 << 30,
			DedupWindow:  queue.DefaultDedupWindow,
			Retry:        queue.DefaultBackoff(),
			DelayWarning: 4 * time.Hour,
			Lifetime:     48 * time.Hour,
			GCInterval:   queue.DefaultGCInterval,
			// A tenth of max_bytes: shadows hold what left for other
			// nodes until those report it gone further (docs/shadow.md).
			MaxShadowBytes: 1 << 30,
		},
		Log:  Log{Level: "info", Format: "text"},
		Mesh: defaultMeshConfig(),
	}
}

// Load reads and validates the YAML file at path over Default.
// Relative paths in it (data_dir, maildir, cert and key files) are taken
// relative to the process's working directory, as an operator expects from a
// command line.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML over Default and validates the result.
// Unknown keys, values of the wrong type and invalid values are errors that
// name the key (and the line, where the YAML has one).
func Parse(data []byte) (Config, error) {
	cfg := Default()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if len(doc.Content) > 0 {
		if _, err := yamlkey.Check(doc.Content[0], typeOfConfig); err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return Config{}, fmt.Errorf("config: %w", err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// configError names the key at fault.
func configError(key, format string, args ...any) error {
	return fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...))
}

var (
	nameRe   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	domainRe = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// Validate checks every value and returns the first error, naming its key.
// It also fills in the values derived from others (hostname, helo_name,
// maildir), so a validated Config is complete.
func (c *Config) Validate() error {
	checks := []func() error{
		c.validateNode, c.validateListen, c.validateTLS, c.validateDomains,
		c.validateDelivery, c.validateOutbound, c.validateLimits, c.validateQueue,
		c.validateRelay, c.validateAuth, c.validateAdmin, c.validateLog, c.validateMesh,
		func() error { return milter.ValidateAll("filters.milters", c.Filters.Milters) },
		func() error { return c.DKIM.Validate("dkim") },
		func() error { return c.AuthRes.Validate("authres") },
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validateNode() error {
	n := &c.Node
	if !nameRe.MatchString(n.Name) {
		return configError("node.name", "must be 1-63 lowercase letters, digits or '-', got %q", n.Name)
	}
	if !nameRe.MatchString(n.RoutingGroup) {
		return configError("node.routing_group", "must be 1-63 lowercase letters, digits or '-', got %q", n.RoutingGroup)
	}
	if strings.TrimSpace(n.DataDir) == "" {
		return configError("node.data_dir", "must not be empty")
	}
	n.DataDir = filepath.Clean(n.DataDir)
	if n.Hostname == "" {
		n.Hostname = n.Name + "." + n.RoutingGroup + ".meshd.test"
	}
	n.Hostname = strings.ToLower(strings.TrimSuffix(n.Hostname, "."))
	if len(n.Hostname) > 253 || !domainRe.MatchString(n.Hostname) {
		return configError("node.hostname", "must be a DNS host name, got %q", n.Hostname)
	}
	return nil
}

func (c *Config) validateAdmin() error {
	a := &c.Admin
	if a.Auth != AdminAuthWrites && a.Auth != AdminAuthAll {
		return configError("admin.auth", "must be writes or all, got %q", a.Auth)
	}
	if a.TokenFile == "" {
		a.TokenFile = filepath.Join(c.Node.DataDir, "admin.token")
	}
	// Absolute, so that the path a 401 answer gives meshctl works from
	// any directory.
	if abs, err := filepath.Abs(a.TokenFile); err == nil {
		a.TokenFile = abs
	}
	for i, h := range a.Hosts {
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if !domainRe.MatchString(h) {
			return configError(fmt.Sprintf("admin.hosts[%d]", i), "must be a DNS host name, got %q", a.Hosts[i])
		}
		a.Hosts[i] = h
	}
	if c.Listen.Admin != "" && !loopbackListen(c.Listen.Admin) && a.Auth != AdminAuthAll {
		return configError("listen.admin", "%s is not a loopback address: anyone who reaches it could read the queue and message tracking; set admin.auth: all (every request then needs the admin token) or listen on 127.0.0.1", c.Listen.Admin)
	}
	return nil
}

// loopbackListen: host:port listens on loopback only (a loopback address
// or localhost; an empty host or 0.0.0.0 is every interface).
func loopbackListen(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Config) validateListen() error {
	l := c.Listen
	if l.SMTP == "" {
		return configError("listen.smtp", "must not be empty")
	}
	addrs := []struct{ key, val string }{
		{"listen.smtp", l.SMTP}, {"listen.submission", l.Submission}, {"listen.submissions", l.Submissions}, {"listen.admin", l.Admin},
		{"listen.linkstate", l.Linkstate}, {"listen.gossip", l.Gossip}, {"listen.mesh", l.Mesh},
	}
	seen := map[string]string{}
	for _, a := range addrs {
		if a.val == "" {
			continue
		}
		if err := checkHostPort(a.val, true); err != nil {
			return configError(a.key, "%v", err)
		}
		if other, dup := seen[a.val]; dup && !strings.HasSuffix(a.val, ":0") {
			return configError(a.key, "address %s is already used by %s", a.val, other)
		}
		seen[a.val] = a.key
	}
	return c.validateProxyProtocol()
}

func (c *Config) validateProxyProtocol() error {
	l := &c.Listen
	for i, v := range l.ProxyProtocolFrom {
		if _, err := ParsePrefix(v); err != nil {
			return configError(fmt.Sprintf("listen.proxy_protocol_from[%d]", i), "must be an IP address or CIDR, got %q", v)
		}
	}
	if len(l.ProxyProtocolFrom) == 0 {
		if len(l.ProxyProtocol) > 0 {
			return configError("listen.proxy_protocol", "needs listen.proxy_protocol_from (the balancers' networks)")
		}
		return nil
	}
	if len(l.ProxyProtocol) == 0 {
		l.ProxyProtocol = []string{"smtp"}
	}
	for i, name := range l.ProxyProtocol {
		if name != "smtp" && name != "submission" && name != "submissions" {
			return configError(fmt.Sprintf("listen.proxy_protocol[%d]", i), "must be smtp, submission or submissions, got %q", name)
		}
	}
	return nil
}

// checkHostPort accepts host:port with a port in 0..65535 (1..65535 unless allowZero).
func checkHostPort(s string, allowZero bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("must be host:port, got %q", s)
	}
	_ = host
	p, err := strconv.Atoi(port)
	low := 1
	if allowZero {
		low = 0
	}
	if err != nil || p < low || p > 65535 {
		return fmt.Errorf("port must be %d..65535, got %q", low, port)
	}
	return nil
}

func (c *Config) validateTLS() error {
	t := c.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		if t.CertFile == "" {
			return configError("tls.cert_file", "must be set when tls.key_file is set")
		}
		return configError("tls.key_file", "must be set when tls.cert_file is set")
	}
	return nil
}

func (c *Config) validateDomains() error {
	if len(c.LocalDomains) == 0 {
		return configError("local_domains", "must list at least one domain")
	}
	seen := map[string]bool{}
	for i, d := range c.LocalDomains {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if len(d) > 253 || !domainRe.MatchString(d) {
			return configError(fmt.Sprintf("local_domains[%d]", i), "must be a domain name, got %q", c.LocalDomains[i])
		}
		if seen[d] {
			return configError(fmt.Sprintf("local_domains[%d]", i), "duplicate domain %q", d)
		}
		seen[d] = true
		c.LocalDomains[i] = d
	}
	return nil
}

func (c *Config) validateDelivery() error {
	d := &c.Delivery
	switch d.Mode {
	case "maildir":
		if d.Maildir == "" {
			d.Maildir = filepath.Join(c.Node.DataDir, "maildir")
		}
	case "lmtp":
		if d.LMTP == "" {
			return configError("delivery.lmtp", "must be set when delivery.mode is lmtp")
		}
		if err := checkHostPort(d.LMTP, false); err != nil {
			return configError("delivery.lmtp", "%v", err)
		}
	default:
		return configError("delivery.mode", "must be maildir or lmtp, got %q", d.Mode)
	}
	return nil
}

func (c *Config) validateOutbound() error {
	o := &c.Outbound
	if o.Smarthost != "" {
		if err := checkHostPort(o.Smarthost, false); err != nil {
			return configError("outbound.smarthost", "%v", err)
		}
	}
	if o.DNSServer != "" {
		if err := checkHostPort(o.DNSServer, false); err != nil {
			return configError("outbound.dns_server", "%v", err)
		}
	}
	if o.HeloName == "" {
		o.HeloName = c.Node.Hostname
	}
	if !domainRe.MatchString(o.HeloName) {
		return configError("outbound.helo_name", "must be a DNS host name, got %q", o.HeloName)
	}
	ints := []struct {
		key       string
		v, lo, hi int
	}{
		{"outbound.mx_port", o.MXPort, 1, 65535},
		{"outbound.max_per_destination", o.MaxPerDestination, 1, 1000},
		{"outbound.max_mx_hosts", o.MaxMXHosts, 1, 10},
		{"outbound.max_concurrent", o.MaxConcurrent, 1, 10000},
	}
	for _, x := range ints {
		if x.v < x.lo || x.v > x.hi {
			return configError(x.key, "must be %d..%d, got %d", x.lo, x.hi, x.v)
		}
	}
	durs := []struct {
		key       string
		v, lo, hi time.Duration
	}{
		{"outbound.connect_timeout", o.ConnectTimeout, 100 * time.Millisecond, 10 * time.Minute},
		{"outbound.command_timeout", o.CommandTimeout, 100 * time.Millisecond, time.Hour},
		{"outbound.dead_time", o.DeadTime, 0, 24 * time.Hour},
	}
	return checkDurations(durs)
}

func checkDurations(durs []struct {
	key       string
	v, lo, hi time.Duration
}) error {
	for _, x := range durs {
		if x.v < x.lo || x.v > x.hi {
			return configError(x.key, "must be %s..%s, got %s", fmtDur(x.lo), fmtDur(x.hi), fmtDur(x.v))
		}
	}
	return nil
}

// fmtDur prints durations the way they are written in the config (1h, not 1h0m0s).
func fmtDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func (c *Config) validateLimits() error {
	l := c.Limits
	if l.MaxMessageBytes < 1024 || l.MaxMessageBytes > 1<<30 {
		return configError("limits.max_message_bytes", "must be 1024..1073741824, got %d", l.MaxMessageBytes)
	}
	if l.BareLineEnds != smtp.BareNormalize && l.BareLineEnds != smtp.BareReject {
		return configError("limits.bare_line_ends", "must be normalize or reject, got %q", l.BareLineEnds)
	}
	ints := []struct {
		key       string
		v, lo, hi int
	}{
		{"limits.max_recipients", l.MaxRecipients, 1, 10000},
		{"limits.max_line_length", l.MaxLineLength, 1000, 1 << 20},
		{"limits.max_header_bytes", l.MaxHeaderBytes, 1024, 64 << 20},
		{"limits.max_received_headers", l.MaxReceived, 1, 1000},
		{"limits.max_connections_per_ip", l.MaxConnsPerIP, 1, 100000},
		{"limits.max_connections", l.MaxConns, 1, 1000000},
		{"limits.max_connections_per_peer", l.MaxConnsPerPeer, 1, 100000},
	}
	for _, x := range ints {
		if x.v < x.lo || x.v > x.hi {
			return configError(x.key, "must be %d..%d, got %d", x.lo, x.hi, x.v)
		}
	}
	return checkDurations([]struct {
		key       string
		v, lo, hi time.Duration
	}{
		{"limits.command_timeout", l.CommandTimeout, time.Second, time.Hour},
		{"limits.data_timeout", l.DataTimeout, time.Second, 2 * time.Hour},
		{"limits.data_total_timeout", l.DataTotalTimeout, time.Second, 24 * time.Hour},
		{"limits.peer_auth_timeout", l.PeerAuthTimeout, 100 * time.Millisecond, 10 * time.Minute},
		{"limits.shutdown_grace", l.ShutdownGrace, 0, 10 * time.Minute},
	})
}

func (c *Config) validateQueue() error {
	q := c.Queue
	if q.MaxMessages < 1 || q.MaxMessages > 100_000_000 {
		return configError("queue.max_messages", "must be 1..100000000, got %d", q.MaxMessages)
	}
	if q.MaxBytes < 1<<20 {
		return configError("queue.max_bytes", "must be at least 1048576, got %d", q.MaxBytes)
	}
	if q.MaxShadowBytes < 0 || (q.MaxShadowBytes > 0 && q.MaxShadowBytes < 1<<20) {
		return configError("queue.max_shadow_bytes", "must be 0 (no shadows) or at least 1048576, got %d", q.MaxShadowBytes)
	}
	if q.MaxShadowBytes > q.MaxBytes {
		return configError("queue.max_shadow_bytes", "must not exceed queue.max_bytes (%d), got %d", q.MaxBytes, q.MaxShadowBytes)
	}
	r := q.Retry
	if err := checkDurations([]struct {
		key       string
		v, lo, hi time.Duration
	}{
		{"queue.dedup_window", q.DedupWindow, time.Minute, 365 * 24 * time.Hour},
		{"queue.retry.initial", r.Initial, 10 * time.Millisecond, 24 * time.Hour},
		{"queue.retry.max", r.Max, r.Initial, 7 * 24 * time.Hour},
		{"queue.lifetime", q.Lifetime, time.Second, 30 * 24 * time.Hour},
		{"queue.delay_warning", q.DelayWarning, 0, 30 * 24 * time.Hour},
		{"queue.gc_interval", q.GCInterval, time.Second, 24 * time.Hour},
	}); err != nil {
		return err
	}
	if r.Factor < 1 || r.Factor > 10 {
		return configError("queue.retry.factor", "must be 1..10, got %g", r.Factor)
	}
	if r.Jitter < 0 || r.Jitter > 1 {
		return configError("queue.retry.jitter", "must be 0..1, got %g", r.Jitter)
	}
	return nil
}

func (c *Config) validateRelay() error {
	lists := []struct {
		key  string
		vals []string
	}{{"relay.allow_networks", c.Relay.AllowNetworks}, {"relay.mesh_peers", c.Relay.MeshPeers}}
	for _, l := range lists {
		for i, v := range l.vals {
			if _, err := ParsePrefix(v); err != nil {
				return configError(fmt.Sprintf("%s[%d]", l.key, i), "must be an IP address or CIDR, got %q", v)
			}
		}
	}
	return nil
}

// ParsePrefix accepts "10.0.0.0/8", "::1" or "127.0.0.1" (a single address).
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (c *Config) validateAuth() error {
	seen := map[string]bool{}
	for i, u := range c.Auth.Users {
		key := fmt.Sprintf("auth.users[%d]", i)
		if u.Name == "" || strings.ContainsAny(u.Name, " \t\r\n\x00") {
			return configError(key+".name", "must be a non-empty name without spaces, got %q", u.Name)
		}
		if seen[u.Name] {
			return configError(key+".name", "duplicate user %q", u.Name)
		}
		seen[u.Name] = true
		if err := passwd.Check(u.Hash); err != nil {
			return configError(key+".hash", "%v", err)
		}
	}
	return nil
}

func (c *Config) validateLog() error {
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return configError("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return configError("log.format", "must be text or json, got %q", c.Log.Format)
	}
	return nil
}

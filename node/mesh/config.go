package mesh

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/linkstate/channel"
)

// Connector is one connector of this node's routing group as configured
// (the yaml keys are those of a connectors entry of meshd's config).
type Connector struct {
	Name              string                   `yaml:"name"`
	To                string                   `yaml:"to"` // RG; "" for an external connector
	Cost              uint32                   `yaml:"cost"`
	SourceBridgeheads []string                 `yaml:"source_bridgeheads"` // node names; empty = any member
	Targets           []string                 `yaml:"targets"`            // SMTP host:port of target bridgeheads (mesh listeners)
	Smarthost         string                   `yaml:"smarthost"`          // external only; "" = DNS MX
	AddressSpaces     []linkstate.AddressSpace `yaml:"address_spaces"`     // external only
}

// ProbeConfig tunes failure detection of bridgehead pairs. A zero
// ProbeConfig means DefaultProbeConfig; in any other, zero periods and a
// zero UpAfter take their defaults, and GlitchRetries is as given (0: a
// failure marks the pair down at once).
type ProbeConfig struct {
	Interval      time.Duration `yaml:"interval"`       // between probes of a down pair
	Keepalive     time.Duration `yaml:"keepalive"`      // between probes of an up pair
	Timeout       time.Duration `yaml:"timeout"`        // one probe
	GlitchRetries int           `yaml:"glitch_retries"` // re-probes after a failure before down
	GlitchDelay   time.Duration `yaml:"glitch_delay"`   // base delay between them (jittered ×1..2)
	UpAfter       int           `yaml:"up_after"`       // consecutive successes before a down pair is up
}

// DefaultProbeConfig returns the probe settings of a node that sets none.
func DefaultProbeConfig() ProbeConfig {
	return ProbeConfig{Interval: time.Second, Keepalive: 10 * time.Second, Timeout: 2 * time.Second,
		GlitchRetries: 2, GlitchDelay: 50 * time.Millisecond, UpAfter: 2}
}

// Timers are the periods of the link-state protocol. A zero field takes
// its value from DefaultTimers.
type Timers struct {
	TTL           time.Duration `yaml:"ttl"`            // record lifetime
	Refresh       time.Duration `yaml:"refresh"`        // re-origination period
	SyncInterval  time.Duration `yaml:"sync_interval"`  // periodic X-LINK2STATE
	CollectWindow time.Duration `yaml:"collect_window"` // a new master waits this long for observations
	// ObservationLease is how long a master keeps what a member session
	// reported after the session ended (and the pair states a new master
	// carried over from the last record): the member has that long to
	// reconnect and report again (observations.go).
	ObservationLease time.Duration `yaml:"observation_lease"`
}

// DefaultTimers returns the link-state periods of a node that sets none.
func DefaultTimers() Timers {
	return Timers{TTL: time.Hour, Refresh: 30 * time.Minute, SyncInterval: 30 * time.Second, CollectWindow: 500 * time.Millisecond,
		ObservationLease: 30 * time.Second}
}

func (p ProbeConfig) withDefaults() ProbeConfig {
	d := DefaultProbeConfig()
	if p == (ProbeConfig{}) {
		return d
	}
	if p.Interval <= 0 {
		p.Interval = d.Interval
	}
	if p.Keepalive <= 0 {
		p.Keepalive = d.Keepalive
	}
	if p.Timeout <= 0 {
		p.Timeout = d.Timeout
	}
	p.GlitchRetries = max(p.GlitchRetries, 0)
	if p.GlitchDelay <= 0 {
		p.GlitchDelay = d.GlitchDelay
	}
	if p.UpAfter <= 0 {
		p.UpAfter = d.UpAfter
	}
	return p
}

func (t Timers) withDefaults() Timers {
	d := DefaultTimers()
	if t.TTL <= 0 {
		t.TTL = d.TTL
	}
	if t.Refresh <= 0 {
		t.Refresh = d.Refresh
	}
	if t.SyncInterval <= 0 {
		t.SyncInterval = d.SyncInterval
	}
	if t.CollectWindow <= 0 {
		t.CollectWindow = d.CollectWindow
	}
	if t.ObservationLease <= 0 {
		t.ObservationLease = d.ObservationLease
	}
	return t
}

// Config configures a node's mesh side.
type Config struct {
	Node     string
	RG       string
	Priority uint32

	// MeshSMTP is the advertised address of this node's mesh-facing SMTP
	// listener (where other nodes send mail and X-LINK2STATE).
	MeshSMTP string
	// LinkState is the port-691 listener; LinkStateAddr its advertised
	// address (default: the listener's).
	LinkState     net.Listener
	LinkStateAddr string

	GossipBind      string
	GossipAdvertise string
	Seeds           []string
	// GossipPeersFile keeps the members seen for the next start
	// (membership.Config.PeersFile); "" keeps nothing.
	GossipPeersFile string
	GossipKey       []byte
	FastGossip      bool
	GossipTransport memberlist.NodeAwareTransport

	Connectors  []Connector
	LocalSpaces []linkstate.AddressSpace // domains this RG delivers
	// Declared are the domains each routing group of the organisation
	// owns by configuration (this group's LocalSpaces are added): they
	// stay the organisation's while the owner's record is absent.
	Declared map[string][]string
	// OwnedFile persists the owners of organisation domains learned from
	// records ("" keeps them in memory only).
	OwnedFile string
	// ListedFile persists which nodes recent records listed (listed.go;
	// "" keeps that in memory only).
	ListedFile string
	Keyring    *linkstate.Keyring
	// Org is the organisation document this node holds and floods with
	// its records (nil: none is taken or passed on).
	Org OrgDocs

	Timers
	State linkstate.StateConfig
	Probe ProbeConfig

	// ServerTLS secures the port-691 listener and ChannelTLS this node's
	// connection to its master's (both nil: plaintext; they must agree
	// across the group). ClientTLS is for the X-LINK2STATE sessions this
	// node opens (STARTTLS).
	ServerTLS  *tls.Config
	ChannelTLS *tls.Config
	ClientTLS  *tls.Config
	Dial       func(ctx context.Context, network, addr string) (net.Conn, error)
	// Track and AllowTrack answer message-tracking requests on the
	// port-691 listener (channel.ServerConfig); nil Track refuses them.
	Track      channel.TrackFunc
	AllowTrack func(remote net.Addr) bool
	// Holds answers senders resolving a hop in doubt on the same
	// listener, guarded the same way; nil refuses them.
	Holds channel.HoldsFunc
	// Identify names a port-691 peer from its verified certificate
	// (channel.ServerConfig.Identify); nil: peers are not identified.
	Identify func(cs *tls.ConnectionState) (node, rg string, ok bool)
	// MemberTLS, when set, is the client TLS that proves a gossip member
	// is node: its handshake must fail unless the member's certificate
	// names node in this routing group. A member counts (election,
	// record, channel) only once such a handshake with its advertised
	// link-state address succeeded (membership.Config.Verify). Nil: every
	// gossip member counts (mesh.insecure_plaintext).
	MemberTLS func(node string) *tls.Config
	// OnMemberDropped, when set, is told of each counted gossip member
	// that stops counting because its certificate no longer proves its
	// name, with the reason (membership.Config.OnDropped).
	OnMemberDropped func(member, reason string)
	// OnSessionDropped, when set, is told of each member's port-691
	// session this node (as master) closed because the member stopped
	// counting in gossip, with ReasonNotMember.
	OnSessionDropped func(member, reason string)
	// Reverify is how often counted members prove their names again
	// (membership.Config.Reverify); 0 is membership's default.
	Reverify time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
	HeloName string
}

func (c *Config) setDefaults() error {
	if c.Node == "" || c.RG == "" {
		return errors.New("mesh: node name and routing group are required")
	}
	if c.Keyring == nil {
		return errors.New("mesh: a keyring is required")
	}
	if c.LinkState == nil {
		return errors.New("mesh: a link-state listener is required")
	}
	if c.LinkStateAddr == "" {
		c.LinkStateAddr = c.LinkState.Addr().String()
	}
	c.Timers = c.Timers.withDefaults()
	c.Probe = c.Probe.withDefaults()
	// Members apply glitch retries and up-hysteresis before they report,
	// so the master takes each report as it comes.
	c.State.Hysteresis = linkstate.HysteresisConfig{UpAfter: 1, DownAfter: 1}
	if c.Dial == nil {
		d := &net.Dialer{Timeout: 5 * time.Second}
		c.Dial = d.DialContext
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.HeloName == "" {
		c.HeloName = c.Node
	}
	return nil
}

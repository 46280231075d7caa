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

// Connector is one connector of this node's routing group as configured.
type Connector struct {
	Name              string
	To                string // RG; "" for an external connector
	Cost              uint32
	SourceBridgeheads []string // node names; empty = any member
	Targets           []string // SMTP host:port of target bridgeheads (mesh listeners)
	Smarthost         string   // external only; "" = DNS MX
	AddressSpaces     []linkstate.AddressSpace
}

// ProbeConfig tunes failure detection of bridgehead pairs.
type ProbeConfig struct {
	Interval      time.Duration // between probes of a down pair; default 1s
	Keepalive     time.Duration // between probes of an up pair; default 10s
	Timeout       time.Duration // one probe; default 2s
	GlitchRetries int           // re-probes after a failure before down; default 2
	GlitchDelay   time.Duration // base delay between them (jittered ×1..2); default 50ms
	UpAfter       int           // consecutive successes before a down pair is up; default 2
}

func (p ProbeConfig) withDefaults() ProbeConfig {
	if p.Interval <= 0 {
		p.Interval = time.Second
	}
	if p.Keepalive <= 0 {
		p.Keepalive = 10 * time.Second
	}
	if p.Timeout <= 0 {
		p.Timeout = 2 * time.Second
	}
	if p.GlitchRetries < 0 {
		p.GlitchRetries = 0
	} else if p.GlitchRetries == 0 {
		p.GlitchRetries = 2
	}
	if p.GlitchDelay <= 0 {
		p.GlitchDelay = 50 * time.Millisecond
	}
	if p.UpAfter <= 0 {
		p.UpAfter = 2
	}
	return p
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
	Keyring   *linkstate.Keyring

	TTL           time.Duration // record lifetime; default 1h
	Refresh       time.Duration // re-origination period; default 30m
	CollectWindow time.Duration // a new master waits this long for observations; default 500ms
	// ObservationLease is how long a master keeps what a member session
	// reported after the session ended (and the seeds it carried over
	// from the last record): the member has that long to reconnect and
	// report again. Default 30s.
	ObservationLease time.Duration
	SyncInterval     time.Duration // periodic X-LINK2STATE; default 30s
	State            linkstate.StateConfig
	Probe            ProbeConfig

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
	Now       func() time.Time
	Logger    *slog.Logger
	HeloName  string
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
	if c.TTL <= 0 {
		c.TTL = time.Hour
	}
	if c.Refresh <= 0 {
		c.Refresh = 30 * time.Minute
	}
	if c.CollectWindow <= 0 {
		c.CollectWindow = 500 * time.Millisecond
	}
	if c.ObservationLease <= 0 {
		c.ObservationLease = 30 * time.Second
	}
	if c.SyncInterval <= 0 {
		c.SyncInterval = 30 * time.Second
	}
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

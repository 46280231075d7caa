package node

import (
	"net/netip"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/mesh"
	"github.com/meshd/meshd/queue"
)

// The configuration lives in package config; these names keep the node's
// own code (and its callers) reading as before.
type (
	Config             = config.Config
	NodeConfig         = config.Node
	ListenConfig       = config.Listen
	TLSConfig          = config.TLS
	DeliveryConfig     = config.Delivery
	OutboundConfig     = config.Outbound
	LimitsConfig       = config.Limits
	QueueConfig        = config.Queue
	RetryConfig        = queue.Backoff
	RelayConfig        = config.Relay
	AuthConfig         = config.Auth
	AdminConfig        = config.Admin
	UserConfig         = config.User
	LogConfig          = config.Log
	MeshConfig         = config.Mesh
	IdentityConfig     = config.Identity
	RoutingGroupConfig = config.RoutingGroup
	ProbeConfig        = mesh.ProbeConfig
	DampingConfig      = linkstate.DampingConfig
	ConnectorConfig    = mesh.Connector
	AddressSpaceConfig = linkstate.AddressSpace
)

// Admin auth modes (config.AdminAuthWrites, config.AdminAuthAll).
const (
	AdminAuthWrites = config.AdminAuthWrites
	AdminAuthAll    = config.AdminAuthAll
)

// DefaultConfig is config.Default.
func DefaultConfig() Config { return config.Default() }

// LoadConfig is config.Load.
func LoadConfig(path string) (Config, error) { return config.Load(path) }

// ParseConfig is config.Parse.
func ParseConfig(data []byte) (Config, error) { return config.Parse(data) }

// ConfigKeys is config.Keys.
func ConfigKeys() []string { return config.Keys() }

func parsePrefix(s string) (netip.Prefix, error) { return config.ParsePrefix(s) }

package node

import (
	"net/netip"

	"github.com/meshd/meshd/node/config"
)

// The configuration lives in package config; these names keep the node's
// own code (and its callers) reading as before.
type (
	Config             = config.Config
	ListenConfig       = config.Listen
	QueueConfig        = config.Queue
	RelayConfig        = config.Relay
	UserConfig         = config.User
	IdentityConfig     = config.Identity
	RoutingGroupConfig = config.RoutingGroup
)

// AdminAuthAll is config.AdminAuthAll.
const AdminAuthAll = config.AdminAuthAll

// DefaultConfig is config.Default.
func DefaultConfig() Config { return config.Default() }

func parsePrefix(s string) (netip.Prefix, error) { return config.ParsePrefix(s) }

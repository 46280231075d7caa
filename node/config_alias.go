package node

import "github.com/meshd/meshd/node/config"

// Config is the configuration a node is built from (package config).
type Config = config.Config

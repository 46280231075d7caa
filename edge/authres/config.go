package authres

import (
	"fmt"
	"strings"
)

// Config is the authres section of a node's configuration.
type Config struct {
	// Enabled adds the field on the public listeners.
	Enabled bool `yaml:"enabled"`
	// AuthServID names the node in the field; "" is its hostname.
	AuthServID string `yaml:"authserv_id"`
}

// DefaultConfig adds nothing.
func DefaultConfig() Config { return Config{} }

// Validate checks c; key is its config key ("authres").
func (c *Config) Validate(key string) error {
	if c.AuthServID != "" && (strings.ContainsAny(c.AuthServID, " \t\r\n;()\"\\") || len(c.AuthServID) > 255) {
		return fmt.Errorf("config: %s.authserv_id: %q: a host name, without spaces, quotes, parentheses or semicolons", key, c.AuthServID)
	}
	return nil
}

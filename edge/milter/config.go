package milter

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// Failure modes: what a message gets when a milter fails (unreachable,
// timed out, protocol error).
const (
	OnFailureTempFail = "tempfail"
	OnFailureAccept   = "accept"
)

// Phases a milter may be sent beyond the transaction replayed after DATA
// (connect, HELO, MAIL, RCPT and end of message, which the protocol
// always needs).
const (
	// PhaseRcpt: the milter is also asked about each recipient at RCPT
	// time, so its refusal is the reply to that RCPT.
	PhaseRcpt   = "rcpt"
	PhaseHeader = "header"
	PhaseBody   = "body"
)

// Config is one milter of filters.milters.
type Config struct {
	// Name names the milter in logs, metrics and the tracking log;
	// empty is its address.
	Name string `yaml:"name"`
	// Address is tcp:HOST:PORT or unix:/PATH (inet:PORT@HOST, Postfix's
	// and Sendmail's spelling, is accepted too).
	Address string `yaml:"address"`
	// Timeout bounds connecting and each command's reply.
	Timeout time.Duration `yaml:"timeout"`
	// Phases lists what the milter is sent beyond the envelope replayed
	// after DATA: rcpt (asked at RCPT time too), header, body.
	Phases []string `yaml:"phases"`
	// OnFailure is tempfail or accept.
	OnFailure string `yaml:"on_failure"`
}

// DefaultConfig is a milter's defaults (Address is required).
func DefaultConfig() Config {
	return Config{Timeout: 30 * time.Second, Phases: []string{PhaseRcpt, PhaseHeader, PhaseBody}, OnFailure: OnFailureTempFail}
}

// Validate checks c and fills in the defaults of the keys left out. key is
// the config key of c (filters.milters[0]); errors name the key at fault.
func (c *Config) Validate(key string) error {
	d := DefaultConfig()
	if _, _, err := ParseAddress(c.Address); err != nil {
		return fmt.Errorf("config: %s.address: %w", key, err)
	}
	if c.Name == "" {
		c.Name = c.Address
	}
	if strings.ContainsAny(c.Name, " \t\r\n\"") {
		return fmt.Errorf("config: %s.name: %q: no spaces or quotes", key, c.Name)
	}
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	if c.Timeout < 10*time.Millisecond || c.Timeout > 10*time.Minute {
		return fmt.Errorf("config: %s.timeout: %s: want 10ms..10m", key, c.Timeout)
	}
	if c.Phases == nil {
		c.Phases = d.Phases
	}
	for i, p := range c.Phases {
		if p != PhaseRcpt && p != PhaseHeader && p != PhaseBody {
			return fmt.Errorf("config: %s.phases[%d]: %q: want rcpt, header or body", key, i, p)
		}
	}
	switch c.OnFailure {
	case "":
		c.OnFailure = d.OnFailure
	case OnFailureTempFail, OnFailureAccept:
	default:
		return fmt.Errorf("config: %s.on_failure: %q: want tempfail or accept", key, c.OnFailure)
	}
	return nil
}

// ValidateAll validates a chain's configs (key is filters.milters) and
// checks that their names are unique.
func ValidateAll(key string, cs []Config) error {
	seen := map[string]bool{}
	for i := range cs {
		k := fmt.Sprintf("%s[%d]", key, i)
		if err := cs[i].Validate(k); err != nil {
			return err
		}
		if seen[cs[i].Name] {
			return fmt.Errorf("config: %s.name: %q is used twice", k, cs[i].Name)
		}
		seen[cs[i].Name] = true
	}
	return nil
}

func (c *Config) sends(phase string) bool { return slices.Contains(c.Phases, phase) }

// ParseAddress splits a milter address into a network and an address for
// net.Dial: tcp:HOST:PORT, unix:/PATH, or inet:PORT@HOST.
func ParseAddress(s string) (network, addr string, err error) {
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok || rest == "" {
		return "", "", fmt.Errorf("%q: want tcp:HOST:PORT or unix:/PATH", s)
	}
	switch scheme {
	case "tcp":
		if _, _, err := net.SplitHostPort(rest); err != nil {
			return "", "", fmt.Errorf("%q: %w", s, err)
		}
		return "tcp", rest, nil
	case "inet":
		port, host, ok := strings.Cut(rest, "@")
		if !ok || port == "" || host == "" {
			return "", "", fmt.Errorf("%q: want inet:PORT@HOST", s)
		}
		return "tcp", net.JoinHostPort(host, port), nil
	case "unix", "local":
		if !strings.HasPrefix(rest, "/") {
			return "", "", fmt.Errorf("%q: the socket path must be absolute", s)
		}
		return "unix", rest, nil
	}
	return "", "", fmt.Errorf("%q: unknown scheme %q (tcp, unix)", s, scheme)
}

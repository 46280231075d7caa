package linkstate

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Limits of the record format (PROTOCOL.md, "Limits"). The decoder refuses
// anything beyond them before allocating for it, and the encoder refuses to
// produce what the decoder would refuse.
const (
	MaxRecordSize             = 1 << 20 // bytes of one encoded record
	MaxNameLen                = 64      // RG, node, connector and key names
	MaxAddrLen                = 255     // host:port strings
	MaxPatternLen             = 255     // address-space patterns
	MaxMembers                = 1000    // per record
	MaxConnectors             = 1000    // per record
	MaxBridgeheads            = 256     // per side of a connector
	MaxPairs                  = 1024    // observed bridgehead pairs per connector
	MaxAddressSpaces          = 10000   // per record, RG and connectors together
	MaxConnectorCost          = 100     // connector cost is 1..MaxConnectorCost
	MaxAddressSpaceCost       = 100     // address-space cost is 0..MaxAddressSpaceCost
	MaxSummaries              = 100000  // entries in one summary list
	MinTTL                    = time.Second
	MaxTTL                    = 7 * 24 * time.Hour
	maxIssuedAt         int64 = 253402300799 // 9999-12-31T23:59:59Z
)

// Errors of the codecs. Every decode or validation failure wraps one of
// them, so callers can branch with errors.Is.
var (
	// ErrMalformed: the bytes are not a well-formed encoding (bad magic,
	// truncation, trailing bytes, reserved bits set).
	ErrMalformed = errors.New("linkstate: malformed encoding")
	// ErrUnsupportedFormat: the format version byte is not one we speak.
	ErrUnsupportedFormat = errors.New("linkstate: unsupported format version")
	// ErrInvalid: well-formed but breaks a rule of the format: a limit, a
	// name, a cost, order or uniqueness of a list.
	ErrInvalid = errors.New("linkstate: invalid record")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// validName reports whether s is a valid RG, node, connector or key name:
// 1..MaxNameLen bytes of ASCII letters, digits, '.', '_' and '-', starting
// with a letter or digit.
func validName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// validAddr reports whether s is a valid host:port: at most MaxAddrLen
// bytes of printable ASCII without spaces, a non-empty host (IPv6 in
// brackets) and a decimal port 1..65535 without leading zeros.
func validAddr(s string) bool {
	if len(s) < 3 || len(s) > MaxAddrLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	colon := -1
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ':' {
			colon = i
			break
		}
	}
	if colon <= 0 {
		return false
	}
	host, port := s[:colon], s[colon+1:]
	if host[0] == '[' {
		if len(host) < 3 || host[len(host)-1] != ']' {
			return false
		}
		host = host[1 : len(host)-1]
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if c == '[' || c == ']' || c == '/' || c == '@' {
			return false
		}
		if c == ':' && s[0] != '[' {
			return false // IPv6 literals must be bracketed
		}
	}
	if len(port) == 0 || len(port) > 5 || port[0] == '0' {
		return false
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return false
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
	}
	return true
}

// validPattern reports whether s is a valid address-space pattern: "*",
// a lowercase ASCII domain name ("example.com", IDNs in A-label form) or
// "*." followed by one.
func validPattern(s string) bool {
	if s == "*" {
		return true
	}
	if len(s) > MaxPatternLen {
		return false
	}
	if len(s) > 2 && s[0] == '*' && s[1] == '.' {
		s = s[2:]
	}
	return validDomain(s)
}

func validDomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			label++
		case c == '-':
			if label == 0 || i+1 == len(s) || s[i+1] == '.' {
				return false
			}
			label++
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
		default:
			return false
		}
		if label > 63 {
			return false
		}
	}
	return label > 0
}

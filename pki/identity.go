package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Scheme is the URI scheme of a node identity SAN: meshd://RG/NODE.
const Scheme = "meshd"

// Identity is who a node certificate says its holder is.
type Identity struct {
	Node string
	RG   string
}

func (id Identity) String() string { return id.Node + "@" + id.RG }

// URI is the SAN that names id.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: Scheme, Host: id.RG, Path: "/" + id.Node}
}

// ErrNoIdentity is returned for a certificate without a meshd identity.
var ErrNoIdentity = errors.New("pki: certificate names no meshd node")

// validName reports whether s may name a node or a routing group: 1..63
// characters of [a-z0-9-], not starting or ending with '-' (a DNS label,
// so that the URI host and path need no escaping).
func validName(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// CheckName returns an error when s cannot be a node or routing group name
// in a certificate.
func CheckName(what, s string) error {
	if !validName(s) {
		return fmt.Errorf("pki: %s %q: want 1-63 characters of a-z, 0-9 and '-'", what, s)
	}
	return nil
}

// ParseIdentityURI parses meshd://RG/NODE. Anything else (other scheme,
// user info, port, query, fragment, more path segments, upper case,
// escapes) is an error: a certificate names its holder one way only.
func ParseIdentityURI(s string) (Identity, error) {
	rest, ok := strings.CutPrefix(s, Scheme+"://")
	if !ok {
		return Identity{}, fmt.Errorf("pki: identity %q: not a %s:// URI", s, Scheme)
	}
	rg, node, ok := strings.Cut(rest, "/")
	if !ok {
		return Identity{}, fmt.Errorf("pki: identity %q: no node", s)
	}
	if !validName(rg) || !validName(node) {
		return Identity{}, fmt.Errorf("pki: identity %q: bad routing group or node name", s)
	}
	return Identity{Node: node, RG: rg}, nil
}

// ParseIdentity returns the identity of a certificate: exactly one meshd
// URI SAN, well formed.
func ParseIdentity(cert *x509.Certificate) (Identity, error) {
	var found []Identity
	for _, u := range cert.URIs {
		if u.Scheme != Scheme {
			continue
		}
		id, err := ParseIdentityURI(u.String())
		if err != nil {
			return Identity{}, err
		}
		found = append(found, id)
	}
	switch len(found) {
	case 0:
		return Identity{}, ErrNoIdentity
	case 1:
		return found[0], nil
	}
	return Identity{}, errors.New("pki: certificate names more than one meshd node")
}

// PeerIdentity is the identity of the verified certificate of a TLS
// connection's peer; ok is false when the peer presented none or it was
// not verified against the organisation's CAs.
func PeerIdentity(cs *tls.ConnectionState) (Identity, bool) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Identity{}, false
	}
	id, err := ParseIdentity(cs.VerifiedChains[0][0])
	return id, err == nil
}

package relay

import (
	"net"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/meshd/meshd/header"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/smtp"
	"github.com/meshd/meshd/smtp/reply"
)

// Mesh is what the policy asks of the mesh side (node/mesh.Mesh).
type Mesh interface {
	// KnowsNodeIP reports whether ip is a mesh node's address in the LSDB.
	KnowsNodeIP(ip netip.Addr) bool
	// OwnsDomain reports whether a routing group delivers domain.
	OwnsDomain(domain string) bool
}

// Policy implements smtp.Policy (and delivery.LocalDomains).
type Policy struct {
	local   atomic.Pointer[map[string]bool] // local_domains; a new organisation document changes it
	allowed []netip.Prefix                  // relay.allow_networks
	peers   []netip.Prefix                  // relay.mesh_peers
	mesh    Mesh                            // nil for a standalone node
	// peersRelay: relay.mesh_peers addresses may relay on their own
	// (mesh.insecure_plaintext only; with identities a peer is who its
	// certificate says, and mesh_peers only narrows that).
	peersRelay bool
}

// New builds the policy of cfg (validated: bad prefixes were refused at load).
func New(cfg config.Config) *Policy {
	p := &Policy{peersRelay: !cfg.HasIdentity()}
	p.SetLocal(cfg.LocalDomains)
	for _, s := range cfg.Relay.AllowNetworks {
		if pfx, err := config.ParsePrefix(s); err == nil {
			p.allowed = append(p.allowed, pfx)
		}
	}
	for _, s := range cfg.Relay.MeshPeers {
		if pfx, err := config.ParsePrefix(s); err == nil {
			p.peers = append(p.peers, pfx)
		}
	}
	return p
}

// SetMesh gives the policy the mesh side, once it is built (before the
// listeners start).
func (p *Policy) SetMesh(m Mesh) { p.mesh = m }

var (
	errRelayDenied = reply.RelayDenied("Relaying denied")
	errBadMailbox  = reply.BadDestSyntax("Recipient address must have a domain")
)

// CheckRcpt accepts rcpt when its domain is local or the client may relay.
func (p *Policy) CheckRcpt(s *smtp.Session, rcpt string) error {
	_, domain, ok := smtp.SplitAddr(rcpt)
	if !ok {
		// RFC 5321 §4.5.1: "postmaster" without a domain must be accepted.
		if header.FoldEqual([]byte(rcpt), "postmaster") {
			return nil
		}
		return errBadMailbox
	}
	if p.IsLocal(domain) || p.isOrgDomain(domain) {
		return nil
	}
	if s.AuthUser != "" || s.MeshPeer || p.mayRelay(s.RemoteAddr) {
		return nil
	}
	return errRelayDenied
}

// IsLocal reports whether domain is one of the node's local domains.
func (p *Policy) IsLocal(domain string) bool {
	return (*p.local.Load())[strings.ToLower(strings.TrimSuffix(domain, "."))]
}

// SetLocal replaces the local domains (sessions in progress see the new
// set from their next RCPT).
func (p *Policy) SetLocal(domains []string) {
	m := make(map[string]bool, len(domains))
	for _, d := range domains {
		m[strings.ToLower(d)] = true
	}
	p.local.Store(&m)
}

func (p *Policy) mayRelay(a net.Addr) bool {
	ip, ok := addrIP(a)
	return ok && (contains(p.allowed, ip) || (p.peersRelay && contains(p.peers, ip)))
}

// HasMeshPeers reports whether relay.mesh_peers is set.
func (p *Policy) HasMeshPeers() bool { return len(p.peers) > 0 }

// InMeshPeers reports whether the address is in relay.mesh_peers.
func (p *Policy) InMeshPeers(a net.Addr) bool {
	ip, ok := addrIP(a)
	return ok && contains(p.peers, ip)
}

// IsMeshPeer reports whether the client address is a configured mesh
// peer, or the address of a mesh node the LSDB knows.
func (p *Policy) IsMeshPeer(a net.Addr) bool {
	ip, ok := addrIP(a)
	if !ok {
		return false
	}
	if contains(p.peers, ip) {
		return true
	}
	return p.mesh != nil && p.mesh.KnowsNodeIP(ip)
}

// isOrgDomain reports whether a routing group of the mesh delivers domain:
// mail for it is the organisation's own, accepted from anyone.
func (p *Policy) isOrgDomain(domain string) bool {
	return p.mesh != nil && p.mesh.OwnsDomain(strings.ToLower(strings.TrimSuffix(domain, ".")))
}

func contains(list []netip.Prefix, ip netip.Addr) bool {
	for _, p := range list {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// addrIP is the IP address of a (TCP) connection's address.
func addrIP(a net.Addr) (netip.Addr, bool) {
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		return ip.Unmap(), ok
	case nil:
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

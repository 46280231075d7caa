package node

import (
	"net"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/meshd/meshd/header"
	"github.com/meshd/meshd/node/mesh"
	"github.com/meshd/meshd/smtp"
	"github.com/meshd/meshd/smtp/reply"
)

// relayPolicy implements smtp.Policy: mail for a local domain is accepted
// from anyone; mail for any other domain only from an authenticated
// submission client, a mesh peer or an allowlisted network (RFC 5321 §3.6
// leaves relaying to local policy; an open relay is never the default).
type relayPolicy struct {
	local   atomic.Pointer[map[string]bool] // local_domains; a new organisation document changes it
	allowed []netip.Prefix                  // relay.allow_networks
	peers   []netip.Prefix                  // relay.mesh_peers
	mesh    *mesh.Mesh                      // nil for a standalone node
	// peersRelay: relay.mesh_peers addresses may relay on their own
	// (mesh.insecure_plaintext only; with identities a peer is who its
	// certificate says, and mesh_peers only narrows that).
	peersRelay bool
}

func newRelayPolicy(cfg Config) *relayPolicy {
	p := &relayPolicy{peersRelay: !cfg.HasIdentity()}
	p.setLocal(cfg.LocalDomains)
	for _, s := range cfg.Relay.AllowNetworks {
		if pfx, err := parsePrefix(s); err == nil {
			p.allowed = append(p.allowed, pfx)
		}
	}
	for _, s := range cfg.Relay.MeshPeers {
		if pfx, err := parsePrefix(s); err == nil {
			p.peers = append(p.peers, pfx)
		}
	}
	return p
}

var (
	errRelayDenied = reply.RelayDenied("Relaying denied")
	errBadMailbox  = reply.BadDestSyntax("Recipient address must have a domain")
)

// CheckRcpt accepts rcpt when its domain is local or the client may relay.
func (p *relayPolicy) CheckRcpt(s *smtp.Session, rcpt string) error {
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

func (p *relayPolicy) IsLocal(domain string) bool {
	return (*p.local.Load())[strings.ToLower(strings.TrimSuffix(domain, "."))]
}

// setLocal replaces the local domains (sessions in progress see the new
// set from their next RCPT).
func (p *relayPolicy) setLocal(domains []string) {
	m := make(map[string]bool, len(domains))
	for _, d := range domains {
		m[strings.ToLower(d)] = true
	}
	p.local.Store(&m)
}

func (p *relayPolicy) mayRelay(a net.Addr) bool {
	ip, ok := addrIP(a)
	return ok && (contains(p.allowed, ip) || (p.peersRelay && contains(p.peers, ip)))
}

// inMeshPeers reports whether the address is in relay.mesh_peers.
func (p *relayPolicy) inMeshPeers(a net.Addr) bool {
	ip, ok := addrIP(a)
	return ok && contains(p.peers, ip)
}

// isMeshPeer reports whether the client address is a configured mesh
// peer, or the address of a mesh node the LSDB knows.
func (p *relayPolicy) isMeshPeer(a net.Addr) bool {
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
func (p *relayPolicy) isOrgDomain(domain string) bool {
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

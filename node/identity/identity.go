package identity

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/pki"
)

// Addresses is the relay policy's view of mesh peers by address
// (node/relay.Policy).
type Addresses interface {
	// IsMeshPeer decides by address alone (mesh.insecure_plaintext).
	IsMeshPeer(a net.Addr) bool
	// HasMeshPeers reports whether relay.mesh_peers narrows who may be a peer.
	HasMeshPeers() bool
	// InMeshPeers reports whether a is in relay.mesh_peers.
	InMeshPeers(a net.Addr) bool
}

// Mesh is what identities ask of the mesh side (node/mesh.Mesh).
type Mesh interface {
	// KnowsNode reports whether the LSDB places node in routing group rg.
	KnowsNode(rg, node string) bool
}

// Org names the nodes of the organisation (node/org.Docs: the document in force).
type Org interface {
	Names(who pki.Identity) bool
}

// Node wires package pki into the node: the node's certificate, the TLS
// configurations of its mesh channels, and the decision who is an
// authenticated peer. A nil pki means mesh.insecure_plaintext (a lab).
type Node struct {
	self  pki.Identity
	pki   *pki.Node
	log   *slog.Logger
	addrs Addresses
	mesh  Mesh // nil until SetMesh, and for a standalone node
	org   Org

	// reloaded is the trust a reload put in force (SetCAs; nil before):
	// from then on Peer verifies a session's chain again, once per chain
	// and trust (chains), since the session may have been authenticated
	// under the CAs before.
	reloaded atomic.Pointer[pki.Trust]
	cmu      sync.Mutex
	chains   map[[sha256.Size]byte]bool // chain digest -> trusted by reloaded

	refused   *prometheus.CounterVec // peers refused for their certificate, by channel
	dropped   *prometheus.CounterVec // live peers dropped on a re-check, by channel and reason
	plaintext prometheus.Gauge       // 1 when mesh.insecure_plaintext
	expiry    prometheus.GaugeFunc   // seconds until the node certificate expires
}

// New loads the node's identity of cfg (mesh.identity) and registers its
// metrics on reg. Without one it is a node of mesh.insecure_plaintext.
func New(cfg config.Config, addrs Addresses, reg prometheus.Registerer, now func() time.Time, log *slog.Logger) (*Node, error) {
	id := &Node{self: pki.Identity{Node: cfg.Node.Name, RG: cfg.Node.RoutingGroup}, log: log, addrs: addrs,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_mesh_tls_peers_refused_total",
			Help: "Mesh TLS handshakes refused because the peer's certificate did not verify or named a node the LSDB does not place there (a man in the middle, another CA, no certificate), by channel (hop, xlink, channel, track, listener, member: a gossip member whose certificate does not prove its name).",
		}, []string{"channel"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_mesh_peers_dropped_total",
			Help: "Live mesh peers dropped when they no longer proved who they are, by channel (member: a counted gossip member, channel: a member's port-691 session at the master) and reason (ca_changed: a reload changed mesh.identity.ca_files and the certificate no longer chains to them; reverify: the periodic re-check failed; expired: the certificate expired; not_member: the session's member no longer counts in gossip).",
		}, []string{"channel", "reason"}),
		plaintext: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshd_mesh_insecure_plaintext", Help: "1 when the mesh runs without identities (mesh.insecure_plaintext: peers believed by address).",
		}),
	}
	reg.MustRegister(id.refused, id.dropped, id.plaintext)
	if !cfg.HasIdentity() {
		if cfg.MeshEnabled() {
			id.plaintext.Set(1)
			log.Warn("INSECURE: mesh.insecure_plaintext is set: mesh peers are believed by their IP address, mesh TLS is not verified, anyone who can reach the mesh ports can inject link state and mail; for labs only")
		}
		return id, nil
	}
	p, err := pki.Load(cfg.Mesh.Identity.CAFiles, cfg.Mesh.Identity.CertFile, cfg.Mesh.Identity.KeyFile, id.self, now)
	if err != nil {
		return nil, fmt.Errorf("node: mesh.identity: %w", err)
	}
	id.pki = p
	id.expiry = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meshd_mesh_certificate_expiry_seconds", Help: "Seconds until this node's certificate expires (renew with meshd org issue; the file is re-read live).",
	}, func() float64 { return time.Until(p.NotAfter()).Seconds() })
	reg.MustRegister(id.expiry)
	if left := p.NotAfter().Sub(now()); left < 30*24*time.Hour {
		log.Warn("node certificate expires soon: renew it with meshd org issue", "expires", p.NotAfter().UTC().Format(time.RFC3339))
	}
	return id, nil
}

// SetMesh gives the identity the mesh side and the organisation once they
// are built (before the listeners start).
func (id *Node) SetMesh(m Mesh, org Org) { id.mesh, id.org = m, org }

// Enabled reports whether the mesh runs with mutual TLS.
func (id *Node) Enabled() bool { return id.pki != nil }

// ServerTLS is the TLS of a mesh-facing listener: a client certificate
// of the organisation is required.
func (id *Node) ServerTLS(channel string) *tls.Config {
	c := id.pki.ServerConfig()
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if _, ok := pki.PeerIdentity(&cs); !ok {
			id.refused.WithLabelValues(channel).Inc()
			return fmt.Errorf("node: peer certificate names no meshd node")
		}
		return nil
	}
	return c
}

// ClientTLS is the TLS for dialling another node on channel: the server's
// certificate must chain to our CAs and name a node the LSDB knows (in
// our own group when own is set). A refusal is counted: it is what a man
// in the middle looks like.
func (id *Node) ClientTLS(channel string, own bool) *tls.Config {
	rg := id.self.RG
	return id.verified(channel, func(p pki.Identity) error {
		if own && p.RG != rg {
			return fmt.Errorf("node: %s is not of routing group %s", p, rg)
		}
		if m := id.mesh; m != nil && !m.KnowsNode(p.RG, p.Node) {
			return fmt.Errorf("node: the LSDB has no node %s", p)
		}
		return nil
	}, "refusing mesh peer: its certificate does not prove it is a node of ours")
}

// MemberTLS is the TLS with which the mesh proves that a gossip member
// named node is that node of our routing group (mesh.Config.MemberTLS):
// its certificate must name exactly node@our RG. A holder of the gossip
// key without such a certificate is counted here.
func (id *Node) MemberTLS(node string) *tls.Config {
	want := pki.Identity{Node: node, RG: id.self.RG}
	return id.verified("member", func(p pki.Identity) error {
		if p != want {
			return fmt.Errorf("node: certificate names %s, the gossip member claims %s", p, want)
		}
		return nil
	}, "")
}

// HoldsTLS is the client TLS of a holds request to node: its certificate
// must be the organisation's and name that node, the one that took the
// copy. Unlike tracking it does not need the LSDB to list the node: a node
// that was just restarted may be missing from another group's copy of its
// group's record for a while, and it is exactly the node to ask then.
func (id *Node) HoldsTLS(node string) *tls.Config {
	return id.verified("holds", func(p pki.Identity) error {
		if p.Node != node {
			return fmt.Errorf("node: holds request for %s answered by %s", node, p)
		}
		return nil
	}, "refusing mesh peer: its certificate does not name the node asked")
}

// verified is a client TLS config whose peer must pass check; a refusal
// is counted under channel and, with a message, logged.
func (id *Node) verified(channel string, check func(pki.Identity) error, warn string) *tls.Config {
	c := id.pki.ClientConfig(check)
	verify := c.VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := verify(cs); err != nil {
			id.refused.WithLabelValues(channel).Inc()
			if warn != "" {
				id.log.Warn(warn, "channel", channel, "peer", cs.ServerName, "err", err)
			}
			return err
		}
		return nil
	}
	return c
}

// Peer reports whether a connection is from an authenticated mesh peer:
// a verified node certificate naming a node the LSDB knows (or the
// organisation's document names), and, when relay.mesh_peers is set, from
// one of those networks too. Without identities (insecure_plaintext) the
// address alone decides, as before.
func (id *Node) Peer(a net.Addr, cs *tls.ConnectionState) bool {
	if !id.Enabled() {
		return id.addrs.IsMeshPeer(a)
	}
	who, ok := pki.PeerIdentity(cs)
	if !ok || !id.stillTrusted(cs) {
		return false
	}
	if id.addrs.HasMeshPeers() && !id.addrs.InMeshPeers(a) {
		return false
	}
	return id.mesh != nil && (id.mesh.KnowsNode(who.RG, who.Node) || (id.org != nil && id.org.Names(who)))
}

// ChannelPeer names the verified peer of a port-691 connection.
func (id *Node) ChannelPeer(cs *tls.ConnectionState) (node, rg string, ok bool) {
	who, ok := pki.PeerIdentity(cs)
	if !ok || id.mesh == nil || !id.mesh.KnowsNode(who.RG, who.Node) {
		return "", "", false
	}
	return who.Node, who.RG, true
}

// CheckCAs reads the CA files of a reload (mesh.identity.ca_files) and
// checks them against this node's certificate; SetCAs puts them in force.
func (id *Node) CheckCAs(files []string) (*pki.Trust, error) { return id.pki.CheckTrust(files) }

// SetCAs puts t in force for every handshake after it and reports
// whether the trusted CAs changed: then every live peer must be checked
// again (Trusted), since its proof was made against the CAs before.
func (id *Node) SetCAs(t *pki.Trust) bool {
	if !id.pki.SetTrust(t) {
		return false
	}
	id.cmu.Lock()
	id.reloaded.Store(t)
	id.chains = map[[sha256.Size]byte]bool{}
	id.cmu.Unlock()
	return true
}

// stillTrusted reports whether the peer chain of an established session
// chains to the CAs in force. Until a reload changes them every session
// was verified against them at its handshake; after one, each chain is
// verified again once (the digest of its certificates remembered, at
// most maxChains of them).
func (id *Node) stillTrusted(cs *tls.ConnectionState) bool {
	t := id.reloaded.Load()
	if t == nil {
		return true
	}
	h := sha256.New()
	for _, c := range cs.PeerCertificates {
		h.Write(c.Raw)
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	id.cmu.Lock()
	ok, known := id.chains[key]
	id.cmu.Unlock()
	if known {
		return ok
	}
	ok = id.Trusted(cs) == nil
	id.cmu.Lock()
	defer id.cmu.Unlock()
	if id.reloaded.Load() != t {
		return ok // another reload ran meanwhile: its map starts empty
	}
	if len(id.chains) >= maxChains {
		id.chains = map[[sha256.Size]byte]bool{}
	}
	id.chains[key] = ok
	return ok
}

// maxChains bounds stillTrusted's memory: a mesh has a few certificates
// per node, and only chains that passed a handshake are remembered.
const maxChains = 4096

// Trusted checks the peer certificate of an established connection
// again, against the CAs in force now.
func (id *Node) Trusted(cs *tls.ConnectionState) error {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("node: the peer presented no certificate")
	}
	raw := make([][]byte, len(cs.PeerCertificates))
	for i, c := range cs.PeerCertificates {
		raw[i] = c.Raw
	}
	_, err := id.pki.Verify(raw)
	return err
}

// Dropped counts a live peer dropped on a re-check of its certificate
// (meshd_mesh_peers_dropped_total).
func (id *Node) Dropped(channel, reason string) { id.dropped.WithLabelValues(channel, reason).Inc() }

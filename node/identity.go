package node

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshd/meshd/pki"
)

// identity wires package pki into the node: the node's certificate, the
// TLS configurations of its mesh channels, and the decision who is an
// authenticated peer. nil pki means mesh.insecure_plaintext (a lab).
type identity struct {
	n   *Node
	pki *pki.Node

	refused   *prometheus.CounterVec // peers refused for their certificate, by channel
	plaintext prometheus.Gauge       // 1 when mesh.insecure_plaintext
	expiry    prometheus.GaugeFunc   // seconds until the node certificate expires
}

func newIdentity(n *Node) (*identity, error) {
	id := &identity{n: n,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_mesh_tls_peers_refused_total",
			Help: "Mesh TLS handshakes refused because the peer's certificate did not verify or named a node the LSDB does not place there (a man in the middle, another CA, no certificate), by channel (hop, xlink, channel, track, listener, member: a gossip member whose certificate does not prove its name).",
		}, []string{"channel"}),
		plaintext: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshd_mesh_insecure_plaintext", Help: "1 when the mesh runs without identities (mesh.insecure_plaintext: peers believed by address).",
		}),
	}
	n.metrics.reg.MustRegister(id.refused, id.plaintext)
	cfg := n.cfg
	if !cfg.HasIdentity() {
		if cfg.MeshEnabled() {
			id.plaintext.Set(1)
			n.log.Warn("INSECURE: mesh.insecure_plaintext is set: mesh peers are believed by their IP address, mesh TLS is not verified, anyone who can reach the mesh ports can inject link state and mail; for labs only")
		}
		return id, nil
	}
	p, err := pki.Load(cfg.Mesh.Identity.CAFiles, cfg.Mesh.Identity.CertFile, cfg.Mesh.Identity.KeyFile,
		pki.Identity{Node: cfg.Node.Name, RG: cfg.Node.RoutingGroup}, n.now)
	if err != nil {
		return nil, fmt.Errorf("node: mesh.identity: %w", err)
	}
	id.pki = p
	id.expiry = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meshd_mesh_certificate_expiry_seconds", Help: "Seconds until this node's certificate expires (renew with meshd org issue; the file is re-read live).",
	}, func() float64 { return time.Until(p.NotAfter()).Seconds() })
	n.metrics.reg.MustRegister(id.expiry)
	if left := p.NotAfter().Sub(n.now()); left < 30*24*time.Hour {
		n.log.Warn("node certificate expires soon: renew it with meshd org issue", "expires", p.NotAfter().UTC().Format(time.RFC3339))
	}
	return id, nil
}

// enabled reports whether the mesh runs with mutual TLS.
func (id *identity) enabled() bool { return id.pki != nil }

// serverTLS is the TLS of a mesh-facing listener: a client certificate
// of the organisation is required.
func (id *identity) serverTLS(channel string) *tls.Config {
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

// clientTLS is the TLS for dialling another node on channel: the server's
// certificate must chain to our CAs and name a node the LSDB knows (in
// our own group when own is set). A refusal is counted: it is what a man
// in the middle looks like.
func (id *identity) clientTLS(channel string, own bool) *tls.Config {
	rg := id.n.cfg.Node.RoutingGroup
	c := id.pki.ClientConfig(func(p pki.Identity) error {
		if own && p.RG != rg {
			return fmt.Errorf("node: %s is not of routing group %s", p, rg)
		}
		if m := id.n.mesh; m != nil && !m.KnowsNode(p.RG, p.Node) {
			return fmt.Errorf("node: the LSDB has no node %s", p)
		}
		return nil
	})
	verify := c.VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := verify(cs); err != nil {
			id.refused.WithLabelValues(channel).Inc()
			id.n.log.Warn("refusing mesh peer: its certificate does not prove it is a node of ours", "channel", channel, "peer", cs.ServerName, "err", err)
			return err
		}
		return nil
	}
	return c
}

// memberTLS is the TLS with which the mesh proves that a gossip member
// named node is that node of our routing group (mesh.Config.MemberTLS):
// its certificate must name exactly node@our RG. A holder of the gossip
// key without such a certificate is counted here.
func (id *identity) memberTLS(node string) *tls.Config {
	want := pki.Identity{Node: node, RG: id.n.cfg.Node.RoutingGroup}
	c := id.pki.ClientConfig(func(p pki.Identity) error {
		if p != want {
			return fmt.Errorf("node: certificate names %s, the gossip member claims %s", p, want)
		}
		return nil
	})
	verify := c.VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := verify(cs); err != nil {
			id.refused.WithLabelValues("member").Inc()
			return err
		}
		return nil
	}
	return c
}

// peer reports whether a connection is from an authenticated mesh peer:
// a verified node certificate naming a node the LSDB knows, and, when
// relay.mesh_peers is set, from one of those networks too. Without
// identities (insecure_plaintext) the address alone decides, as before.
func (id *identity) peer(a net.Addr, cs *tls.ConnectionState) bool {
	p := id.n.policy
	if !id.enabled() {
		return p.isMeshPeer(a)
	}
	who, ok := pki.PeerIdentity(cs)
	if !ok {
		return false
	}
	if len(p.peers) > 0 {
		ip, ok := addrIP(a)
		if !ok || !contains(p.peers, ip) {
			return false
		}
	}
	return id.n.mesh != nil && (id.n.mesh.KnowsNode(who.RG, who.Node) || id.n.orgNames(who))
}

// channelPeer names the verified peer of a port-691 connection.
func (id *identity) channelPeer(cs *tls.ConnectionState) (node, rg string, ok bool) {
	who, ok := pki.PeerIdentity(cs)
	if !ok || id.n.mesh == nil || !id.n.mesh.KnowsNode(who.RG, who.Node) {
		return "", "", false
	}
	return who.Node, who.RG, true
}

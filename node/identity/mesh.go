package identity

import (
	"crypto/tls"
	"net"
)

// MeshTLS is the TLS of each mesh channel and who may ask for tracking
// events: with identities every channel is mutual TLS between verified
// nodes; under mesh.insecure_plaintext peers keep self-signed, unverified
// TLS (encrypted, believed by address). A nil config is plaintext.
type MeshTLS struct {
	Listener      *tls.Config // the mesh-facing SMTP listener
	XLink         *tls.Config // this node's X-LINK2STATE sessions
	Channel       *tls.Config // the port-691 listener
	ChannelClient *tls.Config // this node's port-691 connections
	Track         *tls.Config // tracking requests to other nodes
	// Identify names a port-691 peer by its certificate (nil without
	// identities); AllowTrack decides who may ask for tracking events (nil:
	// any verified node).
	Identify   func(*tls.ConnectionState) (node, rg string, ok bool)
	AllowTrack func(net.Addr) bool
}

// MeshTLS chooses the mesh channels' TLS. plain is the node's own
// certificate (tls.*), nil when it has none; requireTLS is mesh.require_tls,
// which without identities decides whether port 691 uses plain too.
func (id *Node) MeshTLS(plain *tls.Config, requireTLS bool) MeshTLS {
	var t MeshTLS
	switch {
	case id.Enabled():
		t = MeshTLS{
			Listener: id.ServerTLS("listener"), XLink: id.ClientTLS("xlink", false),
			Channel: id.ServerTLS("channel"), ChannelClient: id.ClientTLS("channel", true),
			Track: id.ClientTLS("track", false), Identify: id.ChannelPeer,
		}
		if id.addrs.HasMeshPeers() {
			t.AllowTrack = id.addrs.InMeshPeers
		}
	case plain != nil:
		t.Listener = plain
		t.XLink = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // mesh.insecure_plaintext: peers believed by address
		if requireTLS {
			t.Channel, t.ChannelClient = plain, t.XLink
		}
		t.Track = t.ChannelClient
		t.AllowTrack = id.addrs.IsMeshPeer
	default:
		t.AllowTrack = id.addrs.IsMeshPeer
	}
	return t
}

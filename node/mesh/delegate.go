package mesh

import (
	"context"
	"crypto/tls"
	"errors"
	"net"

	"github.com/meshd/meshd/linkstate/channel"
)

// channelDelegate is what the port-691 server asks of the mesh
// (channel.ServerDelegate).
type channelDelegate struct{ m *Mesh }

func (d channelDelegate) Master() string { return d.m.View().Master }

func (d channelDelegate) Authorize(node string, remote net.Addr) bool {
	return d.m.authorizeMember(node, remote)
}

func (d channelDelegate) Identify(cs *tls.ConnectionState) (string, string, bool) {
	if d.m.cfg.Identify == nil {
		return "", "", false
	}
	return d.m.cfg.Identify(cs)
}

func (d channelDelegate) Records() [][]byte { return d.m.encodedAll() }

func (d channelDelegate) Observe(s channel.Session, obs []channel.Observation) {
	d.m.onMemberObservations(s, obs)
}

func (d channelDelegate) HandRecords(_ channel.Session, recs [][]byte) {
	d.m.installEncoded(recs, false)
}

func (d channelDelegate) Admin(_ channel.Session, connector string, st channel.AdminState) {
	d.m.setAdmin(connector, st)
}

func (d channelDelegate) SessionEnded(s channel.Session) { d.m.memberSessionEnded(s) }

var errNotMeshPeer = errors.New("mesh: message tracking is for the mesh's own nodes")

func (d channelDelegate) AllowTrack(remote net.Addr) error {
	switch {
	case d.m.cfg.Track == nil:
		return channel.ErrTrackNotServed
	case d.m.cfg.AllowTrack != nil && !d.m.cfg.AllowTrack(remote):
		return errNotMeshPeer
	}
	return nil
}

func (d channelDelegate) Track(ctx context.Context, keys []string) [][]byte {
	return d.m.cfg.Track(ctx, keys)
}

package node

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"

	"golang.org/x/sync/errgroup"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/node/accept"
	"github.com/meshd/meshd/node/delivery"
	"github.com/meshd/meshd/node/holds"
	"github.com/meshd/meshd/node/identity"
	"github.com/meshd/meshd/node/mesh"
	"github.com/meshd/meshd/node/org"
	"github.com/meshd/meshd/node/tracking"
	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/smtp"
	"github.com/meshd/meshd/smtp/dialogue"
	"github.com/meshd/meshd/smtp/xlink"
)

// setupMesh builds the mesh side in steps: its two listeners, the TLS of
// each channel (identity.MeshTLS), the mesh itself (newMesh) and the
// mesh-facing SMTP server (newMeshServer). Nothing runs until startMesh.
func (n *Node) setupMesh(tlsCfg *tls.Config, limits smtp.Limits, opts Options) error {
	kr, err := n.cfg.Keyring()
	if err != nil {
		return err
	}
	lsLn, err := n.listen("tcp", n.cfg.Listen.Linkstate)
	if err != nil {
		return fmt.Errorf("node: listen.linkstate: %w", err)
	}
	meshLn, err := n.listenSMTP("tcp", n.cfg.Listen.Mesh)
	if err != nil {
		lsLn.Close()
		return fmt.Errorf("node: listen.mesh: %w", err)
	}
	t := n.id.MeshTLS(tlsCfg, n.cfg.Mesh.RequireTLS)
	n.finder.TLS = t.Track
	n.keyring = kr
	if n.mesh, err = n.newMesh(kr, lsLn, meshLn, t, opts); err != nil {
		lsLn.Close()
		meshLn.Close()
		return err
	}
	n.metrics.RegisterChannel(n.mesh.ChannelStats)
	n.policy.SetMesh(n.mesh)
	n.id.SetMesh(n.mesh, n.org)
	if n.meshSrv, err = n.newMeshServer(meshLn, t.Listener, limits); err != nil {
		meshLn.Close()
		return err // New closes the mesh (closeMesh)
	}
	return nil
}

// newMesh builds the mesh side (node/mesh) on its listeners: gossip, the
// port-691 channel, which also answers tracking and holds requests, and the
// organisation document, whose changes the node applies (applyOrg).
func (n *Node) newMesh(kr *linkstate.Keyring, lsLn, meshLn net.Listener, t identity.MeshTLS, opts Options) (*mesh.Mesh, error) {
	cfg := n.cfg
	var gossipKey []byte
	if cfg.Mesh.GossipKey != "" {
		gossipKey, _ = base64.StdEncoding.DecodeString(cfg.Mesh.GossipKey)
	}
	mcfg := mesh.Config{
		Node: cfg.Node.Name, RG: cfg.Node.RoutingGroup, Priority: cfg.Mesh.Priority,
		MeshSMTP:  advertised(meshLn.Addr(), cfg.Listen.Mesh),
		LinkState: lsLn, LinkStateAddr: advertised(lsLn.Addr(), cfg.Listen.Linkstate),
		GossipBind: cfg.Listen.Gossip, Seeds: cfg.Mesh.Seeds, GossipKey: gossipKey, FastGossip: cfg.Mesh.FastGossip,
		Connectors: cfg.Connectors, LocalSpaces: cfg.LocalSpaces(), Keyring: kr,
		Declared: cfg.DeclaredDomains(), OwnedFile: filepath.Join(cfg.Node.DataDir, "mesh-owned.json"),
		ListedFile:      filepath.Join(cfg.Node.DataDir, "mesh-listed.json"),
		GossipPeersFile: filepath.Join(cfg.Node.DataDir, "gossip-peers"),
		Timers:          cfg.Mesh.Timers, State: linkstate.StateConfig{Damping: cfg.Mesh.Damping}, Probe: cfg.Mesh.Probe,
		ServerTLS: t.Channel, ChannelTLS: t.ChannelClient, ClientTLS: t.XLink, Dial: opts.Dial, Now: n.now, Logger: n.log, HeloName: cfg.Node.Hostname,
		// Message tracking (track.go) shares the port-691 listener; its
		// events name senders and recipients, so only mesh peers may ask.
		Track: n.trk.Answer, AllowTrack: t.AllowTrack, Identify: t.Identify,
		// A sender whose hop to us is in doubt asks what our queue holds.
		Holds: holds.Answer(n.q, func(m *queue.Message) bool {
			return delivery.Suspect(m, n.now(), n.cfg.Mesh.ShadowTimeout) // docs/shadow.md
		}, n.log),
	}
	if n.id.Enabled() {
		mcfg.MemberTLS = n.id.MemberTLS
		mcfg.OnMemberDropped = func(_, reason string) { n.id.Dropped("member", reason) }
	}
	mcfg.OnSessionDropped = func(_, reason string) { n.id.Dropped("channel", reason) }
	mcfg.Reverify = opts.reverify
	var err error
	if n.org, err = org.Open(&cfg, n.now, n.log, n.metrics.Registry()); err != nil {
		return nil, err
	}
	mcfg.Org = n.org
	n.org.OnApply(n.applyOrg)
	if opts.GossipTransport != nil {
		tr, err := opts.GossipTransport(cfg.Listen.Gossip)
		if err != nil {
			return nil, fmt.Errorf("node: gossip transport: %w", err)
		}
		mcfg.GossipTransport = tr
	}
	m, err := mesh.New(mcfg)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	return m, nil
}

// newMeshServer is the mesh-facing SMTP listener: go-smtp behind the
// dialogue follower, which runs STARTTLS, go-smtp's dialogue and
// X-LINK2STATE, one follower per connection.
func (n *Node) newMeshServer(ln net.Listener, tlsCfg *tls.Config, limits smtp.Limits) (*smtp.Server, error) {
	srv, err := smtp.NewServer(smtp.ServerConfig{
		Hostname: n.cfg.Node.Hostname,
		Listener: ln,
		TLS:      tlsCfg,
		Extensions: []dialogue.Extension{xlink.NewExtension(xlink.Config{
			Hostname: n.cfg.Node.Hostname, Store: n.mesh.Store(),
			Allow:  n.id.Peer,
			Logger: n.log.With("listener", "mesh"),
		})},
		Mesh:          true,
		MeshPeer:      func(s *smtp.Session, cs *tls.ConnectionState) bool { return n.id.Peer(s.RemoteAddr, cs) },
		Limits:        limits,
		Policy:        n.policy,
		Sink:          accept.New(n.sinks, "smtp"),
		Logger:        n.log.With("listener", "mesh"),
		Now:           n.now,
		OnReply:       n.metrics.CountReply("mesh"),
		OnBareLineEnd: n.metrics.CountBare("mesh"),
		OnDataTooSlow: n.metrics.CountSlow("mesh"),
	})
	if err != nil {
		return nil, fmt.Errorf("node: listen.mesh: %w", err)
	}
	return srv, nil
}

// advertised turns a bound address into the one peers should dial: the
// configured host with the bound port (a wildcard host becomes loopback).
func advertised(bound net.Addr, configured string) string {
	host, _, err := net.SplitHostPort(configured)
	_, port, perr := net.SplitHostPort(bound.String())
	if err != nil || perr != nil {
		return bound.String()
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func (n *Node) startMesh(ctx context.Context, g *errgroup.Group) error {
	if n.mesh == nil {
		return nil
	}
	// The mesh side first: the listener's X-LINK2STATE sessions use it.
	if err := n.mesh.Start(); err != nil {
		return fmt.Errorf("node: start mesh: %w", err)
	}
	if err := n.meshSrv.Start(); err != nil {
		return fmt.Errorf("node: start mesh listener: %w", err)
	}
	g.Go(func() error { return n.metrics.WatchLinkState(ctx, n.mesh, n.now) })
	shadows := delivery.NewShadows(n.cfg, n.q, n.peers, n.metrics, n.now, n.log) // docs/shadow.md
	g.Go(func() error { return shadows.Run(ctx) })
	g.Go(func() error {
		// Every new routing table sends waiting mail on its way at once;
		// one that starts or ends this node's drain routes all of it again.
		draining := false
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-n.mesh.RoutesChanged():
				n.del.Reroute()
				if tab := n.mesh.Routes(); tab != nil && tab.Draining() != draining {
					draining = tab.Draining()
					n.del.RetryAll()
				}
			}
		}
	})
	return nil
}

// closeMesh stops the mesh side: gracefully (leave the pool) or, for
// crash, as a killed process would.
func (n *Node) closeMesh(crash bool) error {
	// n.mesh stays set: goroutines still running may read it until
	// closeParts has stopped them.
	if n.mesh == nil || n.meshClosed.Swap(true) {
		return nil
	}
	var errs []error
	if n.meshSrv != nil {
		errs = append(errs, n.meshSrv.Close())
	}
	if crash {
		errs = append(errs, n.mesh.Crash())
	} else {
		errs = append(errs, n.mesh.Close())
	}
	return errors.Join(errs...)
}

// trackPeers lists the nodes of the LSDB to ask for tracking events.
func (n *Node) trackPeers() []tracking.Peer {
	if n.mesh == nil {
		return nil
	}
	return tracking.Peers(n.mesh.LSDB().Snapshot().Records(), n.cfg.Node.Name)
}

// Mesh is the node's mesh side, nil for a standalone node.
func (n *Node) Mesh() *mesh.Mesh { return n.mesh }

// MeshAddr is the mesh-facing SMTP listener's address, nil when standalone.
func (n *Node) MeshAddr() net.Addr {
	if n.meshSrv == nil {
		return nil
	}
	return n.meshSrv.Addr()
}

// Crash stops the node the way kill -9 would look to its peers: it leaves
// the gossip pool without a word and drops every connection. The queue is
// closed (badger must release its directory to be reopened in-process),
// but nothing is drained or recorded on the way down.
func (n *Node) Crash() error {
	var err error
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		n.mu.Unlock()
		errs := []error{n.closeMesh(true)}
		errs = append(errs, n.closeParts()) // closeMesh is not repeated there
		err = errors.Join(errs...)
		n.closeErr = err
		n.log.Info("node crashed (simulated)")
	})
	return err
}

package node

import (
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/mesh"
	"github.com/meshd/meshd/orgdoc"
	"github.com/meshd/meshd/pki"
)

// overlayOrg returns cfg with the organisation document's topology in
// force (docs/org.md, "What a node takes from it"): mesh.routing_groups
// (names, public keys, domains), the connectors of this node's group
// (targets: the mesh addresses of the target bridgeheads), this node's
// priority, the group's other nodes as gossip seeds when the file names
// none, the group's domains among local_domains, and the document's
// ttl, refresh and damping when it sets them. Everything else is the
// local file's.
func overlayOrg(cfg Config, d *orgdoc.Document) Config {
	self, rg := cfg.Node.Name, cfg.Node.RoutingGroup
	cfg.Mesh.RoutingGroups = nil
	for _, g := range d.RoutingGroups {
		cfg.Mesh.RoutingGroups = append(cfg.Mesh.RoutingGroups, config.RoutingGroup{
			Name: g.Name, PublicKeys: slices.Clone(g.PublicKeys), Domains: slices.Clone(g.Domains)})
	}
	cfg.Connectors = nil
	for _, c := range d.Connectors {
		if c.From != rg {
			continue
		}
		mc := mesh.Connector{Name: c.Name, To: c.To, Cost: c.Cost, SourceBridgeheads: slices.Clone(c.SourceBridgeheads),
			Smarthost: c.Smarthost, AddressSpaces: slices.Clone(c.AddressSpaces)}
		for _, t := range d.TargetNodes(c) {
			mc.Targets = append(mc.Targets, t.Mesh)
		}
		cfg.Connectors = append(cfg.Connectors, mc)
	}
	if g, ok := d.Group(rg); ok {
		if n, ok := g.Node(self); ok {
			cfg.Mesh.Priority = n.Priority
		}
		if len(cfg.Mesh.Seeds) == 0 {
			for _, n := range g.Nodes {
				if n.Name != self && n.Gossip != "" {
					cfg.Mesh.Seeds = append(cfg.Mesh.Seeds, n.Gossip)
				}
			}
		}
		domains := slices.Clone(cfg.LocalDomains)
		for _, dom := range g.Domains {
			if !strings.HasPrefix(dom, "*") && !slices.Contains(domains, dom) {
				domains = append(domains, dom)
			}
		}
		cfg.LocalDomains = domains
	}
	if d.Settings.TTL > 0 {
		cfg.Mesh.TTL = d.Settings.TTL
	}
	if d.Settings.Refresh > 0 {
		cfg.Mesh.Refresh = d.Settings.Refresh
	}
	if d.Settings.Damping != (linkstate.DampingConfig{}) {
		cfg.Mesh.Damping = d.Settings.Damping
	}
	return cfg
}

// startupOrg puts the document the node took before it stopped in force
// over cfg at start (a node started from a short file knows its
// organisation from then on). A document that does not make a valid
// configuration with this file is logged and left out.
func startupOrg(cfg Config, log *slog.Logger) Config {
	if !cfg.MeshEnabled() {
		return cfg
	}
	st, err := orgdoc.OpenStore(filepath.Join(cfg.Node.DataDir, "org"))
	if err != nil {
		return cfg // newOrgDocs reports it
	}
	s, _ := st.Current()
	if s == nil {
		return cfg
	}
	next := overlayOrg(cfg, &s.Doc)
	if err := next.Validate(); err != nil {
		log.Error("organisation document not applied: with this node's file it makes no valid configuration", "version", s.Doc.Version, "err", err)
		return cfg
	}
	return next
}

// applyOrg puts a new document in force while the node runs: the
// keyring holds the groups and keys it names (and forgets the others),
// the node's local domains (what it accepts and delivers) become the
// file's and its group's in the document, and the mesh takes the
// connectors, costs, bridgeheads, address spaces, TTL and priority. It
// runs under the reload lock, so a reload of the local file and a new
// document never interleave.
func (n *Node) applyOrg(s *orgdoc.Signed) {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	cur := *n.live.Load()
	// The group's domains are the new document's: those the group held
	// before (the previous document's, or the file's routing groups) go,
	// the file's other local domains stay.
	base := cur
	base.LocalDomains = nil
	var before []string
	for _, g := range cur.Mesh.RoutingGroups {
		if g.Name == cur.Node.RoutingGroup {
			before = g.Domains
		}
	}
	for _, d := range cur.LocalDomains {
		if !slices.Contains(before, d) {
			base.LocalDomains = append(base.LocalDomains, d)
		}
	}
	next := overlayOrg(base, &s.Doc)
	if err := next.Validate(); err != nil {
		n.org.notApplied.Inc()
		n.log.Error("organisation document not applied: with this node's file it makes no valid configuration", "version", s.Doc.Version, "err", err)
		return
	}
	if n.keyring != nil {
		// The keyring becomes the document's: groups and keys it no
		// longer names are forgotten at once, not at the next start.
		kr, err := next.Keyring()
		if err != nil {
			n.org.notApplied.Inc()
			n.log.Error("organisation document not applied: its keys make no keyring with this node's file", "version", s.Doc.Version, "err", err)
			return
		}
		n.keyring.Replace(kr)
	}
	if n.mesh != nil {
		n.mesh.SetTopology(mesh.Topology{Connectors: next.Connectors, LocalSpaces: next.LocalSpaces(),
			TTL: next.Mesh.TTL, Refresh: next.Mesh.Refresh, Priority: next.Mesh.Priority})
	}
	n.policy.SetLocal(next.LocalDomains)
	n.live.Store(&next)
	n.log.Info("organisation document applied", "version", s.Doc.Version, "count", len(next.Connectors))
}

// orgInForce is the document in force (nil: none, or a standalone node).
func (n *Node) orgInForce() *orgdoc.Signed {
	if n.org == nil {
		return nil
	}
	s, _ := n.org.st.Current()
	return s
}

// orgNames reports whether a verified peer is a node of the organisation
// by its document: one the document in force names, or, on a node
// started from a short file that holds no document yet, any node of the
// organisation's CA, so that the first document can reach it over
// X-LINK2STATE (what it takes over that session is verified on its own:
// the document by the CA's signature, records by their groups' keys).
func (n *Node) orgNames(who pki.Identity) bool {
	s := n.orgInForce()
	if s == nil {
		return len(n.cfg.Mesh.RoutingGroups) == 0
	}
	g, ok := s.Doc.Group(who.RG)
	if !ok {
		return false
	}
	_, ok = g.Node(who.Node)
	return ok
}

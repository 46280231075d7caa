package org

import (
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/mesh"
	"github.com/meshd/meshd/orgdoc"
)

// Overlay returns cfg with the organisation document's topology in
// force (docs/org.md, "What a node takes from it"): mesh.routing_groups
// (names, public keys, domains), the connectors of this node's group
// (targets: the mesh addresses of the target bridgeheads), this node's
// priority, the group's other nodes as gossip seeds when the file names
// none, the group's domains among local_domains, and the document's
// ttl, refresh and damping when it sets them. Everything else is the
// local file's.
func Overlay(cfg config.Config, d *orgdoc.Document) config.Config {
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

// Startup puts the document the node took before it stopped in force
// over cfg at start (a node started from a short file knows its
// organisation from then on). A document that does not make a valid
// configuration with this file is logged and left out.
func Startup(cfg config.Config, log *slog.Logger) config.Config {
	if !cfg.MeshEnabled() {
		return cfg
	}
	st, err := orgdoc.OpenStore(filepath.Join(cfg.Node.DataDir, "org"))
	if err != nil {
		return cfg // Open reports it
	}
	s, _ := st.Current()
	if s == nil {
		return cfg
	}
	next := Overlay(cfg, &s.Doc)
	if err := next.Validate(); err != nil {
		log.Error("organisation document not applied: with this node's file it makes no valid configuration", "version", s.Doc.Version, "err", err)
		return cfg
	}
	return next
}

// Next is the configuration with a new document d in force over cur, the
// configuration in force while the node runs: the group's domains are
// the new document's (those the group held before, by the previous
// document or the file's routing groups, go; the file's other local
// domains stay). The caller validates it.
func Next(cur config.Config, d *orgdoc.Document) config.Config {
	base := cur
	base.LocalDomains = nil
	var before []string
	for _, g := range cur.Mesh.RoutingGroups {
		if g.Name == cur.Node.RoutingGroup {
			before = g.Domains
		}
	}
	for _, dom := range cur.LocalDomains {
		if !slices.Contains(before, dom) {
			base.LocalDomains = append(base.LocalDomains, dom)
		}
	}
	return Overlay(base, d)
}

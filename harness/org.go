package harness

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/meshd/meshd/orgdoc"
	"github.com/meshd/meshd/pki"
)

// orgApplier is a Cluster that can apply an organisation document at a
// node (the org step).
type orgApplier interface {
	ApplyOrg(o *OrgSpec) error
}

// checkOrg validates an org step: a known node, connectors as the
// topology's would be, no external connectors in the run.
func (t *Topology) checkOrg(o *OrgSpec) error {
	if err := t.checkNode(o.Node); err != nil {
		return fmt.Errorf("org: %w", err)
	}
	if len(t.External) > 0 {
		return errors.New("org: not in a scenario with external connectors")
	}
	if len(o.Connectors) == 0 {
		return nil
	}
	probe := Topology{RoutingGroups: t.RoutingGroups, Connectors: o.Connectors}
	if err := probe.validate(); err != nil {
		return fmt.Errorf("org: %w", err)
	}
	return nil
}

var _ orgApplier = (*nodeCluster)(nil)

// ApplyOrg builds the organisation document of o (the topology's groups
// and nodes with their mesh addresses, o's connectors or the topology's),
// signs it with the run's CA as the next version and offers it to o.Node
// as `meshctl org apply` would: that node floods it.
func (c *nodeCluster) ApplyOrg(o *OrgSpec) error {
	t := &c.sc.Topology
	conns := o.Connectors
	if len(conns) == 0 {
		conns = t.Connectors
	}
	c.mu.Lock()
	c.orgVersion++
	d := orgdoc.Document{Version: c.orgVersion, Organisation: c.sc.Name, Comment: o.Comment}
	for _, rg := range t.RoutingGroups {
		g := orgdoc.RoutingGroup{Name: rg.Name, Domains: rg.Domains}
		for _, ns := range rg.Nodes {
			sn := c.nodes[ns.Name]
			g.Nodes = append(g.Nodes, orgdoc.Node{Name: ns.Name, Mesh: sn.cfg.Listen.Mesh, Linkstate: sn.cfg.Listen.Linkstate, Priority: ns.Priority})
		}
		d.RoutingGroups = append(d.RoutingGroups, g)
	}
	c.mu.Unlock()
	for _, k := range conns {
		d.Connectors = append(d.Connectors, orgdoc.Connector{Name: k.Name, From: k.From, To: k.To, Cost: k.Cost,
			SourceBridgeheads: k.SourceBridgeheads, TargetBridgeheads: k.Targets})
	}
	orgDir := filepath.Join(c.opts.DataDir, "org")
	ca, key, err := pki.ReadCA(filepath.Join(orgDir, pki.CAFile), filepath.Join(orgDir, pki.CAKeyFile))
	if err != nil {
		return fmt.Errorf("harness: org: %w", err)
	}
	s, err := orgdoc.Sign(d, ca, key, time.Now())
	if err != nil {
		return fmt.Errorf("harness: org: %w", err)
	}
	raw, err := s.Encode()
	if err != nil {
		return fmt.Errorf("harness: org: %w", err)
	}
	m := c.live(o.Node)
	if m == nil {
		return fmt.Errorf("harness: org: node %s is not running", o.Node)
	}
	if _, err := m.OfferOrg(raw); err != nil {
		return fmt.Errorf("harness: org: %s refused version %d: %w", o.Node, d.Version, err)
	}
	return nil
}

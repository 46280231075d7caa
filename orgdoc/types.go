package orgdoc

import (
	"time"

	"github.com/meshd/meshd/linkstate"
)

// Document is the organisation document (org.yaml). Its JSON form (Encode)
// is what is signed and flooded; its YAML form is what operators write.
type Document struct {
	// Version orders documents: a node takes only a higher version than
	// the one it holds. 0 in a YAML file means "the next version" (meshctl
	// org apply fills it in from the node's current document).
	Version uint64 `yaml:"version" json:"version"`
	// Organisation is a free-form name shown by meshctl.
	Organisation string `yaml:"organisation" json:"organisation"`
	// IssuedAt (Unix seconds) is set by Sign.
	IssuedAt int64 `yaml:"-" json:"issued_at"`
	// Comment says what changed (meshctl org history).
	Comment       string         `yaml:"comment" json:"comment"`
	Settings      Settings       `yaml:"settings" json:"settings"`
	RoutingGroups []RoutingGroup `yaml:"routing_groups" json:"routing_groups"`
	Connectors    []Connector    `yaml:"connectors" json:"connectors"`
}

// Settings are org-wide link-state settings. Zero values keep the node's
// defaults (docs/config.md, mesh.*).
type Settings struct {
	// TTL is the lifetime of a link-state record (mesh.ttl).
	TTL time.Duration `yaml:"ttl" json:"ttl"`
	// Refresh is how often a master re-originates its record (mesh.refresh).
	Refresh time.Duration `yaml:"refresh" json:"refresh"`
	// Damping is connector flap damping (mesh.damping).
	Damping linkstate.DampingConfig `yaml:"damping" json:"damping"`
}

// RoutingGroup is one site of the organisation.
type RoutingGroup struct {
	Name string `yaml:"name" json:"name"`
	// Domains the group delivers locally and owns for the organisation
	// ("example.com" or "*.example.com").
	Domains []string `yaml:"domains" json:"domains"`
	// PublicKeys are "keyid:base64" Ed25519 public keys that sign the
	// group's link-state records (mesh.routing_groups[].public_keys).
	PublicKeys []string `yaml:"public_keys" json:"public_keys"`
	Nodes      []Node   `yaml:"nodes" json:"nodes"`
}

// Node is one node of a routing group.
type Node struct {
	Name string `yaml:"name" json:"name"`
	// Mesh is the address (host:port) of its mesh-facing SMTP listener:
	// where other groups' bridgeheads send it mail and link state.
	Mesh string `yaml:"mesh" json:"mesh"`
	// Linkstate is its port-691 listener (optional: members find each
	// other by gossip).
	Linkstate string `yaml:"linkstate" json:"linkstate"`
	// Gossip is its gossip listener, a seed for the group's other nodes
	// (optional).
	Gossip string `yaml:"gossip" json:"gossip"`
	// Priority ranks the node in master election (higher wins).
	Priority uint32 `yaml:"priority" json:"priority"`
}

// Connector is a directed link from one routing group to another (To set),
// or out of the organisation (To empty: smarthost or DNS MX for its
// address spaces).
type Connector struct {
	Name string `yaml:"name" json:"name"`
	From string `yaml:"from" json:"from"`
	To   string `yaml:"to" json:"to"`
	Cost uint32 `yaml:"cost" json:"cost"`
	// SourceBridgeheads are nodes of From that may use the connector
	// (empty: any).
	SourceBridgeheads []string `yaml:"source_bridgeheads" json:"source_bridgeheads"`
	// TargetBridgeheads are nodes of To that receive its mail (empty:
	// every node of To).
	TargetBridgeheads []string                 `yaml:"target_bridgeheads" json:"target_bridgeheads"`
	Smarthost         string                   `yaml:"smarthost" json:"smarthost"`
	AddressSpaces     []linkstate.AddressSpace `yaml:"address_spaces" json:"address_spaces"`
}

// Group returns the routing group named rg.
func (d *Document) Group(rg string) (*RoutingGroup, bool) {
	for i := range d.RoutingGroups {
		if d.RoutingGroups[i].Name == rg {
			return &d.RoutingGroups[i], true
		}
	}
	return nil, false
}

// Node returns the node named name of the group.
func (g *RoutingGroup) Node(name string) (*Node, bool) {
	for i := range g.Nodes {
		if g.Nodes[i].Name == name {
			return &g.Nodes[i], true
		}
	}
	return nil, false
}

// TargetNodes are the nodes of the connector's target group that receive
// its mail: the named target bridgeheads, or every node of the group.
func (d *Document) TargetNodes(c Connector) []Node {
	g, ok := d.Group(c.To)
	if !ok {
		return nil
	}
	if len(c.TargetBridgeheads) == 0 {
		return g.Nodes
	}
	var out []Node
	for _, name := range c.TargetBridgeheads {
		if n, ok := g.Node(name); ok {
			out = append(out, *n)
		}
	}
	return out
}

package orgdoc

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/pki"
)

// Limits on a document, so that one can always be flooded (and a forged
// one cannot make a node allocate without bound before it is refused).
const (
	MaxRoutingGroups = 256
	MaxNodesPerGroup = 256
	MaxConnectors    = 4096
	MaxListItems     = 256 // domains, keys, bridgeheads, address spaces of one entry
)

// Validate checks a document: names, addresses and costs are well formed,
// every name a connector uses exists (its groups, its source bridgeheads
// in From, its target bridgeheads in To), nothing is listed twice, no
// domain belongs to two groups, and the settings are sane.
func (d *Document) Validate() error { return d.validate() }

func (d *Document) validate() error {
	if len(d.RoutingGroups) == 0 {
		return keyError("routing_groups", "must list at least one routing group")
	}
	if len(d.RoutingGroups) > MaxRoutingGroups {
		return keyError("routing_groups", "at most %d routing groups, got %d", MaxRoutingGroups, len(d.RoutingGroups))
	}
	if len(d.Organisation) > 256 || len(d.Comment) > 4096 {
		return keyError("comment", "organisation at most 256 and comment at most 4096 bytes")
	}
	if err := d.Settings.validate(); err != nil {
		return err
	}
	groups := map[string]int{}
	owner := map[string]string{}
	for i, g := range d.RoutingGroups {
		key := fmt.Sprintf("routing_groups[%d]", i)
		if err := pki.CheckName(key+".name", g.Name); err != nil {
			return keyError(key+".name", "must be 1-63 lowercase letters, digits or '-', got %q", g.Name)
		}
		if _, dup := groups[g.Name]; dup {
			return keyError(key+".name", "routing group %q is listed twice", g.Name)
		}
		groups[g.Name] = i
		if err := g.validate(key, owner); err != nil {
			return err
		}
	}
	if len(d.Connectors) > MaxConnectors {
		return keyError("connectors", "at most %d connectors, got %d", MaxConnectors, len(d.Connectors))
	}
	names := map[string]int{}
	shapes := map[string]int{}
	for i, c := range d.Connectors {
		key := fmt.Sprintf("connectors[%d]", i)
		if err := d.validateConnector(key, c); err != nil {
			return err
		}
		id := c.From + "/" + c.Name
		if j, dup := names[id]; dup {
			return keyError(key+".name", "connector %q of %q is listed twice (connectors[%d])", c.Name, c.From, j)
		}
		names[id] = i
		if c.To != "" {
			shape := strings.Join([]string{c.From, c.To, strings.Join(sorted(c.SourceBridgeheads), ","), strings.Join(sorted(c.TargetBridgeheads), ",")}, "|")
			if j, dup := shapes[shape]; dup {
				return keyError(key, "repeats connectors[%d] (same groups and bridgeheads): change its cost instead", j)
			}
			shapes[shape] = i
		}
	}
	return nil
}

func (s Settings) validate() error {
	if s.TTL != 0 && (s.TTL < 5*time.Second || s.TTL > 30*24*time.Hour) {
		return keyError("settings.ttl", "must be 5s..720h, got %v", s.TTL)
	}
	if s.Refresh != 0 && s.Refresh < time.Second {
		return keyError("settings.refresh", "must be at least 1s, got %v", s.Refresh)
	}
	if s.TTL != 0 && s.Refresh != 0 && s.Refresh >= s.TTL {
		return keyError("settings.refresh", "must be shorter than settings.ttl (%v), got %v", s.TTL, s.Refresh)
	}
	if s.Damping != (linkstate.DampingConfig{}) {
		if err := s.Damping.Validate(); err != nil {
			return keyError("settings.damping", "%v", err)
		}
	}
	return nil
}

func (g RoutingGroup) validate(key string, owner map[string]string) error {
	if len(g.Domains) > MaxListItems || len(g.PublicKeys) > MaxListItems {
		return keyError(key, "at most %d domains and %d public keys", MaxListItems, MaxListItems)
	}
	for j, dom := range g.Domains {
		k := fmt.Sprintf("%s.domains[%d]", key, j)
		dom = strings.ToLower(strings.TrimSuffix(dom, "."))
		if err := checkPattern(dom); err != nil || dom == "*" {
			return keyError(k, "must be a domain or *.domain, got %q", g.Domains[j])
		}
		if o, dup := owner[dom]; dup {
			return keyError(k, "domain %q already belongs to routing group %q", dom, o)
		}
		owner[dom] = g.Name
	}
	ids := map[string]bool{}
	for j, pk := range g.PublicKeys {
		k := fmt.Sprintf("%s.public_keys[%d]", key, j)
		id, b64, ok := strings.Cut(pk, ":")
		raw, err := base64.StdEncoding.DecodeString(b64)
		if !ok || id == "" || err != nil || len(raw) != ed25519.PublicKeySize {
			return keyError(k, "must be keyid:base64 of a 32-byte Ed25519 public key")
		}
		if ids[id] {
			return keyError(k, "key id %q is listed twice", id)
		}
		ids[id] = true
	}
	if len(g.Nodes) == 0 {
		return keyError(key+".nodes", "must list at least one node of %q", g.Name)
	}
	if len(g.Nodes) > MaxNodesPerGroup {
		return keyError(key+".nodes", "at most %d nodes, got %d", MaxNodesPerGroup, len(g.Nodes))
	}
	seen := map[string]bool{}
	for j, n := range g.Nodes {
		k := fmt.Sprintf("%s.nodes[%d]", key, j)
		if pki.CheckName(k+".name", n.Name) != nil {
			return keyError(k+".name", "must be 1-63 lowercase letters, digits or '-', got %q", n.Name)
		}
		if seen[n.Name] {
			return keyError(k+".name", "node %q is listed twice in %q", n.Name, g.Name)
		}
		seen[n.Name] = true
		if n.Mesh == "" {
			return keyError(k+".mesh", "required: the address of the node's mesh SMTP listener (host:port)")
		}
		for _, a := range []struct{ key, v string }{{"mesh", n.Mesh}, {"linkstate", n.Linkstate}, {"gossip", n.Gossip}} {
			if a.v == "" {
				continue
			}
			if err := checkAddr(a.v); err != nil {
				return keyError(k+"."+a.key, "%v", err)
			}
		}
	}
	return nil
}

func (d *Document) validateConnector(key string, c Connector) error {
	if pki.CheckName(key+".name", c.Name) != nil {
		return keyError(key+".name", "must be 1-63 lowercase letters, digits or '-', got %q", c.Name)
	}
	from, ok := d.Group(c.From)
	if !ok {
		return keyError(key+".from", "routing group %q is not in routing_groups", c.From)
	}
	if c.Cost < 1 || c.Cost > 100 {
		return keyError(key+".cost", "must be 1..100, got %d", c.Cost)
	}
	if len(c.SourceBridgeheads) > MaxListItems || len(c.TargetBridgeheads) > MaxListItems || len(c.AddressSpaces) > MaxListItems {
		return keyError(key, "at most %d bridgeheads and address spaces each", MaxListItems)
	}
	if err := bridgeheads(key+".source_bridgeheads", c.SourceBridgeheads, from); err != nil {
		return err
	}
	if c.To == "" {
		if len(c.TargetBridgeheads) > 0 {
			return keyError(key+".target_bridgeheads", "belong to a connector to a routing group (set to)")
		}
		if len(c.AddressSpaces) == 0 {
			return keyError(key+".address_spaces", "an external connector (no to) needs at least one address space")
		}
		for j, as := range c.AddressSpaces {
			k := fmt.Sprintf("%s.address_spaces[%d]", key, j)
			if err := checkPattern(strings.ToLower(as.Pattern)); err != nil {
				return keyError(k+".pattern", "%v", err)
			}
			if as.Cost < 1 || as.Cost > 100 {
				return keyError(k+".cost", "must be 1..100, got %d", as.Cost)
			}
		}
		if c.Smarthost != "" {
			if _, _, err := splitPort(c.Smarthost); err != nil {
				return keyError(key+".smarthost", "%v", err)
			}
		}
		return nil
	}
	to, ok := d.Group(c.To)
	if !ok {
		return keyError(key+".to", "routing group %q is not in routing_groups", c.To)
	}
	if c.To == c.From {
		return keyError(key+".to", "a connector leads to another routing group, not back to %q", c.From)
	}
	if c.Smarthost != "" || len(c.AddressSpaces) > 0 {
		return keyError(key+".to", "smarthost and address_spaces belong to external connectors (no to)")
	}
	return bridgeheads(key+".target_bridgeheads", c.TargetBridgeheads, to)
}

func bridgeheads(key string, names []string, g *RoutingGroup) error {
	seen := map[string]bool{}
	for j, name := range names {
		if _, ok := g.Node(name); !ok {
			return keyError(fmt.Sprintf("%s[%d]", key, j), "%q is not a node of routing group %q", name, g.Name)
		}
		if seen[name] {
			return keyError(fmt.Sprintf("%s[%d]", key, j), "%q is listed twice", name)
		}
		seen[name] = true
	}
	return nil
}

// checkPattern is the rule for address spaces: a domain, *.domain or *.
func checkPattern(p string) error {
	if p == "*" {
		return nil
	}
	rest := strings.TrimPrefix(p, "*.")
	if rest == "" || strings.Contains(rest, "*") || len(rest) > 253 {
		return fmt.Errorf("must be a domain, *.domain or *, got %q", p)
	}
	for _, label := range strings.Split(rest, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return fmt.Errorf("must be a domain, *.domain or *, got %q", p)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("must be a domain, *.domain or *, got %q", p)
			}
		}
	}
	return nil
}

// checkAddr checks an address other nodes dial: host:port with a host that
// is not a wildcard.
func checkAddr(s string) error {
	host, _, err := splitPort(s)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("needs a host others can dial, got %q", s)
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		return fmt.Errorf("needs a host others can dial, not the wildcard %q", s)
	}
	return nil
}

func splitPort(s string) (string, int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("must be host:port, got %q", s)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "", 0, fmt.Errorf("port must be 1..65535, got %q", port)
	}
	return host, p, nil
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// normalize puts a valid document in its canonical form: names and
// patterns lowercased, every list sorted, so that the same topology is the
// same bytes whoever wrote it.
func (d *Document) normalize() {
	for i := range d.RoutingGroups {
		g := &d.RoutingGroups[i]
		for j, dom := range g.Domains {
			g.Domains[j] = strings.ToLower(strings.TrimSuffix(dom, "."))
		}
		slices.Sort(g.Domains)
		slices.Sort(g.PublicKeys)
		g.Domains, g.PublicKeys = nilIfEmpty(g.Domains), nilIfEmpty(g.PublicKeys)
		slices.SortFunc(g.Nodes, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	}
	slices.SortFunc(d.RoutingGroups, func(a, b RoutingGroup) int { return strings.Compare(a.Name, b.Name) })
	for i := range d.Connectors {
		c := &d.Connectors[i]
		slices.Sort(c.SourceBridgeheads)
		slices.Sort(c.TargetBridgeheads)
		for j := range c.AddressSpaces {
			c.AddressSpaces[j].Pattern = strings.ToLower(c.AddressSpaces[j].Pattern)
		}
		slices.SortFunc(c.AddressSpaces, func(a, b linkstate.AddressSpace) int { return strings.Compare(a.Pattern, b.Pattern) })
		c.SourceBridgeheads, c.TargetBridgeheads = nilIfEmpty(c.SourceBridgeheads), nilIfEmpty(c.TargetBridgeheads)
		if len(c.AddressSpaces) == 0 {
			c.AddressSpaces = nil
		}
	}
	if len(d.Connectors) == 0 {
		d.Connectors = nil
	}
	slices.SortFunc(d.Connectors, func(a, b Connector) int {
		if c := strings.Compare(a.From, b.From); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

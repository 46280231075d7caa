package routing

import (
	"fmt"
	"strings"
)

// Kind is what a node does with a recipient domain.
type Kind uint8

const (
	// NoRoute: nothing usable matches; the message waits where it is and
	// is routed again on the next table.
	NoRoute Kind = iota
	// Local: deliver in this routing group (Maildir or LMTP).
	Local
	// Intra: hand the message to another node of this routing group, a
	// source bridgehead of the chosen connector.
	Intra
	// Remote: send to a target bridgehead of the next routing group.
	Remote
	// External: deliver out of the mesh through an external connector of
	// this routing group, to its smarthost or by DNS MX.
	External
)

var kindNames = [...]string{NoRoute: "noroute", Local: "local", Intra: "intra", Remote: "remote", External: "external"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// MarshalText encodes the kind by name for JSON.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText decodes a kind name, so meshctl can read the JSON back.
func (k *Kind) UnmarshalText(b []byte) error {
	for i, n := range kindNames {
		if n == string(b) {
			*k = Kind(i)
			return nil
		}
	}
	return fmt.Errorf("routing: unknown kind %q", b)
}

// Reason says why an alternative lost.
type Reason uint8

const (
	// ReasonLessSpecific: a more specific address space matched.
	ReasonLessSpecific Reason = iota + 1
	// ReasonHigherCost: its total cost was higher than the chosen one.
	ReasonHigherCost
	// ReasonConnectorDown: the external connector carrying it is down.
	ReasonConnectorDown
	// ReasonTieBreak: equal cost; the (message ID, domain) hash chose another.
	ReasonTieBreak
	// ReasonUnreachable: no path of up connectors leads to its routing group.
	ReasonUnreachable
	// ReasonLocalPreferred: equal cost, and local delivery wins ties.
	ReasonLocalPreferred
	// ReasonNoBridgehead: the connector has no bridgehead this node can use.
	ReasonNoBridgehead
	// ReasonOwnedDomain: not considered, because a more specific address
	// space belongs to a routing group of the organisation; its mail waits
	// rather than leaving through a broader connector.
	ReasonOwnedDomain
	// ReasonOwnerUnreachable: the routing group that owns the address
	// space has no record in the LSDB (aged out, or not learned yet); its
	// mail waits for it.
	ReasonOwnerUnreachable
	// ReasonRemoved: the owning routing group was decommissioned; its mail
	// fails permanently.
	ReasonRemoved
	// ReasonSuppressed: flap damping holds the connector down.
	ReasonSuppressed
	// ReasonNoMatch: no address space matches the domain (Decision.Refused only).
	ReasonNoMatch
	// ReasonInvalidDomain: the recipient domain is not a domain (Decision.Refused only).
	ReasonInvalidDomain
	// ReasonDraining: this node drains and no other member of its routing
	// group can take its mail (Decision.Refused only; drain.go).
	ReasonDraining
)

var reasonNames = [...]string{
	ReasonLessSpecific:     "less-specific",
	ReasonHigherCost:       "higher-cost",
	ReasonConnectorDown:    "connector-down",
	ReasonTieBreak:         "hash-tie-break",
	ReasonUnreachable:      "unreachable",
	ReasonLocalPreferred:   "local-preferred",
	ReasonNoBridgehead:     "no-bridgehead",
	ReasonOwnedDomain:      "owned-domain-waits",
	ReasonOwnerUnreachable: "owner-unreachable",
	ReasonRemoved:          "removed",
	ReasonSuppressed:       "suppressed",
	ReasonNoMatch:          "no-address-space",
	ReasonInvalidDomain:    "invalid-domain",
	ReasonDraining:         "draining",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// MarshalText encodes the reason by name for JSON.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText decodes a reason name.
func (r *Reason) UnmarshalText(b []byte) error {
	for i, n := range reasonNames {
		if n != "" && n == string(b) {
			*r = Reason(i)
			return nil
		}
	}
	return fmt.Errorf("routing: unknown reason %q", b)
}

// ConnectorRef names a connector in a decision.
type ConnectorRef struct {
	ID        string `json:"id"`
	From      string `json:"from"`
	To        string `json:"to,omitempty"` // "" for an external connector
	Cost      uint32 `json:"cost"`
	Smarthost string `json:"smarthost,omitempty"`
}

func (c *ConnectorRef) String() string {
	if c.To == "" {
		if c.Smarthost != "" {
			return fmt.Sprintf("%s (%s -> smarthost %s)", c.ID, c.From, c.Smarthost)
		}
		return fmt.Sprintf("%s (%s -> DNS MX)", c.ID, c.From)
	}
	return fmt.Sprintf("%s (%s -> %s, cost %d)", c.ID, c.From, c.To, c.Cost)
}

// Hop is one next-hop host. Addr is host:port; Node names the mesh node
// when it is known.
type Hop struct {
	Node string `json:"node,omitempty"`
	Addr string `json:"addr"`
	Up   bool   `json:"up"` // false: its bridgehead pair is observed down (kept as a last resort)
}

func (h Hop) String() string {
	s := h.Addr
	if h.Node != "" {
		s = h.Node + " " + h.Addr
	}
	if !h.Up {
		s += " [down]"
	}
	return s
}

// Alternative is a candidate route that was considered and lost.
type Alternative struct {
	AddressSpace     string `json:"address_space"`
	RG               string `json:"rg"`                  // owner RG, or the RG of the external connector
	Exit             string `json:"exit,omitempty"`      // external connector ID, if the address space is on one
	FirstHop         string `json:"first_hop,omitempty"` // local connector it would have used
	Reachable        bool   `json:"reachable"`
	PathCost         uint64 `json:"path_cost"`
	AddressSpaceCost uint64 `json:"address_space_cost"`
	TotalCost        uint64 `json:"total_cost"`
	Reason           Reason `json:"reason"`
}

func (a Alternative) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s at %s", a.AddressSpace, a.RG)
	if a.Exit != "" {
		fmt.Fprintf(&b, " via external %s", a.Exit)
	}
	if a.FirstHop != "" {
		fmt.Fprintf(&b, " first hop %s", a.FirstHop)
	}
	if a.Reachable {
		fmt.Fprintf(&b, " cost %d+%d=%d", a.PathCost, a.AddressSpaceCost, a.TotalCost)
	}
	fmt.Fprintf(&b, ": %s", a.Reason)
	return b.String()
}

// Decision is the route of one recipient domain of one message, with the
// reasons behind it. It is what `meshctl trace` prints.
type Decision struct {
	MessageID string `json:"message_id"`
	Domain    string `json:"domain"`
	Node      string `json:"node"` // the node that decided
	RG        string `json:"rg"`   // its routing group
	Kind      Kind   `json:"kind"`

	AddressSpace string `json:"address_space,omitempty"` // matched pattern
	DestRG       string `json:"dest_rg,omitempty"`       // RG owning the address space, or holding the exit connector

	// Connector is the connector this node acts on: the first hop of the
	// path (Intra, Remote) or the external connector (External).
	Connector *ConnectorRef `json:"connector,omitempty"`
	// Exit is the external connector at the end of the path, when the
	// matched address space is on one.
	Exit *ConnectorRef `json:"exit,omitempty"`

	// NextHops: the chosen host first, then fallbacks in order. Empty for
	// Local, NoRoute and External by MX.
	NextHops []Hop `json:"next_hops,omitempty"`
	// MX: deliver by DNS MX lookup of Domain (External without smarthost).
	MX bool `json:"mx,omitempty"`

	Path             []string `json:"path,omitempty"` // RGs from this one to DestRG
	PathCost         uint64   `json:"path_cost"`
	AddressSpaceCost uint64   `json:"address_space_cost"`
	TotalCost        uint64   `json:"total_cost"`

	Alternatives []Alternative `json:"alternatives,omitempty"`
	Omitted      int           `json:"omitted,omitempty"` // alternatives beyond MaxAlternatives, not listed

	// Refused and Why explain a NoRoute decision: the reason code and a
	// sentence for people.
	Refused Reason `json:"refused,omitempty"`
	Why     string `json:"why,omitempty"`

	// Drain is set when this node drains (meshctl node drain): the
	// recipients go to another member of its routing group (Kind Intra,
	// NextHops those members) instead of what the rest of the decision
	// describes, or wait (NoRoute, ReasonDraining) when no member can
	// take them.
	Drain *DrainHandOff `json:"drain,omitempty"`

	// Paths is filled by Table.Trace only: every way out of this routing
	// group towards DestRG (or the refused owner), one per local connector.
	Paths []PathOption `json:"paths,omitempty"`
}

// Lines renders the decision for people, one fact per line.
func (d *Decision) Lines() []string {
	lines := []string{fmt.Sprintf("route %s (message %s) at node %s in %s: %s", d.Domain, d.MessageID, d.Node, d.RG, d.Kind)}
	if d.Kind == NoRoute && d.Why != "" {
		lines = append(lines, fmt.Sprintf("  refused (%s): %s", d.Refused, d.Why))
	}
	if d.Drain != nil {
		lines = append(lines, "  "+d.Drain.String(d.Node, d.RG))
	}
	if d.AddressSpace != "" {
		lines = append(lines, fmt.Sprintf("  address space: %s at %s (cost %d)", d.AddressSpace, d.DestRG, d.AddressSpaceCost))
	}
	if len(d.Path) > 0 {
		lines = append(lines, fmt.Sprintf("  path: %s (path cost %d + address space cost %d = %d)",
			strings.Join(d.Path, " -> "), d.PathCost, d.AddressSpaceCost, d.TotalCost))
	}
	if d.Connector != nil {
		lines = append(lines, "  connector: "+d.Connector.String())
	}
	if d.Exit != nil && (d.Connector == nil || d.Exit.ID != d.Connector.ID || d.Exit.From != d.Connector.From) {
		lines = append(lines, "  exit: "+d.Exit.String())
	}
	if d.MX {
		lines = append(lines, "  next hop: DNS MX of "+d.Domain)
	}
	for i, h := range d.NextHops {
		role := "fallback"
		if i == 0 {
			role = "chosen"
		}
		lines = append(lines, fmt.Sprintf("  next hop (%s): %s", role, h))
	}
	if len(d.Alternatives) > 0 {
		lines = append(lines, "  alternatives:")
		for _, a := range d.Alternatives {
			lines = append(lines, "    "+a.String())
		}
	}
	if d.Omitted > 0 {
		lines = append(lines, fmt.Sprintf("    (%d more not listed)", d.Omitted))
	}
	if len(d.Paths) > 0 {
		lines = append(lines, "  paths:")
		for _, p := range d.Paths {
			lines = append(lines, "    "+p.String())
		}
	}
	return lines
}

// String is Lines joined by newlines.
func (d *Decision) String() string { return strings.Join(d.Lines(), "\n") }

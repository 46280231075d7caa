package harness

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Scenario is one rehearsal: a topology, a timeline of faults and traffic,
// and the assertions the run must satisfy. It is read from YAML with
// ParseScenario or LoadScenario; unknown keys are errors.
type Scenario struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Seed drives netem's random decisions (drop probabilities).
	Seed int64 `yaml:"seed"`
	// Settle bounds the wait for the first LSDB convergence before the
	// timeline starts (t=0 is the moment every node holds every RG's record
	// and the same digest). Default 30s.
	Settle   time.Duration `yaml:"settle"`
	Topology Topology      `yaml:"topology"`
	Timers   Timers        `yaml:"timers"`
	Timeline []Step        `yaml:"timeline"`
	// Duration is how long the timeline runs at least; default the offset of
	// the last step plus one second. Assertions with later deadlines extend
	// the run until they are decided.
	Duration time.Duration `yaml:"duration"`
	Assert   []Assertion   `yaml:"assert"`
}

// Topology is the mesh to start: routing groups with their nodes and
// domains, and the connectors between them.
type Topology struct {
	RoutingGroups []RGSpec        `yaml:"routing_groups"`
	Connectors    []ConnectorSpec `yaml:"connectors"`
	External      []ExternalSpec  `yaml:"external"`
}

// RGSpec is one routing group (site).
type RGSpec struct {
	Name string `yaml:"name"`
	// Domains are delivered locally by every node of the group; default
	// <name>.test.
	Domains []string   `yaml:"domains"`
	Nodes   []NodeSpec `yaml:"nodes"`
}

// NodeSpec is one node of a routing group.
type NodeSpec struct {
	Name     string `yaml:"name"`
	Priority uint32 `yaml:"priority"`
}

// ConnectorSpec is one directed connector between two routing groups.
type ConnectorSpec struct {
	Name string `yaml:"name"`
	From string `yaml:"from"`
	To   string `yaml:"to"`
	Cost uint32 `yaml:"cost"`
	// SourceBridgeheads are node names of From; empty = every node of From.
	SourceBridgeheads []string `yaml:"source_bridgeheads"`
	// Targets are node names of To whose mesh SMTP listeners the connector
	// delivers to; empty = every node of To.
	Targets []string `yaml:"targets"`
}

// Timers are the node timers a scenario runs with. The defaults are fast
// (sub-second probes and retries) so that a scenario takes seconds.
type Timers struct {
	ProbeInterval  time.Duration `yaml:"probe_interval"`  // default 100ms
	ProbeKeepalive time.Duration `yaml:"probe_keepalive"` // default 200ms
	ProbeTimeout   time.Duration `yaml:"probe_timeout"`   // default 300ms
	SyncInterval   time.Duration `yaml:"sync_interval"`   // default 1s
	RetryInitial   time.Duration `yaml:"retry_initial"`   // default 200ms
	RetryMax       time.Duration `yaml:"retry_max"`       // default 1s
	DeadTime       time.Duration `yaml:"dead_time"`       // default 200ms
	// TTL and Refresh of link-state records (default the node's 1h and
	// 30m); a short TTL lets a scenario see a record age out.
	TTL     time.Duration `yaml:"ttl"`
	Refresh time.Duration `yaml:"refresh"`
	// Lifetime of queued mail before a failure DSN (default the node's 48h).
	Lifetime time.Duration `yaml:"lifetime"`
	// Damping of connector state changes (BGP-style); zero values keep the
	// node defaults (penalty 1000, suppress 2000, reuse 750, half-life 15m).
	DampingPenalty  int           `yaml:"damping_penalty"`
	DampingSuppress int           `yaml:"damping_suppress"`
	DampingReuse    int           `yaml:"damping_reuse"`
	DampingHalfLife time.Duration `yaml:"damping_half_life"`
}

func (t Timers) withDefaults() Timers {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.ProbeInterval, 100*time.Millisecond)
	def(&t.ProbeKeepalive, 200*time.Millisecond)
	def(&t.ProbeTimeout, 300*time.Millisecond)
	def(&t.SyncInterval, time.Second)
	def(&t.RetryInitial, 200*time.Millisecond)
	def(&t.RetryMax, time.Second)
	def(&t.DeadTime, 200*time.Millisecond)
	return t
}

// Step is one timeline entry: at offset At (from t=0), exactly one action.
type Step struct {
	At   time.Duration `yaml:"at"`
	Name string        `yaml:"name"` // label for the report and convergence assertions

	Cut       *LinkRef   `yaml:"cut"`
	Heal      *LinkRef   `yaml:"heal"`
	HealAll   bool       `yaml:"heal_all"`
	Partition *LinkRef   `yaml:"partition"` // groups: [[rga], [rgb, rgc]]
	Delay     *DelaySpec `yaml:"delay"`
	Drop      *DropSpec  `yaml:"drop"`
	Flap      *FlapSpec  `yaml:"flap"`
	Crash     string     `yaml:"crash"`     // node name
	Restart   string     `yaml:"restart"`   // node name
	DiskFull  string     `yaml:"disk_full"` // node name: its queue refuses with 451 from now on
	DiskFree  string     `yaml:"disk_free"` // node name: its queue takes mail again
	// SwapDisk (node name, crashed) sets its data directory aside and puts
	// back the one set aside before (none the first time: an empty disk),
	// for a node lost with its disk that later returns with the old one.
	SwapDisk string `yaml:"swap_disk"`
	// Drain (node name) takes the node out of service as meshctl node
	// drain does (docs/drain.md); Undrain puts it back.
	Drain   string    `yaml:"drain"`
	Undrain string    `yaml:"undrain"`
	Send    *SendSpec `yaml:"send"`
	// RemoveRG decommissions a routing group through a node (meshctl rg
	// remove): a tombstone floods the mesh.
	RemoveRG *RemoveSpec `yaml:"remove_rg"`
	// Org applies a new organisation document (docs/org.md) at one node,
	// as `meshctl org apply` does: it floods the mesh, and every node
	// takes its connectors and costs live.
	Org *OrgSpec `yaml:"org"`
}

// OrgSpec is a new organisation document applied at Node: the routing
// groups and nodes of the topology, and Connectors (the document's whole
// list; empty: the topology's), signed by the run's CA. Each org step's
// document has the next version (1, 2, ...). Not with external
// connectors.
type OrgSpec struct {
	Node       string          `yaml:"node"`
	Comment    string          `yaml:"comment"`
	Connectors []ConnectorSpec `yaml:"connectors"`
}

// RemoveSpec names the routing group to remove and the node that
// originates its tombstone.
type RemoveSpec struct {
	Node string `yaml:"node"`
	RG   string `yaml:"rg"`
}

// LinkRef names the links a network fault applies to: the bridgehead pairs
// of a connector (every source bridgehead with every target), two nodes, or
// two groups of routing groups (every node of one with every node of the
// other).
type LinkRef struct {
	Connector string     `yaml:"connector"`
	Nodes     []string   `yaml:"nodes"`  // exactly two
	Groups    [][]string `yaml:"groups"` // exactly two lists of RG names
}

// DelaySpec adds latency to links (a slow link).
type DelaySpec struct {
	LinkRef `yaml:",inline"`
	Latency time.Duration `yaml:"latency"`
}

// DropSpec makes new connections and gossip packets fail with a probability.
type DropSpec struct {
	LinkRef     `yaml:",inline"`
	Probability float64 `yaml:"probability"`
}

// FlapSpec cuts and heals links alternately every Period until healed.
type FlapSpec struct {
	LinkRef `yaml:",inline"`
	Period  time.Duration `yaml:"period"`
}

// SendSpec is traffic: Count messages from the public SMTP listener of node
// From to the address To, at Rate messages per second (default 20).
type SendSpec struct {
	From  string  `yaml:"from"`
	To    string  `yaml:"to"`
	Count int     `yaml:"count"`
	Rate  float64 `yaml:"rate"`
}

// Assertion is one check of the run; exactly one field is set.
type Assertion struct {
	// DeliveredExactlyOnce: every message accepted with 250 is in a Maildir
	// of the mesh exactly once by the deadline.
	DeliveredExactlyOnce *Deadline `yaml:"delivered_exactly_once"`
	// LSDBConverged: every live node holds the same LSDB digest by the deadline.
	LSDBConverged *Deadline `yaml:"lsdb_converged"`
	// Route: the RG path from a node to a domain equals Path at some moment
	// in [After, By].
	Route *RouteAssertion `yaml:"route"`
	// MaxAdvertisements: at most Max link-state records originated
	// (mesh Stats().Originated summed over the nodes, or those of RG) in
	// the window [From, To] (To default: end of run).
	MaxAdvertisements *AdvertAssertion `yaml:"max_advertisements"`
	// Convergence: the LSDB converged after step Step within Max.
	Convergence *ConvergenceAssertion `yaml:"convergence"`
	// Refused: at least Min messages were refused (not answered 250), e.g.
	// by a node whose disk is full.
	Refused *CountAssertion `yaml:"refused"`
	// NoLeak: no message for a domain of a routing group was delivered by
	// an external connector (to a smarthost), checked at the end of the run.
	NoLeak *Deadline `yaml:"no_leak"`
	// Tombstone: every live node holds a tombstone for RG by the deadline.
	Tombstone *TombstoneAssertion `yaml:"tombstone"`
	// Bounced: at least Min accepted messages got a failure DSN by the deadline.
	Bounced *BouncedAssertion `yaml:"bounced"`
	// Drained: at some moment in [After, By] the node drains and holds
	// no mail (nothing queued, no SMTP transaction in progress).
	Drained *DrainedAssertion `yaml:"drained"`
}

// DrainedAssertion waits for a draining node to hold no mail.
type DrainedAssertion struct {
	Node  string        `yaml:"node"`
	After time.Duration `yaml:"after"`
	By    time.Duration `yaml:"by"`
}

// TombstoneAssertion waits for a routing group's tombstone everywhere.
type TombstoneAssertion struct {
	RG string        `yaml:"rg"`
	By time.Duration `yaml:"by"`
}

// BouncedAssertion waits for failure DSNs.
type BouncedAssertion struct {
	Min int           `yaml:"min"`
	By  time.Duration `yaml:"by"`
}

// Deadline is an offset from t=0.
type Deadline struct {
	By time.Duration `yaml:"by"`
}

// RouteAssertion is checked repeatedly in its window.
type RouteAssertion struct {
	From   string        `yaml:"from"`
	Domain string        `yaml:"domain"`
	Path   []string      `yaml:"path"`
	After  time.Duration `yaml:"after"`
	By     time.Duration `yaml:"by"`
}

// AdvertAssertion bounds link-state originations.
type AdvertAssertion struct {
	Max  uint64        `yaml:"max"`
	RG   string        `yaml:"rg"`
	From time.Duration `yaml:"from"`
	To   time.Duration `yaml:"to"`
}

// ConvergenceAssertion bounds the convergence time after a named step.
type ConvergenceAssertion struct {
	Step string        `yaml:"step"`
	Max  time.Duration `yaml:"max"`
}

// CountAssertion is a lower bound.
type CountAssertion struct {
	Min int `yaml:"min"`
}

// LoadScenario reads and validates a scenario file.
func LoadScenario(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("harness: read scenario: %w", err)
	}
	sc, err := ParseScenario(data)
	if err != nil {
		return nil, fmt.Errorf("harness: %s: %w", path, err)
	}
	return sc, nil
}

// ParseScenario decodes and validates a scenario.
func ParseScenario(data []byte) (*Scenario, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var sc Scenario
	if err := dec.Decode(&sc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("harness: empty scenario")
		}
		return nil, fmt.Errorf("harness: parse scenario: %w", err)
	}
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	return &sc, nil
}

// Validate checks names and references and fills defaults.
func (sc *Scenario) Validate() error {
	if sc.Name == "" {
		return errors.New("harness: scenario: name is required")
	}
	if sc.Settle <= 0 {
		sc.Settle = 30 * time.Second
	}
	sc.Timers = sc.Timers.withDefaults()
	if err := sc.Topology.validate(); err != nil {
		return err
	}
	names := map[string]bool{}
	var last time.Duration
	for i := range sc.Timeline {
		st := &sc.Timeline[i]
		if err := sc.validateStep(st); err != nil {
			return fmt.Errorf("harness: timeline[%d] (at %v): %w", i, st.At, err)
		}
		if st.Name != "" {
			if names[st.Name] {
				return fmt.Errorf("harness: timeline[%d]: duplicate step name %q", i, st.Name)
			}
			names[st.Name] = true
		}
		last = max(last, st.At)
	}
	slices.SortStableFunc(sc.Timeline, func(a, b Step) int { return int(a.At - b.At) })
	if sc.Duration <= 0 {
		sc.Duration = last + time.Second
	}
	for i := range sc.Assert {
		if err := sc.validateAssertion(&sc.Assert[i], names); err != nil {
			return fmt.Errorf("harness: assert[%d]: %w", i, err)
		}
	}
	return nil
}

func (t *Topology) validate() error {
	if len(t.RoutingGroups) == 0 {
		return errors.New("harness: topology: no routing groups")
	}
	rgs, nodes, domains := map[string]bool{}, map[string]string{}, map[string]string{}
	for i := range t.RoutingGroups {
		rg := &t.RoutingGroups[i]
		if !validName(rg.Name) || rgs[rg.Name] {
			return fmt.Errorf("harness: topology: routing group %q: bad or duplicate name", rg.Name)
		}
		rgs[rg.Name] = true
		if len(rg.Domains) == 0 {
			rg.Domains = []string{rg.Name + ".test"}
		}
		for _, d := range rg.Domains {
			d = strings.ToLower(d)
			if other, dup := domains[d]; dup {
				return fmt.Errorf("harness: topology: domain %q in %s and %s", d, other, rg.Name)
			}
			domains[d] = rg.Name
		}
		if len(rg.Nodes) == 0 {
			return fmt.Errorf("harness: topology: routing group %s has no nodes", rg.Name)
		}
		for _, n := range rg.Nodes {
			if !validName(n.Name) {
				return fmt.Errorf("harness: topology: node %q: bad name", n.Name)
			}
			if _, dup := nodes[n.Name]; dup {
				return fmt.Errorf("harness: topology: duplicate node %q", n.Name)
			}
			nodes[n.Name] = rg.Name
		}
	}
	conns := map[string]bool{}
	for _, c := range t.Connectors {
		if !validName(c.Name) || conns[c.Name] {
			return fmt.Errorf("harness: topology: connector %q: bad or duplicate name", c.Name)
		}
		conns[c.Name] = true
		if !rgs[c.From] || !rgs[c.To] || c.From == c.To {
			return fmt.Errorf("harness: topology: connector %s: from %q to %q must be two known routing groups", c.Name, c.From, c.To)
		}
		if c.Cost < 1 || c.Cost > 100 {
			return fmt.Errorf("harness: topology: connector %s: cost %d not in 1..100", c.Name, c.Cost)
		}
		for _, n := range c.SourceBridgeheads {
			if nodes[n] != c.From {
				return fmt.Errorf("harness: topology: connector %s: source bridgehead %q is not a node of %s", c.Name, n, c.From)
			}
		}
		for _, n := range c.Targets {
			if nodes[n] != c.To {
				return fmt.Errorf("harness: topology: connector %s: target %q is not a node of %s", c.Name, n, c.To)
			}
		}
	}
	return t.validateExternal(conns)
}

func validName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func (sc *Scenario) validateStep(st *Step) error {
	if st.At < 0 {
		return errors.New("negative offset")
	}
	set := 0
	count := func(b bool) {
		if b {
			set++
		}
	}
	count(st.Cut != nil)
	count(st.Heal != nil)
	count(st.HealAll)
	count(st.Partition != nil)
	count(st.Delay != nil)
	count(st.Drop != nil)
	count(st.Flap != nil)
	count(st.Crash != "")
	count(st.Restart != "")
	count(st.DiskFull != "")
	count(st.DiskFree != "")
	count(st.SwapDisk != "")
	count(st.Drain != "")
	count(st.Undrain != "")
	count(st.Send != nil)
	count(st.RemoveRG != nil)
	count(st.Org != nil)
	if set != 1 {
		return fmt.Errorf("a step needs exactly one action, has %d", set)
	}
	t := &sc.Topology
	switch {
	case st.Cut != nil:
		return t.checkLink(st.Cut)
	case st.Heal != nil:
		return t.checkLink(st.Heal)
	case st.Partition != nil:
		if len(st.Partition.Groups) != 2 {
			return errors.New("partition: groups needs two lists of routing groups")
		}
		return t.checkLink(st.Partition)
	case st.Delay != nil:
		if st.Delay.Latency <= 0 {
			return errors.New("delay: latency must be positive")
		}
		return t.checkLink(&st.Delay.LinkRef)
	case st.Drop != nil:
		if st.Drop.Probability <= 0 || st.Drop.Probability > 1 {
			return errors.New("drop: probability must be in (0, 1]")
		}
		return t.checkLink(&st.Drop.LinkRef)
	case st.Flap != nil:
		if st.Flap.Period <= 0 {
			return errors.New("flap: period must be positive")
		}
		return t.checkLink(&st.Flap.LinkRef)
	case st.Crash != "":
		return t.checkNode(st.Crash)
	case st.Restart != "":
		return t.checkNode(st.Restart)
	case st.DiskFull != "":
		return t.checkNode(st.DiskFull)
	case st.DiskFree != "":
		return t.checkNode(st.DiskFree)
	case st.SwapDisk != "":
		return t.checkNode(st.SwapDisk)
	case st.Drain != "":
		return t.checkNode(st.Drain)
	case st.Undrain != "":
		return t.checkNode(st.Undrain)
	case st.Org != nil:
		return t.checkOrg(st.Org)
	case st.RemoveRG != nil:
		if t.rg(st.RemoveRG.RG) == nil {
			return fmt.Errorf("remove_rg: unknown routing group %q", st.RemoveRG.RG)
		}
		return t.checkNode(st.RemoveRG.Node)
	case st.Send != nil:
		s := st.Send
		if err := t.checkNode(s.From); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		if _, ok := t.rgOfAddress(s.To); !ok && !t.externalFor(domainOf(s.To)) {
			return fmt.Errorf("send: to %q: not an address of a routing group's or external connector's domain", s.To)
		}
		if s.Count <= 0 {
			return errors.New("send: count must be positive")
		}
		if s.Rate <= 0 {
			s.Rate = 20
		}
	}
	return nil
}

func (sc *Scenario) validateAssertion(a *Assertion, steps map[string]bool) error {
	set := 0
	for _, b := range []bool{a.DeliveredExactlyOnce != nil, a.LSDBConverged != nil, a.Route != nil,
		a.MaxAdvertisements != nil, a.Convergence != nil, a.Refused != nil, a.NoLeak != nil, a.Tombstone != nil, a.Bounced != nil, a.Drained != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		return fmt.Errorf("an assertion needs exactly one kind, has %d", set)
	}
	t := &sc.Topology
	switch {
	case a.DeliveredExactlyOnce != nil:
		if a.DeliveredExactlyOnce.By <= 0 {
			return errors.New("delivered_exactly_once: by is required")
		}
	case a.LSDBConverged != nil:
		if a.LSDBConverged.By <= 0 {
			return errors.New("lsdb_converged: by is required")
		}
	case a.Route != nil:
		r := a.Route
		if err := t.checkNode(r.From); err != nil {
			return fmt.Errorf("route: %w", err)
		}
		if len(r.Path) == 0 || r.Domain == "" || r.By < r.After {
			return errors.New("route: domain, path and by >= after are required")
		}
		for _, rg := range r.Path {
			if t.rg(rg) == nil {
				return fmt.Errorf("route: unknown routing group %q in path", rg)
			}
		}
	case a.MaxAdvertisements != nil:
		m := a.MaxAdvertisements
		if m.RG != "" && t.rg(m.RG) == nil {
			return fmt.Errorf("max_advertisements: unknown routing group %q", m.RG)
		}
		if m.To != 0 && m.To < m.From {
			return errors.New("max_advertisements: to before from")
		}
	case a.Tombstone != nil:
		if t.rg(a.Tombstone.RG) == nil || a.Tombstone.By <= 0 {
			return fmt.Errorf("tombstone: a known rg and by are required")
		}
	case a.Bounced != nil:
		if a.Bounced.Min <= 0 || a.Bounced.By <= 0 {
			return errors.New("bounced: min and by are required")
		}
	case a.Drained != nil:
		if err := t.checkNode(a.Drained.Node); err != nil {
			return fmt.Errorf("drained: %w", err)
		}
		if a.Drained.By <= 0 || a.Drained.By < a.Drained.After {
			return errors.New("drained: by (>= after) is required")
		}
	case a.Convergence != nil:
		if !steps[a.Convergence.Step] {
			return fmt.Errorf("convergence: no step named %q", a.Convergence.Step)
		}
		if a.Convergence.Max <= 0 {
			return errors.New("convergence: max must be positive")
		}
	}
	return nil
}

func (t *Topology) rg(name string) *RGSpec {
	for i := range t.RoutingGroups {
		if t.RoutingGroups[i].Name == name {
			return &t.RoutingGroups[i]
		}
	}
	return nil
}

// rgOf returns the routing group of a node.
func (t *Topology) rgOf(node string) (string, bool) {
	for _, rg := range t.RoutingGroups {
		for _, n := range rg.Nodes {
			if n.Name == node {
				return rg.Name, true
			}
		}
	}
	return "", false
}

func (t *Topology) checkNode(name string) error {
	if _, ok := t.rgOf(name); !ok {
		return fmt.Errorf("unknown node %q", name)
	}
	return nil
}

func (t *Topology) rgOfAddress(addr string) (string, bool) {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return "", false
	}
	dom := strings.ToLower(addr[at+1:])
	for _, rg := range t.RoutingGroups {
		for _, d := range rg.Domains {
			if strings.EqualFold(d, dom) {
				return rg.Name, true
			}
		}
	}
	return "", false
}

func domainOf(addr string) string {
	if at := strings.LastIndexByte(addr, '@'); at > 0 {
		return addr[at+1:]
	}
	return ""
}

func (t *Topology) connector(name string) *ConnectorSpec {
	for i := range t.Connectors {
		if t.Connectors[i].Name == name {
			return &t.Connectors[i]
		}
	}
	return nil
}

// NodeNames lists every node in topology order.
func (t *Topology) NodeNames() []string {
	var out []string
	for _, rg := range t.RoutingGroups {
		for _, n := range rg.Nodes {
			out = append(out, n.Name)
		}
	}
	return out
}

func (t *Topology) nodesOf(rg string) []string {
	r := t.rg(rg)
	if r == nil {
		return nil
	}
	var out []string
	for _, n := range r.Nodes {
		out = append(out, n.Name)
	}
	return out
}

// sources and targets of a connector, resolved to node names.
func (t *Topology) ends(c *ConnectorSpec) (src, dst []string) {
	src, dst = c.SourceBridgeheads, c.Targets
	if len(src) == 0 {
		src = t.nodesOf(c.From)
	}
	if len(dst) == 0 {
		dst = t.nodesOf(c.To)
	}
	return src, dst
}

func (t *Topology) checkLink(l *LinkRef) error {
	set := 0
	if l.Connector != "" {
		set++
		if t.connector(l.Connector) == nil && t.external(l.Connector) == nil {
			return fmt.Errorf("unknown connector %q", l.Connector)
		}
	}
	if l.Nodes != nil {
		set++
		if len(l.Nodes) != 2 || l.Nodes[0] == l.Nodes[1] {
			return errors.New("nodes needs two different node names")
		}
		for _, n := range l.Nodes {
			if err := t.checkNode(n); err != nil {
				return err
			}
		}
	}
	if l.Groups != nil {
		set++
		if len(l.Groups) != 2 {
			return errors.New("groups needs two lists of routing groups")
		}
		for _, g := range l.Groups {
			for _, rg := range g {
				if t.rg(rg) == nil {
					return fmt.Errorf("unknown routing group %q", rg)
				}
			}
		}
	}
	if set != 1 {
		return errors.New("name exactly one of connector, nodes, groups")
	}
	return nil
}

// pairs resolves a link reference to node pairs.
func (t *Topology) pairs(l *LinkRef) [][2]string {
	var out [][2]string
	switch {
	case l.Connector != "" && t.external(l.Connector) != nil:
		e := t.external(l.Connector)
		src := e.SourceBridgeheads
		if len(src) == 0 {
			src = t.nodesOf(e.From)
		}
		for _, s := range src {
			out = append(out, [2]string{s, e.host()})
		}
	case l.Connector != "":
		src, dst := t.ends(t.connector(l.Connector))
		for _, s := range src {
			for _, d := range dst {
				out = append(out, [2]string{s, d})
			}
		}
	case l.Nodes != nil:
		out = append(out, [2]string{l.Nodes[0], l.Nodes[1]})
	case l.Groups != nil:
		a, b := t.groupNodes(l.Groups[0]), t.groupNodes(l.Groups[1])
		for _, x := range a {
			for _, y := range b {
				out = append(out, [2]string{x, y})
			}
		}
	}
	return out
}

func (t *Topology) groupNodes(rgs []string) []string {
	var out []string
	for _, rg := range rgs {
		out = append(out, t.nodesOf(rg)...)
	}
	return out
}

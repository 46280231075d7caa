package routing

import (
	"fmt"
	"slices"
	"strings"

	"github.com/meshd/meshd/linkstate"
)

// Route decides where a message's recipients in domain go next. The
// Decision is filled in even when err != nil, so a trace can show why;
// err wraps ErrNoRoute or ErrInvalidDomain.
//
// Rules, in order:
//  1. The most specific matching address space wins: exact domain, then
//     "*.suffix" with the most labels, then "*". A level whose candidates
//     are all unusable falls through to the next, less specific level,
//     unless one of them is an RG's own address space: mail for the
//     organisation's domains waits instead of leaking out through "*".
//  2. Within the level, the least total cost (path cost + address-space
//     cost) wins. Local delivery wins ties.
//  3. Remaining ties are spread by a stable hash of (message ID, domain)
//     over the equal-cost first-hop connectors, then over their live
//     bridgeheads.
//
// When this node drains, the decision is then turned into a hand-off to
// another member of its routing group (drain.go).
func (t *Table) Route(msgID, domain string) (Decision, error) {
	d, err := t.route(msgID, domain)
	if t.draining[t.self.Node] {
		return t.handOff(d, err)
	}
	return d, err
}

func (t *Table) route(msgID, domain string) (Decision, error) {
	d := Decision{MessageID: msgID, Domain: domain, Node: t.self.Node, RG: t.self.RG}
	dom, ok := normalizeDomain(domain)
	if !ok {
		d.Kind, d.Refused, d.Why = NoRoute, ReasonInvalidDomain, fmt.Sprintf("%q is not a domain", domain)
		return d, fmt.Errorf("routing: route %q: %w", domain, ErrInvalidDomain)
	}
	d.Domain = dom
	h := spreadHash(msgID, dom)

	var lv [8]level
	levels := t.levels(lv[:0], dom)
	for li, l := range levels {
		owned := l.head >= 0 && t.hasOwned(l.head)
		// An owner without a record in the table (aged out, not yet
		// learned, decommissioned) still owns its domains: nothing at this
		// level but another owner's own address space may take its mail.
		if (owned || len(l.ghosts) == 0) && l.head >= 0 && t.decideLevel(&d, l.head, h) {
			for _, rest := range levels[li+1:] {
				t.appendLevel(&d, rest, ReasonLessSpecific)
			}
			return d, nil
		}
		if !owned && len(l.ghosts) > 0 && l.head >= 0 {
			t.appendAll(&d, l.head, ReasonOwnedDomain)
		}
		for _, gs := range l.ghosts {
			r := ReasonOwnerUnreachable
			if gs.Removed {
				r = ReasonRemoved
			}
			addAlt(&d, Alternative{AddressSpace: gs.Pattern, RG: gs.RG, Reason: r})
		}
		if owned || len(l.ghosts) > 0 {
			for _, rest := range levels[li+1:] {
				t.appendLevel(&d, rest, ReasonOwnedDomain)
			}
			d.Kind = NoRoute
			return d, t.refuse(&d, dom, l, owned)
		}
	}
	d.Kind = NoRoute
	if len(levels) == 0 {
		d.Refused, d.Why = ReasonNoMatch, "no address space of the mesh matches "+dom
	} else {
		d.Refused, d.Why = refusal(d.Alternatives, dom)
	}
	return d, fmt.Errorf("routing: route %s: %s: %w", dom, d.Why, ErrNoRoute)
}

// refuse explains why the level that held an organisation domain had no
// usable candidate. Only when every owner is a removed group (and no
// owner with a record remains) is the refusal permanent (ErrRemoved).
func (t *Table) refuse(d *Decision, dom string, l level, owned bool) error {
	removed := !owned
	var rgs []string
	for _, gs := range l.ghosts {
		removed = removed && gs.Removed
		rgs = append(rgs, gs.RG)
	}
	switch {
	case removed:
		d.Refused = ReasonRemoved
		d.Why = fmt.Sprintf("%s belongs to routing group %s, which was removed from the organisation; mail for it cannot be delivered", dom, strings.Join(rgs, ", "))
		return fmt.Errorf("routing: route %s: %w: %w", dom, ErrRemoved, ErrNoRoute)
	case !owned:
		d.Refused = ReasonOwnerUnreachable
		d.Why = fmt.Sprintf("%s belongs to routing group %s, whose link-state record is not held (unreachable or aged out); waiting for it, never leaving by a broader connector", dom, strings.Join(rgs, ", "))
	default:
		d.Refused, d.Why = refusal(d.Alternatives, dom)
		d.Why += "; an organisation domain waits for its routing group, never leaving by a broader connector"
	}
	return fmt.Errorf("routing: route %s: %s: %w", dom, d.Why, ErrNoRoute)
}

// refusal names the reason of the most specific unusable candidate.
func refusal(alts []Alternative, dom string) (Reason, string) {
	for _, a := range alts {
		switch a.Reason {
		case ReasonUnreachable:
			return a.Reason, fmt.Sprintf("no path of up connectors leads to %s, which delivers %s", a.RG, a.AddressSpace)
		case ReasonConnectorDown, ReasonSuppressed:
			return a.Reason, fmt.Sprintf("connector %s of %s, which carries %s, is %s", a.Exit, a.RG, a.AddressSpace, map[Reason]string{ReasonConnectorDown: "down", ReasonSuppressed: "suppressed by flap damping"}[a.Reason])
		case ReasonNoBridgehead:
			return a.Reason, fmt.Sprintf("no bridgehead this node can use leads towards %s for %s", a.RG, a.AddressSpace)
		}
	}
	return ReasonUnreachable, "no usable route to " + dom
}

// level is one specificity level of the candidates for a domain: a chain
// of the table's candidates (head, -1 when none) and the owned spaces of
// the same pattern whose groups have no record.
type level struct {
	head   int32
	ghosts []OwnedSpace
}

// levels appends the candidate levels matching dom, most specific first.
func (t *Table) levels(dst []level, dom string) []level {
	x := t.idx
	add := func(m map[string]int32, om map[string][]OwnedSpace, key string) {
		l := level{head: -1}
		if c, ok := m[key]; ok {
			l.head = c
		}
		if t.owned != nil {
			l.ghosts = t.ghosts(om, key)
		}
		if l.head >= 0 || len(l.ghosts) > 0 {
			dst = append(dst, l)
		}
	}
	var oe, ow map[string][]OwnedSpace
	if t.owned != nil {
		oe, ow = t.owned.exact, t.owned.wild
	}
	add(x.exact, oe, dom)
	for s := dom; ; {
		i := strings.IndexByte(s, '.')
		if i < 0 {
			break
		}
		s = s[i+1:]
		add(x.wild, ow, s)
	}
	if x.star >= 0 {
		dst = append(dst, level{head: x.star})
	}
	return dst
}

func (t *Table) appendLevel(d *Decision, l level, r Reason) {
	if l.head >= 0 {
		t.appendAll(d, l.head, r)
	}
	for _, gs := range l.ghosts {
		addAlt(d, Alternative{AddressSpace: gs.Pattern, RG: gs.RG, Reason: r})
	}
}

func (t *Table) hasOwned(head int32) bool {
	for ci := head; ci >= 0; ci = t.idx.cands[ci].next {
		if t.idx.cands[ci].conn < 0 {
			return true
		}
	}
	return false
}

// eval is a candidate's standing within its level.
type eval struct {
	cand   int32
	usable bool
	reason Reason // when !usable
	path   uint64
	total  uint64
}

// option is one way to take the best total: a local connector (index
// into t.conns) or local delivery (conn == -1), with the candidate it
// serves.
type option struct {
	conn int32
	cand int32
}

// evaluate computes a candidate's path cost and usability.
func (t *Table) evaluate(ci int32) eval {
	c := &t.idx.cands[ci]
	g := t.g
	ev := eval{cand: ci}
	if g.reachable(c.owner) {
		ev.path = g.dist[c.owner]
	}
	ev.total = ev.path + uint64(c.cost)
	ext := t.ext(c)
	switch {
	case ext != nil && dampened(ext):
		ev.reason = ReasonSuppressed
	case ext != nil && !ext.Up():
		ev.reason = ReasonConnectorDown
	case c.owner == g.local && ext == nil:
		ev.usable = true
	case c.owner == g.local:
		ci := t.localExt(ext)
		ev.usable = ci >= 0 && t.conns[ci].usable
		ev.reason = ReasonNoBridgehead
	case !g.reachable(c.owner):
		ev.reason = ReasonUnreachable
	default:
		for b := int32(0); b < int32(g.nbits); b++ {
			if g.hasFirstHop(c.owner, b) && t.conns[b].usable {
				ev.usable = true
				break
			}
		}
		ev.reason = ReasonNoBridgehead
	}
	return ev
}

// decideLevel fills d from the best usable candidate of one specificity
// level (the chain at head) and reports whether there was one; otherwise
// it only records why each candidate was unusable.
func (t *Table) decideLevel(d *Decision, head int32, h uint64) bool {
	var buf [8]eval
	evs := buf[:0]
	for ci := head; ci >= 0; ci = t.idx.cands[ci].next {
		evs = append(evs, t.evaluate(ci))
	}
	best := infDist
	for _, ev := range evs {
		if ev.usable && ev.total < best {
			best = ev.total
		}
	}

	// Collect the ways to reach the best total, one per local connector.
	var opts []option
	local := int32(-1)
	for _, ev := range evs {
		if !ev.usable || ev.total != best {
			continue
		}
		c := &t.idx.cands[ev.cand]
		switch {
		case c.owner == t.g.local && c.conn < 0:
			if local < 0 {
				local = ev.cand
			}
		case c.owner == t.g.local:
			opts = addOption(opts, option{conn: t.localExt(t.ext(c)), cand: ev.cand})
		default:
			for b := int32(0); b < int32(t.g.nbits); b++ {
				if t.g.hasFirstHop(c.owner, b) && t.conns[b].usable {
					opts = addOption(opts, option{conn: b, cand: ev.cand})
				}
			}
		}
	}
	if local < 0 && len(opts) == 0 {
		for _, ev := range evs {
			addAlt(d, t.alternative(ev, ev.reason, ""))
		}
		return false
	}

	var chosen option
	if local >= 0 {
		chosen = option{conn: -1, cand: local}
	} else {
		slices.SortFunc(opts, func(a, b option) int { return strings.Compare(t.conns[a.conn].c.ID, t.conns[b.conn].c.ID) })
		chosen = opts[pick(h, saltConnector, len(opts))]
	}
	t.fill(d, chosen, h)

	// Explain the losers of this level.
	for _, ev := range evs {
		switch {
		case !ev.usable:
			addAlt(d, t.alternative(ev, ev.reason, ""))
		case ev.total > best:
			addAlt(d, t.alternative(ev, ReasonHigherCost, ""))
		case ev.cand == chosen.cand:
		case local >= 0:
			addAlt(d, t.alternative(ev, ReasonLocalPreferred, ""))
		case !slices.ContainsFunc(opts, func(o option) bool { return o.cand == ev.cand }):
			// Same cost, but every first hop it has is already taken by an
			// earlier candidate.
			addAlt(d, t.alternative(ev, ReasonTieBreak, ""))
		}
	}
	if local < 0 {
		for _, o := range opts {
			if o.conn != chosen.conn {
				addAlt(d, t.alternative(t.evaluate(o.cand), ReasonTieBreak, t.conns[o.conn].c.ID))
			}
		}
	}
	return true
}

// addOption keeps the first candidate per connector.
func addOption(opts []option, o option) []option {
	for _, x := range opts {
		if x.conn == o.conn {
			return opts
		}
	}
	return append(opts, o)
}

// fill writes the chosen route into d.
func (t *Table) fill(d *Decision, o option, h uint64) {
	g := t.g
	c := &t.idx.cands[o.cand]
	d.AddressSpace = c.pattern
	d.DestRG = g.names[c.owner]
	d.AddressSpaceCost = uint64(c.cost)
	d.Exit = connRef(t.ext(c), d.DestRG)
	if c.owner != g.local {
		d.PathCost = g.dist[c.owner]
	}
	d.TotalCost = d.PathCost + d.AddressSpaceCost
	if o.conn < 0 {
		d.Kind = Local
		d.Path = []string{g.names[g.local]}
		return
	}
	lc := &t.conns[o.conn]
	d.Connector = connRef(lc.c, t.self.RG)
	if lc.bit >= 0 {
		d.Path = g.path(c.owner, lc.bit)
	} else {
		d.Path = []string{g.names[g.local]}
	}
	switch {
	case !lc.direct:
		d.Kind = Intra
		d.NextHops = spread(lc.sources, lc.nsources, h, saltSource)
	case lc.bit < 0:
		d.Kind = External
		d.NextHops = slices.Clone(lc.targets)
		d.MX = lc.c.Smarthost == ""
	default:
		d.Kind = Remote
		d.NextHops = spread(lc.targets, lc.ntargets, h, saltTarget)
	}
}

// spread orders hops for one message: among the first nup (up) hops the
// hash picks the first and the rest follow in rotation; down hops come
// last as a last resort.
func spread(hops []Hop, nup int, h uint64, salt uint64) []Hop {
	out := make([]Hop, 0, len(hops))
	if nup > 0 {
		k := pick(h, salt, nup)
		out = append(out, hops[k:nup]...)
		out = append(out, hops[:k]...)
	}
	return append(out, hops[nup:]...)
}

func (t *Table) alternative(ev eval, r Reason, firstHop string) Alternative {
	c := &t.idx.cands[ev.cand]
	a := Alternative{
		AddressSpace:     c.pattern,
		RG:               t.g.names[c.owner],
		Exit:             candConnID(t.g, c),
		FirstHop:         firstHop,
		Reachable:        t.g.reachable(c.owner),
		AddressSpaceCost: uint64(c.cost),
		Reason:           r,
	}
	if a.Reachable {
		a.PathCost = t.g.dist[c.owner]
		a.TotalCost = a.PathCost + a.AddressSpaceCost
	}
	return a
}

func (t *Table) appendAll(d *Decision, head int32, r Reason) {
	for ci := head; ci >= 0; ci = t.idx.cands[ci].next {
		addAlt(d, t.alternative(eval{cand: ci}, r, ""))
	}
}

// MaxAlternatives bounds the alternatives a Decision lists (a "*" served
// by a hundred RGs would otherwise make every decision long); the rest are
// counted in Decision.Omitted.
const MaxAlternatives = 32

func addAlt(d *Decision, a Alternative) {
	if len(d.Alternatives) >= MaxAlternatives {
		d.Omitted++
		return
	}
	d.Alternatives = append(d.Alternatives, a)
}

// Hash salts: independent choices for connector, source and target.
const (
	saltConnector uint64 = 0
	saltSource    uint64 = 1
	saltTarget    uint64 = 2
)

// spreadHash is FNV-1a (64 bit) over msgID, a zero byte and domain: the
// same message and domain always take the same path, on every node.
func spreadHash(msgID, domain string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(msgID); i++ {
		h ^= uint64(msgID[i])
		h *= prime
	}
	h *= prime // the zero separator byte: h ^= 0 is a no-op
	for i := 0; i < len(domain); i++ {
		h ^= uint64(domain[i])
		h *= prime
	}
	return h
}

// pick maps a hash to 0..n-1. FNV's low bits are weak, so the value goes
// through the splitmix64 finaliser (with a salt per decision) first.
func pick(h, salt uint64, n int) int {
	x := h + (salt+1)*0x9e3779b97f4a7c15
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return int(x % uint64(n))
}

// dampened: flap damping holds the connector down. An operator's down of a
// connector without pairs is also advertised as Suppressed (nothing else
// can say it), so only a suppressed connector with observed pairs counts.
func dampened(c *linkstate.Connector) bool {
	return c.Suppressed && !c.Bridge && len(c.Pairs) > 0
}

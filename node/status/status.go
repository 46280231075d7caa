package status

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/node/adminapi"
)

// Status is what the page shows and GET /status.json returns.
type Status struct {
	Node          string            `json:"node"`
	RG            string            `json:"rg"`
	Master        string            `json:"master"` // master of this RG per gossip ("" when unknown)
	Digest        string            `json:"digest"` // LSDB digest, hex
	Records       int               `json:"records"`
	Time          time.Time         `json:"time"`
	Members       []MemberStatus    `json:"members"`
	RoutingGroups []RGStatus        `json:"routing_groups"`
	Connectors    []ConnectorStatus `json:"connectors"`
	Queues        []QueueStatus     `json:"queues"`
	// Drain says, while this node drains (meshctl node drain), since when
	// and what it still holds; "" in service.
	Drain string `json:"drain"`
}

// MemberStatus is one live member of this node's routing group.
type MemberStatus struct {
	Name      string `json:"name"`
	SMTP      string `json:"smtp"`
	LinkState string `json:"linkstate"`
	Priority  uint32 `json:"priority"`
	Master    bool   `json:"master"`
	Draining  bool   `json:"draining,omitempty"` // it drains: it takes no mail
	// Unverified, for a gossip member that has not proven its name with
	// a certificate (it counts for nothing), says why.
	Unverified string `json:"unverified,omitempty"`
}

// RGStatus is one routing group's record.
type RGStatus struct {
	Name          string    `json:"name"`
	Master        string    `json:"master"`
	Version       string    `json:"version"` // Epoch.Major.Minor.User
	IssuedAt      time.Time `json:"issued_at"`
	Members       []string  `json:"members"`
	AddressSpaces []string  `json:"address_spaces"` // "pattern (cost)"
	Local         bool      `json:"local"`
}

// ConnectorStatus is one connector with its bridgehead pairs.
type ConnectorStatus struct {
	RG            string       `json:"rg"` // the RG it leaves from
	ID            string       `json:"id"`
	To            string       `json:"to"` // RG, or "" for an external connector
	Smarthost     string       `json:"smarthost,omitempty"`
	Cost          uint32       `json:"cost"`
	State         State        `json:"state"`
	Color         string       `json:"color"`
	Bridge        bool         `json:"bridge"`
	Suppressed    bool         `json:"suppressed"`
	Admin         string       `json:"admin,omitempty"`   // "down" or "drain" when overridden
	Penalty       *float64     `json:"penalty,omitempty"` // damping penalty, local connectors only
	AddressSpaces []string     `json:"address_spaces,omitempty"`
	Pairs         []PairStatus `json:"pairs"`
}

// PairStatus is one (source bridgehead, target bridgehead) pair.
type PairStatus struct {
	Source string `json:"source"`
	Target string `json:"target"`
	State  State  `json:"state"`
}

// QueueStatus is the queue towards one next hop.
type QueueStatus struct {
	NextHop          string  `json:"next_hop"`
	Messages         int     `json:"messages"`
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
	OldestAge        string  `json:"oldest_age"` // rounded, for people
}

// view is one moment of a Source, read once per request.
type view struct {
	st   Status
	recs []*linkstate.Record
	opts GraphOptions
}

// read takes one consistent-enough reading of src. Every list in the
// result is sorted so that equal sources give equal output.
func read(src Source, now time.Time) view {
	node, rg := src.Self()
	recs := sortedRecords(src.Snapshot())
	mv := src.View()
	dg := src.Digest()
	opts := GraphOptions{LocalRG: rg, Admin: map[linkstate.ConnectorKey]string{}, Penalties: map[linkstate.ConnectorKey]float64{}}
	if a, ok := src.(AdminSource); ok {
		for id, st := range a.AdminStates() {
			opts.Admin[linkstate.ConnectorKey{From: rg, ID: id}] = st
		}
	}
	for id, p := range src.Penalties() {
		opts.Penalties[linkstate.ConnectorKey{From: rg, ID: id}] = p
	}

	st := Status{
		Node: node, RG: rg, Master: mv.Master, Digest: hex.EncodeToString(dg[:]), Records: len(recs), Time: now,
		Members: []MemberStatus{}, RoutingGroups: []RGStatus{}, Connectors: []ConnectorStatus{}, Queues: []QueueStatus{},
	}
	for _, m := range mv.Members {
		st.Members = append(st.Members, MemberStatus{Name: m.Name, SMTP: m.SMTP, LinkState: m.LinkState, Priority: m.Priority, Master: m.Name == mv.Master,
			Draining: m.Draining})
	}
	for _, m := range mv.Unverified {
		st.Members = append(st.Members, MemberStatus{Name: m.Name, SMTP: m.SMTP, LinkState: m.LinkState, Priority: m.Priority, Unverified: m.Reason})
	}
	slices.SortFunc(st.Members, func(a, b MemberStatus) int { return cmp.Compare(a.Name, b.Name) })
	// The page lists the LSDB as the admin API's GET /api/mesh/lsdb shows
	// it (one projection, adminapi.FromRecords); the graph draws the
	// records themselves.
	var admin map[string]string
	if a, ok := src.(AdminSource); ok {
		admin = a.AdminStates()
	}
	for _, r := range adminapi.FromRecords(recs, now, rg, admin, src.Penalties()) {
		st.RoutingGroups = append(st.RoutingGroups, rgStatus(r, rg))
		for _, c := range r.Connectors {
			st.Connectors = append(st.Connectors, connectorStatus(c))
		}
	}
	if d, ok := src.(DrainSource); ok {
		st.Drain = drainLine(d.DrainStatus())
	}
	for _, q := range src.Queues() {
		st.Queues = append(st.Queues, QueueStatus{
			NextHop: q.NextHop, Messages: q.Messages,
			OldestAgeSeconds: q.OldestAge.Seconds(), OldestAge: q.OldestAge.Round(time.Second).String(),
		})
	}
	slices.SortFunc(st.Queues, func(a, b QueueStatus) int { return cmp.Compare(a.NextHop, b.NextHop) })
	return view{st: st, recs: recs, opts: opts}
}

func rgStatus(r adminapi.RGRecord, local string) RGStatus {
	s := RGStatus{Name: r.RG, Master: r.Master, Version: r.Version, IssuedAt: r.IssuedAt, Local: r.RG == local,
		Members: []string{}, AddressSpaces: spaceStrings(r.AddressSpaces)}
	for _, m := range r.Members {
		s.Members = append(s.Members, m.Name)
	}
	return s
}

func connectorStatus(c adminapi.ConnectorInfo) ConnectorStatus {
	st := infoState(c)
	cs := ConnectorStatus{
		RG: c.From, ID: c.ID, To: c.To, Smarthost: c.Smarthost, Cost: c.Cost, State: st, Color: st.Color(),
		Bridge: c.Bridge, Suppressed: c.Suppressed, Admin: c.Admin, Penalty: c.Penalty, Pairs: []PairStatus{},
	}
	if c.To == "" {
		cs.AddressSpaces = spaceStrings(c.AddressSpaces)
	}
	for _, p := range c.Pairs {
		ps := PairStatus{Source: p.Source, Target: p.Target, State: StateDown}
		if p.Up {
			ps.State = StateUp
		}
		cs.Pairs = append(cs.Pairs, ps)
	}
	return cs
}

// spaceStrings writes address spaces (sorted) as "pattern (cost)".
func spaceStrings(spaces []adminapi.AddressSpace) []string {
	out := make([]string, len(spaces))
	for i, as := range spaces {
		out[i] = as.Pattern + " (" + itoa(as.Cost) + ")"
	}
	return out
}

func spaceList(spaces []linkstate.AddressSpace) []string {
	s := slices.Clone(spaces)
	slices.SortFunc(s, func(a, b linkstate.AddressSpace) int {
		return cmp.Or(cmp.Compare(a.Pattern, b.Pattern), cmp.Compare(a.Cost, b.Cost))
	})
	out := make([]string, len(s))
	for i, as := range s {
		out[i] = as.Pattern + " (" + itoa(as.Cost) + ")"
	}
	return out
}

// drainLine is the page's sentence for a node that drains.
func drainLine(d adminapi.DrainStatus) string {
	if !d.Draining {
		return ""
	}
	s := "DRAINING"
	if d.Since != nil {
		s += " since " + d.Since.UTC().Format("2006-01-02 15:04:05Z")
	}
	s += fmt.Sprintf(": %d queued (%d held), %d transactions in progress", d.Queued, d.Held, d.Transactions)
	if d.Done {
		s += "; drained: it can be stopped and its data directory removed"
	} else if len(d.Members) > 0 {
		s += "; handing its mail to " + strings.Join(d.Members, ", ")
	} else {
		s += "; no member takes its mail"
	}
	return s
}

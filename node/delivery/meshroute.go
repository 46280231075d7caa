package delivery

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/meshd/meshd/header"
	"github.com/meshd/meshd/meshid"
	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/routing"
	"github.com/meshd/meshd/smtp"
	"github.com/meshd/meshd/smtp/reply"
)

// meshGroup turns the routing decision for a domain into a destination
// group: local delivery, a hop to another mesh node (inside this routing
// group or to a target bridgehead of the next), out of the mesh through an
// external connector, or no route (the message waits where it is and is
// routed again on the next table).
func (t *transports) meshGroup(m *queue.Message, domain string) *group {
	msgID := m.ID
	tab := t.mesh.Routes()
	if tab == nil {
		return &group{key: KindNoRoute, kind: KindNoRoute, why: "no routing table yet"}
	}
	d, err := tab.Route(msgID, domain)
	switch {
	case errors.Is(err, routing.ErrInvalidDomain):
		return &group{key: "invalid:" + domain, kind: KindNoRoute, why: "invalid domain " + domain}
	case errors.Is(err, routing.ErrRemoved):
		// Decommissioned: nothing will ever deliver it; a failure DSN now.
		return &group{key: "removed:" + domain, kind: KindNoRoute, perm: true, why: d.Why}
	case err != nil || d.Kind == routing.NoRoute:
		why := "no route to " + domain + " in the mesh now; waiting for link state"
		if d.Why != "" {
			why = d.Why
		}
		return &group{key: KindNoRoute, kind: KindNoRoute, why: why}
	}
	switch d.Kind {
	case routing.Local:
		return t.localGroup()
	case routing.External:
		if d.Exit != nil && d.Exit.Smarthost != "" {
			return &group{key: "smarthost:" + d.Exit.Smarthost, kind: KindSmarthost, smarthost: d.Exit.Smarthost, perDestCap: t.cfg.Outbound.MaxPerDestination}
		}
		return &group{key: "mx:" + domain, kind: KindMX, domain: domain, perDestCap: t.cfg.Outbound.MaxPerDestination}
	}
	// Intra or Remote: one copy per next hop; fallbacks follow in order.
	var hops []string
	for _, h := range d.NextHops {
		hops = append(hops, h.Addr)
	}
	if len(hops) == 0 {
		return &group{key: KindNoRoute, kind: KindNoRoute, why: "no live bridgehead towards " + domain}
	}
	// A route into a routing group the message has entered as often as a
	// group may be entered would be refused there as a loop (554 5.4.6):
	// the message waits here, at the point of failure, for a table that
	// leads forward.
	if d.Kind == routing.Remote && len(d.Path) > 1 && meshid.Visits(m.Trace, d.Path[1]) >= meshid.MaxVisits {
		return &group{key: KindNoRoute, kind: KindNoRoute,
			why: "the route to " + domain + " leads back into " + d.Path[1] + " again; waiting for link state"}
	}
	g := &group{key: "mesh:" + hops[0], kind: KindMesh, hops: hops, remote: d.Kind == routing.Remote,
		perDestCap: t.cfg.Mesh.MaxPerPeer}
	if d.Connector != nil && d.Kind == routing.Remote {
		g.connector = d.Connector.ID
	}
	return g
}

// reportHop feeds the outcome of a session over a connector's bridgehead
// pair into failure detection: reaching the peer's MAIL stage counts as
// up whatever it answered to the recipients; only failing to hold a
// session counts as down.
func (t *transports) reportHop(g *group, addr string, err error) {
	if g.kind != KindMesh || g.connector == "" || t.mesh == nil {
		return
	}
	var de *smtp.DeliveryError
	reached := err == nil || (errors.As(err, &de) && de.Code != 0 && de.Op != "connect" && de.Op != "starttls")
	t.mesh.ReportAttempt(g.connector, addr, reached)
}

// meshContent is the copy sent to the next hop: our mesh headers replace
// any the message carries. The copy's ID is derived from the message's
// origin ID (its ID where it entered the mesh, carried in X-Meshd-Origin)
// and the recipients of this copy. So the same recipients of the same
// message have the same ID at every hop and over every route: a resend
// after a crash, or a copy that reaches a node again by another path after
// a route changed in the middle of a transfer, is a duplicate there (250,
// dropped), while a retry for fewer recipients is a new copy. A hop out of
// the routing group adds it to the trace. age is the X-Meshd-Age field
// (ageField, shadowcheck.go).
func meshContent(m *queue.Message, body []byte, g *group, rg string, idKey []byte, age string) content {
	trace := slices.Clone(m.Trace)
	if g.remote {
		trace = append(trace, rg) // every exit counts: a re-entry shows twice
	}
	origin := originID(m, body)
	g.copyID = copyID(origin, g, idKey)
	hdr := fmt.Sprintf("%s: %s\r\n%s: %s\r\n", meshid.HeaderID, g.copyID, meshid.HeaderOrigin, origin)
	if len(trace) > 0 {
		hdr += fmt.Sprintf("%s: %s\r\n", meshid.HeaderTrace, meshid.FormatTrace(trace))
	}
	hdr += age
	if len(m.HopHeader) == 0 { // the whole message in the body (content.go)
		return content{head: []byte(hdr), body: header.StripPrefix(body, meshid.FieldPrefix)}
	}
	_, rest := peerFields(m, body)
	head := make([]byte, 0, len(hdr)+len(m.HopHeader))
	return content{head: append(append(head, hdr...), m.HopHeader...), body: rest}
}

// copyID is the ID of g's copy of m (see meshContent).
func copyID(origin string, g *group, idKey []byte) string {
	return meshid.Copy(idKey, origin, rcptAddrs(g.rcpts))
}

// originID is the ID the message had where it entered the mesh: the
// X-Meshd-Origin a mesh peer gave it (the sink strips the header from
// anyone else), or its own ID at its first node.
func originID(m *queue.Message, body []byte) string {
	if m.Origin != "" {
		return m.Origin // read at accept
	}
	// A record queued before Envelope.Origin existed: read the header.
	if v := strings.ToLower(strings.TrimSpace(header.Value(body, meshid.HeaderOrigin))); meshid.Valid(v) {
		return v
	}
	return m.ID
}

// loopsWait turns a next hop's loop refusal (554 5.4.6: its routing group
// is already in the trace) into a temporary failure: the route changed
// under the message, and it waits for one that leads forward rather than
// bouncing.
func loopsWait(res []queue.Result) []queue.Result {
	for i, r := range res {
		if r.Outcome == queue.PermFail && r.Reply.Same(reply.Loop("")) {
			res[i].Outcome = queue.TempFail
			res[i].Reply = *reply.TempLoop("next hop refused a loop; waiting for another route (" + r.Reply.String() + ")")
		}
	}
	return res
}

// rcptAddrs lists the addresses of rcpts.
func rcptAddrs(rcpts []queue.Recipient) []string {
	out := make([]string, len(rcpts))
	for i, r := range rcpts {
		out[i] = r.Addr
	}
	return out
}

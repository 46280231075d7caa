package node

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/linkstate/channel"
	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/node/membership"
	"github.com/meshd/meshd/node/mesh"
	"github.com/meshd/meshd/node/status"
	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/smtp"
)

// mountMesh adds the mesh, tracking and status-page endpoints to the
// admin API (see package adminapi for the list).
func (n *Node) mountMesh(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/mesh/members", n.needMesh(n.handleMembers))
	mux.HandleFunc("GET /api/mesh/lsdb", n.needMesh(n.handleLSDB))
	mux.HandleFunc("GET /api/mesh/routes", n.needMesh(n.handleRoutes))
	mux.HandleFunc("GET /api/mesh/trace", n.needMesh(n.handleTrace))
	mux.HandleFunc("POST /api/mesh/connector/{name}/{action}", n.needMesh(n.handleConnector))
	mux.HandleFunc("POST /api/mesh/rg/{name}/remove", n.needMesh(n.handleRGRemove))
	mux.HandleFunc("GET /api/track/{key}", n.handleTrack)

	page := status.NewHandler(statusSource{n}, status.Options{Logger: n.log.With("component", "status")})
	mux.Handle("/status/", http.StripPrefix("/status", page))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/status/", http.StatusFound)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/status/", http.StatusFound)
	})
	for _, f := range []string{"graph.dot", "graph.svg"} {
		mux.HandleFunc("GET /api/mesh/"+f, func(w http.ResponseWriter, r *http.Request) {
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/" + f
			page.ServeHTTP(w, r2)
		})
	}
}

// needMesh answers 409 on a standalone node.
func (n *Node) needMesh(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if n.mesh == nil {
			writeError(w, http.StatusConflict, "node "+n.cfg.Node.Name+" is standalone: no mesh (listen.mesh is empty)")
			return
		}
		h(w, r)
	}
}

func (n *Node) handleMembers(w http.ResponseWriter, _ *http.Request) {
	v := n.mesh.View()
	out := adminapi.Members{Node: n.cfg.Node.Name, RG: n.cfg.Node.RoutingGroup, Master: v.Master, Members: []adminapi.Member{}}
	for _, m := range v.Members {
		out.Members = append(out.Members, adminapi.Member{Name: m.Name, Gossip: m.Addr, SMTP: m.SMTP, LinkState: m.LinkState,
			Priority: m.Priority, Master: m.Name == v.Master})
	}
	slices.SortFunc(out.Members, func(a, b adminapi.Member) int { return cmp.Compare(a.Name, b.Name) })
	for _, m := range v.Unverified {
		out.Unverified = append(out.Unverified, adminapi.Member{Name: m.Name, Gossip: m.Addr, SMTP: m.SMTP, LinkState: m.LinkState,
			Priority: m.Priority, Reason: m.Reason})
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleLSDB(w http.ResponseWriter, _ *http.Request) {
	snap := n.mesh.LSDB().Snapshot()
	out := adminapi.LSDB{Node: n.cfg.Node.Name, RG: n.cfg.Node.RoutingGroup, Digest: adminapi.Digest(snap.Digest()),
		Records: adminapi.FromRecords(snap.All(), n.now(), n.cfg.Node.RoutingGroup, n.mesh.AdminStates(), n.mesh.Penalties())}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleRoutes(w http.ResponseWriter, _ *http.Request) {
	tab := n.mesh.Routes()
	if tab == nil {
		writeError(w, http.StatusServiceUnavailable, "no routing table yet")
		return
	}
	out := adminapi.Routes{Node: n.cfg.Node.Name, RG: n.cfg.Node.RoutingGroup, RGs: tab.RGs(), Routes: tab.Routes()}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleTrace(w http.ResponseWriter, r *http.Request) {
	rcpt := r.URL.Query().Get("rcpt")
	domain := smtp.AddrDomain(rcpt)
	if rcpt == "" || domain == "" {
		writeError(w, http.StatusBadRequest, "rcpt must be an address user@domain")
		return
	}
	id := r.URL.Query().Get("id")
	if id == "" {
		id = "trace"
	}
	tab := n.mesh.Routes()
	if tab == nil {
		writeError(w, http.StatusServiceUnavailable, "no routing table yet")
		return
	}
	// A refused route is an answer too: the decision says why (Refused,
	// Why) and meshctl exits 1 on it.
	d, _ := tab.Trace(id, domain)
	writeJSON(w, http.StatusOK, adminapi.Trace{Rcpt: rcpt, Decision: d, Lines: d.Lines()})
}

// handleRGRemove decommissions a routing group: a signed tombstone that
// floods like any record (see mesh.RemoveRG).
func (n *Node) handleRGRemove(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	tomb, err := n.mesh.RemoveRG(name)
	switch {
	case errors.Is(err, mesh.ErrUnknownRG):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case errors.Is(err, mesh.ErrCannotSign):
		writeError(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	n.log.Warn("admin: routing group removed", "record_rg", name)
	v := tomb.Version
	writeJSON(w, http.StatusOK, adminapi.RGRemoveResult{RG: name, Version: fmt.Sprintf("%d.%d.%d.%d", v.Epoch, v.Major, v.Minor, v.User),
		IssuedAt: tomb.IssuedAt, ExpiresAt: tomb.ExpiresAt(), Node: n.cfg.Node.Name})
}

func (n *Node) handleConnector(w http.ResponseWriter, r *http.Request) {
	name, action := r.PathValue("name"), r.PathValue("action")
	var st channel.AdminState
	switch action {
	case "up", "auto":
		st = channel.AdminAuto
	case "down":
		st = channel.AdminDown
	case "drain":
		st = channel.AdminDrain
	default:
		writeError(w, http.StatusNotFound, "unknown action "+action+": want up, down or drain")
		return
	}
	err := n.mesh.SetConnectorAdmin(name, st)
	switch {
	case errors.Is(err, mesh.ErrUnknownConnector):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	n.log.Info("admin: connector "+action, "connector", name)
	if n.metrics != nil {
		n.metrics.mesh.adminOverrides.WithLabelValues(action).Inc()
	}
	writeJSON(w, http.StatusOK, adminapi.ConnectorResult{Connector: name, Action: action, Admin: st.String()})
}

func (n *Node) handleTrack(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimSpace(r.PathValue("key"))
	if key == "" {
		writeError(w, http.StatusBadRequest, "a message ID is needed")
		return
	}
	res := n.trackAcross(r.Context(), key)
	if len(res.Events) == 0 {
		writeError(w, http.StatusNotFound, "no tracking events for "+key)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// statusSource adapts the node to status.Source and status.AdminSource.
type statusSource struct{ n *Node }

func (s statusSource) Snapshot() []*linkstate.Record {
	if s.n.mesh == nil {
		return nil
	}
	return s.n.mesh.LSDB().Snapshot().Records()
}

func (s statusSource) Digest() [32]byte {
	if s.n.mesh == nil {
		return [32]byte{}
	}
	return s.n.mesh.LSDB().Snapshot().Digest()
}

func (s statusSource) Self() (string, string) { return s.n.cfg.Node.Name, s.n.cfg.Node.RoutingGroup }

func (s statusSource) View() membership.View {
	if s.n.mesh == nil {
		return membership.View{}
	}
	return s.n.mesh.View()
}

func (s statusSource) Penalties() map[string]float64 {
	if s.n.mesh == nil {
		return nil
	}
	return s.n.mesh.Penalties()
}

func (s statusSource) AdminStates() map[string]string {
	if s.n.mesh == nil {
		return nil
	}
	return s.n.mesh.AdminStates()
}

func (s statusSource) Queues() []status.QueueSummary {
	var out []status.QueueSummary
	for _, q := range s.n.nextHopQueues() {
		out = append(out, status.QueueSummary{NextHop: q.hop, Messages: q.messages, OldestAge: q.oldest})
	}
	return out
}

// hopQueue is the part of the queue waiting for one next hop.
type hopQueue struct {
	hop      string
	messages int
	oldest   time.Duration
}

// maxQueueScan bounds how many queued messages one per-next-hop summary
// reads (the status page and every metrics scrape make one).
const maxQueueScan = 10000

// nextHopQueues groups the pending recipients of queued messages by the
// next hop the current routing would send them to.
func (n *Node) nextHopQueues() []hopQueue {
	if n.q == nil || n.del == nil {
		return nil
	}
	msgs, err := n.q.List(queue.Filter{Limit: maxQueueScan})
	if err != nil {
		return nil
	}
	now := n.now()
	by := map[string]*hopQueue{}
	for _, m := range msgs {
		counted := map[string]bool{}
		for _, r := range m.Recipients {
			if r.State != queue.Pending {
				continue
			}
			hop := n.del.HopName(m, r.Addr)
			if m.Held {
				hop = "held"
			}
			if counted[hop] {
				continue
			}
			counted[hop] = true
			q := by[hop]
			if q == nil {
				q = &hopQueue{hop: hop}
				by[hop] = q
			}
			q.messages++
			q.oldest = max(q.oldest, now.Sub(m.ReceivedAt))
		}
	}
	out := make([]hopQueue, 0, len(by))
	for _, q := range by {
		out = append(out, *q)
	}
	slices.SortFunc(out, func(a, b hopQueue) int { return cmp.Compare(a.hop, b.hop) })
	return out
}

// LinkStateAddr is the advertised address of the node's port-691
// listener (as its routing group's gossip carries it), "" when
// standalone or before Start.
func (n *Node) LinkStateAddr() string {
	if n.mesh == nil {
		return ""
	}
	for _, m := range n.mesh.View().Members {
		if m.Name == n.cfg.Node.Name {
			return m.LinkState
		}
	}
	return ""
}

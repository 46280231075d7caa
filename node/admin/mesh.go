package admin

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/meshd/meshd/linkstate/channel"
	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/node/mesh"
	"github.com/meshd/meshd/node/status"
	"github.com/meshd/meshd/smtp"
)

// mountMesh adds the mesh, tracking and status-page endpoints to the
// admin API (see package adminapi for the list).
func (a *api) mountMesh(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/mesh/members", a.needMesh(a.handleMembers))
	mux.HandleFunc("GET /api/mesh/lsdb", a.needMesh(a.handleLSDB))
	mux.HandleFunc("GET /api/mesh/routes", a.needMesh(a.handleRoutes))
	mux.HandleFunc("GET /api/mesh/trace", a.needMesh(a.handleTrace))
	mux.HandleFunc("POST /api/mesh/connector/{name}/{action}", a.needMesh(a.handleConnector))
	mux.HandleFunc("POST /api/mesh/rg/{name}/remove", a.needMesh(a.handleRGRemove))
	mux.HandleFunc("GET /api/track/{key}", a.handleTrack)

	page := status.NewHandler(statusSource{a}, status.Options{Logger: a.Log.With("component", "status")})
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
func (a *api) needMesh(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.Mesh == nil {
			RefuseStandalone(w, a.Node)
			return
		}
		h(w, r)
	}
}

func (a *api) handleMembers(w http.ResponseWriter, _ *http.Request) {
	v := a.Mesh.View()
	out := adminapi.Members{Node: a.Node, RG: a.RG, Master: v.Master, Members: []adminapi.Member{}}
	for _, m := range v.Members {
		out.Members = append(out.Members, adminapi.Member{Name: m.Name, Gossip: m.Addr, SMTP: m.SMTP, LinkState: m.LinkState,
			Priority: m.Priority, Master: m.Name == v.Master, Draining: m.Draining})
	}
	slices.SortFunc(out.Members, func(a, b adminapi.Member) int { return cmp.Compare(a.Name, b.Name) })
	for _, m := range v.Unverified {
		out.Unverified = append(out.Unverified, adminapi.Member{Name: m.Name, Gossip: m.Addr, SMTP: m.SMTP, LinkState: m.LinkState,
			Priority: m.Priority, Reason: m.Reason})
	}
	WriteJSON(w, http.StatusOK, out)
}

func (a *api) handleLSDB(w http.ResponseWriter, _ *http.Request) {
	snap := a.Mesh.LSDB().Snapshot()
	out := adminapi.LSDB{Node: a.Node, RG: a.RG, Digest: adminapi.Digest(snap.Digest()),
		Records: adminapi.FromRecords(snap.All(), a.Now(), a.RG, a.Mesh.AdminStates(), a.Mesh.Penalties())}
	WriteJSON(w, http.StatusOK, out)
}

func (a *api) handleRoutes(w http.ResponseWriter, _ *http.Request) {
	tab := a.Mesh.Routes()
	if tab == nil {
		WriteError(w, http.StatusServiceUnavailable, "no routing table yet")
		return
	}
	out := adminapi.Routes{Node: a.Node, RG: a.RG, RGs: tab.RGs(), Routes: tab.Routes()}
	WriteJSON(w, http.StatusOK, out)
}

func (a *api) handleTrace(w http.ResponseWriter, r *http.Request) {
	rcpt := r.URL.Query().Get("rcpt")
	domain := smtp.AddrDomain(rcpt)
	if rcpt == "" || domain == "" {
		WriteError(w, http.StatusBadRequest, "rcpt must be an address user@domain")
		return
	}
	id := r.URL.Query().Get("id")
	if id == "" {
		id = "trace"
	}
	tab := a.Mesh.Routes()
	if tab == nil {
		WriteError(w, http.StatusServiceUnavailable, "no routing table yet")
		return
	}
	// A refused route is an answer too: the decision says why (Refused,
	// Why) and meshctl exits 1 on it.
	d, _ := tab.Trace(id, domain)
	WriteJSON(w, http.StatusOK, adminapi.Trace{Rcpt: rcpt, Decision: d, Lines: d.Lines()})
}

// handleRGRemove decommissions a routing group: a signed tombstone that
// floods like any record (see mesh.RemoveRG).
func (a *api) handleRGRemove(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	tomb, err := a.Mesh.RemoveRG(name)
	switch {
	case errors.Is(err, mesh.ErrUnknownRG):
		WriteError(w, http.StatusNotFound, err.Error())
		return
	case errors.Is(err, mesh.ErrCannotSign):
		WriteError(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	a.Log.Warn("admin: routing group removed", "record_rg", name)
	v := tomb.Version
	WriteJSON(w, http.StatusOK, adminapi.RGRemoveResult{RG: name, Version: fmt.Sprintf("%d.%d.%d.%d", v.Epoch, v.Major, v.Minor, v.User),
		IssuedAt: tomb.IssuedAt, ExpiresAt: tomb.ExpiresAt(), Node: a.Node})
}

func (a *api) handleConnector(w http.ResponseWriter, r *http.Request) {
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
		WriteError(w, http.StatusNotFound, "unknown action "+action+": want up, down or drain")
		return
	}
	err := a.Mesh.SetConnectorAdmin(name, st)
	switch {
	case errors.Is(err, mesh.ErrUnknownConnector):
		WriteError(w, http.StatusNotFound, err.Error())
		return
	case err != nil:
		WriteError(w, http.StatusBadGateway, err.Error())
		return
	}
	a.Log.Info("admin: connector "+action, "connector", name)
	if a.OnConnectorAdmin != nil {
		a.OnConnectorAdmin(action)
	}
	WriteJSON(w, http.StatusOK, adminapi.ConnectorResult{Connector: name, Action: action, Admin: st.String()})
}

func (a *api) handleTrack(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimSpace(r.PathValue("key"))
	if key == "" {
		WriteError(w, http.StatusBadRequest, "a message ID is needed")
		return
	}
	res := a.Track.Across(r.Context(), key)
	if len(res.Events) == 0 {
		WriteError(w, http.StatusNotFound, "no tracking events for "+key)
		return
	}
	WriteJSON(w, http.StatusOK, res)
}

// RefuseStandalone answers 409: node has no mesh, which the endpoint needs.
func RefuseStandalone(w http.ResponseWriter, node string) {
	WriteError(w, http.StatusConflict, "node "+node+" is standalone: no mesh (listen.mesh is empty)")
}

package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ErrNoReload is the answer of POST /api/reload on a node that has no
// configuration file to read again (Deps.Reload is nil).
var ErrNoReload = errors.New("node: reload: this node was not started from a configuration file")

// Handler serves the admin API:
//
//	GET    /api/status
//	POST   /api/reload         (read the configuration file again, Deps.Reload)
//	GET    /api/queue[?held=true|false][&limit=N]
//	GET    /api/queue/{id}
//	GET    /api/queue/shadow[?peer=NODE]  (shadow copies, docs/shadow.md)
//	POST   /api/queue/{id}/{retry|hold|release}
//	DELETE /api/queue/{id}
//	GET    /api/node/drain
//	POST   /api/node/{drain|undrain}   (node/drain, docs/drain.md)
//	GET    /metrics
//	GET    /debug/pprof/...   (Go's profiler, for performance reports)
//
// and the mesh, tracking and status-page endpoints of mesh.go.
func Handler(d Deps) http.Handler {
	a := &api{d}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/status", a.handleStatus)
	mux.HandleFunc("POST /api/reload", a.handleReload)
	mux.HandleFunc("GET /api/queue", a.handleQueueList)
	mux.HandleFunc("GET /api/queue/{id}", a.handleQueueShow)
	mux.HandleFunc("GET /api/queue/shadow", a.handleShadowList)
	mux.HandleFunc("POST /api/queue/{id}/{action}", a.handleQueueAction)
	mux.HandleFunc("DELETE /api/queue/{id}", a.handleQueueDelete)
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	a.mountMesh(mux)
	a.mountDrain(mux)
	if d.Mount != nil {
		d.Mount(mux)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

// api is one node's admin API.
type api struct{ Deps }

func (a *api) listeners() map[string]string {
	if a.Listeners == nil {
		return nil
	}
	return a.Listeners()
}

func (a *api) handleStatus(w http.ResponseWriter, _ *http.Request) {
	st := a.Queue.Stats()
	bi := version.Get()
	info := adminapi.StatusInfo{
		Node:         a.Node,
		RoutingGroup: a.RG,
		Hostname:     a.Hostname,
		Listeners:    a.listeners(),
		LocalDomains: a.LocalDomains,
		Queue:        adminapi.QueueStats{Messages: st.Messages, Bytes: st.Bytes, Oldest: timePtr(st.Oldest)},
		Build:        &bi,
	}
	WriteJSON(w, http.StatusOK, info)
}

// handleReload reads the configuration file again and applies it
// (Options.Reload); 422 when the file is refused, which changes nothing.
func (a *api) handleReload(w http.ResponseWriter, _ *http.Request) {
	if a.Reload == nil {
		WriteError(w, http.StatusNotImplemented, ErrNoReload.Error())
		return
	}
	rep, err := a.Reload()
	if err != nil {
		WriteError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	WriteJSON(w, http.StatusOK, rep)
}

func (a *api) handleQueueList(w http.ResponseWriter, r *http.Request) {
	var f queue.Filter
	if v := r.URL.Query().Get("held"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			WriteError(w, http.StatusBadRequest, "held must be true or false")
			return
		}
		f.Held = &b
	}
	if v := r.URL.Query().Get("limit"); v != "" {
		l, err := strconv.Atoi(v)
		if err != nil || l < 0 {
			WriteError(w, http.StatusBadRequest, "limit must be a non-negative integer")
			return
		}
		f.Limit = l
	}
	msgs, err := a.Queue.List(f)
	if err != nil {
		writeQueueError(w, err)
		return
	}
	out := adminapi.QueueList{Messages: make([]adminapi.MessageInfo, 0, len(msgs))}
	for _, m := range msgs {
		out.Messages = append(out.Messages, messageInfo(m))
	}
	WriteJSON(w, http.StatusOK, out)
}

func (a *api) handleShadowList(w http.ResponseWriter, r *http.Request) {
	sh, err := a.Queue.Shadows(r.URL.Query().Get("peer"))
	if err != nil {
		writeQueueError(w, err)
		return
	}
	st := a.Queue.ShadowStats()
	out := adminapi.ShadowList{Count: st.Count, Bytes: st.Bytes, Max: a.MaxShadowBytes,
		Skipped: st.Skipped, Shadows: make([]adminapi.ShadowInfo, 0, len(sh))}
	for _, s := range sh {
		info := adminapi.ShadowInfo{CopyID: s.CopyID, MessageID: s.MessageID, Peer: s.Peer, From: s.Envelope.From,
			Size: s.Size, HandedAt: s.HandedAt, Expires: s.Expires}
		for _, rc := range s.Envelope.Rcpts {
			info.Rcpts = append(info.Rcpts, rc.Addr)
		}
		out.Shadows = append(out.Shadows, info)
	}
	WriteJSON(w, http.StatusOK, out)
}

func (a *api) handleQueueShow(w http.ResponseWriter, r *http.Request) {
	m, err := a.Queue.Get(r.PathValue("id"))
	if err != nil {
		writeQueueError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, messageInfo(m))
}

func (a *api) handleQueueAction(w http.ResponseWriter, r *http.Request) {
	id, action := r.PathValue("id"), r.PathValue("action")
	var op func(string) error
	switch action {
	case "retry":
		op = func(id string) error {
			a.Delivery.ClearDead() // an operator's retry dials, whatever failed before
			return a.Queue.Retry(id)
		}
	case "hold":
		op = a.Queue.Hold
	case "release":
		op = a.Queue.Release
	default:
		WriteError(w, http.StatusNotFound, "unknown action "+strconv.Quote(action)+": want retry, hold or release")
		return
	}
	if err := op(id); err != nil {
		writeQueueError(w, err)
		return
	}
	a.Log.Info("admin: queue "+action, "qid", id)
	res := adminapi.ActionResult{ID: id, Action: action}
	if m, err := a.Queue.Get(id); err == nil {
		mi := messageInfo(m)
		res.Result = &mi
	}
	WriteJSON(w, http.StatusOK, res)
}

func (a *api) handleQueueDelete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := a.Queue.Delete(id); err != nil {
		writeQueueError(w, err)
		return
	}
	a.Delivery.Forget(id)
	a.Log.Info("admin: queue delete", "qid", id)
	WriteJSON(w, http.StatusOK, adminapi.ActionResult{ID: id, Action: "delete"})
}

func messageInfo(m *queue.Message) adminapi.MessageInfo {
	mi := adminapi.MessageInfo{
		ID: m.ID, From: m.From, Size: m.Size, ReceivedAt: m.ReceivedAt, Source: m.Source,
		ClientAddr: m.ClientAddr, AuthUser: m.AuthUser, EnvID: m.EnvID, Ret: m.Ret, Trace: m.Trace,
		Held: m.Held, DelayNotified: m.DelayNotified, NextAttempt: timePtr(m.NextAttempt),
		Recipients: make([]adminapi.RecipientInfo, 0, len(m.Recipients)),
	}
	for _, r := range m.Recipients {
		ri := adminapi.RecipientInfo{
			Addr: r.Addr, State: r.State.String(), Attempts: r.Attempts,
			LastAttempt: timePtr(r.LastAttempt), LastError: r.LastError, LastReply: r.LastReply, Notify: r.Notify,
		}
		if r.State == queue.Pending {
			ri.NextAttempt = timePtr(r.NextAttempt)
		}
		mi.Recipients = append(mi.Recipients, ri)
	}
	return mi
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func writeQueueError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, queue.ErrNotFound):
		WriteError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, queue.ErrClosed):
		WriteError(w, http.StatusServiceUnavailable, err.Error())
	default:
		WriteError(w, http.StatusInternalServerError, err.Error())
	}
}

// WriteError answers status with adminapi.ErrorInfo{Error: msg}.
func WriteError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, adminapi.ErrorInfo{Error: msg})
}

// WriteJSON answers status with v as indented JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

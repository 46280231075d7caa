package node

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/version"
)

// The admin API's JSON types live in package adminapi, so that clients
// (meshctl) decode them without importing the node.
type (
	MessageInfo   = adminapi.MessageInfo
	RecipientInfo = adminapi.RecipientInfo
	QueueList     = adminapi.QueueList
	StatusInfo    = adminapi.StatusInfo
	QueueStats    = adminapi.QueueStats
	ActionResult  = adminapi.ActionResult
	ErrorInfo     = adminapi.ErrorInfo
)

// adminHandler serves the admin API:
//
//	GET    /api/status
//	POST   /api/reload         (read the configuration file again, Options.Reload)
//	GET    /api/queue[?held=true|false][&limit=N]
//	GET    /api/queue/{id}
//	GET    /api/queue/shadow[?peer=NODE]  (shadow copies, docs/shadow.md)
//	POST   /api/queue/{id}/{retry|hold|release}
//	DELETE /api/queue/{id}
//	GET    /metrics
//	GET    /debug/pprof/...   (Go's profiler, for performance reports)
//
// and the mesh, tracking and status-page endpoints of admin_mesh.go.
func (n *Node) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/status", n.handleStatus)
	mux.HandleFunc("POST /api/reload", n.handleReload)
	mux.HandleFunc("GET /api/queue", n.handleQueueList)
	mux.HandleFunc("GET /api/queue/{id}", n.handleQueueShow)
	mux.HandleFunc("GET /api/queue/shadow", n.handleShadowList)
	mux.HandleFunc("POST /api/queue/{id}/{action}", n.handleQueueAction)
	mux.HandleFunc("DELETE /api/queue/{id}", n.handleQueueDelete)
	_ = n.metrics.reg.Register(meshCollector{n}) // read at scrape time (metrics_mesh.go)
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	n.mountMesh(mux)
	n.mountOrg(mux) // admin_org.go
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

func (n *Node) handleStatus(w http.ResponseWriter, _ *http.Request) {
	st := n.q.Stats()
	bi := version.Get()
	info := StatusInfo{
		Node:         n.cfg.Node.Name,
		RoutingGroup: n.cfg.Node.RoutingGroup,
		Hostname:     n.cfg.Node.Hostname,
		Listeners:    n.Listeners(),
		LocalDomains: n.cfg.LocalDomains,
		Queue:        QueueStats{Messages: st.Messages, Bytes: st.Bytes, Oldest: timePtr(st.Oldest)},
		Build:        &bi,
	}
	writeJSON(w, http.StatusOK, info)
}

// handleReload reads the configuration file again and applies it
// (Options.Reload); 422 when the file is refused, which changes nothing.
func (n *Node) handleReload(w http.ResponseWriter, _ *http.Request) {
	if n.reloadFn == nil {
		writeError(w, http.StatusNotImplemented, ErrNoReload.Error())
		return
	}
	rep, err := n.reloadFn()
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (n *Node) handleQueueList(w http.ResponseWriter, r *http.Request) {
	var f queue.Filter
	if v := r.URL.Query().Get("held"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "held must be true or false")
			return
		}
		f.Held = &b
	}
	if v := r.URL.Query().Get("limit"); v != "" {
		l, err := strconv.Atoi(v)
		if err != nil || l < 0 {
			writeError(w, http.StatusBadRequest, "limit must be a non-negative integer")
			return
		}
		f.Limit = l
	}
	msgs, err := n.q.List(f)
	if err != nil {
		writeQueueError(w, err)
		return
	}
	out := QueueList{Messages: make([]MessageInfo, 0, len(msgs))}
	for _, m := range msgs {
		out.Messages = append(out.Messages, messageInfo(m))
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleShadowList(w http.ResponseWriter, r *http.Request) {
	sh, err := n.q.Shadows(r.URL.Query().Get("peer"))
	if err != nil {
		writeQueueError(w, err)
		return
	}
	st := n.q.ShadowStats()
	out := adminapi.ShadowList{Count: st.Count, Bytes: st.Bytes, Max: n.cfg.Queue.MaxShadowBytes,
		Skipped: st.Skipped, Shadows: make([]adminapi.ShadowInfo, 0, len(sh))}
	for _, s := range sh {
		info := adminapi.ShadowInfo{CopyID: s.CopyID, MessageID: s.MessageID, Peer: s.Peer, From: s.Envelope.From,
			Size: s.Size, HandedAt: s.HandedAt, Expires: s.Expires}
		for _, rc := range s.Envelope.Rcpts {
			info.Rcpts = append(info.Rcpts, rc.Addr)
		}
		out.Shadows = append(out.Shadows, info)
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleQueueShow(w http.ResponseWriter, r *http.Request) {
	m, err := n.q.Get(r.PathValue("id"))
	if err != nil {
		writeQueueError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, messageInfo(m))
}

func (n *Node) handleQueueAction(w http.ResponseWriter, r *http.Request) {
	id, action := r.PathValue("id"), r.PathValue("action")
	var op func(string) error
	switch action {
	case "retry":
		op = func(id string) error {
			n.del.ClearDead() // an operator's retry dials, whatever failed before
			return n.q.Retry(id)
		}
	case "hold":
		op = n.q.Hold
	case "release":
		op = n.q.Release
	default:
		writeError(w, http.StatusNotFound, "unknown action "+strconv.Quote(action)+": want retry, hold or release")
		return
	}
	if err := op(id); err != nil {
		writeQueueError(w, err)
		return
	}
	n.log.Info("admin: queue "+action, "qid", id)
	res := ActionResult{ID: id, Action: action}
	if m, err := n.q.Get(id); err == nil {
		mi := messageInfo(m)
		res.Result = &mi
	}
	writeJSON(w, http.StatusOK, res)
}

func (n *Node) handleQueueDelete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := n.q.Delete(id); err != nil {
		writeQueueError(w, err)
		return
	}
	n.del.Forget(id)
	n.log.Info("admin: queue delete", "qid", id)
	writeJSON(w, http.StatusOK, ActionResult{ID: id, Action: "delete"})
}

func messageInfo(m *queue.Message) MessageInfo {
	mi := MessageInfo{
		ID: m.ID, From: m.From, Size: m.Size, ReceivedAt: m.ReceivedAt, Source: m.Source,
		ClientAddr: m.ClientAddr, AuthUser: m.AuthUser, EnvID: m.EnvID, Ret: m.Ret, Trace: m.Trace,
		Held: m.Held, DelayNotified: m.DelayNotified, NextAttempt: timePtr(m.NextAttempt),
		Recipients: make([]RecipientInfo, 0, len(m.Recipients)),
	}
	for _, r := range m.Recipients {
		ri := RecipientInfo{
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
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, queue.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, ErrorInfo{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

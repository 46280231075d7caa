package node

import (
	"net/http"

	"github.com/meshd/meshd/node/admin"
	"github.com/meshd/meshd/node/adminapi"
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

// adminHandler builds the admin API (package admin) over the node's parts,
// and registers the metrics read at scrape time (metrics_mesh.go).
func (n *Node) adminHandler() http.Handler {
	_ = n.metrics.reg.Register(meshCollector{n})
	d := admin.Deps{
		Node: n.cfg.Node.Name, RG: n.cfg.Node.RoutingGroup, Hostname: n.cfg.Node.Hostname,
		LocalDomains: n.cfg.LocalDomains, MaxShadowBytes: n.cfg.Queue.MaxShadowBytes,
		Listeners: n.Listeners, Reload: n.reloadFn,
		Queue: n.q, Delivery: n.del, Track: n.finder,
		Registry:         n.metrics.reg,
		OnConnectorAdmin: func(action string) { n.metrics.mesh.adminOverrides.WithLabelValues(action).Inc() },
		Log:              n.log, Now: n.now,
		Mount: n.mountOrg, // admin_org.go
	}
	if n.mesh != nil {
		d.Mesh = n.mesh
		d.Drain = n // drain.go
	}
	return admin.Handler(d)
}

package node

import (
	"net/http"

	"github.com/meshd/meshd/node/admin"
	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/node/metrics"
	"github.com/meshd/meshd/node/org"
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
// and registers the metrics read at scrape time (node/metrics).
func (n *Node) adminHandler() http.Handler {
	src := metrics.Sources{Node: n.cfg.Node.Name, RG: n.cfg.Node.RoutingGroup, Now: n.now, Queue: n.q, NextHops: n.del}
	if n.mesh != nil {
		src.Mesh = n.mesh
	}
	n.metrics.RegisterSources(src)
	orgAPI := &org.API{Node: n.cfg.Node.Name, RG: n.cfg.Node.RoutingGroup, Docs: n.org}
	d := admin.Deps{
		Node: n.cfg.Node.Name, RG: n.cfg.Node.RoutingGroup, Hostname: n.cfg.Node.Hostname,
		LocalDomains: n.cfg.LocalDomains, MaxShadowBytes: n.cfg.Queue.MaxShadowBytes,
		Listeners: n.Listeners, Reload: n.reloadFn,
		Queue: n.q, Delivery: n.del, Track: n.finder,
		Registry:         n.metrics.Registry(),
		OnConnectorAdmin: n.metrics.ConnectorAdmin,
		Log:              n.log, Now: n.now,
		Mount: orgAPI.Mount,
	}
	if n.mesh != nil {
		d.Mesh = n.mesh
		orgAPI.Mesh = n.mesh
		d.Drain = n.drain
	}
	return admin.Handler(d)
}

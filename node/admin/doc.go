// Package admin serves a node's admin HTTP API (listen.admin): the queue,
// status, reload, mesh (members, LSDB, routes, trace, connector overrides,
// routing-group removal), message tracking, the status page (node/status)
// and Prometheus metrics. The JSON documents it writes are package
// adminapi's, which clients decode without importing this package.
//
//	adminapi.Guard (Host, Origin, token) ─▶ Handler ─▶ http.ServeMux
//	      │
//	      ├─ /api/status, /api/reload, /api/queue/...  ─▶ Deps.Queue, Deps.Delivery, Deps.Reload
//	      ├─ /api/mesh/...                            ─▶ Deps.Mesh (409 when standalone)
//	      ├─ /api/track/{key}                         ─▶ Deps.Track (tracking.Finder)
//	      ├─ /status/, /api/mesh/graph.{dot,svg}      ─▶ status.Handler(statusSource)
//	      └─ /metrics, /debug/pprof/                  ─▶ Deps.Registry, net/http/pprof
//
// What it needs of the node is declared in deps.go as small interfaces
// (Delivery, Mesh, Tracker) and values; it knows nothing of package node.
package admin

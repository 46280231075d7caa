// Package adminapi holds the JSON documents of a node's admin HTTP API
// (listen.admin): the queue, status, mesh (members, LSDB, routes, trace,
// connector overrides) and message-tracking endpoints. The node encodes
// them; clients such as meshctl decode them without importing the node
// (and with it the status page's WebAssembly Graphviz).
//
// Endpoints:
//
//	GET    /api/status                      StatusInfo
//	GET    /api/queue[?held=..][&limit=N]   QueueList
//	GET    /api/queue/{id}                  MessageInfo
//	POST   /api/queue/{id}/{retry|hold|release}, DELETE /api/queue/{id}   ActionResult
//	GET    /api/mesh/members                Members
//	GET    /api/mesh/lsdb                   LSDB
//	GET    /api/mesh/routes                 Routes
//	GET    /api/mesh/trace?rcpt=ADDR[&id=MSGID]   Trace (200 also when there is no route: Decision.Refused and Why say why)
//	POST   /api/mesh/connector/{name}/{up|down|drain}   ConnectorResult
//	POST   /api/mesh/rg/{name}/remove       RGRemoveResult (decommission: a signed tombstone)
//	GET    /api/mesh/graph.dot, /api/mesh/graph.svg     the status page's graph
//	GET    /api/node/drain                  DrainStatus
//	POST   /api/node/drain, /api/node/undrain   DrainStatus (take the node out of service and back)
//	GET    /api/track/{key}                 TrackResult
//	GET    /metrics                         Prometheus text format
//	GET    /status/                         the status page (node/status)
//
// Every error answer is ErrorInfo with a 4xx or 5xx status: 404 for an
// unknown message, connector or endpoint, 400 for a bad request, 409 when
// the node is standalone (no mesh) and the endpoint needs one, or (rg
// remove) holds no key that signs the group's records.
//
// Guard (auth.go) stands in front of all of it: 403 for a Host header that
// does not name the listener (DNS rebinding) and for a state-changing
// request from another site (Origin, Sec-Fetch-Site), 415 for a form
// content type on one, and 401 without the node's token (the token file,
// LoadOrCreateToken; a 401 to a loopback client names it in
// ErrorInfo.TokenFile, which is how meshctl finds it). Reads need the
// token too under admin.auth: all.
package adminapi

// DefaultAddr is the admin listener of a node on the embedded defaults.
const DefaultAddr = "127.0.0.1:8025"

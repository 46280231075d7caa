package delivery

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"time"

	"github.com/meshd/meshd/node/mx"
	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/routing"
)

// What delivery needs of the rest of the node, declared here where it is
// used; package node passes its parts in (Deps), none of them knows this
// package.

// Mesh is the mesh side as delivery sees it: the routing table in force,
// where a session over a connector's bridgehead pair is reported (failure
// detection), and which node listens on a mesh SMTP address.
type Mesh interface {
	Routes() *routing.Table
	ReportAttempt(connector, addr string, reached bool)
	MemberAt(addr string) string
}

// Tracker records what happened to a message in the node's tracking log.
type Tracker interface {
	Attempted(m *queue.Message, a Attempt)
	DSNQueued(m *queue.Message, dsnID, kind string)
}

// Attempt is one delivery attempt of one destination group, as the
// tracking log records it.
type Attempt struct {
	Kind      string // destination kind: KindMaildir, KindMesh, ...
	Dest      string // destination key: "maildir", "mx:example.org", "mesh:addr"
	Connector string // mesh hops over a connector: its ID
	Remote    string // host:port that answered, if any
	CopyID    string // mesh hops: the ID the next hop received the copy under
	NextHop   string // mesh hops: the node listening on Remote
	Results   []queue.Result
}

// Metrics counts delivery outcomes (Prometheus counters in package node).
type Metrics interface {
	Outcome(kind string, o queue.Outcome) // one recipient delivered, deferred or bounced
	Expired(rcpts int)
	DSNQueued(kind string)
	DeadSkip()             // an attempt deferred without dialling (dead destination)
	InDoubt(result string) // a hop in doubt: InDoubtRecorded, InDoubtHeld, ... (hopdoubt.go)
	ReplyLost(kind string) // a transaction outside the mesh sent in full whose reply never came
	// GroupCheck counts a suspect copy's group check (GroupCheckDeliver, ...,
	// shadowcheck.go); Shadow counts shadows released or resubmitted
	// (ShadowReleased, ...; shadow.go).
	GroupCheck(result string)
	Shadow(event string, n int)
}

// Doubts resolves mesh hops in doubt (hopdoubt.go): which node listens on
// a mesh SMTP address and where its port-691 listener is, and what that
// node's queue holds of a copy (an error: no answer).
type Doubts interface {
	Locate(meshAddr string) (node, channel string)
	Holds(ctx context.Context, d queue.Doubt) (queue.Holding, error)
}

// LocalDomains tells the domains delivered on this node (local_domains).
type LocalDomains interface {
	IsLocal(domain string) bool
}

// MXResolver looks up the mail exchangers of a domain; *mx.Resolver
// implements it. Errors wrapping mx.ErrNullMX or mx.ErrNoHost are permanent
// failures, any other error is temporary.
type MXResolver interface {
	Lookup(ctx context.Context, domain string) ([]mx.Host, error)
}

// Deps are the parts of the node a Deliverer works with. Queue, Log, Now,
// Local, Track and Metrics are required; Mesh is nil on a standalone node.
type Deps struct {
	Queue *queue.Queue
	Log   *slog.Logger
	Now   func() time.Time
	Local LocalDomains
	Mesh  Mesh
	// Doubts resolves hops in doubt; nil on a standalone node. Without it
	// a hop in doubt waits mesh.in_doubt_timeout before it goes elsewhere.
	Doubts Doubts
	// Peers reaches the other nodes for the group check of suspect copies
	// (shadowcheck.go); nil on a standalone node: no check.
	Peers   Peers
	Track   Tracker
	Metrics Metrics

	// Resolver looks up MX hosts; default an mx.Resolver on outbound.dns_server.
	Resolver MXResolver
	// Dial opens outbound connections; default net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// OutboundTLS is the client TLS config for STARTTLS to other servers;
	// default opportunistic (verifies nothing, RFC 7435).
	OutboundTLS *tls.Config
	// HopTLS, when set, is the client TLS of hops to other mesh nodes (the
	// node's mesh identity): TLS is then required on every hop. Without
	// it (mesh.insecure_plaintext) hops verify nothing.
	HopTLS *tls.Config
	// CopyKey keys the copy IDs of mesh hops (meshid.Copy; from mesh.org_key).
	CopyKey []byte
	// Sign, when set, signs the content of each attempt that leaves the
	// organisation (smarthost and MX; DKIM in package node) and returns what
	// to send; mesh hops and local deliveries are never passed to it.
	Sign func(log *slog.Logger, body []byte) []byte
}

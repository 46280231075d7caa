package admin

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/linkstate/channel"
	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/node/delivery"
	"github.com/meshd/meshd/node/membership"
	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/routing"
)

// What the admin API needs of the rest of the node, declared here where it
// is used; package node passes its parts in (Deps).

// Delivery is the delivery scheduler as the API sees it.
type Delivery interface {
	ClearDead()       // an operator's retry dials at once
	Forget(id string) // a deleted message leaves the scheduler's books
	NextHops() []delivery.HopQueue
}

// Mesh is the mesh side (*mesh.Mesh): membership, link state, routes and
// the operator's overrides.
type Mesh interface {
	View() membership.View
	LSDB() *linkstate.LSDB
	Routes() *routing.Table
	RemoveRG(rg string) (*linkstate.Record, error)
	SetConnectorAdmin(name string, st channel.AdminState) error
	AdminStates() map[string]string
	Penalties() map[string]float64
}

// Drainer takes the node out of service and back (node/drain,
// docs/drain.md).
type Drainer interface {
	Drain() error
	Undrain() error
	DrainStatus() adminapi.DrainStatus
}

// Tracker follows a message across the mesh (*tracking.Finder).
type Tracker interface {
	Across(ctx context.Context, key string) adminapi.TrackResult
}

// Deps are the node's parts the admin API reads and acts on. Mesh is nil
// on a standalone node (the mesh endpoints answer 409 then).
type Deps struct {
	Node, RG, Hostname string
	LocalDomains       []string
	MaxShadowBytes     int64 // queue.max_shadow_bytes, shown with the shadows
	// Listeners maps listener names to their addresses (GET /api/status).
	Listeners func() map[string]string
	// Reload reads the configuration file again and applies it; nil: 501.
	Reload func() (adminapi.ReloadReport, error)

	Queue    *queue.Queue
	Delivery Delivery
	Mesh     Mesh
	Track    Tracker
	// Drain is nil on a standalone node (the drain endpoints answer 409:
	// there is no member to hand mail to).
	Drain Drainer
	// Registry is served on GET /metrics; OnConnectorAdmin counts an
	// operator's connector override (nil: not counted).
	Registry         *prometheus.Registry
	OnConnectorAdmin func(action string)

	// Mount, when set, adds endpoints of the node's own (the organisation
	// document's) before the catch-all 404.
	Mount func(mux *http.ServeMux)

	Log *slog.Logger
	Now func() time.Time
}

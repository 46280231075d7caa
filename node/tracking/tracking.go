package tracking

import "github.com/meshd/meshd/node/adminapi"

// Tracking event kinds.
const (
	Received  = "received"
	Relayed   = "relayed"
	Delivered = "delivered"
	Deferred  = "deferred"
	Bounced   = "bounced"
	DSN       = "dsn"
	Filtered  = "filtered" // a content filter chain's verdict (package node, filter.go)
)

// Event is one line of the tracking log.
type Event = adminapi.TrackEvent

// Result is the answer of GET /api/track/{key}.
type Result = adminapi.TrackResult

const (
	trackFile     = "track.log"
	trackMaxBytes = 8 << 20
	// trackMaxRounds bounds how many hops the fan-out follows.
	trackMaxRounds = 16
)

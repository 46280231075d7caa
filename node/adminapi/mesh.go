package adminapi

import (
	"time"

	"github.com/meshd/meshd/routing"
)

// Members is the answer of GET /api/mesh/members: the gossip view of the
// node's routing group.
type Members struct {
	Node    string   `json:"node"`
	RG      string   `json:"rg"`
	Master  string   `json:"master"` // "" when no member is alive
	Members []Member `json:"members"`
	// Unverified are gossip members that have not proven their name with
	// a node certificate of this routing group: they count for nothing.
	Unverified []Member `json:"unverified,omitempty"`
}

// Member is one live member of the routing group.
type Member struct {
	Name      string `json:"name"`
	Gossip    string `json:"gossip"`
	SMTP      string `json:"smtp"`
	LinkState string `json:"linkstate"`
	Priority  uint32 `json:"priority"`
	Master    bool   `json:"master"`
	Draining  bool   `json:"draining,omitempty"` // it drains (meshctl node drain): it takes no mail
	Reason    string `json:"reason,omitempty"`   // an unverified member: why
}

// LSDB is the answer of GET /api/mesh/lsdb: the link-state database as
// this node holds it (the WinRoute view).
type LSDB struct {
	Node    string     `json:"node"`
	RG      string     `json:"rg"`
	Digest  string     `json:"digest"`           // hex SHA-256 over the records
	Source  string     `json:"source,omitempty"` // meshctl lsdb -from: the address read
	Records []RGRecord `json:"records"`
}

// RGRecord is one routing group's link-state record.
type RGRecord struct {
	RG            string          `json:"rg"`
	Version       string          `json:"version"` // Epoch.Major.Minor.User
	Master        string          `json:"master"`
	IssuedAt      time.Time       `json:"issued_at"`
	AgeSeconds    float64         `json:"age_seconds"`
	TTLSeconds    float64         `json:"ttl_seconds"`
	Tombstone     bool            `json:"tombstone,omitempty"`
	KeyID         string          `json:"key_id,omitempty"`
	Members       []RecordMember  `json:"members"`
	AddressSpaces []AddressSpace  `json:"address_spaces"`
	Connectors    []ConnectorInfo `json:"connectors"`
}

// RecordMember is a member as the record lists it.
type RecordMember struct {
	Name      string `json:"name"`
	SMTP      string `json:"smtp"`
	LinkState string `json:"linkstate"`
	Priority  uint32 `json:"priority"`
}

// AddressSpace is a domain pattern with its cost.
type AddressSpace struct {
	Pattern string `json:"pattern"`
	Cost    uint32 `json:"cost"`
}

// ConnectorInfo is one connector of a record.
type ConnectorInfo struct {
	ID                string         `json:"id"`
	From              string         `json:"from"`
	To                string         `json:"to,omitempty"`
	Cost              uint32         `json:"cost"`
	Up                bool           `json:"up"`
	Suppressed        bool           `json:"suppressed"`
	Bridge            bool           `json:"bridge"`
	Admin             string         `json:"admin,omitempty"`   // operator override (down, drain) seen from this node's RG
	Penalty           *float64       `json:"penalty,omitempty"` // damping penalty (this node's RG only)
	Smarthost         string         `json:"smarthost,omitempty"`
	SourceBridgeheads []string       `json:"source_bridgeheads,omitempty"`
	TargetBridgeheads []string       `json:"target_bridgeheads,omitempty"`
	AddressSpaces     []AddressSpace `json:"address_spaces,omitempty"`
	Pairs             []Pair         `json:"pairs"`
}

// Pair is the state of one bridgehead pair.
type Pair struct {
	Source string `json:"source"`
	Target string `json:"target"`
	Up     bool   `json:"up"`
}

// Routes is the answer of GET /api/mesh/routes.
type Routes struct {
	Node   string               `json:"node"`
	RG     string               `json:"rg"`
	RGs    []routing.RGRoute    `json:"rgs"`
	Routes []routing.RouteEntry `json:"routes"`
}

// Trace is the answer of GET /api/mesh/trace: the decision for the
// recipient's domain, and the same decision as lines for people.
type Trace struct {
	Rcpt     string           `json:"rcpt"`
	Decision routing.Decision `json:"decision"`
	Lines    []string         `json:"lines"`
}

// RGRemoveResult is the answer of POST /api/mesh/rg/{name}/remove: the
// tombstone the node originated (or already held) for the group.
type RGRemoveResult struct {
	RG        string    `json:"rg"`
	Version   string    `json:"version"` // epoch.major.minor.user of the tombstone
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"` // kept until then (2×TTL): an old copy of the record cannot return
	Node      string    `json:"node"`       // the node that answered
}

// ConnectorResult is the answer of POST /api/mesh/connector/{name}/{action}.
type ConnectorResult struct {
	Connector string `json:"connector"`
	Action    string `json:"action"` // up, down, drain
	Admin     string `json:"admin"`  // the override now in force: auto, down, drain
}

// TrackEvent is one event of a message's life on one node.
type TrackEvent struct {
	Time      time.Time `json:"time"`
	Node      string    `json:"node"`
	RG        string    `json:"rg"`
	Event     string    `json:"event"`                // filtered, received, relayed, delivered, deferred, bounced, dsn
	ID        string    `json:"id"`                   // the message's mesh ID on this node
	MessageID string    `json:"message_id,omitempty"` // Message-ID header (received)
	From      string    `json:"from,omitempty"`
	Rcpts     []string  `json:"rcpts,omitempty"`
	Size      int64     `json:"size,omitempty"`
	Listener  string    `json:"listener,omitempty"` // received: smtp, submission
	Source    string    `json:"source,omitempty"`   // received: smtp, submission, mesh, dsn
	Client    string    `json:"client,omitempty"`   // received: client address
	Kind      string    `json:"kind,omitempty"`     // destination kind: maildir, lmtp, smarthost, mx, mesh, noroute; dsn: failure, delay, success
	Dest      string    `json:"dest,omitempty"`     // destination key
	Connector string    `json:"connector,omitempty"`
	NextHop   string    `json:"next_hop,omitempty"` // relayed: node name of the next hop
	Addr      string    `json:"addr,omitempty"`     // host that answered
	CopyID    string    `json:"copy_id,omitempty"`  // relayed: the ID the next hop received it under
	DSNID     string    `json:"dsn_id,omitempty"`
	Reply     string    `json:"reply,omitempty"`
	ReplyLost bool      `json:"reply_lost,omitempty"` // deferred: sent in full, no reply to the final dot (a later copy may be a duplicate)
	Filter    string    `json:"filter,omitempty"`     // filtered: what each milter said
}

// TrackResult is the answer of GET /api/track/{key}: the events of a
// message across the mesh, oldest first.
type TrackResult struct {
	Key         string       `json:"key"`
	Events      []TrackEvent `json:"events"`
	Unreachable []string     `json:"unreachable,omitempty"` // nodes that did not answer
}

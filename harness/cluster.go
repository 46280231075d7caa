package harness

import (
	"context"
	"time"

	"github.com/meshd/meshd/harness/netem"
)

// Cluster is a running mesh as the runner sees it. StartCluster builds the
// real one (meshd nodes on a netem network); tests of the runner use a fake.
type Cluster interface {
	// Faults is the injectable network between the nodes.
	Faults() Faults
	// Crash stops a node without a graceful shutdown (kill -9 as seen by
	// its peers and its data directory).
	Crash(node string) error
	// Restart brings a crashed node back on its data directory.
	Restart(ctx context.Context, node string) error
	// SetDiskFull makes a node's queue refuse new mail (451 4.3.0) or take
	// it again.
	SetDiskFull(ctx context.Context, node string, full bool) error
	// Send submits one message over SMTP to the node's public listener; nil
	// means the server answered 250 for the recipient.
	Send(ctx context.Context, from string, m Mail) error
	// Delivered scans the Maildirs of every node (crashed ones included).
	Delivered() (Deliveries, error)
	// LSDB is a live node's link-state database summary; ok is false for a
	// crashed node.
	LSDB(node string) (info LSDBInfo, ok bool)
	// Route is the RG path a live node would route the domain along.
	Route(node, domain string) ([]string, error)
	// RemoveRG decommissions a routing group through a live node.
	RemoveRG(node, rg string) error
	// Originated is the number of link-state records the node originated
	// over its whole life (earlier incarnations included).
	Originated(node string) uint64
	// Close stops every node and the network.
	Close() error
}

// LSDBInfo summarises one node's LSDB.
type LSDBInfo struct {
	Digest     [32]byte
	Records    int
	Tombstones []string // routing groups with a tombstone held
}

// Deliveries is what the Maildirs of the mesh hold.
type Deliveries struct {
	// Copies counts the copies of every Message-ID found.
	Copies map[string]int
	// At is when the first copy of each Message-ID was written.
	At map[string]time.Time
	// Bounced maps the Message-ID of an original message to the
	// diagnostic of a delivery status notification found for it.
	Bounced map[string]string
	// External counts the copies of every Message-ID found at the
	// smarthosts behind external connectors (out of the organisation).
	External map[string]int
	// ReplyLost counts, for every Message-ID, the transactions with an
	// external receiver that the sending node logged as sent in full with
	// no reply to the final dot (tracking event deferred, reply_lost).
	ReplyLost map[string]int
}

// Mail is one test message.
type Mail struct {
	MessageID string // without angle brackets
	From, To  string
	Body      []byte // full RFC 5322 message
}

// Faults is the part of *netem.Network the runner drives.
type Faults interface {
	Cut(a, b string)
	Heal(a, b string)
	Partition(groupA, groupB []string)
	HealAll()
	Delay(a, b string, d time.Duration)
	Drop(a, b string, p float64)
	Flap(a, b string, period time.Duration)
	Events() []netem.Event
}

var _ Faults = (*netem.Network)(nil)

type netemEvent = netem.Event

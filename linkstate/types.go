package linkstate

import "time"

// Version orders records of one routing group. Versions compare as the
// tuple (Epoch, Major, Minor, User): Epoch is bumped by a newly elected
// master, Major by configuration changes, Minor by connector up/down
// transitions, User by membership and master changes.
type Version struct {
	Epoch uint64
	Major uint32
	Minor uint32
	User  uint32
}

// Compare returns -1, 0 or +1 as v is older than, equal to or newer than o.
func (v Version) Compare(o Version) int {
	switch {
	case v.Epoch != o.Epoch:
		return cmpU64(v.Epoch, o.Epoch)
	case v.Major != o.Major:
		return cmpU64(uint64(v.Major), uint64(o.Major))
	case v.Minor != o.Minor:
		return cmpU64(uint64(v.Minor), uint64(o.Minor))
	default:
		return cmpU64(uint64(v.User), uint64(o.User))
	}
}

func cmpU64(a, b uint64) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// AddressSpace is a recipient-domain pattern ("example.com",
// "*.example.com" or "*") with the cost of delivering to it.
type AddressSpace struct {
	Pattern string `yaml:"pattern"`
	Cost    uint32 `yaml:"cost"`
}

// Member is one node of a routing group as its master last saw it.
type Member struct {
	Name      string // node name, unique in the organisation
	SMTP      string // host:port of its mesh-facing SMTP listener
	LinkState string // host:port of its port-691 listener
	Priority  uint32 // master election priority (higher wins)
}

// PairState is the observed state of one (source bridgehead, target
// bridgehead) pair of a connector.
type PairState struct {
	Source string // node name in the connector's From RG
	Target string // SMTP host:port in the connector's To RG
	Up     bool
}

// Connector is a directed, cost-weighted link from one routing group to
// another (To set) or to the outside (To empty: Smarthost set, or
// delivery by DNS MX when Smarthost is empty).
type Connector struct {
	ID                string   // name, unique within the From RG
	From              string   // RG name
	To                string   // RG name; "" for an external connector
	Cost              uint32   // 1..100
	SourceBridgeheads []string // node names of From; empty means any member
	TargetBridgeheads []string // SMTP host:port addresses in To
	Smarthost         string   // external connectors only: host:port; "" = MX
	AddressSpaces     []AddressSpace
	Pairs             []PairState // per-pair state; Up() derives from it
	Suppressed        bool        // flap damping holds this connector down
	// Bridge marks a connector that is the only path between its ends
	// in the RG graph (see Bridges). It is never advertised down: mail
	// for it waits in its queue instead of being routed nowhere.
	Bridge bool
}

// Up reports whether at least one bridgehead pair is up and the
// connector is not suppressed by flap damping. A connector with no
// recorded pairs is up (nothing has been observed against it). A bridge
// connector is always up.
func (c *Connector) Up() bool {
	if c.Bridge {
		return true
	}
	if c.Suppressed {
		return false
	}
	if len(c.Pairs) == 0 {
		return true
	}
	for _, p := range c.Pairs {
		if p.Up {
			return true
		}
	}
	return false
}

// Record is the link-state record of one routing group, as originated
// and signed by its master. Records are immutable once installed in an
// LSDB; copy before changing.
type Record struct {
	RG            string
	Version       Version
	Master        string    // node name of the originating master
	IssuedAt      time.Time // truncated to the second on the wire
	TTL           time.Duration
	Members       []Member
	Connectors    []Connector
	AddressSpaces []AddressSpace // domains this RG delivers locally
	Tombstone     bool           // a signed deletion of RG
	KeyID         string         // which key signed it ("" = org HMAC)
	Signature     []byte
}

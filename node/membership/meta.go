package membership

import (
	"encoding/json"
	"fmt"
)

// metaVersion is the first field of the encoded metadata, so that a
// future layout can be told apart from this one.
const metaVersion = 1

// maxMetaBytes is memberlist's limit for node metadata (MetaMaxSize).
const maxMetaBytes = 512

// Meta is what a node tells the rest of its pool about itself.
type Meta struct {
	RG        string `json:"rg"`
	SMTP      string `json:"smtp"`      // host:port of the mesh-facing SMTP listener
	LinkState string `json:"linkstate"` // host:port of the port-691 listener
	Priority  uint32 `json:"prio"`      // master election priority: higher wins
	// Org is the version of the organisation document the node applied
	// (0: none), for meshctl org status.
	Org uint64 `json:"org,omitempty"`
	// Draining: the node drains (meshctl node drain): it takes no new
	// mail and hands what it holds to the group's other members, which
	// leave it out of their next hops (package routing, drain.go).
	Draining bool `json:"draining,omitempty"`
}

type wireMeta struct {
	V int `json:"v"`
	Meta
}

func encodeMeta(m Meta) ([]byte, error) {
	b, err := json.Marshal(wireMeta{V: metaVersion, Meta: m})
	if err != nil {
		return nil, fmt.Errorf("membership: encode meta: %w", err)
	}
	if len(b) > maxMetaBytes {
		return nil, fmt.Errorf("membership: encode meta: %d bytes exceeds %d", len(b), maxMetaBytes)
	}
	return b, nil
}

func decodeMeta(b []byte) (Meta, error) {
	var w wireMeta
	if len(b) > maxMetaBytes {
		return Meta{}, fmt.Errorf("membership: decode meta: %d bytes exceeds %d", len(b), maxMetaBytes)
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return Meta{}, fmt.Errorf("membership: decode meta: %w", err)
	}
	if w.V != metaVersion {
		return Meta{}, fmt.Errorf("membership: decode meta: version %d, want %d", w.V, metaVersion)
	}
	return w.Meta, nil
}

package adminapi

import (
	"encoding/json"
	"time"
)

// OrgInfo is one version of the organisation document (GET /api/org,
// GET /api/org/history). Document is the document's canonical JSON
// (package orgdoc), absent in the history list.
type OrgInfo struct {
	Version      uint64          `json:"version"`
	IssuedAt     time.Time       `json:"issued_at"`
	Signer       string          `json:"signer"`
	Organisation string          `json:"organisation,omitempty"`
	Comment      string          `json:"comment,omitempty"`
	InForce      bool            `json:"in_force"`
	Document     json.RawMessage `json:"document,omitempty"`
}

// OrgHistory lists the versions a node keeps, oldest first.
type OrgHistory struct {
	Versions []OrgInfo `json:"versions"`
}

// OrgApplyResult answers POST /api/org: the version now in force and
// whether the posted document made it so (false: it was in force already).
type OrgApplyResult struct {
	Version uint64 `json:"version"`
	Fresh   bool   `json:"fresh"`
}

// OrgStatus answers GET /api/org/status: the version each node of the
// organisation applied, as far as this node knows it.
type OrgStatus struct {
	Node    string          `json:"node"`
	RG      string          `json:"rg"`
	Version uint64          `json:"version"` // in force on this node
	Nodes   []OrgNodeStatus `json:"nodes"`
}

// OrgNodeStatus is one node's applied version. Source says how this node
// knows it: "self"; "gossip" (a member of this node's routing group, from
// its gossip metadata); "x-link2state" (a target bridgehead of another
// group, from the summaries of the last X-LINK2STATE session with it, at
// Seen); "unknown" (Version 0: no word from it yet).
type OrgNodeStatus struct {
	Node    string     `json:"node"`
	RG      string     `json:"rg"`
	Version uint64     `json:"version"`
	Source  string     `json:"source"`
	Seen    *time.Time `json:"seen,omitempty"`
	Lags    bool       `json:"lags"` // Version is below the one in force here
}

package adminapi

import "time"

// DrainStatus is the answer of GET /api/node/drain and of POST
// /api/node/drain and /api/node/undrain: whether the node drains
// (docs/drain.md) and what it still holds.
type DrainStatus struct {
	Node     string     `json:"node"`
	RG       string     `json:"rg"`
	Draining bool       `json:"draining"`
	Since    *time.Time `json:"since,omitempty"` // when the drain began (kept across restarts)
	// Queued is every message in the queue, Held those an operator or a
	// filter holds (a drain hands no held message on: release or delete
	// them), Shadows the shadow copies it keeps of copies it handed on
	// (docs/shadow.md).
	Queued  int `json:"queued"`
	Held    int `json:"held"`
	Shadows int `json:"shadows"`
	// Transactions are SMTP mail transactions in progress on the node's
	// listeners: mail that may still be acknowledged here.
	Transactions int `json:"transactions"`
	// Members are the members of the group that take this node's mail
	// (they do not drain); DrainingMembers those that drain.
	Members         []string `json:"members"`
	DrainingMembers []string `json:"draining_members,omitempty"`
	// Done: draining, nothing queued and no transaction in progress (with
	// shadows on, for two mesh.shadow_check rounds, so that the nodes that
	// handed it copies have released their shadows of them). The node can
	// be stopped and its data directory removed without loss.
	Done bool `json:"done"`
}

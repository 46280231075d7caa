package adminapi

import (
	"time"

	"github.com/meshd/meshd/version"
)

// MessageInfo is a queued message as the admin API shows it.
type MessageInfo struct {
	ID            string          `json:"id"`
	From          string          `json:"from"`
	Size          int64           `json:"size"`
	ReceivedAt    time.Time       `json:"received_at"`
	Source        string          `json:"source,omitempty"`
	ClientAddr    string          `json:"client_addr,omitempty"`
	AuthUser      string          `json:"auth_user,omitempty"`
	EnvID         string          `json:"envid,omitempty"`
	Ret           string          `json:"ret,omitempty"`
	Trace         []string        `json:"trace,omitempty"`
	Held          bool            `json:"held"`
	DelayNotified bool            `json:"delay_notified"`
	NextAttempt   *time.Time      `json:"next_attempt,omitempty"`
	Recipients    []RecipientInfo `json:"recipients"`
}

// RecipientInfo is one recipient of a queued message.
type RecipientInfo struct {
	Addr        string     `json:"addr"`
	State       string     `json:"state"` // pending, delivered, failed, expired
	Attempts    int        `json:"attempts"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	LastAttempt *time.Time `json:"last_attempt,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	LastReply   string     `json:"last_reply,omitempty"`
	Notify      []string   `json:"notify,omitempty"`
}

// QueueList is the answer of GET /api/queue.
type QueueList struct {
	Messages []MessageInfo `json:"messages"`
}

// StatusInfo is the answer of GET /api/status.
type StatusInfo struct {
	Node         string            `json:"node"`
	RoutingGroup string            `json:"routing_group"`
	Hostname     string            `json:"hostname"`
	Listeners    map[string]string `json:"listeners"`
	LocalDomains []string          `json:"local_domains"`
	Queue        QueueStats        `json:"queue"`
	Build        *version.Info     `json:"build,omitempty"` // always set by meshd; absent from older nodes
}

// QueueStats summarises the queue in StatusInfo.
type QueueStats struct {
	Messages int        `json:"messages"`
	Bytes    int64      `json:"bytes"`
	Oldest   *time.Time `json:"oldest,omitempty"`
}

// ActionResult is the answer of the POST and DELETE queue endpoints.
type ActionResult struct {
	ID     string       `json:"id"`
	Action string       `json:"action"`
	Result *MessageInfo `json:"message,omitempty"` // the message after the action; absent after delete
}

// ErrorInfo is the body of every error answer.
type ErrorInfo struct {
	Error string `json:"error"`
	// TokenFile, in a 401 answer to a client on the node's own machine,
	// is where the admin token is (see Guard).
	TokenFile string `json:"token_file,omitempty"`
}

// ShadowInfo is one shadow copy: a copy handed to another mesh node and
// kept here until that node reports it delivered or handed on
// (docs/shadow.md).
type ShadowInfo struct {
	CopyID    string    `json:"copy_id"`
	MessageID string    `json:"message_id"`
	Peer      string    `json:"peer"`
	From      string    `json:"from"`
	Rcpts     []string  `json:"rcpts"`
	Size      int64     `json:"size"`
	HandedAt  time.Time `json:"handed_at"`
	Expires   time.Time `json:"expires"`
}

// ShadowList is the answer of GET /api/queue/shadow.
type ShadowList struct {
	Count   int          `json:"count"`
	Bytes   int64        `json:"bytes"`   // stored, bodies included
	Max     int64        `json:"max"`     // queue.max_shadow_bytes
	Skipped uint64       `json:"skipped"` // hand-offs not shadowed for want of space
	Shadows []ShadowInfo `json:"shadows"`
}

// ReloadReport is the answer of POST /api/reload: the keys whose new values
// are in force, and the keys that changed but take effect only at the next
// start.
type ReloadReport struct {
	Applied      []string `json:"applied"`
	NeedsRestart []string `json:"needs_restart"`
}

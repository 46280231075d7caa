package queue

import (
	"errors"
	"fmt"
	"time"

	"github.com/meshd/meshd/smtp/reply"
)

// Sentinel errors callers branch on with errors.Is. Every error the package
// returns is wrapped as "queue: <op> <id>: ...".
var (
	// ErrFull means the queue is at MaxMessages or the body would take it
	// over MaxBytes; the SMTP layer answers 451 4.3.0.
	ErrFull = errors.New("queue full")
	// ErrDuplicate means the ID was accepted within the dedup window; nothing
	// was stored and the caller answers 250 anyway.
	ErrDuplicate = errors.New("duplicate message id")
	// ErrCollision means the ID was accepted within the dedup window for
	// a message with another content digest (Envelope.Digest): not the
	// same message, and nothing was stored under that ID. The caller
	// queues it under another ID; dropping it would lose mail.
	ErrCollision = errors.New("message id collision: same id, other content")
	// ErrNotFound means no queued message has that ID.
	ErrNotFound = errors.New("message not found")
	// ErrInvalid means the envelope cannot be queued (bad ID, no recipients).
	ErrInvalid = errors.New("invalid envelope")
	// ErrClosed is returned by every operation after Close.
	ErrClosed = errors.New("queue closed")
	// ErrInFlight means a commit of that ID is under way: Holds cannot
	// answer yet, and the asker asks again.
	ErrInFlight = errors.New("commit of that id under way")
)

// Rcpt is one envelope recipient with its DSN parameters (RFC 3461).
type Rcpt struct {
	Addr   string
	Notify []string `json:",omitempty"` // "NEVER", "SUCCESS", "FAILURE", "DELAY"
	ORcpt  string   `json:",omitempty"`
}

// Envelope is what the node knows about a message apart from its body.
type Envelope struct {
	ID         string // mesh-unique; required, ^[a-z0-9.-]{8,80}$
	From       string // "" is the null sender <>
	Rcpts      []Rcpt
	Ret        string `json:",omitempty"` // DSN RET: FULL or HDRS
	EnvID      string `json:",omitempty"` // DSN ENVID
	SMTPUTF8   bool   `json:",omitempty"`
	EightBit   bool   `json:",omitempty"`
	ReceivedAt time.Time
	Trace      []string `json:",omitempty"` // routing groups visited
	Source     string   `json:",omitempty"` // "smtp", "submission", "mesh", "dsn", "local"
	ClientAddr string   `json:",omitempty"`
	AuthUser   string   `json:",omitempty"`
	// Quarantine, when set, queues the message held (as Hold does, in the
	// same commit) and says why: a content filter quarantined it.
	Quarantine string `json:",omitempty"`
	// Origin is the message's ID where it entered the mesh (a mesh peer's
	// X-Meshd-Origin, else ID) and MessageID its Message-ID field without
	// the angle brackets: both read from the header once, at accept.
	// Records written before they existed have neither; readers then fall
	// back to the header.
	Origin    string `json:",omitempty"`
	MessageID string `json:",omitempty"`
	// MeshAge is how long the copy had been in the mesh when this node
	// took it (the sender's X-Meshd-Age; 0 where it entered the mesh):
	// its age now is MeshAge plus the time since ReceivedAt. Suspect says
	// a twin of the copy may exist (it was resubmitted from a shadow, or
	// a previous hop said so): the node of final delivery asks its
	// group first (docs/shadow.md).
	MeshAge time.Duration `json:",omitempty"`
	Suspect bool          `json:",omitempty"`
	// HopHeader is the header fields this node put in front of the
	// message at accept (its Received:, Authentication-Results), kept
	// here rather than in the stored body: the body is the message as
	// received, and every attempt sends HopHeader in front of it. Empty in
	// records written before it existed, for DSNs the node writes and for
	// messages a content filter rewrote: their body is the whole message.
	HopHeader []byte `json:",omitempty"`
	// PeerFields is the length of the X-Meshd-* fields a mesh peer put at
	// the top of the stored body (read into ID, Origin and Trace at
	// accept): a hop to the next node sends its own instead.
	PeerFields int `json:",omitempty"`
	// Digest, when set, is a digest of the content: a later message with
	// the same ID is a duplicate only when its digest is the same (it is
	// kept with the dedup marker, not in the message record).
	Digest string `json:"-"`
}

// RcptState is the delivery state of one recipient.
type RcptState int

// Delivered is both a RcptState (the recipient was accepted by the next hop
// or the mailbox) and an Outcome (the attempt succeeded). The contract names
// both constants Delivered, so it is untyped and has the same value in both
// types: r.State == Delivered and Result{Outcome: Delivered} both work.
const Delivered = 1

// Recipient states. Only Pending recipients are ever attempted.
const (
	Pending RcptState = 0
	Failed  RcptState = 2 // permanent failure
	Expired RcptState = 3 // gave up after the queue lifetime
)

func (s RcptState) String() string {
	switch s {
	case Pending:
		return "pending"
	case Delivered:
		return "delivered"
	case Failed:
		return "failed"
	case Expired:
		return "expired"
	}
	return fmt.Sprintf("RcptState(%d)", int(s))
}

// Recipient is a Rcpt with its delivery state.
type Recipient struct {
	Rcpt
	State       RcptState
	Attempts    int
	NextAttempt time.Time
	LastError   string    `json:",omitempty"` // reply of the last failed attempt
	LastReply   string    `json:",omitempty"` // reply of the last attempt, whatever its outcome
	LastAttempt time.Time `json:",omitempty"`
	// HandedOn: Delivered by handing the message to another mesh node.
	HandedOn bool `json:",omitempty"`
	// Doubt, when set, is a mesh hop of this recipient whose content was
	// sent in full but never answered: the node may hold the copy (RFC
	// 5321 §6.1), so it goes to no other node until that node is asked.
	Doubt *Doubt `json:",omitempty"`
}

// Doubt is a hop in doubt: the copy CopyID was sent in full to the mesh
// node Node (its mesh SMTP address Addr, its port-691 address Channel)
// at Since, and no reply came.
type Doubt struct {
	Node    string `json:",omitempty"`
	Addr    string
	Channel string `json:",omitempty"`
	CopyID  string
	Since   time.Time
}

// Message is a queued message without its body.
type Message struct {
	Envelope
	Recipients    []Recipient
	Held          bool
	Size          int64 // message length in bytes: HopHeader and body
	DelayNotified bool
	NextAttempt   time.Time // earliest NextAttempt over Pending recipients; zero when none
}

// pending reports whether any recipient is still Pending.
// allHandedOn reports whether every recipient was delivered by handing the
// message on to other mesh nodes: then it was not finally delivered here.
func (m *Message) allHandedOn() bool {
	for i := range m.Recipients {
		if r := &m.Recipients[i]; r.State != Delivered || !r.HandedOn {
			return false
		}
	}
	return len(m.Recipients) > 0
}

func (m *Message) pending() bool {
	for i := range m.Recipients {
		if m.Recipients[i].State == Pending {
			return true
		}
	}
	return false
}

// updateNext recomputes NextAttempt from the recipients.
func (m *Message) updateNext() {
	m.NextAttempt = time.Time{}
	for i := range m.Recipients {
		r := &m.Recipients[i]
		if r.State != Pending {
			continue
		}
		if m.NextAttempt.IsZero() || r.NextAttempt.Before(m.NextAttempt) {
			m.NextAttempt = r.NextAttempt
		}
	}
}

// Outcome is the result of one delivery attempt for one recipient.
type Outcome int

// Attempt outcomes besides Delivered. The zero Outcome is invalid, so a
// Result that was never filled in is rejected rather than read as success.
const (
	TempFail Outcome = 2
	PermFail Outcome = 3
)

func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case TempFail:
		return "tempfail"
	case PermFail:
		return "permfail"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Result is one recipient's outcome as reported to Record.
type Result struct {
	Addr    string
	Outcome Outcome
	Reply   reply.Reply // e.g. 550 5.1.1 no such user; stored in its String form
	// Relayed: delivered to a next hop that could not carry the DSN
	// request on (RFC 3461 §4.2); the queue does not store it.
	Relayed bool
	// ReplyLost, with a TempFail: the message was sent in full and the
	// reply to its final dot never came (RFC 5321 §6.1), so the receiver
	// may hold it already; the queue does not store it.
	ReplyLost bool
	// HandedOn: delivered by handing the message to another node of the
	// mesh, which owns it from then on (stored as Recipient.HandedOn).
	HandedOn bool
	// Doubt, with a TempFail, records the hop in doubt (Recipient.Doubt;
	// an existing doubt keeps its Since). ClearDoubt, with a TempFail,
	// forgets the recipient's doubt. Delivered and PermFail always clear it.
	Doubt      *Doubt
	ClearDoubt bool
}

// Filter selects messages for List. A nil Held lists all; Limit <= 0 is no limit.
type Filter struct {
	Held  *bool
	Limit int
}

// Stats is a snapshot of the queue's size.
type Stats struct {
	Messages int
	Bytes    int64
	Oldest   time.Time // earliest ReceivedAt; zero when empty
}

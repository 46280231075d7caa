package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/meshd/meshd/smtp/dialogue"
)

// Limits bounds what one client may make the server do. DefaultLimits
// holds the defaults; a zero field takes its default, so every limit is
// always applied (go-smtp's own defaults are unlimited). The yaml keys are
// those of the limits section of meshd's config (docs/config.md).
type Limits struct {
	MaxMessageBytes int64         `yaml:"max_message_bytes"`    // 552 5.3.4; also advertised as SIZE
	MaxRecipients   int           `yaml:"max_recipients"`       // 452 4.5.3
	MaxLineLength   int           `yaml:"max_line_length"`      // command and DATA lines
	MaxHeaderBytes  int           `yaml:"max_header_bytes"`     // 552 5.6.0
	MaxReceived     int           `yaml:"max_received_headers"` // 554 5.4.6 above this many Received: fields
	CommandTimeout  time.Duration `yaml:"command_timeout"`      // idle wait for a command, and reply writes
	DataTimeout     time.Duration `yaml:"data_timeout"`         // idle wait for each block of DATA/BDAT content
	// DataTotalTimeout bounds a whole DATA/BDAT transfer however steadily
	// the bytes trickle in (slowloris): 421 4.4.2 and the connection is
	// closed.
	DataTotalTimeout time.Duration `yaml:"data_total_timeout"`
	// MaxConnsPerIP caps concurrent connections per client IP; further
	// connections get 421 4.7.0 and are closed.
	MaxConnsPerIP int `yaml:"max_connections_per_ip"`
	// MaxConns caps the concurrent connections of one listener, whoever
	// they come from; further connections get 421 4.7.0 and are closed.
	MaxConns int `yaml:"max_connections"`
	// MaxConnsPerPeer caps, on a mesh listener, the concurrent
	// connections of one authenticated mesh peer (named by its verified
	// certificate). Such a peer does not count against MaxConnsPerIP: a
	// connection over that cap may prove within PeerAuthTimeout that it
	// is a peer (STARTTLS with a node certificate) and is closed if it
	// does not (listener.go).
	MaxConnsPerPeer int           `yaml:"max_connections_per_peer"`
	PeerAuthTimeout time.Duration `yaml:"peer_auth_timeout"`
	// BareLineEnds is what happens to a message whose content holds a CR
	// not followed by LF or an LF not preceded by CR: BareNormalize
	// stores each as CRLF, BareReject refuses the message with 550 5.6.0.
	// Only CRLF.CRLF ends DATA either way.
	BareLineEnds BarePolicy `yaml:"bare_line_ends"`
}

// BarePolicy is the policy for bare CR and bare LF in message content.
type BarePolicy string

// The BarePolicy values.
const (
	BareNormalize BarePolicy = "normalize"
	BareReject    BarePolicy = "reject"
)

// DefaultLimits returns the limits a server applies where none are given.
func DefaultLimits() Limits {
	return Limits{
		MaxMessageBytes:  25 << 20,
		MaxRecipients:    100,
		MaxLineLength:    2000,
		MaxHeaderBytes:   256 << 10,
		MaxReceived:      30,
		CommandTimeout:   5 * time.Minute,
		DataTimeout:      10 * time.Minute,
		DataTotalTimeout: 30 * time.Minute,
		MaxConnsPerIP:    20,
		MaxConns:         1000,
		MaxConnsPerPeer:  100,
		PeerAuthTimeout:  10 * time.Second,
		BareLineEnds:     BareNormalize,
	}
}

// withDefaults returns l with every zero field set from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxMessageBytes == 0 {
		l.MaxMessageBytes = d.MaxMessageBytes
	}
	if l.BareLineEnds == "" {
		l.BareLineEnds = d.BareLineEnds
	}
	if l.MaxRecipients == 0 {
		l.MaxRecipients = d.MaxRecipients
	}
	if l.MaxLineLength == 0 {
		l.MaxLineLength = d.MaxLineLength
	}
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxReceived == 0 {
		l.MaxReceived = d.MaxReceived
	}
	if l.CommandTimeout == 0 {
		l.CommandTimeout = d.CommandTimeout
	}
	if l.DataTimeout == 0 {
		l.DataTimeout = d.DataTimeout
	}
	if l.MaxConnsPerIP == 0 {
		l.MaxConnsPerIP = d.MaxConnsPerIP
	}
	if l.MaxConns == 0 {
		l.MaxConns = d.MaxConns
	}
	if l.MaxConnsPerPeer == 0 {
		l.MaxConnsPerPeer = d.MaxConnsPerPeer
	}
	if l.PeerAuthTimeout == 0 {
		l.PeerAuthTimeout = d.PeerAuthTimeout
	}
	if l.DataTotalTimeout == 0 {
		l.DataTotalTimeout = d.DataTotalTimeout
	}
	return l
}

func (l Limits) validate() error {
	switch {
	case l.MaxMessageBytes < 0:
		return errors.New("max_message_bytes must not be negative")
	case l.MaxRecipients < 0:
		return errors.New("max_recipients must not be negative")
	case l.MaxLineLength < 0 || (l.MaxLineLength > 0 && l.MaxLineLength < 512):
		// RFC 5321 §4.5.3.1.4: command lines may be 512 octets.
		return errors.New("max_line_length must be at least 512")
	case l.MaxHeaderBytes < 0:
		return errors.New("max_header_bytes must not be negative")
	case l.MaxReceived < 0:
		return errors.New("max_received_headers must not be negative")
	case l.CommandTimeout < 0 || l.DataTimeout < 0 || l.DataTotalTimeout < 0:
		return errors.New("timeouts must not be negative")
	case l.MaxConnsPerIP < 0:
		return errors.New("max_connections_per_ip must not be negative")
	case l.MaxConns < 0:
		return errors.New("max_connections must not be negative")
	case l.MaxConnsPerPeer < 0:
		return errors.New("max_connections_per_peer must not be negative")
	case l.PeerAuthTimeout < 0:
		return errors.New("peer_auth_timeout must not be negative")
	}
	return nil
}

// ServerConfig configures a Server. Policy and Sink are required; Auth is
// required when Submission is set.
type ServerConfig struct {
	Hostname string       // our name in the greeting and Received: headers
	Addr     string       // listen address when Listener is nil, e.g. "127.0.0.1:2525"
	Listener net.Listener // optional; the Server owns it and closes it on Close
	// TLS enables STARTTLS, which the server terminates below go-smtp;
	// nil means STARTTLS is not offered.
	TLS *tls.Config
	// Extensions add SMTP service extensions go-smtp does not know (verbs
	// and EHLO keywords) to every session: smtp/xlink's X-LINK2STATE on a
	// mesh listener. They run in the server's one dialogue follower.
	Extensions []dialogue.Extension
	// Submission makes this a message submission listener (RFC 6409): AUTH
	// PLAIN and LOGIN are offered only after STARTTLS, and MAIL is refused
	// with 530 5.7.0 until the client has authenticated. Requires TLS and Auth.
	Submission bool
	// ImplicitTLS terminates TLS with TLS at connect, before the greeting
	// (RFC 8314 §3.3, "submissions"); STARTTLS is then not offered.
	ImplicitTLS bool
	// Mesh marks a mesh-facing listener (X-LINK2STATE is added by smtp/xlink
	// in Extensions). It only sets Session.MeshPeer when MeshPeer allows it.
	Mesh bool
	// MeshPeer, if set on a Mesh listener, says whether a session's client
	// is an authenticated mesh peer (for example by address or TLS client
	// certificate); tlsState is nil before TLS. It is asked after EHLO and
	// again whenever the transaction state resets (RSET, after each message),
	// so a STARTTLS run below go-smtp is seen.
	MeshPeer func(s *Session, tlsState *tls.ConnectionState) bool
	Limits   Limits
	Policy   Policy
	Sink     Sink
	Auth     Authenticator
	Logger   *slog.Logger
	// Now is the clock used for Received: dates; default time.Now.
	Now func() time.Time
	// OnReply, if set, is called with the code of every reply the server
	// sends to a client (go-smtp's, the interposer's own, the greeting and
	// the 421 of the per-IP cap), once per reply, from the goroutine that
	// sends it. X-LINK2STATE's replies (smtp/xlink) are not included.
	OnReply func(code int)
	// OnBareLineEnd, if set, is called for every message whose content held
	// a bare CR or LF, with the policy applied to it (Limits.BareLineEnds).
	OnBareLineEnd func(BarePolicy)
	// OnDataTooSlow, if set, is called for every transfer cut by
	// Limits.DataTotalTimeout.
	OnDataTooSlow func()
}

// Session describes the client side of one SMTP session as far as it is
// known when a callback runs. Callbacks must not keep it past their return.
type Session struct {
	RemoteAddr net.Addr
	Helo       string
	TLS        bool
	AuthUser   string
	MeshPeer   bool
	// From is the current transaction's reverse-path (MAIL FROM; "" for
	// <> and before MAIL), for a Policy that asks about the sender.
	From string
	// ID identifies the current transaction; it is the "id" of our
	// Received: header and has the mesh message ID format (26 lowercase
	// base32 characters), so a Sink may adopt it.
	ID string
	// Received is the length of our Received: field at the start of the
	// body the Sink is given: a Sink that keeps the hop's trace apart from
	// the message as received splits the body there.
	Received int
}

// Policy decides on relaying; the node implements it.
type Policy interface {
	// CheckRcpt decides relay: return nil to accept, or a *Reply (e.g.
	// ReplyRelayDenied) to refuse with it. Other errors become 451 4.3.0.
	CheckRcpt(s *Session, rcpt string) error
}

// Authenticator checks submission credentials.
type Authenticator interface {
	Authenticate(user, pass string) bool
}

// Rcpt is one envelope recipient with its DSN parameters (RFC 3461).
type Rcpt struct {
	Addr   string
	Notify []string // "NEVER" or any of "SUCCESS", "FAILURE", "DELAY"
	ORcpt  string   // "addr-type;address" decoded, e.g. "rfc822;bob@example.test"
}

// Envelope is the SMTP envelope of one accepted message.
type Envelope struct {
	From     string // "" for the null reverse-path <>
	Rcpts    []Rcpt
	Ret      string // DSN RET: "FULL", "HDRS" or ""
	EnvID    string // DSN ENVID, decoded
	SMTPUTF8 bool
	EightBit bool // BODY=8BITMIME
}

// Sink receives accepted messages; the node implements it.
type Sink interface {
	// Accept is called after DATA/BDAT is complete and checked; body already
	// has our Received: header prepended (Session.Received bytes of it). Return nil for 250; a *Reply (in
	// an error chain) is sent as is; other errors become 451 4.3.0.
	Accept(ctx context.Context, s *Session, env Envelope, body []byte) error
}

// QueueIDSink is an optional extension of Sink. When the Sink implements it
// the server calls AcceptID instead of Accept and reports the returned ID in
// the reply ("250 2.0.0 OK queued as <id>"). Without it the reply names
// Session.ID.
type QueueIDSink interface {
	Sink
	AcceptID(ctx context.Context, s *Session, env Envelope, body []byte) (id string, err error)
}

func (c *ServerConfig) validate() error {
	switch {
	case c.Policy == nil:
		return errors.New("smtp: server config: Policy is required")
	case c.Sink == nil:
		return errors.New("smtp: server config: Sink is required")
	case c.Submission && c.TLS == nil:
		return errors.New("smtp: server config: submission requires TLS (AUTH is offered only after STARTTLS)")
	case c.Submission && c.Auth == nil:
		return errors.New("smtp: server config: submission requires an Authenticator")
	case c.ImplicitTLS && c.TLS == nil:
		return errors.New("smtp: server config: implicit TLS requires TLS")
	case c.Listener == nil && c.Addr == "":
		return errors.New("smtp: server config: Addr or Listener is required")
	}
	if err := c.Limits.validate(); err != nil {
		return fmt.Errorf("smtp: server config: limits: %w", err)
	}
	return nil
}

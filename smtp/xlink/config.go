package xlink

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"time"
)

// Store is the link-state database as the protocol sees it. Summaries and
// records are opaque byte strings produced and parsed by the store (the
// linkstate package encodes them; the node adapts its LSDB to this
// interface). Implementations must be safe for concurrent use: several
// sessions may run at once.
type Store interface {
	// Digest is the org digest; equal digests mean the databases are in sync.
	Digest() [32]byte
	// Summaries is the encoded list of (RG, versions) this store holds.
	Summaries() []byte
	// Newer parses the peer's encoded summaries and returns the encoded
	// records this store holds that are newer than (or absent from) the
	// peer's. A malformed summary list is an error.
	Newer(peerSummaries []byte) (records [][]byte, err error)
	// Install verifies and installs records learned from the peer and
	// reports how many were newer and kept. Records that are refused
	// (older, badly signed, unknown RG) are simply not counted; err is for
	// failures of the whole batch (malformed input, storage, ctx).
	Install(ctx context.Context, records [][]byte) (installed int, err error)
}

// Limits bound what a peer may make us hold in memory. Both sides enforce
// them on what they receive and respect them on what they send.
type Limits struct {
	// MaxTransferBytes caps the declared total length of one transfer
	// (decoded bytes). Default 16 MiB.
	MaxTransferBytes int
	// MaxRecords caps the number of records in one RECORDS transfer.
	// Default 65536.
	MaxRecords int
}

// Default limits.
const (
	DefaultMaxTransferBytes = 16 << 20
	DefaultMaxRecords       = 65536
)

func (l Limits) withDefaults() Limits {
	if l.MaxTransferBytes <= 0 {
		l.MaxTransferBytes = DefaultMaxTransferBytes
	}
	if l.MaxRecords <= 0 {
		l.MaxRecords = DefaultMaxRecords
	}
	return l
}

// Config configures the server side (the Extension) of one mesh-facing
// listener.
type Config struct {
	// Hostname appears in 421 replies. Default "localhost".
	Hostname string
	// Store answers and absorbs link state. Required.
	Store Store
	// Allow decides whether the peer is a configured mesh peer. state is
	// nil before STARTTLS (or when TLS is not configured); with TLS its
	// VerifiedChains hold the verified client certificate, if any. A nil
	// Allow refuses everyone (550 5.7.1); mail is not affected.
	Allow func(remote net.Addr, state *tls.ConnectionState) bool
	// TLS, for Listen only, makes the follower terminate STARTTLS and the
	// extension refuse X-LINK2STATE before it (530 5.7.0). The go-smtp
	// server behind the listener must then have a nil TLSConfig. (Under
	// smtp.Server, its ServerConfig.TLS does this.)
	TLS *tls.Config
	// Limits on received transfers.
	Limits Limits
	// HandshakeTimeout bounds the TLS handshake after STARTTLS (Listen
	// only). Default 30s.
	HandshakeTimeout time.Duration
	// CommandTimeout bounds each read of a client line and each write of a
	// reply while the follower (not go-smtp) drives the dialogue, i.e.
	// between X-LINK2STATE commands and during STARTTLS (Listen only; under
	// smtp.Server its Limits.CommandTimeout). Default 5m.
	CommandTimeout time.Duration
	// InstallTimeout bounds one Store.Install call. Default 1m.
	InstallTimeout time.Duration
	// Logger receives one line per session event (attrs peer, ...).
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Hostname == "" {
		c.Hostname = "localhost"
	}
	c.Limits = c.Limits.withDefaults()
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 30 * time.Second
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = 5 * time.Minute
	}
	if c.InstallTimeout <= 0 {
		c.InstallTimeout = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// ClientConfig configures Sync.
type ClientConfig struct {
	// HeloName is sent in EHLO. Default "localhost".
	HeloName string
	// TLS, when set, makes STARTTLS mandatory: a server that does not
	// offer it fails with ErrTLSUnavailable.
	TLS *tls.Config
	// Dial opens the TCP connection (Sync only). Default net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// CommandTimeout bounds each command/reply exchange. Default 1m.
	CommandTimeout time.Duration
	// Limits on what the client accepts from the server and sends.
	Limits Limits
	// Logger for session events. Default: discard.
	Logger *slog.Logger
}

func (c ClientConfig) withDefaults() ClientConfig {
	if c.HeloName == "" {
		c.HeloName = "localhost"
	}
	if c.Dial == nil {
		var d net.Dialer
		c.Dial = d.DialContext
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = time.Minute
	}
	c.Limits = c.Limits.withDefaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Errors returned by Sync.
var (
	// ErrNotSupported: the peer's EHLO reply does not list X-LINK2STATE.
	// The peer still receives mail; the node logs and exports the fact.
	ErrNotSupported = errors.New("xlink: peer does not advertise X-LINK2STATE")
	// ErrTLSUnavailable: TLS is configured but the peer offers no STARTTLS.
	ErrTLSUnavailable = errors.New("xlink: peer does not offer STARTTLS")
	// ErrProtocol: the peer violated the protocol (framing, length, hash,
	// limits); the session was abandoned.
	ErrProtocol = errors.New("xlink: protocol violation")
)

package xlink

import (
	"crypto/tls"
	"strings"

	"github.com/meshd/meshd/smtp/dialogue"
)

// Extension is X-LINK2STATE as an extension of the SMTP dialogue follower
// (smtp/dialogue): give it to smtp.ServerConfig.Extensions on a mesh
// listener, or use Listen in front of a go-smtp server of one's own. On
// every connection it announces X-LINK2STATE to a mesh peer after EHLO
// and answers its commands in command state; go-smtp never sees them.
type Extension struct {
	cfg Config
}

// NewExtension returns the extension; cfg.Store must be set. cfg.TLS,
// CommandTimeout and HandshakeTimeout are the follower's and matter only
// to Listen (a smtp.Server takes its own).
func NewExtension(cfg Config) *Extension {
	return &Extension{cfg: cfg.withDefaults()}
}

// Open implements dialogue.Extension.
func (e *Extension) Open(c *dialogue.Conn) dialogue.Handler {
	h := &handler{cfg: &e.cfg, c: c}
	h.proto.init(&e.cfg)
	return h
}

// handler is the extension on one connection.
type handler struct {
	cfg   *Config
	c     *dialogue.Conn
	proto serverSession
}

// Command intercepts the extension's verb, and while a transfer is open
// any command but RSET and QUIT (PROTOCOL.md §3).
func (h *handler) Command(cmd dialogue.Command) (bool, error) {
	switch {
	case isXLink(cmd.Line):
		return true, h.xlink(cmd.Line, cmd.Complete)
	case h.proto.inTransfer() && cmd.Verb != "RSET" && cmd.Verb != "QUIT":
		return true, h.drop("503 5.5.1 X-LINK2STATE transfer in progress")
	case cmd.Verb == "STARTTLS" && cmd.Complete && dialogue.IsSTARTTLS(cmd.Line) &&
		h.c.OffersTLS() && !h.c.TLSOn() && !h.c.EHLO():
		// A peer learns of STARTTLS from the EHLO reply; mesh listeners
		// have always insisted on one first.
		return true, h.c.Reply("503 5.5.1 Send EHLO first")
	}
	return false, nil
}

// Keywords offers X-LINK2STATE only to whom it is for: a mesh peer (with
// TLS configured, after STARTTLS, when the client's certificate is known).
func (h *handler) Keywords() []string {
	st := h.tlsState()
	if h.cfg.Allow != nil && (!h.c.OffersTLS() || st != nil) && h.cfg.Allow(h.c.RemoteAddr(), st) {
		return []string{xlinkVerb}
	}
	return nil
}

// Reset: EHLO, HELO, RSET and STARTTLS end any exchange in progress.
func (h *handler) Reset() { h.proto.reset() }

// isXLink reports whether line is an X-LINK2STATE command.
func isXLink(line []byte) bool {
	if len(line) < len(xlinkVerb) || !strings.EqualFold(string(line[:len(xlinkVerb)]), xlinkVerb) {
		return false
	}
	rest := line[len(xlinkVerb):]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\r' || rest[0] == '\n'
}

// drop refuses the command with reply, announces 421 and closes: the
// session is over (RFC 5321 §3.8).
func (h *handler) drop(reply string) error {
	h.cfg.Logger.Info("xlink: session dropped", "peer", h.c.RemoteAddr().String(), "reason", reply)
	return h.c.Drop(reply, "421 4.7.0 "+h.cfg.Hostname+" closing transmission channel")
}

// tlsState returns the session's TLS state, nil before STARTTLS.
func (h *handler) tlsState() *tls.ConnectionState {
	if cs, ok := h.c.TLSConnectionState(); ok {
		return &cs
	}
	return nil
}

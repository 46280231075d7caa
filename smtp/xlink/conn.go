package xlink

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/meshd/meshd/smtp/dialogue"
)

// mode is where the SMTP dialogue stands, as the interposer follows it.
type mode int

const (
	// modeIdle: go-smtp has answered every command it was given; the next
	// client line is a command and may be intercepted.
	modeIdle mode = iota
	// modeCmd: a command was handed to go-smtp and its final reply has not
	// been written yet; lines pass through one at a time (AUTH responses).
	modeCmd
	// modeData: after go-smtp's 354; bytes pass up to and including the
	// end-of-data line, tracked with the same state machine go-smtp uses.
	modeData
	// modeBDAT: the chunk of a BDAT command passes raw, bdatLeft bytes.
	modeBDAT
	// modePass: the interposer lost track (or the session is ending):
	// everything passes raw and nothing is ever intercepted again.
	modePass
)

// lineBufSize bounds how much of a client line the interposer looks at.
// go-smtp's own limit (MaxLineLength, 2000 by default) is smaller.
const lineBufSize = dialogue.MaxHeldReply

// errDropped is returned internally when the interposer closed the session.
var errDropped = errors.New("xlink: session dropped")

// Conn is the connection go-smtp sees on a mesh listener. Reads hand
// go-smtp the client's bytes (one command line at a time in command
// state); X-LINK2STATE and, when TLS is configured, STARTTLS are answered
// by the interposer and never reach go-smtp. Writes pass go-smtp's replies
// through, adding the EHLO keywords.
//
// go-smtp's own Conn.TLSConnectionState reports false on a mesh listener
// (it type-asserts *tls.Conn); use Conn.TLSConnectionState and
// Conn.PeerCertificate instead, reached through go-smtp's Conn.Conn().
type Conn struct {
	ctx context.Context
	cfg *Config
	raw net.Conn

	w *dialogue.Wire // to the client: raw, or the TLS session after STARTTLS

	mu        sync.Mutex // guards the fields below; taken after w's write lock
	mode      mode
	verb      string             // go-smtp's verb of the command it is handling
	swallow   bool               // drop go-smtp's reply (to our injected RSET)
	ehloHeld  []byte             // EHLO reply held until its last line
	ehlo      bool               // a successful EHLO since connect/STARTTLS
	needEHLO  bool               // STARTTLS done, no EHLO yet
	eod       dialogue.EndOfData // modeData: where the content stands
	closed    bool
	closeOnce sync.Once
	closeErr  error

	// Owned by the goroutine calling Read (go-smtp's connection goroutine).
	br       *bufio.Reader
	pending  []byte
	bdatLeft int64
	proto    serverSession
}

func newConn(ctx context.Context, raw net.Conn, cfg *Config) *Conn {
	c := &Conn{ctx: ctx, cfg: cfg, raw: raw, w: dialogue.NewWire(raw), mode: modeCmd}
	c.br = bufio.NewReaderSize(raw, lineBufSize)
	c.proto.init(cfg)
	return c
}

// Read implements net.Conn for go-smtp.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if len(c.pending) > 0 {
			n := copy(p, c.pending)
			c.pending = c.pending[n:]
			return n, nil
		}
		c.mu.Lock()
		m, closed := c.mode, c.closed
		c.mu.Unlock()
		if closed {
			return 0, io.EOF
		}
		switch m {
		case modePass:
			return c.br.Read(p)
		case modeBDAT:
			return c.readBDAT(p)
		case modeData:
			return c.readData(p)
		case modeCmd:
			line, _, err := c.readLine()
			if len(line) == 0 {
				return 0, err
			}
			c.pending = line
		case modeIdle:
			line, complete, err := c.readLine()
			if len(line) == 0 {
				return 0, err
			}
			if err := c.command(line, complete); err != nil {
				return 0, io.EOF
			}
			if len(c.pending) > 0 {
				// Back to go-smtp, under the deadline it asked for.
				c.restoreReadDeadline()
			}
		}
	}
}

// readLine returns the next client line (with its LF) or, when the line
// is longer than the buffer or the stream ends, the bytes available.
func (c *Conn) readLine() (line []byte, complete bool, err error) {
	s, complete, err := dialogue.ReadLine(c.br)
	return append([]byte(nil), s...), complete, err
}

// command decides what to do with one client line in command state: the
// interposer's own verbs are answered here, everything else is handed to
// go-smtp with the state it implies.
func (c *Conn) command(line []byte, complete bool) error {
	if isXLink(line) {
		return c.xlink(line, complete)
	}
	verb, arg := dialogue.Verb(line)
	c.mu.Lock()
	needEHLO := c.needEHLO
	c.mu.Unlock()
	switch {
	case c.proto.inTransfer() && verb != "RSET" && verb != "QUIT":
		return c.drop("503 5.5.1 X-LINK2STATE transfer in progress")
	case verb == "STARTTLS" && c.cfg.TLS != nil:
		return c.startTLS(line, complete)
	case needEHLO && !allowedBeforeEHLO[verb]:
		return c.reply("503 5.5.1 Send EHLO first after STARTTLS")
	}
	if verb == "EHLO" || verb == "HELO" || verb == "RSET" {
		// RFC 5321 §4.1.1.1 and §4.1.1.5: both reset the session state.
		c.proto.reset()
	}
	c.mu.Lock()
	c.verb = verb
	c.mode = modeCmd
	if !complete {
		// A line longer than we look at: go-smtp refuses it; we stop
		// following the dialogue rather than guess where it resumes.
		c.mode = modePass
	} else if verb == "BDAT" {
		if n, ok := dialogue.ChunkSize(arg); ok && n > 0 {
			c.mode, c.bdatLeft = modeBDAT, n
		}
	}
	c.mu.Unlock()
	c.pending = line
	return nil
}

var allowedBeforeEHLO = map[string]bool{"EHLO": true, "HELO": true, "QUIT": true, "NOOP": true, "RSET": true}

// isXLink reports whether line is an X-LINK2STATE command.
func isXLink(line []byte) bool {
	const kw = "X-LINK2STATE"
	if len(line) < len(kw) || !strings.EqualFold(string(line[:len(kw)]), kw) {
		return false
	}
	rest := line[len(kw):]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\r' || rest[0] == '\n'
}

func (c *Conn) readBDAT(p []byte) (int, error) {
	n, err := dialogue.ReadChunk(c.br, p, c.bdatLeft)
	c.bdatLeft -= int64(n)
	if c.bdatLeft == 0 {
		c.mu.Lock()
		if c.mode == modeBDAT {
			c.mode = modeCmd
		}
		c.mu.Unlock()
	}
	return n, err
}

// readData passes DATA content up to and including its end line.
func (c *Conn) readData(p []byte) (int, error) {
	n, ended, err := c.eod.Read(c.br, p)
	if ended {
		c.mu.Lock()
		if c.mode == modeData {
			c.mode = modeCmd
		}
		c.mu.Unlock()
	}
	return n, err
}

// Write implements net.Conn for go-smtp: replies pass through, the EHLO
// reply gets the interposer's keywords before its last line.
func (c *Conn) Write(p []byte) (int, error) {
	return c.w.WriteReplies(p, &c.mu, c.filterReply)
}

// filterReply handles one reply line from go-smtp (mu held).
func (c *Conn) filterReply(out, line []byte) []byte {
	code, final := dialogue.ReplyCode(line)
	if c.swallow {
		if final {
			c.swallow = false
			c.afterReply(code)
		}
		return out
	}
	if c.verb == "EHLO" && c.mode == modeCmd {
		c.ehloHeld = append(c.ehloHeld, line...)
		if !final {
			return out
		}
		held := c.ehloHeld
		c.ehloHeld = nil
		if code == 250 {
			held = insertKeywords(held, c.keywords())
			c.ehlo, c.needEHLO = true, false
		} else {
			c.ehlo = false
		}
		out = append(out, held...)
		c.afterReply(code)
		return out
	}
	out = append(out, line...)
	if final {
		c.afterReply(code)
	}
	return out
}

// afterReply moves the dialogue on after go-smtp's final reply line.
func (c *Conn) afterReply(code int) {
	switch {
	case c.mode == modeCmd && code == 354:
		c.mode = modeData
		c.eod.Reset()
	case c.mode == modeCmd && code == 334:
		// SASL challenge: the next client line is a response, not a command.
	case c.mode == modeCmd:
		c.mode = modeIdle
		if c.verb == "HELO" && code == 250 {
			c.ehlo = false // X-LINK2STATE needs EHLO
			c.needEHLO = false
		}
		if c.verb == "QUIT" {
			c.mode = modePass
		}
	case c.mode == modeData || c.mode == modeBDAT:
		// go-smtp ended the command before the content we expected: we
		// no longer know where commands start, so we stop interpreting.
		c.mode = modePass
	}
}

func (c *Conn) keywords() []string {
	var kw []string
	st := c.tlsState()
	if c.cfg.TLS != nil && st == nil {
		kw = append(kw, "STARTTLS")
	}
	// Offered only to whom it is for: a mesh peer (with TLS configured,
	// after STARTTLS, when the client's certificate is known).
	if c.cfg.Allow != nil && (c.cfg.TLS == nil || st != nil) && c.cfg.Allow(c.raw.RemoteAddr(), st) {
		kw = append(kw, "X-LINK2STATE")
	}
	return kw
}

// replyCode parses a reply line's code; see dialogue.ReplyCode.
func replyCode(line []byte) (int, bool) { return dialogue.ReplyCode(line) }

// insertKeywords adds keyword lines to an EHLO reply; see
// dialogue.InsertKeywords.
func insertKeywords(reply []byte, kws []string) []byte {
	return dialogue.InsertKeywords(reply, kws)
}

// restoreReadDeadline puts back the deadline go-smtp last asked for.
func (c *Conn) restoreReadDeadline() { c.w.Deadlines().RestoreRead() }

// reply writes interposer reply lines straight to the client.
func (c *Conn) reply(lines ...string) error {
	var b []byte
	for _, l := range lines {
		b = append(b, l...)
		b = append(b, '\r', '\n')
	}
	return c.w.Reply(c.cfg.CommandTimeout, b)
}

// drop refuses the command with reply, announces 421 and closes: the
// session is over (RFC 5321 §3.8).
func (c *Conn) drop(reply string) error {
	_ = c.raw.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_ = c.reply(reply, "421 4.7.0 "+c.cfg.Hostname+" closing transmission channel")
	c.cfg.Logger.Info("xlink: session dropped", "peer", c.raw.RemoteAddr().String(), "reason", reply)
	_ = c.Close()
	return errDropped
}

// startTLS terminates STARTTLS for go-smtp (RFC 3207).
func (c *Conn) startTLS(line []byte, complete bool) error {
	c.mu.Lock()
	ehlo := c.ehlo
	c.mu.Unlock()
	tlsOn := c.tlsState() != nil
	switch {
	case !complete || !dialogue.IsSTARTTLS(line):
		return c.reply("501 5.5.4 Syntax: STARTTLS")
	case tlsOn:
		return c.reply("503 5.5.1 TLS already active")
	case !ehlo:
		return c.reply("503 5.5.1 Send EHLO first")
	}
	tc, err := c.w.StartTLS(c.cfg.TLS, c.cfg.CommandTimeout, func(tc *tls.Conn) error {
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.HandshakeTimeout)
		defer cancel()
		return tc.HandshakeContext(ctx)
	})
	var hsErr *dialogue.HandshakeError
	switch {
	case errors.As(err, &hsErr):
		c.cfg.Logger.Info("xlink: TLS handshake failed", "peer", c.raw.RemoteAddr().String(), "err", hsErr.Err)
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		return errDropped
	case err != nil:
		return err
	}
	// RFC 3207 §4.2: forget everything learned before TLS. Plaintext that
	// was pipelined after STARTTLS is discarded with the old reader; go-smtp
	// is fed an RSET whose reply is swallowed, and the client must EHLO.
	c.br = bufio.NewReaderSize(tc, lineBufSize)
	c.proto.reset()
	c.mu.Lock()
	c.ehlo, c.needEHLO = false, true
	c.verb, c.swallow, c.mode = "RSET", true, modeCmd
	c.mu.Unlock()
	c.pending = []byte("RSET\r\n")
	return nil
}

// TLSConnectionState returns the state of the TLS session the interposer
// terminated, and false before STARTTLS.
func (c *Conn) TLSConnectionState() (tls.ConnectionState, bool) { return c.w.TLS() }

// tlsState returns the TLS session the interposer terminated, nil before
// STARTTLS.
func (c *Conn) tlsState() *tls.ConnectionState {
	if cs, ok := c.w.TLS(); ok {
		return &cs
	}
	return nil
}

// PeerCertificate returns the client's certificate when it was verified
// against Config.TLS (ClientAuth with ClientCAs), nil otherwise.
func (c *Conn) PeerCertificate() *x509.Certificate {
	cs, ok := c.TLSConnectionState()
	if !ok || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil
	}
	return cs.VerifiedChains[0][0]
}

// Close closes the connection (with a TLS close_notify after STARTTLS).
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.closeErr = c.w.Close(5 * time.Second)
	})
	return c.closeErr
}

// LocalAddr and RemoteAddr are the TCP connection's.
func (c *Conn) LocalAddr() net.Addr  { return c.raw.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// SetDeadline sets both deadlines (see SetReadDeadline).
func (c *Conn) SetDeadline(t time.Time) error { return c.w.Deadlines().SetDeadline(t) }

// SetReadDeadline is go-smtp's; the interposer remembers it and restores
// it after reading commands under its own CommandTimeout.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.w.Deadlines().SetReadDeadline(t) }

// SetWriteDeadline is go-smtp's (restored after interposer replies).
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.w.Deadlines().SetWriteDeadline(t) }

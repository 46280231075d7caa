package xlink

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
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
const lineBufSize = 4096

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

	wmu sync.Mutex // serialises writes to wire; taken before mu

	mu        sync.Mutex // guards the fields below
	wire      net.Conn   // raw, or the *tls.Conn after STARTTLS
	tlsState  *tls.ConnectionState
	mode      mode
	verb      string // go-smtp's verb of the command it is handling
	swallow   bool   // drop go-smtp's reply (to our injected RSET)
	ehloHeld  []byte // EHLO reply held until its last line
	ehlo      bool   // a successful EHLO since connect/STARTTLS
	needEHLO  bool   // STARTTLS done, no EHLO yet
	outbuf    []byte // partial reply line from go-smtp
	dataState int
	goRead    time.Time // deadlines as go-smtp last set them
	goWrite   time.Time
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
	c := &Conn{ctx: ctx, cfg: cfg, raw: raw, wire: raw, mode: modeCmd}
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
	s, err := c.br.ReadSlice('\n')
	line = append([]byte(nil), s...)
	if err == bufio.ErrBufferFull {
		return line, false, nil
	}
	return line, err == nil, err
}

// command decides what to do with one client line in command state: the
// interposer's own verbs are answered here, everything else is handed to
// go-smtp with the state it implies.
func (c *Conn) command(line []byte, complete bool) error {
	if isXLink(line) {
		return c.xlink(line, complete)
	}
	verb, arg := goSMTPVerb(line)
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
		if n, ok := bdatSize(arg); ok && n > 0 {
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

// goSMTPVerb mirrors how go-smtp v0.25 splits a command line (parseCmd):
// the verb is the first four characters, followed by a space or nothing;
// any line starting with STARTTLS is STARTTLS.
func goSMTPVerb(line []byte) (verb, arg string) {
	s := strings.TrimRight(string(line), "\r\n")
	if strings.HasPrefix(strings.ToUpper(s), "STARTTLS") {
		return "STARTTLS", ""
	}
	switch {
	case len(s) == 4:
		return strings.ToUpper(s), ""
	case len(s) < 6 || s[4] != ' ':
		return "", ""
	}
	return strings.ToUpper(s[:4]), strings.TrimSpace(s[5:])
}

// bdatSize mirrors go-smtp's BDAT argument checks: when they pass, go-smtp
// reads (or discards) exactly n bytes of chunk, whatever it answers.
func bdatSize(arg string) (int64, bool) {
	args := strings.Fields(arg)
	if len(args) == 0 || len(args) > 2 {
		return 0, false
	}
	if len(args) == 2 && !strings.EqualFold(args[1], "LAST") {
		return 0, false
	}
	n, err := strconv.ParseUint(args[0], 10, 32)
	if err != nil {
		return 0, false
	}
	return int64(n), true
}

func (c *Conn) readBDAT(p []byte) (int, error) {
	if int64(len(p)) > c.bdatLeft {
		p = p[:c.bdatLeft]
	}
	n, err := c.br.Read(p)
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

// Data states, the same machine as go-smtp's dataReader (and
// net/textproto's dotReader): a line starts only after CRLF, and ".CRLF"
// at the start of a line ends the data.
const (
	dsBeginLine = iota
	dsDot
	dsDotCR
	dsCR
	dsData
)

func (c *Conn) readData(p []byte) (int, error) {
	if _, err := c.br.Peek(1); err != nil {
		return 0, err
	}
	buf, _ := c.br.Peek(min(c.br.Buffered(), len(p)))
	c.mu.Lock()
	n, ended := 0, false
	for n < len(buf) && !ended {
		b := buf[n]
		n++
		switch c.dataState {
		case dsBeginLine:
			switch b {
			case '.':
				c.dataState = dsDot
			case '\r':
				c.dataState = dsCR
			default:
				c.dataState = dsData
			}
		case dsDot:
			if b == '\r' {
				c.dataState = dsDotCR
			} else {
				c.dataState = dsData
			}
		case dsDotCR:
			if b == '\n' {
				ended = true
			} else {
				c.dataState = dsData
			}
		case dsCR:
			if b == '\n' {
				c.dataState = dsBeginLine
			} else {
				c.dataState = dsData
			}
		case dsData:
			if b == '\r' {
				c.dataState = dsCR
			}
		}
	}
	if ended && c.mode == modeData {
		c.mode = modeCmd
	}
	c.mu.Unlock()
	copy(p, buf[:n])
	_, _ = c.br.Discard(n)
	return n, nil
}

// Write implements net.Conn for go-smtp: replies pass through, the EHLO
// reply gets the interposer's keywords before its last line.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	c.outbuf = append(c.outbuf, p...)
	var out []byte
	for {
		i := bytes.IndexByte(c.outbuf, '\n')
		if i < 0 {
			break
		}
		out = c.filterReply(out, c.outbuf[:i+1])
		c.outbuf = c.outbuf[i+1:]
	}
	if len(c.outbuf) > lineBufSize {
		// Not a reply line we could act on; do not hold it back.
		out = append(out, c.outbuf...)
		c.outbuf = nil
	}
	c.outbuf = append([]byte(nil), c.outbuf...)
	wire := c.wire
	c.mu.Unlock()
	if len(out) > 0 {
		if _, err := wire.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// filterReply handles one reply line from go-smtp (mu held).
func (c *Conn) filterReply(out, line []byte) []byte {
	code, final := replyCode(line)
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
		c.mode, c.dataState = modeData, dsBeginLine
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
	if c.cfg.TLS != nil && c.tlsState == nil {
		kw = append(kw, "STARTTLS")
	}
	return append(kw, "X-LINK2STATE")
}

// replyCode parses "ddd-" or "ddd " (final); anything else counts as a
// final line with code 0.
func replyCode(line []byte) (int, bool) {
	if len(line) < 3 {
		return 0, true
	}
	code := 0
	for _, b := range line[:3] {
		if b < '0' || b > '9' {
			return 0, true
		}
		code = code*10 + int(b-'0')
	}
	return code, len(line) == 3 || line[3] != '-'
}

// insertKeywords adds "ddd-KEYWORD" lines before the last line of a
// multi-line 250 reply (turning a one-line reply into a multi-line one).
func insertKeywords(reply []byte, kws []string) []byte {
	body := reply
	var lastStart int
	if i := bytes.LastIndexByte(bytes.TrimRight(body, "\r\n"), '\n'); i >= 0 {
		lastStart = i + 1
	}
	var out []byte
	if lastStart == 0 {
		first := append([]byte(nil), body...)
		if len(first) > 3 {
			first[3] = '-'
		}
		out = append(out, first...)
		for i, kw := range kws {
			sep := "-"
			if i == len(kws)-1 {
				sep = " "
			}
			out = append(out, "250"+sep+kw+"\r\n"...)
		}
		return out
	}
	out = append(out, body[:lastStart]...)
	for _, kw := range kws {
		out = append(out, "250-"+kw+"\r\n"...)
	}
	return append(out, body[lastStart:]...)
}

// extendReadDeadline gives the client CommandTimeout for its next line
// while the interposer, not go-smtp, is reading commands.
func (c *Conn) extendReadDeadline() {
	_ = c.raw.SetReadDeadline(time.Now().Add(c.cfg.CommandTimeout))
}

// restoreReadDeadline puts back the deadline go-smtp last asked for.
func (c *Conn) restoreReadDeadline() {
	c.mu.Lock()
	d := c.goRead
	c.mu.Unlock()
	_ = c.raw.SetReadDeadline(d)
}

// reply writes interposer reply lines straight to the client.
func (c *Conn) reply(lines ...string) error {
	var b []byte
	for _, l := range lines {
		b = append(b, l...)
		b = append(b, '\r', '\n')
	}
	return c.writeRaw(b)
}

func (c *Conn) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	wire, goWrite := c.wire, c.goWrite
	c.mu.Unlock()
	_ = c.raw.SetWriteDeadline(time.Now().Add(c.cfg.CommandTimeout))
	_, err := wire.Write(b)
	_ = c.raw.SetWriteDeadline(goWrite)
	c.extendReadDeadline()
	return err
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
	tlsOn, ehlo := c.tlsState != nil, c.ehlo
	c.mu.Unlock()
	switch {
	case !complete || !strings.EqualFold(strings.TrimRight(string(line), "\r\n"), "STARTTLS"):
		return c.reply("501 5.5.4 Syntax: STARTTLS")
	case tlsOn:
		return c.reply("503 5.5.1 TLS already active")
	case !ehlo:
		return c.reply("503 5.5.1 Send EHLO first")
	}
	if err := c.reply("220 2.0.0 Ready to start TLS"); err != nil {
		return err
	}
	tc := tls.Server(c.raw, c.cfg.TLS)
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.HandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		c.cfg.Logger.Info("xlink: TLS handshake failed", "peer", c.raw.RemoteAddr().String(), "err", err)
		_ = c.raw.Close()
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		return errDropped
	}
	cs := tc.ConnectionState()
	// RFC 3207 §4.2: forget everything learned before TLS. Plaintext that
	// was pipelined after STARTTLS is discarded with the old reader; go-smtp
	// is fed an RSET whose reply is swallowed, and the client must EHLO.
	c.br = bufio.NewReaderSize(tc, lineBufSize)
	c.proto.reset()
	c.mu.Lock()
	c.wire, c.tlsState = tc, &cs
	c.ehlo, c.needEHLO = false, true
	c.verb, c.swallow, c.mode = "RSET", true, modeCmd
	c.mu.Unlock()
	c.pending = []byte("RSET\r\n")
	return nil
}

// TLSConnectionState returns the state of the TLS session the interposer
// terminated, and false before STARTTLS.
func (c *Conn) TLSConnectionState() (tls.ConnectionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tlsState == nil {
		return tls.ConnectionState{}, false
	}
	return *c.tlsState, true
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
		wire := c.wire
		c.mu.Unlock()
		_ = c.raw.SetWriteDeadline(time.Now().Add(5 * time.Second))
		c.closeErr = wire.Close()
		if wire != c.raw {
			_ = c.raw.Close()
		}
	})
	return c.closeErr
}

// LocalAddr and RemoteAddr are the TCP connection's.
func (c *Conn) LocalAddr() net.Addr  { return c.raw.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// SetDeadline sets both deadlines (see SetReadDeadline).
func (c *Conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.goRead, c.goWrite = t, t
	c.mu.Unlock()
	return c.raw.SetDeadline(t)
}

// SetReadDeadline is go-smtp's; the interposer remembers it and restores
// it after reading commands under its own CommandTimeout.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.goRead = t
	c.mu.Unlock()
	return c.raw.SetReadDeadline(t)
}

// SetWriteDeadline is go-smtp's (restored after interposer replies).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.goWrite = t
	c.mu.Unlock()
	return c.raw.SetWriteDeadline(t)
}

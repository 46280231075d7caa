package smtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshd/meshd/smtp/dialogue"
)

// dialogConn is the connection go-smtp sees. It follows the SMTP dialogue
// (one client command line at a time, DATA content up to its end line,
// BDAT chunks by their byte count) so that it can
//
//   - terminate STARTTLS itself (RFC 3207) when the listener has TLS, and
//     present plaintext to go-smtp, which is configured without TLS;
//   - rewrite go-smtp's sequence-error replies from 502 5.5.1 ("command not
//     implemented") to 503 5.5.1 ("bad sequence of commands", RFC 5321
//     §4.2.4 and §4.3.2), matched on go-smtp's exact texts, and only for
//     the command that can produce them.
//
// Message content is never parsed or rewritten, and go-smtp's reply to the
// end of DATA (the Sink's verdict) passes untouched.
type dialogConn struct {
	inner   net.Conn    // the accepted connection (a *capConn)
	tlsCfg  *tls.Config // nil: STARTTLS is not ours (none, or an interposer below)
	timeout time.Duration
	log     *slog.Logger

	w *dialogue.Wire // to the client: inner, or our TLS session over it

	mu          sync.Mutex // guards the fields below; taken after w's write lock
	state       dialogState
	verb        string             // go-smtp's verb of the command it is handling
	chunkSize   int64              // BDAT: declared size of the current chunk
	chunkLeft   int64              // BDAT: bytes of it go-smtp has not read yet
	replied     bool               // BDAT: go-smtp answered before reading the chunk
	contentSeen bool               // DATA/BDAT content has flowed for the current command
	needEHLO    bool               // after our STARTTLS, until EHLO/HELO
	swallow     bool               // drop go-smtp's reply to the RSET we fed it
	ehloHeld    []byte             // EHLO reply lines held until the last one
	eod         dialogue.EndOfData // DATA: where the content stands

	reg      *dialogs       // nil in tests that build a dialogConn alone
	onReply  func(code int) // ServerConfig.OnReply; nil: not counted
	draining atomic.Bool    // Shutdown: 421 instead of the next command

	// Owned by go-smtp's connection goroutine, the only reader.
	br      *bufio.Reader
	brSize  int
	pending []byte // bytes handed to go-smtp but not yet read by it
}

// dialogState is where the dialogue stands as dialogConn follows it.
type dialogState int

const (
	// stCommand: go-smtp has answered everything; the next client line is
	// a command.
	stCommand dialogState = iota
	// stBusy: a command was handed to go-smtp and its final reply is not
	// written yet; lines go-smtp reads meanwhile (SASL responses) pass.
	stBusy
	// stData: after go-smtp's 354, content passes up to and including the
	// end-of-data line.
	stData
	// stChunk: a BDAT chunk passes, chunkLeft bytes.
	stChunk
	// stPass: the dialogue is no longer followed (a line too long to look
	// at, an error in the middle of content, QUIT): bytes pass both ways
	// and nothing is intercepted or rewritten.
	stPass
)

// minLineBuf is the smallest line buffer; it grows to the configured
// MaxLineLength so that no line go-smtp accepts is split.
const minLineBuf = dialogue.MaxHeldReply

// readBuffer is the least the interposer reads from the socket at once, so
// that a typical message arrives in one read.
const readBuffer = 16 << 10

func newDialogConn(inner net.Conn, tlsCfg *tls.Config, lim Limits, log *slog.Logger) *dialogConn {
	size := max(minLineBuf, lim.MaxLineLength+2, readBuffer)
	return &dialogConn{
		inner:   inner,
		tlsCfg:  tlsCfg,
		timeout: lim.CommandTimeout,
		log:     log,
		w:       dialogue.NewWire(inner),
		br:      bufio.NewReaderSize(inner, size),
		brSize:  size,
	}
}

// dialogListener hands go-smtp dialogConns.
type dialogListener struct {
	net.Listener
	tlsCfg  *tls.Config
	limits  Limits
	log     *slog.Logger
	reg     *dialogs
	onReply func(code int)
}

func (l dialogListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	dc := newDialogConn(c, l.tlsCfg, l.limits, l.log)
	dc.onReply = l.onReply
	if l.reg != nil {
		dc.reg = l.reg
		l.reg.add(dc)
	}
	return dc, nil
}

// dialogs is the set of a server's open dialogConns.
type dialogs struct {
	mu       sync.Mutex
	open     map[*dialogConn]struct{}
	draining bool
	changed  chan struct{} // closed and replaced when a connection goes
}

func newDialogs() *dialogs {
	return &dialogs{open: map[*dialogConn]struct{}{}, changed: make(chan struct{})}
}

func (d *dialogs) add(c *dialogConn) {
	d.mu.Lock()
	d.open[c] = struct{}{}
	draining := d.draining
	d.mu.Unlock()
	if draining {
		c.drain() // accepted just before the listener closed
	}
}

func (d *dialogs) remove(c *dialogConn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.open[c]; ok {
		delete(d.open, c)
		close(d.changed)
		d.changed = make(chan struct{})
	}
}

// drain asks every session to end (dialogConn.drain) and waits until all
// are closed or ctx is done; it returns how many are still open.
func (d *dialogs) drain(ctx context.Context) int {
	d.mu.Lock()
	d.draining = true
	conns := make([]*dialogConn, 0, len(d.open))
	for c := range d.open {
		conns = append(conns, c)
	}
	d.mu.Unlock()
	for _, c := range conns {
		c.drain()
	}
	for {
		d.mu.Lock()
		n, changed := len(d.open), d.changed
		d.mu.Unlock()
		if n == 0 {
			return 0
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return n
		}
	}
}

// shutdownReply is the server's last word to a session ended by Shutdown.
const shutdownReply = "421 4.3.2 Service shutting down, closing transmission channel\r\n"

// drain makes the session end at its next command (Server.Shutdown). A
// read already waiting for that command is woken through its deadline.
func (c *dialogConn) drain() {
	c.draining.Store(true)
	c.mu.Lock()
	st := c.state
	c.mu.Unlock()
	if st == stCommand {
		_ = c.inner.SetReadDeadline(time.Now())
	}
}

// shutdown answers the next command with 421 and ends the session: the
// error makes go-smtp close the connection without a reply of its own.
func (c *dialogConn) shutdown() error {
	c.setState(stPass)
	_ = c.w.Reply(5*time.Second, []byte(shutdownReply))
	c.countReply(421)
	return io.EOF
}

// Read implements net.Conn for go-smtp.
func (c *dialogConn) Read(p []byte) (int, error) {
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
		st := c.state
		c.mu.Unlock()
		switch st {
		case stPass:
			return c.br.Read(p)
		case stChunk:
			return c.readChunk(p)
		case stData:
			return c.readData(p)
		case stBusy:
			line, _, err := c.readLine()
			if len(line) == 0 {
				return 0, err
			}
			c.pending = line
		case stCommand:
			if c.draining.Load() {
				return 0, c.shutdown()
			}
			line, complete, err := c.readLine()
			if c.draining.Load() {
				// Woken by drain, or a command that arrived meanwhile:
				// either way the answer is 421.
				return 0, c.shutdown()
			}
			if len(line) == 0 {
				return 0, err
			}
			if err := c.command(line, complete); err != nil {
				return 0, err
			}
		}
	}
}

// readLine returns the next client line; see dialogue.ReadLine.
func (c *dialogConn) readLine() (line []byte, complete bool, err error) {
	return dialogue.ReadLine(c.br)
}

// command decides what happens to one client line in command state.
func (c *dialogConn) command(line []byte, complete bool) error {
	if !complete {
		// Longer than any line go-smtp accepts, or cut by EOF: go-smtp
		// refuses it and ends the session; stop following the dialogue.
		c.setState(stPass)
		c.pending = line
		return nil
	}
	verb, arg := commandVerb(line)
	if verb == "RCPT" {
		line = rewritePostmaster(line)
	}
	c.mu.Lock()
	needEHLO := c.needEHLO
	c.mu.Unlock()
	switch {
	case verb == "STARTTLS" && c.tlsCfg != nil:
		return c.startTLS(line)
	case needEHLO && (verb == "MAIL" || verb == "AUTH"):
		// RFC 3207 §4.2: the client must discard what it learnt before
		// TLS and greet again. go-smtp still holds the old EHLO name.
		return c.reply("503 5.5.1 Send EHLO first after STARTTLS")
	}
	c.mu.Lock()
	c.verb, c.state, c.contentSeen = verb, stBusy, false
	if verb == "BDAT" {
		if n, ok := chunkSize(arg); ok && n > 0 {
			c.state, c.chunkSize, c.chunkLeft, c.replied = stChunk, n, n, false
		} else {
			c.chunkSize, c.chunkLeft = 0, 0
		}
	}
	c.mu.Unlock()
	c.pending = line
	return nil
}

func (c *dialogConn) setState(st dialogState) {
	c.mu.Lock()
	c.state = st
	c.mu.Unlock()
}

// commandVerb splits a line the way go-smtp does; see dialogue.Verb.
func commandVerb(line []byte) (verb, arg string) { return dialogue.Verb(line) }

// chunkSize mirrors go-smtp's checks of BDAT arguments; see
// dialogue.ChunkSize.
func chunkSize(arg string) (int64, bool) { return dialogue.ChunkSize(arg) }

func (c *dialogConn) readChunk(p []byte) (int, error) {
	c.mu.Lock()
	left := c.chunkLeft
	c.mu.Unlock()
	n, err := dialogue.ReadChunk(c.br, p, left)
	c.mu.Lock()
	c.chunkLeft -= int64(n)
	if n > 0 {
		c.contentSeen = true
	}
	if c.chunkLeft == 0 && c.state == stChunk {
		if c.replied {
			c.state = stCommand
		} else {
			c.state = stBusy
		}
	}
	c.mu.Unlock()
	return n, err
}

// readData passes DATA content up to and including its end line.
func (c *dialogConn) readData(p []byte) (int, error) {
	n, ended, err := c.eod.Read(c.br, p)
	if ended {
		c.mu.Lock()
		if c.state == stData {
			c.state = stBusy // awaiting go-smtp's verdict on the message
		}
		c.mu.Unlock()
	}
	return n, err
}

// SawBareLineEnd reports whether the DATA content just read held a bare
// CR or LF, and forgets it (a BDAT transaction that follows starts clean).
// It is called from go-smtp's connection goroutine, the only reader.
func (c *dialogConn) SawBareLineEnd() bool {
	b := c.eod.Bare
	c.eod.Bare = false
	return b
}

// Write implements net.Conn for go-smtp: reply lines pass through, with
// the sequence errors renumbered and STARTTLS added to EHLO when ours.
func (c *dialogConn) Write(p []byte) (int, error) {
	return c.w.WriteReplies(p, &c.mu, c.filterReply)
}

// filterReply handles one reply line from go-smtp (mu held) and returns
// send with what goes to the client appended.
func (c *dialogConn) filterReply(send, line []byte) []byte {
	code, final := dialogue.ReplyCode(line)
	if c.state == stPass {
		if final {
			c.countReply(code)
		}
		return append(send, line...)
	}
	if c.swallow {
		if final {
			c.swallow = false
			c.afterReply(code)
		}
		return send
	}
	if c.state == stBusy && c.verb == "EHLO" && c.tlsCfg != nil && !c.tlsOn() {
		c.ehloHeld = append(c.ehloHeld, line...)
		if !final {
			return send
		}
		held := c.ehloHeld
		c.ehloHeld = nil
		if code == 250 {
			held = addKeyword(held, "STARTTLS")
		}
		c.countReply(code)
		c.afterReply(code)
		return append(send, held...)
	}
	if final && (c.state == stBusy || c.state == stChunk) && !c.contentSeen {
		line = renumber(c.verb, line)
	}
	send = append(send, line...)
	if final {
		sent, _ := dialogue.ReplyCode(line) // renumbered or not
		c.countReply(sent)
		c.afterReply(code)
	}
	return send
}

// afterReply moves the dialogue on after go-smtp's final reply line (mu held).
func (c *dialogConn) afterReply(code int) {
	switch c.state {
	case stBusy:
		switch {
		case code == 334: // SASL challenge: the next line is a response
		case code == 354 && c.verb == "DATA":
			c.state, c.contentSeen = stData, true
			c.eod.Reset()
		case c.verb == "QUIT":
			c.state = stPass
		default:
			c.state = stCommand
			if (c.verb == "EHLO" || c.verb == "HELO") && code == 250 {
				c.needEHLO = false
			}
		}
	case stChunk:
		// go-smtp refused the BDAT before reading its chunk; it still
		// reads the chunk, and then waits for a command.
		c.replied = true
	case stData:
		// A reply in the middle of content (timeout, line too long): the
		// session is ending and we no longer know where commands start.
		c.state = stPass
	}
}

// renumbered lists go-smtp v0.25's replies that carry the wrong code: the
// sequence errors it sends as 502 5.5.1 (RFC 5321 §4.3.2 has 503 for
// them, 502 being "command not implemented"), and AUTH without arguments,
// a syntax error (501, RFC 4954 §4). Keyed by verb and exact reply line.
var renumbered = map[string]string{
	"MAIL 502 5.5.1 Please introduce yourself first.":         "503",
	"AUTH 502 5.5.1 Please introduce yourself first.":         "503",
	"MAIL 502 5.5.1 MAIL not allowed during message transfer": "503",
	"RCPT 502 5.5.1 Missing MAIL FROM command.":               "503",
	"RCPT 502 5.5.1 RCPT not allowed during message transfer": "503",
	"DATA 502 5.5.1 Missing RCPT TO command.":                 "503",
	"BDAT 502 5.5.1 Missing RCPT TO command.":                 "503",
	"DATA 502 5.5.1 DATA not allowed during message transfer": "503",
	"DATA 502 5.5.1 DATA not allowed for BINARYMIME messages": "503",
	"STARTTLS 502 5.5.1 Already running in TLS":               "503",
	"AUTH 502 5.5.4 Missing parameter":                        "501",
}

// renumber returns line with its code corrected when it is one of the
// replies in renumbered, given as the answer to verb.
func renumber(verb string, line []byte) []byte {
	if len(line) < 4 || string(line[:4]) != "502 " {
		return line
	}
	text := strings.TrimRight(string(line), "\r\n")
	code, ok := renumbered[verb+" "+text]
	if !ok {
		return line
	}
	return append([]byte(code), line[3:]...)
}

// addKeyword adds "250-kw" before the last line of an EHLO reply; see
// dialogue.InsertKeywords.
func addKeyword(reply []byte, kw string) []byte {
	return dialogue.InsertKeywords(reply, []string{kw})
}

// reply writes a reply of our own, for a command go-smtp never sees, and
// gives the client a fresh command timeout for its next line.
func (c *dialogConn) reply(line string) error {
	code, _ := dialogue.ReplyCode([]byte(line))
	c.countReply(code)
	return c.w.Reply(c.timeout, []byte(line+"\r\n"))
}

// countReply counts one reply sent to the client (ServerConfig.OnReply).
func (c *dialogConn) countReply(code int) {
	if c.onReply != nil && code > 0 {
		c.onReply(code)
	}
}

// tlsOn reports whether this connection terminated TLS.
func (c *dialogConn) tlsOn() bool {
	_, ok := c.w.TLS()
	return ok
}

// startTLS runs STARTTLS for go-smtp (RFC 3207 §4).
func (c *dialogConn) startTLS(line []byte) error {
	switch {
	case !dialogue.IsSTARTTLS(line):
		return c.reply("501 5.5.4 Syntax: STARTTLS (no parameters allowed)")
	case c.tlsOn():
		return c.reply("503 5.5.1 TLS already active")
	}
	c.countReply(220) // StartTLS sends "220 2.0.0 Ready to start TLS"
	tc, err := c.w.StartTLS(c.tlsCfg, c.timeout, func(tc *tls.Conn) error {
		_ = c.inner.SetDeadline(time.Now().Add(c.timeout))
		err := tc.Handshake()
		c.w.Deadlines().Restore()
		return err
	})
	var hsErr *dialogue.HandshakeError
	switch {
	case errors.As(err, &hsErr):
		c.log.Info("smtp: TLS handshake failed", "peer", addrString(c.inner.RemoteAddr()), "err", hsErr.Err)
		// go-smtp ends the session quietly on EOF.
		return io.EOF
	case err != nil:
		return err
	}
	// RFC 3207 §4.2: plaintext pipelined after STARTTLS is discarded with
	// the old reader, and everything learnt before TLS is forgotten:
	// go-smtp gets an RSET, whose reply is dropped, and the client must
	// send EHLO again before MAIL or AUTH.
	c.br = bufio.NewReaderSize(tc, c.brSize)
	c.mu.Lock()
	c.needEHLO, c.swallow = true, true
	c.verb, c.state, c.contentSeen = "RSET", stBusy, false
	c.mu.Unlock()
	c.pending = []byte("RSET\r\n")
	return nil
}

// TLSConnectionState reports the TLS session this connection terminated,
// or else the one a connection below terminated (smtp/xlink's interposer
// on mesh listeners), and false while there is none.
func (c *dialogConn) TLSConnectionState() (tls.ConnectionState, bool) {
	if st, ok := c.w.TLS(); ok {
		return st, true
	}
	inner := c.inner
	if cc, ok := inner.(*capConn); ok {
		inner = cc.Conn
	}
	if ts, ok := inner.(tlsStater); ok {
		return ts.TLSConnectionState()
	}
	return tls.ConnectionState{}, false
}

// Close closes the connection, with a TLS close_notify after STARTTLS.
func (c *dialogConn) Close() error {
	err := c.w.Close(time.Second)
	if c.reg != nil {
		c.reg.remove(c)
	}
	return err
}

func (c *dialogConn) LocalAddr() net.Addr  { return c.inner.LocalAddr() }
func (c *dialogConn) RemoteAddr() net.Addr { return c.inner.RemoteAddr() }

// SetDeadline, SetReadDeadline and SetWriteDeadline are go-smtp's; they
// are remembered so that they can be restored after a TLS handshake or a
// reply of our own.
func (c *dialogConn) SetDeadline(t time.Time) error { return c.w.Deadlines().SetDeadline(t) }

func (c *dialogConn) SetReadDeadline(t time.Time) error { return c.w.Deadlines().SetReadDeadline(t) }

func (c *dialogConn) SetWriteDeadline(t time.Time) error { return c.w.Deadlines().SetWriteDeadline(t) }

package dialogue

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// state is where the dialogue stands as a Conn follows it.
type state int

const (
	// stCommand: go-smtp has answered everything; the next client line is a
	// command, which the Conn and its extensions may answer themselves.
	stCommand state = iota
	// stBusy: a command was handed to go-smtp and its final reply is not
	// written yet; lines go-smtp reads meanwhile (SASL responses) pass.
	stBusy
	// stData: after go-smtp's 354 to DATA, content passes up to and including
	// the end-of-data line (EndOfData).
	stData
	// stChunk: a BDAT chunk passes, by its declared size (ReadChunk).
	stChunk
	// stPass: the dialogue is no longer followed (a line too long to look
	// at, a reply in the middle of content, QUIT): bytes pass both ways
	// and nothing is intercepted or rewritten.
	stPass
)

// ShutdownReply is the last word to a session ended by Conn.Drain.
const ShutdownReply = "421 4.3.2 Service shutting down, closing transmission channel"

// ErrDropped is what Conn.Drop returns: the session is over.
var ErrDropped = errors.New("dialogue: session dropped")

// readBuffer is the least a Conn reads from the socket at once, so that a
// typical message arrives in one read.
const readBuffer = 16 << 10

// Config is what a listener's Conns share. It must not change once a Conn
// uses it.
type Config struct {
	// TLS, when set, makes the Conn terminate STARTTLS itself (RFC 3207)
	// and announce it in the EHLO reply until TLS is on; go-smtp behind it
	// must run with a nil TLSConfig.
	TLS *tls.Config
	// CommandTimeout bounds each write of a reply of the Conn's own (and of
	// its extensions') and gives the client as long for its next line.
	// Default 5m.
	CommandTimeout time.Duration
	// HandshakeTimeout bounds the TLS handshake after STARTTLS. Default
	// CommandTimeout.
	HandshakeTimeout time.Duration
	// LineBuffer is the longest client line the Conn looks at; a longer one
	// is handed on and the dialogue no longer followed. At least
	// MaxHeldReply; the read buffer is at least 16 KiB.
	LineBuffer int
	// Extensions are asked, in order, about every command before go-smtp
	// sees it, and add their EHLO keywords (see Extension).
	Extensions []Extension
	// RewriteCommand, if set, may change a complete command line (verb as
	// Verb splits it) before go-smtp reads it.
	RewriteCommand func(verb string, line []byte) []byte
	// RewriteReply, if set, may change go-smtp's final reply line to verb
	// when no content flowed for the command (its sequence errors).
	RewriteReply func(verb string, line []byte) []byte
	// OnReply, if set, is told the code of every reply sent to the client.
	OnReply func(code int)
	// OnClose, if set, is called once when the Conn closes.
	OnClose func(*Conn)
	// Context is the parent of extension work (cancel it to cut work in
	// flight when the listener closes). Default context.Background().
	Context context.Context
	// Logger receives session events (attr peer). Default: discard.
	Logger *slog.Logger
}

func (c *Config) withDefaults() *Config {
	d := *c
	if d.CommandTimeout <= 0 {
		d.CommandTimeout = 5 * time.Minute
	}
	if d.HandshakeTimeout <= 0 {
		d.HandshakeTimeout = d.CommandTimeout
	}
	d.LineBuffer = max(d.LineBuffer, MaxHeldReply, readBuffer)
	if d.Context == nil {
		d.Context = context.Background()
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return &d
}

// Conn is the connection go-smtp sees: the one follower of the SMTP
// dialogue on an accepted connection (see the package comment).
type Conn struct {
	cfg  *Config
	raw  net.Conn
	w    *Wire
	exts []Handler

	mu          sync.Mutex // guards the fields below; taken after w's write lock
	state       state
	verb        string    // go-smtp's verb of the command it is handling
	chunkLeft   int64     // stChunk: bytes of the chunk go-smtp has not read yet
	replied     bool      // stChunk: go-smtp answered before reading the chunk
	contentSeen bool      // DATA/BDAT content has flowed for the current command
	ehlo        bool      // a successful EHLO since connect or STARTTLS (HELO clears it)
	needEHLO    bool      // after our STARTTLS, until EHLO/HELO
	swallow     bool      // drop go-smtp's reply to the RSET we fed it
	ehloHeld    []byte    // EHLO reply lines held until the last one
	eod         EndOfData // stData: where the content stands
	closed      bool      // Close or Drop: go-smtp reads EOF
	draining    atomic.Bool

	closeOnce sync.Once
	closeErr  error

	// Owned by the goroutine calling Read (go-smtp's connection goroutine),
	// where extensions run too.
	br      *bufio.Reader
	pending []byte // bytes handed to go-smtp but not yet read by it
	ownRead bool   // a reply of our own moved the read deadline
}

// New returns the follower of raw, an accepted connection, and opens the
// extensions' handlers for it.
func New(raw net.Conn, cfg *Config) *Conn {
	cfg = cfg.withDefaults()
	c := &Conn{cfg: cfg, raw: raw, w: NewWire(raw)}
	c.br = bufio.NewReaderSize(raw, cfg.LineBuffer)
	for _, e := range cfg.Extensions {
		c.exts = append(c.exts, e.Open(c))
	}
	return c
}

// readers holds the handler of client bytes for each state. A handler
// either returns bytes for go-smtp or sets pending (and returns 0, nil).
var readers = [...]func(*Conn, []byte) (int, error){
	stCommand: (*Conn).readCommand,
	stBusy:    (*Conn).readBusy,
	stData:    (*Conn).readData,
	stChunk:   (*Conn).readChunk,
	stPass:    (*Conn).readPass,
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
		st, closed := c.state, c.closed
		c.mu.Unlock()
		if closed {
			return 0, io.EOF
		}
		if n, err := readers[st](c, p); n > 0 || err != nil {
			return n, err
		}
	}
}

func (c *Conn) readPass(p []byte) (int, error) { return c.br.Read(p) }

// readBusy hands go-smtp the lines it reads while handling a command.
func (c *Conn) readBusy([]byte) (int, error) {
	line, _, err := ReadLine(c.br)
	if len(line) == 0 {
		return 0, err
	}
	c.pending = line
	return 0, nil
}

// readCommand reads one command line and decides what becomes of it.
func (c *Conn) readCommand([]byte) (int, error) {
	if c.draining.Load() {
		return 0, c.shutdown()
	}
	line, complete, err := ReadLine(c.br)
	if c.draining.Load() {
		// Woken by Drain, or a command that arrived meanwhile: either
		// way the answer is 421.
		return 0, c.shutdown()
	}
	if len(line) == 0 {
		return 0, err
	}
	if err := c.command(line, complete); err != nil {
		// The session ends here (dropped, TLS failed, client gone):
		// go-smtp closes quietly on EOF.
		return 0, io.EOF
	}
	if len(c.pending) > 0 && c.ownRead {
		// Back to go-smtp, under the read deadline it asked for.
		c.ownRead = false
		c.w.Deadlines().RestoreRead()
	}
	return 0, nil
}

// command decides what happens to one client line in command state: an
// extension's, ours (STARTTLS), or go-smtp's with the state it implies.
func (c *Conn) command(line []byte, complete bool) error {
	verb, arg := Verb(line)
	cmd := Command{Line: line, Verb: verb, Arg: arg, Complete: complete}
	for _, h := range c.exts {
		if handled, err := h.Command(cmd); handled || err != nil {
			return err
		}
	}
	if !complete {
		// Longer than any line go-smtp accepts, or cut by EOF: go-smtp
		// refuses it and ends the session; stop following the dialogue.
		c.setState(stPass)
		c.pending = line
		return nil
	}
	if c.cfg.RewriteCommand != nil {
		line = c.cfg.RewriteCommand(verb, line)
	}
	c.mu.Lock()
	needEHLO := c.needEHLO
	c.mu.Unlock()
	switch {
	case verb == "STARTTLS" && c.cfg.TLS != nil:
		return c.startTLS(line)
	case needEHLO && (verb == "MAIL" || verb == "AUTH"):
		// RFC 3207 §4.2: the client must discard what it learnt before
		// TLS and greet again. go-smtp still holds the old EHLO name.
		return c.Reply("503 5.5.1 Send EHLO first after STARTTLS")
	case verb == "EHLO" || verb == "HELO" || verb == "RSET":
		// RFC 5321 §4.1.1.1 and §4.1.1.5: all three reset the session.
		c.resetExtensions()
	}
	c.mu.Lock()
	c.verb, c.state, c.contentSeen = verb, stBusy, false
	if verb == "BDAT" {
		// go-smtp reads (or discards) a chunk whose size it accepts,
		// whatever it answers.
		if n, ok := ChunkSize(arg); ok && n > 0 {
			c.state, c.chunkLeft, c.replied = stChunk, n, false
		}
	}
	c.mu.Unlock()
	c.pending = line
	return nil
}

func (c *Conn) resetExtensions() {
	for _, h := range c.exts {
		h.Reset()
	}
}

func (c *Conn) setState(st state) {
	c.mu.Lock()
	c.state = st
	c.mu.Unlock()
}

// readChunk passes the current BDAT chunk, never more than its size.
func (c *Conn) readChunk(p []byte) (int, error) {
	c.mu.Lock()
	left := c.chunkLeft
	c.mu.Unlock()
	n, err := ReadChunk(c.br, p, left)
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
func (c *Conn) readData(p []byte) (int, error) {
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
func (c *Conn) SawBareLineEnd() bool {
	b := c.eod.Bare
	c.eod.Bare = false
	return b
}

// Drain makes the session end at its next command: it is answered with
// ShutdownReply and go-smtp reads EOF. A read already waiting for that
// command is woken through its deadline.
func (c *Conn) Drain() {
	c.draining.Store(true)
	c.mu.Lock()
	st := c.state
	c.mu.Unlock()
	if st == stCommand {
		_ = c.raw.SetReadDeadline(time.Now())
	}
}

func (c *Conn) shutdown() error {
	c.setState(stPass)
	_ = c.w.Reply(5*time.Second, []byte(ShutdownReply+"\r\n"))
	c.countReply(421)
	return io.EOF
}

// Close closes the connection, with a TLS close_notify after STARTTLS.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.closeErr = c.w.Close(time.Second)
		if c.cfg.OnClose != nil {
			c.cfg.OnClose(c)
		}
	})
	return c.closeErr
}

// LocalAddr and RemoteAddr are the accepted connection's.
func (c *Conn) LocalAddr() net.Addr  { return c.raw.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// SetDeadline, SetReadDeadline and SetWriteDeadline are go-smtp's; they
// are remembered so that they can be restored after a TLS handshake or a
// reply of our own.
func (c *Conn) SetDeadline(t time.Time) error { return c.w.Deadlines().SetDeadline(t) }

func (c *Conn) SetReadDeadline(t time.Time) error { return c.w.Deadlines().SetReadDeadline(t) }

func (c *Conn) SetWriteDeadline(t time.Time) error { return c.w.Deadlines().SetWriteDeadline(t) }

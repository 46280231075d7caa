package smtp

import (
	"context"
	"net"
	"strings"
	"sync"

	"github.com/meshd/meshd/smtp/dialogue"
)

// The connection go-smtp sees is a dialogue.Conn: the one follower of the
// SMTP dialogue (one client command line at a time, DATA content up to its
// end line, BDAT chunks by their byte count), which
//
//   - terminates STARTTLS itself (RFC 3207) when the listener has TLS, and
//     presents plaintext to go-smtp, which is configured without TLS;
//   - runs the listener's extensions (smtp/xlink's X-LINK2STATE on mesh
//     listeners, ServerConfig.Extensions);
//   - and, with the policy set here, rewrites go-smtp's sequence-error
//     replies from 502 5.5.1 ("command not implemented") to 503 5.5.1
//     ("bad sequence of commands", RFC 5321 §4.2.4 and §4.3.2), matched on
//     go-smtp's exact texts and only for the command that can produce
//     them, and RCPT TO:<postmaster> to a path go-smtp parses.
//
// Message content is never parsed or rewritten, and go-smtp's reply to the
// end of DATA (the Sink's verdict) passes untouched.

// dialogListener hands go-smtp dialogue.Conns.
type dialogListener struct {
	net.Listener
	cfg *dialogue.Config
	reg *dialogs
}

func newDialogListener(ln net.Listener, cfg dialogue.Config, reg *dialogs) dialogListener {
	cfg.RewriteCommand = rewriteCommand
	cfg.RewriteReply = renumber
	cfg.OnClose = reg.remove
	// The line buffer grows to MaxLineLength so that no line go-smtp
	// accepts is split.
	return dialogListener{Listener: ln, cfg: &cfg, reg: reg}
}

func (l dialogListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	dc := dialogue.New(c, l.cfg)
	l.reg.add(dc)
	return dc, nil
}

func rewriteCommand(verb string, line []byte) []byte {
	if verb == "RCPT" {
		return rewritePostmaster(line)
	}
	return line
}

// dialogs is the set of a server's open connections.
type dialogs struct {
	mu       sync.Mutex
	open     map[*dialogue.Conn]struct{}
	draining bool
	changed  chan struct{} // closed and replaced when a connection goes
}

func newDialogs() *dialogs {
	return &dialogs{open: map[*dialogue.Conn]struct{}{}, changed: make(chan struct{})}
}

func (d *dialogs) add(c *dialogue.Conn) {
	d.mu.Lock()
	d.open[c] = struct{}{}
	draining := d.draining
	d.mu.Unlock()
	if draining {
		c.Drain() // accepted just before the listener closed
	}
}

func (d *dialogs) remove(c *dialogue.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.open[c]; ok {
		delete(d.open, c)
		close(d.changed)
		d.changed = make(chan struct{})
	}
}

// drain asks every session to end (dialogue.Conn.Drain) and waits until
// all are closed or ctx is done; it returns how many are still open.
func (d *dialogs) drain(ctx context.Context) int {
	d.mu.Lock()
	d.draining = true
	conns := make([]*dialogue.Conn, 0, len(d.open))
	for c := range d.open {
		conns = append(conns, c)
	}
	d.mu.Unlock()
	for _, c := range conns {
		c.Drain()
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

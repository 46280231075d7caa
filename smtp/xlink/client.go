package xlink

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/meshd/meshd/smtp/dialogue"
)

// Result describes one client session.
type Result struct {
	InSync        bool     // digests were equal at the start: nothing exchanged
	Converged     bool     // digests equal at the end
	LocalDigest   [32]byte // at the end
	PeerDigest    [32]byte // at the end
	Sent          int      // records sent to the peer
	PeerInstalled int      // of which the peer kept
	Received      int      // records received from the peer
	Installed     int      // of which the local store kept
	Truncated     bool     // our newer records did not fit one transfer
}

// ReplyError is an unexpected reply from the peer.
type ReplyError struct {
	Command string // the command (verb and subcommand only)
	Code    int
	Text    string
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("xlink: %s: peer replied %d %s", e.Command, e.Code, e.Text)
}

// pipelineWindow is how many NEXT commands the client writes before it
// reads their replies: far below what socket buffers hold, so neither side
// can block on a full buffer.
const pipelineWindow = 32

// Sync dials addr and runs one X-LINK2STATE session with store (see
// SyncConn).
func Sync(ctx context.Context, addr string, cfg ClientConfig, store Store) (Result, error) {
	cfg = cfg.withDefaults()
	conn, err := cfg.Dial(ctx, "tcp", addr)
	if err != nil {
		return Result{}, fmt.Errorf("xlink: dial %s: %w", addr, err)
	}
	return SyncConn(ctx, conn, cfg, store)
}

// SyncConn runs one session on conn and closes it: greeting, EHLO,
// STARTTLS when cfg.TLS is set, DIGEST, and when the digests differ
// SUMMARIES and RECORDS both ways and a closing DIGEST, then QUIT. A peer
// whose EHLO lacks the keyword yields ErrNotSupported.
func SyncConn(ctx context.Context, conn net.Conn, cfg ClientConfig, store Store) (res Result, err error) {
	cfg = cfg.withDefaults()
	cl := &client{raw: conn, cfg: cfg}
	cl.setConn(conn)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		stop()
		_ = cl.conn.Close()
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", err, ctx.Err())
		}
	}()
	peer := conn.RemoteAddr().String()
	if err := cl.handshake(ctx); err != nil {
		return res, err
	}
	res, err = cl.exchange(ctx, store)
	if err != nil {
		return res, err
	}
	cl.quit()
	cfg.Logger.Info("xlink: sync done", "peer", peer, "in_sync", res.InSync, "converged", res.Converged,
		"sent", res.Sent, "received", res.Received, "installed", res.Installed)
	return res, nil
}

type client struct {
	raw  net.Conn
	conn net.Conn
	text *textproto.Conn
	cfg  ClientConfig
}

func (cl *client) setConn(c net.Conn) {
	cl.conn = c
	r := bufio.NewReaderSize(&lineLimitReader{r: c, max: MaxLineBytes}, 4096)
	cl.text = &textproto.Conn{Reader: *textproto.NewReader(r), Writer: *textproto.NewWriter(bufio.NewWriter(c))}
}

func (cl *client) deadline() {
	_ = cl.raw.SetDeadline(time.Now().Add(cl.cfg.CommandTimeout))
}

// handshake reads the greeting and runs EHLO (and STARTTLS + EHLO).
func (cl *client) handshake(ctx context.Context) error {
	cl.deadline()
	if code, lines, err := cl.readReply(); err != nil {
		return err
	} else if code != 220 {
		return &ReplyError{"greeting", code, strings.Join(lines, " ")}
	}
	kw, err := cl.ehlo()
	if err != nil {
		return err
	}
	if cl.cfg.TLS != nil {
		if !kw["STARTTLS"] {
			cl.quit()
			return ErrTLSUnavailable
		}
		if _, err := cl.cmd(220, "STARTTLS"); err != nil {
			return err
		}
		tc := tls.Client(cl.raw, cl.cfg.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("xlink: TLS handshake with %s: %w", cl.raw.RemoteAddr(), err)
		}
		cl.setConn(tc)
		if kw, err = cl.ehlo(); err != nil {
			return err
		}
	}
	if !kw[xlinkVerb] {
		cl.quit()
		return ErrNotSupported
	}
	return nil
}

// ehlo returns the EHLO keywords (RFC 5321 §4.1.1.1), upper-cased.
func (cl *client) ehlo() (map[string]bool, error) {
	lines, err := cl.cmd(250, "EHLO "+cl.cfg.HeloName)
	if err != nil {
		return nil, err
	}
	kw := make(map[string]bool)
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 {
			kw[strings.ToUpper(f[0])] = true
		}
	}
	return kw, nil
}

func (cl *client) exchange(ctx context.Context, store Store) (Result, error) {
	var res Result
	local := store.Digest()
	peer, err := cl.digest(local)
	if err != nil {
		return res, err
	}
	if peer == local {
		res.InSync, res.Converged, res.LocalDigest, res.PeerDigest = true, true, local, peer
		return res, nil
	}
	lim := cl.cfg.Limits
	mine := store.Summaries()
	if len(mine) > lim.MaxTransferBytes {
		return res, fmt.Errorf("xlink: local summaries (%d bytes) exceed the transfer limit", len(mine))
	}
	peerSums, _, err := cl.transfer(KindSummaries, mine)
	if err != nil {
		return res, err
	}
	newer, err := store.Newer(peerSums)
	if err != nil {
		return res, fmt.Errorf("%w: peer summaries: %v", ErrProtocol, err)
	}
	payload, n := encodeRecords(newer, lim.MaxTransferBytes, lim.MaxRecords)
	res.Sent, res.Truncated = n, n < len(newer)
	in, installed, err := cl.transfer(KindRecords, payload)
	if err != nil {
		return res, err
	}
	res.PeerInstalled = installed
	recs, err := decodeRecords(in, lim.MaxRecords)
	if err != nil {
		return res, fmt.Errorf("%w: peer records: %v", ErrProtocol, err)
	}
	res.Received = len(recs)
	if len(recs) > 0 {
		if res.Installed, err = store.Install(ctx, recs); err != nil {
			return res, fmt.Errorf("xlink: install records from %s: %w", cl.raw.RemoteAddr(), err)
		}
	}
	res.LocalDigest = store.Digest()
	if res.PeerDigest, err = cl.digest(res.LocalDigest); err != nil {
		return res, err
	}
	res.Converged = res.PeerDigest == res.LocalDigest
	return res, nil
}

func (cl *client) digest(d [32]byte) ([32]byte, error) {
	var peer [32]byte
	lines, err := cl.cmd(250, xlinkVerb+" DIGEST "+hex.EncodeToString(d[:]))
	if err != nil {
		return peer, err
	}
	f := strings.Fields(lines[len(lines)-1])
	if len(f) != 3 || f[1] != "DIGEST" {
		return peer, fmt.Errorf("%w: bad DIGEST reply %q", ErrProtocol, lines[len(lines)-1])
	}
	peer, err = parseHash(f[2])
	if err != nil {
		return peer, fmt.Errorf("%w: bad DIGEST reply %q", ErrProtocol, lines[len(lines)-1])
	}
	return peer, nil
}

// transfer sends payload as a framed transfer and reads the peer's
// transfer of the same kind from the reply to LAST. For RECORDS it also
// returns the peer's INSTALLED count.
func (cl *client) transfer(kind string, payload []byte) ([]byte, int, error) {
	lines := frameLines(kind, payload)
	// FIRST on its own: the peer may refuse the size before any chunk.
	if _, err := cl.cmd(250, xlinkVerb+" "+lines[0]); err != nil {
		return nil, 0, err
	}
	chunks := lines[1 : len(lines)-1]
	for len(chunks) > 0 {
		w := chunks[:min(pipelineWindow, len(chunks))]
		chunks = chunks[len(w):]
		cl.deadline()
		for _, l := range w {
			if _, err := cl.text.W.WriteString(xlinkVerb + " " + l + "\r\n"); err != nil {
				return nil, 0, err
			}
		}
		if err := cl.text.W.Flush(); err != nil {
			return nil, 0, fmt.Errorf("xlink: send %s: %w", kind, err)
		}
		for range w {
			code, text, err := cl.readReply()
			if err != nil {
				return nil, 0, err
			}
			if code != 250 {
				return nil, 0, &ReplyError{"X-LINK2STATE NEXT", code, strings.Join(text, " ")}
			}
		}
	}
	cl.deadline()
	if err := cl.text.PrintfLine("%s %s", xlinkVerb, lines[len(lines)-1]); err != nil {
		return nil, 0, fmt.Errorf("xlink: send %s: %w", kind, err)
	}
	return cl.readTransfer(kind)
}

// readTransfer reads a multi-line 250 reply carrying a transfer, checking
// order, length, hash and limits as the server does.
func (cl *client) readTransfer(kind string) ([]byte, int, error) {
	asm := assembler{max: cl.cfg.Limits.MaxTransferBytes}
	installed, seenFirst := 0, false
	for i := 0; ; i++ {
		line, err := cl.text.ReadLine()
		if err != nil {
			return nil, 0, fmt.Errorf("xlink: read %s reply: %w", kind, err)
		}
		code, final := dialogue.ReplyCode([]byte(line))
		if code != 250 || len(line) < 4 {
			text := line
			if len(line) > 4 {
				text = line[4:]
			}
			if !final {
				cl.drain()
			}
			return nil, 0, &ReplyError{"X-LINK2STATE LAST " + kind, code, text}
		}
		f := strings.Split(line[4:], " ")
		switch {
		case i == 0 && kind == KindRecords && f[0] == "INSTALLED" && len(f) == 2 && !final:
			installed, err = strconv.Atoi(f[1])
		case f[0] == "FIRST" && !seenFirst && !final:
			seenFirst = true
			err = asm.first(f[1:])
			if err == nil && asm.kind != kind {
				err = errSequence("transfer of another kind")
			}
		case f[0] == "NEXT" && len(f) == 2 && !final:
			err = asm.next(f[1], false)
		case f[0] == "LAST" && len(f) <= 2 && final:
			chunk := ""
			if len(f) == 2 {
				chunk = f[1]
			}
			if err = asm.next(chunk, true); err == nil {
				var payload []byte
				if _, payload, err = asm.finish(); err == nil {
					return payload, installed, nil
				}
			}
		default:
			err = errSequence("unexpected line")
		}
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %s reply line %d: %v", ErrProtocol, kind, i+1, err)
		}
	}
}

// cmd sends one command and reads its reply, which must have code want.
func (cl *client) cmd(want int, line string) ([]string, error) {
	cl.deadline()
	if err := cl.text.PrintfLine("%s", line); err != nil {
		return nil, fmt.Errorf("xlink: send %s: %w", verbOf(line), err)
	}
	code, lines, err := cl.readReply()
	if err != nil {
		return nil, err
	}
	if code != want {
		return nil, &ReplyError{verbOf(line), code, strings.Join(lines, " ")}
	}
	return lines, nil
}

// verbOf keeps the verb and X-LINK2STATE subcommand, never the payload.
func verbOf(line string) string {
	f := strings.Fields(line)
	if len(f) > 1 && f[0] == xlinkVerb {
		return f[0] + " " + f[1]
	}
	if len(f) > 0 {
		return f[0]
	}
	return ""
}

// maxReplyLines bounds ordinary (non-transfer) replies.
const maxReplyLines = 100

// readReply reads one reply (RFC 5321 §4.2), returning its code and the
// text of each line.
func (cl *client) readReply() (int, []string, error) {
	var lines []string
	code := 0
	for {
		line, err := cl.text.ReadLine()
		if err != nil {
			return 0, nil, fmt.Errorf("xlink: read reply: %w", err)
		}
		c, final := dialogue.ReplyCode([]byte(line))
		if c < 200 || c > 599 || (code != 0 && c != code) || len(lines) == maxReplyLines {
			return 0, nil, fmt.Errorf("%w: malformed reply %q", ErrProtocol, truncate(line))
		}
		code = c
		if len(line) > 4 {
			lines = append(lines, line[4:])
		} else {
			lines = append(lines, "")
		}
		if final {
			return code, lines, nil
		}
	}
}

// drain skips the rest of a multi-line reply.
func (cl *client) drain() {
	for i := 0; i < maxReplyLines; i++ {
		line, err := cl.text.ReadLine()
		if err != nil {
			return
		}
		if _, final := dialogue.ReplyCode([]byte(line)); final {
			return
		}
	}
}

func (cl *client) quit() {
	cl.deadline()
	_, _ = cl.cmd(221, "QUIT")
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// lineLimitReader fails a read once a line exceeds max bytes (CRLF
// included): a peer cannot make the client buffer an endless line.
type lineLimitReader struct {
	r   io.Reader
	max int
	cur int
}

var errLineTooLong = errors.New("xlink: reply line longer than 1000 bytes")

func (l *lineLimitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for _, b := range p[:n] {
		l.cur++
		if l.cur > l.max {
			return 0, errLineTooLong
		}
		if b == '\n' {
			l.cur = 0
		}
	}
	return n, err
}

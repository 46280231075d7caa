package smtp

import (
	"github.com/meshd/meshd/smtp/reply"

	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"time"
)

// timedConn sets an idle deadline before every read and write, so a stalled
// peer is detected per operation rather than per transaction.
type timedConn struct {
	net.Conn
	timeout time.Duration
}

func (t *timedConn) Read(p []byte) (int, error) {
	_ = t.Conn.SetReadDeadline(time.Now().Add(t.timeout))
	return t.Conn.Read(p)
}

func (t *timedConn) Write(p []byte) (int, error) {
	_ = t.Conn.SetWriteDeadline(time.Now().Add(t.timeout))
	return t.Conn.Write(p)
}

// clientConn is one client session to a server.
type clientConn struct {
	addr  string
	base  net.Conn // the TCP (or unix) socket; closing it ends everything
	io    *timedConn
	text  *textproto.Conn
	ext   map[string]string // EHLO keywords (upper case) -> parameters
	tls   bool
	lmtp  bool
	since time.Time // when it went idle
	gen   uint64    // Client.gen when it was dialled
	reset bool      // reused: RSET goes in front of the next envelope
}

func (cc *clientConn) setConn(c net.Conn, timeout time.Duration) {
	cc.io = &timedConn{Conn: c, timeout: timeout}
	cc.text = &textproto.Conn{
		Reader: *textproto.NewReader(bufio.NewReader(cc.io)),
		// Large enough that a typical message goes out in one write.
		Writer: *textproto.NewWriter(bufio.NewWriterSize(cc.io, writeBuffer)),
	}
}

// writeBuffer is the client's write buffer: commands and message content
// are flushed in writes of up to this size.
const writeBuffer = 32 << 10

func (cc *clientConn) close() error { return cc.base.Close() }

// readReply reads one (possibly multi-line) reply of any code.
func (cc *clientConn) readReply() (Reply, error) {
	code, msg, err := cc.text.ReadResponse(0)
	if err != nil {
		return Reply{}, err
	}
	return reply.FromText(code, msg), nil
}

func (cc *clientConn) cmd(format string, args ...any) (Reply, error) {
	if err := cc.text.PrintfLine(format, args...); err != nil {
		return Reply{}, err
	}
	return cc.readReply()
}

// hello sends EHLO (LHLO for LMTP) and records the extensions; it falls back
// to HELO for servers that reject EHLO (RFC 5321 §4.1.4).
func (cc *clientConn) hello(name string) (Reply, error) {
	verb := "EHLO"
	if cc.lmtp {
		verb = "LHLO"
	}
	r, err := cc.cmd("%s %s", verb, name)
	if err != nil {
		return r, err
	}
	if r.Code == 250 {
		cc.ext = parseExtensions(r.Text)
		return r, nil
	}
	if cc.lmtp || (r.Code != 500 && r.Code != 502) {
		return r, nil
	}
	cc.ext = map[string]string{}
	return cc.cmd("HELO %s", name)
}

func parseExtensions(text string) map[string]string {
	ext := map[string]string{}
	lines := strings.Split(text, "\n")
	for _, l := range lines[1:] { // the first line is the greeting
		k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
		if k != "" {
			ext[strings.ToUpper(k)] = v
		}
	}
	return ext
}

func (cc *clientConn) has(ext string) bool {
	_, ok := cc.ext[ext]
	return ok
}

// startTLS runs STARTTLS (RFC 3207) and the handshake; the caller must EHLO
// again afterwards (§4.2: the client discards what it knew).
func (cc *clientConn) startTLS(ctx context.Context, cfg *tls.Config, timeout time.Duration) (Reply, error) {
	r, err := cc.cmd("STARTTLS")
	if err != nil || r.Code != 220 {
		return r, err
	}
	tc := tls.Client(cc.base, cfg)
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return r, fmt.Errorf("tls handshake: %w", err)
	}
	cc.setConn(tc, timeout)
	cc.tls = true
	cc.ext = nil
	return r, nil
}

// xtext encodes an ESMTP parameter value (RFC 3461 §4).
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '!' && c <= '~' && c != '+' && c != '=' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "+%02X", c)
		}
	}
	return b.String()
}

// utf8AddrXtext encodes an ORCPT address of type utf-8 (RFC 6533 §3):
// specials and non-ASCII characters become \x{HEX}.
func utf8AddrXtext(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '!' && r <= '~' && r != '+' && r != '=' && r != '\\' {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, `\x{%X}`, r)
		}
	}
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

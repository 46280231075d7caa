package smtp

import (
	"github.com/meshd/meshd/smtp/reply"

	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
	"github.com/meshd/meshd/meshid"
)

// Replies of our own. go-smtp produces the protocol-level ones (syntax,
// sequence, SIZE=, recipient count).
var (
	errNeedTLS = &gosmtp.SMTPError{Code: 530, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0},
		Message: "Must issue a STARTTLS command first"}
	errNeedAuth = &gosmtp.SMTPError{Code: 530, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0},
		Message: "Authentication required"}
	errHeaderTooLarge = &gosmtp.SMTPError{Code: 552, EnhancedCode: gosmtp.EnhancedCode{5, 6, 0},
		Message: "Message header too large"}
	errMailLoop = &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 4, 6},
		Message: "Too many Received headers: mail loop suspected"}
	errLineTooLong = &gosmtp.SMTPError{Code: 500, EnhancedCode: gosmtp.EnhancedCode{5, 5, 2},
		Message: "Line too long"}
	// RFC 4954 §6: the mechanism may only be used over an encrypted
	// connection (PLAIN and LOGIN send the password in the clear).
	errAuthNeedsTLS = &gosmtp.SMTPError{Code: 538, EnhancedCode: gosmtp.EnhancedCode{5, 7, 11},
		Message: "Encryption required for requested authentication mechanism"}
	// RFC 5321 §4.1.1.2 and §4.1.4: MAIL starts a transaction only when
	// none is open. go-smtp v0.25 accepts a second MAIL and keeps the
	// recipients of the first, which the new envelope would lose.
	errNestedMail = &gosmtp.SMTPError{Code: 503, EnhancedCode: gosmtp.EnhancedCode{5, 5, 1},
		Message: "Nested MAIL command"}
	// RFC 5321 §2.3.8: lines end in CRLF. A bare CR or LF is where two
	// servers can disagree about the end of DATA (SMTP smuggling).
	errBareLineEnd = &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 6, 0},
		Message: "Message refused: bare CR or LF in content, lines must end in CRLF (RFC 5321 section 2.3.8)"}
	errLocal = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0},
		Message: "Temporary local problem, try again later"}
	errOverCap = &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 7, 0},
		Message: "Too many connections from your address"}
	errPeerOverCap = &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 7, 0},
		Message: "Too many connections from your node"}
	errPeerGone = &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 7, 0},
		Message: "No longer an authenticated mesh peer, closing connection"}
	errAuthTooMany = &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 7, 0},
		Message: "Too many authentication failures, closing connection"}
	errDataTimeout = &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 4, 2},
		Message: "Timeout waiting for data, closing connection"}
	errDataTooSlow = &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 4, 2},
		Message: "Data transfer too slow, closing connection"}
)

// maxAuthFailures is how many failed AUTH attempts a connection gets before
// it is closed, to slow down password guessing.
const maxAuthFailures = 3

// session is the go-smtp Session of one connection between EHLOs that reset
// it (go-smtp makes a new one after STARTTLS).
type session struct {
	srv  *Server
	conn *gosmtp.Conn
	info Session
	env  Envelope

	authFailures int
	inTx         bool   // a transaction is in progress (refuse.go)
	peerEpoch    uint64 // Server.peerEpoch when MeshPeer was last asked
	// closeAtMail is why the session is closed at its next MAIL: refresh
	// found it when called from Reset, which runs under go-smtp's
	// connection lock that closing takes (it was a mesh peer and no
	// longer is, or its peer is over the per-peer cap). Nil: none.
	closeAtMail *gosmtp.SMTPError
	inReset     bool // refresh is called from Reset
}

var _ gosmtp.AuthSession = (*session)(nil)

func (s *Server) newSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	sess := &session{srv: s, conn: c}
	sess.info.RemoteAddr = c.Conn().RemoteAddr()
	sess.refresh()
	return sess, nil
}

// tlsStater is implemented by the connections that terminate TLS in front
// of go-smtp, which looks for a *tls.Conn and sees none: the dialogue
// follower (dialogue.Conn), and the implicit-TLS connection below it.
type tlsStater interface {
	TLSConnectionState() (tls.ConnectionState, bool)
}

// tlsState reports the TLS state of the connection.
func (ss *session) tlsState() (tls.ConnectionState, bool) {
	if st, ok := ss.conn.TLSConnectionState(); ok {
		return st, true
	}
	if ts, ok := ss.conn.Conn().(tlsStater); ok {
		return ts.TLSConnectionState()
	}
	return tls.ConnectionState{}, false
}

// refresh re-reads what may change within one go-smtp session: the EHLO
// name, and TLS when an interposer ran STARTTLS (it then resets the session).
func (ss *session) refresh() {
	ss.info.Helo = ss.conn.Hostname()
	state, isTLS := ss.tlsState()
	ss.info.TLS = isTLS
	was := ss.info.MeshPeer
	ss.info.MeshPeer = false
	ss.peerEpoch = ss.srv.peerEpoch.Load()
	if ss.srv.cfg.Mesh && ss.srv.cfg.MeshPeer != nil {
		var st *tls.ConnectionState
		if isTLS {
			st = &state
		}
		ss.info.MeshPeer = ss.srv.cfg.MeshPeer(&ss.info, st)
	}
	if was && !ss.info.MeshPeer {
		// Its certificate no longer proves a node of ours (the trusted
		// CAs changed, RecheckPeers) or the mesh no longer knows it: it
		// does not go on as a stranger, whose relayed mail would be
		// refused for good, but is closed at its next MAIL and dials
		// again, to be judged afresh.
		ss.closeAtMail = errPeerGone
		return
	}
	// An authenticated peer is counted per peer, not against the public
	// per-IP cap (listener.go).
	if ss.info.MeshPeer && !ss.srv.ln.authenticated(ss.info.RemoteAddr, peerKey(state)) {
		ss.srv.log.Warn("smtp: connection refused: too many from one mesh peer", ss.logAttrs()...)
		ss.info.MeshPeer = false
		if ss.inReset {
			ss.closeAtMail = errPeerOverCap
			return
		}
		ss.abort(errPeerOverCap)
	}
}

// peerKey names a verified peer for the per-peer cap: the first URI SAN of
// its certificate (a node identity), else the certificate's subject.
func peerKey(st tls.ConnectionState) string {
	if len(st.PeerCertificates) == 0 {
		return ""
	}
	leaf := st.PeerCertificates[0]
	if len(leaf.URIs) > 0 {
		return leaf.URIs[0].String()
	}
	return leaf.Subject.String()
}

func (ss *session) logAttrs() []any {
	return []any{"peer", addrString(ss.info.RemoteAddr), "helo", ss.info.Helo, "qid", ss.info.ID}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// Reset is called by go-smtp on RSET, a new EHLO and after each message.
func (ss *session) Reset() {
	ss.endTx()
	ss.env = Envelope{}
	ss.info.ID, ss.info.From = "", ""
	ss.inReset = true
	ss.refresh()
	ss.inReset = false
}

func (ss *session) Logout() error {
	ss.endTx()
	return nil
}

func (ss *session) AuthMechanisms() []string {
	if !ss.srv.cfg.Submission || !ss.info.TLS {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if !ss.srv.cfg.Submission {
		return nil, gosmtp.ErrAuthUnsupported
	}
	if _, isTLS := ss.tlsState(); !isTLS {
		return nil, errAuthNeedsTLS
	}
	check := func(identity, user, pass string) error {
		// RFC 4616 §2: an authorization identity other than the user
		// would mean acting for someone else; we do not allow that.
		if identity != "" && identity != user {
			return gosmtp.ErrAuthFailed
		}
		if !ss.srv.cfg.Auth.Authenticate(user, pass) {
			ss.authFailures++
			ss.srv.log.Warn("smtp: authentication failed", append(ss.logAttrs(), "user", user, "failures", ss.authFailures)...)
			if ss.authFailures >= maxAuthFailures {
				ss.abort(errAuthTooMany)
				return errAuthTooMany
			}
			return gosmtp.ErrAuthFailed
		}
		ss.info.AuthUser = user
		ss.srv.log.Info("smtp: authenticated", append(ss.logAttrs(), "user", user)...)
		return nil
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return sasl.NewPlainServer(check), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, gosmtp.ErrAuthUnknownMechanism
}

func (ss *session) Mail(from string, opts *gosmtp.MailOptions) error {
	if ss.info.MeshPeer && ss.peerEpoch != ss.srv.peerEpoch.Load() {
		ss.refresh() // RecheckPeers ran since the peer was last asked about
	}
	if e := ss.closeAtMail; e != nil {
		if e == errPeerGone {
			ss.srv.log.Warn("smtp: mesh peer no longer authenticated, closing session", ss.logAttrs()...)
		}
		ss.abort(e)
		return e
	}
	if !ss.info.MeshPeer && ss.srv.ln.probationOf(ss.info.RemoteAddr) {
		// Over the per-IP cap, only a mesh peer may go on.
		ss.srv.ln.refuseProbation()
		ss.srv.log.Warn("smtp: connection refused: over the per-IP cap and not a mesh peer", ss.logAttrs()...)
		ss.abort(errOverCap)
		return errOverCap
	}
	if ss.srv.refusing.Load() && !ss.inTx {
		ss.srv.log.Info("smtp: transaction refused: new sessions are refused (draining)", ss.logAttrs()...)
		ss.abort(errRefusing)
		return errRefusing
	}
	if ss.srv.cfg.Submission {
		if !ss.info.TLS {
			return errNeedTLS
		}
		if ss.info.AuthUser == "" {
			return errNeedAuth
		}
	}
	if ss.info.ID != "" { // set here, cleared by Reset
		return errNestedMail
	}
	if from != "" {
		if e := checkAddress(from, true, opts != nil && opts.UTF8); e != nil {
			ss.srv.log.Info("smtp: sender refused", append(ss.logAttrs(), "from", strconv.QuoteToASCII(from), "code", e.Code)...)
			return e
		}
	}
	ss.info.ID, ss.info.From = meshid.New(), from
	ss.beginTx()
	ss.env = Envelope{From: from}
	if opts != nil {
		ss.env.Ret = string(opts.Return)
		ss.env.EnvID = opts.EnvelopeID
		ss.env.SMTPUTF8 = opts.UTF8
		ss.env.EightBit = opts.Body == gosmtp.Body8BitMIME
	}
	return nil
}

func (ss *session) Rcpt(to string, opts *gosmtp.RcptOptions) error {
	if to == postmasterPath {
		to = "postmaster" // RFC 5321 §4.5.1; see rewritePostmaster
	} else if e := checkAddress(to, false, ss.env.SMTPUTF8); e != nil {
		ss.srv.log.Info("smtp: recipient refused", append(ss.logAttrs(), "rcpt", strconv.QuoteToASCII(to), "code", e.Code)...)
		return e
	}
	if err := ss.srv.cfg.Policy.CheckRcpt(&ss.info, to); err != nil {
		if se, ok := hookError(err); ok {
			return se
		}
		ss.srv.log.Error("smtp: policy check failed", append(ss.logAttrs(), "rcpt", to, "err", err)...)
		return errLocal
	}
	r := Rcpt{Addr: to}
	if opts != nil {
		for _, n := range opts.Notify {
			r.Notify = append(r.Notify, string(n))
		}
		if opts.OriginalRecipient != "" {
			r.ORcpt = strings.ToLower(string(opts.OriginalRecipientType)) + ";" + opts.OriginalRecipient
		}
	}
	ss.env.Rcpts = append(ss.env.Rcpts, r)
	return nil
}

// Data reads the message, applies the content checks and hands it to the
// Sink. Its returned *gosmtp.SMTPError is the final reply, success
// included: go-smtp sends any verbatim, which is how "queued as" reaches the
// client.
func (ss *session) Data(r io.Reader) error {
	buf, err := ss.readBody(r)
	if err != nil {
		return err
	}
	body := buf[bodyHeadroom:]
	if ss.bareLineEnds(body) {
		if f := ss.srv.cfg.OnBareLineEnd; f != nil {
			f(ss.srv.limits.BareLineEnds)
		}
		if ss.srv.limits.BareLineEnds == BareReject {
			ss.srv.log.Info("smtp: message refused: bare CR or LF", ss.logAttrs()...)
			return errBareLineEnd
		}
		if nb := normalizeLineEnds(body); len(nb) != len(body) {
			buf = append(make([]byte, bodyHeadroom, bodyHeadroom+len(nb)), nb...)
			body = buf[bodyHeadroom:]
		}
	}
	hdrLen, received := scanHeader(body)
	if hdrLen > ss.srv.live.Load().MaxHeaderBytes {
		ss.srv.log.Info("smtp: message refused: header too large", append(ss.logAttrs(), "bytes", hdrLen)...)
		return errHeaderTooLarge
	}
	if received > ss.srv.live.Load().MaxReceived {
		ss.srv.log.Warn("smtp: message refused: too many Received headers", append(ss.logAttrs(), "received", received)...)
		return errMailLoop
	}
	trace := ss.srv.receivedHeader(&ss.info, ss.env)
	var full []byte
	if len(trace) <= bodyHeadroom {
		// The usual case: the field fits in front of the message, which is
		// then not copied again.
		full = buf[bodyHeadroom-len(trace):]
		copy(full, trace)
	} else {
		full = make([]byte, 0, len(trace)+len(body))
		full = append(append(full, trace...), body...)
	}

	ctx, cancel := context.WithTimeout(ss.srv.ctx, ss.srv.live.Load().DataTimeout)
	defer cancel()
	id := ss.info.ID
	info := ss.info // the Sink gets a copy it may keep
	info.Received = len(trace)
	if qs, ok := ss.srv.cfg.Sink.(QueueIDSink); ok {
		var qid string
		qid, err = qs.AcceptID(ctx, &info, ss.env, full)
		if qid != "" {
			id = qid
		}
	} else {
		err = ss.srv.cfg.Sink.Accept(ctx, &info, ss.env, full)
	}
	if err != nil {
		if se, ok := hookError(err); ok {
			ss.srv.log.Info("smtp: message refused by sink", append(ss.logAttrs(), "code", se.Code, "reply", se.Message)...)
			return se
		}
		ss.srv.log.Error("smtp: sink failed", append(ss.logAttrs(), "err", err)...)
		return errLocal
	}
	ss.srv.log.Info("smtp: message accepted", append(ss.logAttrs(),
		"from", ss.env.From, "rcpts", len(ss.env.Rcpts), "bytes", len(full), "queue_id", id, "auth", ss.info.AuthUser)...)
	return goSMTPError(reply.OK("OK queued as " + id))
}

// bareReporter is the dialogConn under go-smtp: it saw the raw DATA
// content, including the ".<CR>" at the start of a line that go-smtp's
// reader drops with its dot.
type bareReporter interface{ SawBareLineEnd() bool }

// bareLineEnds reports whether the message's content held a bare CR or LF:
// in the body as read (BDAT passes raw), or in the raw DATA stream.
func (ss *session) bareLineEnds(body []byte) bool {
	if br, ok := ss.conn.Conn().(bareReporter); ok && br.SawBareLineEnd() {
		return true
	}
	return hasBareLineEnd(body)
}

// bodyHeadroom is the room readBody leaves in front of the message for our
// Received: field (about 200 octets), so that prepending it does not copy
// the message.
const bodyHeadroom = 512

// readBody reads all of DATA/BDAT into a buffer whose first bodyHeadroom
// bytes are left free. go-smtp's reader enforces the size limit and the line
// limit; we add the per-block idle timeout (RFC 5321 §4.5.3.2.5).
func (ss *session) readBody(r io.Reader) ([]byte, error) {
	buf := make([]byte, bodyHeadroom, bodyHeadroom+8<<10)
	// However the bytes trickle in, the whole transfer ends by this time.
	cutoff := time.Now().Add(ss.srv.live.Load().DataTotalTimeout)
	for {
		if cap(buf)-len(buf) < 2<<10 {
			buf = slices.Grow(buf, cap(buf)) // at least doubles
		}
		now := time.Now()
		if !now.Before(cutoff) {
			return nil, ss.tooSlow(len(buf) - bodyHeadroom)
		}
		deadline := now.Add(ss.srv.live.Load().DataTimeout)
		if deadline.After(cutoff) {
			deadline = cutoff
		}
		_ = ss.conn.Conn().SetReadDeadline(deadline)
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == nil {
			continue
		}
		if err == io.EOF {
			return buf, nil
		}
		var se *gosmtp.SMTPError
		var ne net.Error
		switch {
		case errors.As(err, &se): // size limit
			ss.srv.log.Info("smtp: message refused", append(ss.logAttrs(), "code", se.Code, "reply", se.Message)...)
			return nil, se
		case errors.Is(err, gosmtp.ErrTooLongLine):
			// go-smtp closes the connection right after this reply.
			ss.srv.log.Info("smtp: message refused: line too long", ss.logAttrs()...)
			return nil, errLineTooLong
		case errors.As(err, &ne) && ne.Timeout() && !time.Now().Before(cutoff):
			return nil, ss.tooSlow(len(buf) - bodyHeadroom)
		case errors.As(err, &ne) && ne.Timeout():
			ss.srv.log.Info("smtp: data timeout", ss.logAttrs()...)
			ss.abort(errDataTimeout)
			return nil, errDataTimeout
		default:
			return nil, err
		}
	}
}

// tooSlow ends a transfer that outlasted Limits.DataTotalTimeout.
func (ss *session) tooSlow(got int) *gosmtp.SMTPError {
	ss.srv.log.Info("smtp: data transfer too slow", append(ss.logAttrs(), "bytes", got, "limit", ss.srv.live.Load().DataTotalTimeout)...)
	if f := ss.srv.cfg.OnDataTooSlow; f != nil {
		f()
	}
	ss.abort(errDataTooSlow)
	return errDataTooSlow
}

// abort sends a final reply and closes the connection: after a timeout in
// the middle of content the rest of the stream cannot be parsed as commands.
func (ss *session) abort(e *gosmtp.SMTPError) {
	c := ss.conn.Conn()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, formatReply(e))
	_ = ss.conn.Close()
}

func formatReply(e *gosmtp.SMTPError) string {
	ec := e.EnhancedCode
	return fmt.Sprintf("%d %d.%d.%d %s\r\n", e.Code, ec[0], ec[1], ec[2], e.Message)
}

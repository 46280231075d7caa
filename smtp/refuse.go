package smtp

import (
	"net"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/meshd/meshd/smtp/dialogue"
)

// A server that refuses new sessions (RefuseNew, a node that drains)
// answers every new connection with refusedReply and closes it, before
// the greeting (RFC 5321 §3.1 allows 421 there; on an implicit-TLS
// listener inside TLS). A session already open finishes the transaction
// it is in (its message gets its reply) but starts no other: its next
// MAIL gets the same 421, and once its transaction ends (Reset) its next
// command gets the shutdown 421 (dialogue.ShutdownReply). A client that
// was refused still holds its message and sends it elsewhere or later.

// refusedText is the 421 of a server that refuses new sessions.
const refusedText = "Service not available: this node is draining, try another host"

var errRefusing = &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 3, 2}, Message: refusedText}

// RecheckPeers makes every open session whose client is a mesh peer be
// asked about again (ServerConfig.MeshPeer) before its next transaction,
// even one that sends no RSET: a session that is no longer a mesh peer
// gets 421 4.7.0 and is closed. A node calls it when the trust that
// authenticated its peers changed (a reload of the CAs): a peer's client
// keeps its sessions for reuse, so one opened before would otherwise go
// on carrying mail as a peer's.
func (s *Server) RecheckPeers() { s.peerEpoch.Add(1) }

// RefuseNew makes the server refuse new sessions (on) or take them again.
func (s *Server) RefuseNew(on bool) {
	if s.refusing.Swap(on) != on {
		s.log.Info("smtp: new sessions "+map[bool]string{true: "refused (draining)", false: "accepted again"}[on], "addr", s.Addr().String())
	}
}

// Refusing reports whether the server refuses new sessions.
func (s *Server) Refusing() bool { return s.refusing.Load() }

// Transactions is the number of mail transactions in progress (MAIL
// accepted, the message not yet taken or the transaction reset). While
// the server refuses new sessions, none starts: once this is zero after
// RefuseNew(true), every message this server will ever acknowledge has
// been handed to its Sink.
func (s *Server) Transactions() int { return int(s.inTx.Load()) }

// refuseListener sits between the listener (and implicit TLS) and the
// dialogue follower: while the server refuses new sessions, connections
// are answered and closed here and never reach go-smtp.
type refuseListener struct {
	net.Listener
	s *Server
}

func (l refuseListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || !l.s.refusing.Load() {
			return c, err
		}
		// Off the accept loop: on an implicit-TLS listener the write
		// runs the handshake first.
		l.s.refuseWG.Add(1)
		go func() {
			defer l.s.refuseWG.Done()
			l.s.refuse(c)
		}()
	}
}

func (s *Server) refuse(c net.Conn) {
	// Counted before the client can see the close, so that whoever
	// watched the 421 also finds it in ConnStats.
	s.refused.Add(1)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write([]byte(formatReply(errRefusing)))
	_ = c.Close()
	if s.cfg.OnReply != nil {
		s.cfg.OnReply(421)
	}
}

// beginTx counts a transaction that MAIL started.
func (ss *session) beginTx() {
	if !ss.inTx {
		ss.inTx = true
		ss.srv.inTx.Add(1)
	}
}

// endTx counts the end of the session's transaction (Reset, Logout) and,
// when the server refuses new sessions, ends the session at its next
// command.
func (ss *session) endTx() {
	if ss.inTx {
		ss.inTx = false
		ss.srv.inTx.Add(-1)
	}
	if ss.srv.refusing.Load() {
		if dc, ok := ss.conn.Conn().(*dialogue.Conn); ok {
			dc.Drain()
		}
	}
}

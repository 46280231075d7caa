package node

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/meshd/meshd/header"
	"github.com/meshd/meshd/meshid"
	"github.com/meshd/meshd/node/delivery"
	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/smtp"
	"github.com/meshd/meshd/smtp/reply"
)

var (
	errQueueFull = reply.TempLocal("Queue full, try again later")
	errLoop      = reply.Loop("Routing loop detected: this routing group was already visited")
)

// sink implements smtp.Sink (and smtp.QueueIDSink) for one listener: it gives
// the message its mesh ID and queues it; the 250 goes out only after
// queue.Enqueue returned, that is after the synced commit.
type sink struct {
	n      *Node
	source string // queue.Envelope.Source: "smtp" or "submission"
}

func (s *sink) Accept(ctx context.Context, sess *smtp.Session, env smtp.Envelope, body []byte) error {
	_, err := s.AcceptID(ctx, sess, env, body)
	return err
}

// AcceptID queues the message and returns its mesh ID for the 250 reply.
func (s *sink) AcceptID(ctx context.Context, sess *smtp.Session, env smtp.Envelope, body []byte) (string, error) {
	n := s.n
	id := sess.ID
	if !meshid.Valid(id) {
		id = meshid.New()
	}
	source := s.source
	var trace []string
	digest := ""
	origin := "" // X-Meshd-Origin from a mesh peer; else the ID, set below
	var meshAge time.Duration
	suspect := false
	// body is our Received: field, then the message as received. The
	// queue keeps the two apart (queue.Envelope.HopHeader): the stored
	// body is what the client sent, and every attempt puts the hop's
	// fields back in front of it.
	hop := min(max(sess.Received, 0), len(body))
	hopHeader, stored := body[:hop], body[hop:]
	peerFields := 0
	if sess.MeshPeer {
		// Only a mesh peer's identity and trace are believed (see the
		// contract): they make a resend after a crash a duplicate here.
		source = "mesh"
		fields := stored[:header.Leading(stored, meshid.FieldPrefix)]
		if header.ContainsFold(stored[len(fields):header.End(stored)], meshid.FieldPrefix) {
			// Mesh fields below the peer's block (meshd puts them all at
			// the top): read them where they are and store the whole
			// message, whose header every hop then scans, as before.
			fields, hopHeader, stored = stored, nil, body
		} else {
			peerFields = len(fields)
		}
		if v := strings.ToLower(strings.TrimSpace(header.Value(fields, meshid.HeaderID))); meshid.Valid(v) {
			id = v
		}
		if v := strings.ToLower(strings.TrimSpace(header.Value(fields, meshid.HeaderOrigin))); meshid.Valid(v) {
			origin = v
		}
		trace = meshid.ParseTrace(header.Value(fields, meshid.HeaderTrace))
		if v := header.Value(fields, meshid.HeaderAge); v != "" {
			meshAge, suspect = delivery.ParseAge(v) // docs/shadow.md
		}
		if meshid.Visits(trace, n.cfg.Node.RoutingGroup) >= meshid.MaxVisits {
			return "", errLoop
		}
		digest = contentDigest(env, body)
	} else {
		// Our trust headers in every spelling (RFC 5322 field names
		// compare as ASCII, case-insensitively): nobody but a mesh peer
		// sets them. Our Received: field stays at the top.
		body = header.StripPrefix(body, meshid.FieldPrefix)
		stored = body[hop:]
	}
	edited := false // by the Authentication-Results check or a filter
	if n.authres != nil && !sess.MeshPeer {
		body = n.authenticate(ctx, sess, body) // RFC 8601, for the filters below (filter.go)
		edited = true
	}
	quarantine := ""
	var removed []delivery.Refusal // taken out by a filter: DSN once queued
	if n.filters.Len() > 0 && !sess.MeshPeer {
		f, err := n.filter(ctx, sess, id, env, body)
		if err != nil || f.discard {
			return id, err
		}
		env, body, quarantine, removed = f.env, f.body, f.quarantine, f.removed
		edited = true
	}
	if edited {
		hopHeader, stored = splitHop(body, stored)
	}
	if len(hopHeader) == 0 {
		peerFields = 0 // the body is the whole message (queue.Envelope.HopHeader)
	}
	qenv := queue.Envelope{
		ID:         id,
		From:       env.From,
		Ret:        env.Ret,
		EnvID:      env.EnvID,
		SMTPUTF8:   env.SMTPUTF8,
		EightBit:   env.EightBit,
		ReceivedAt: n.now(),
		Trace:      trace,
		Source:     source,
		AuthUser:   sess.AuthUser,
		Digest:     digest,
		Quarantine: quarantine,
		Origin:     cmp.Or(origin, id),
		MeshAge:    meshAge,
		Suspect:    suspect,
		MessageID:  strings.Trim(header.Value(stored, "Message-ID"), "<> "),
		HopHeader:  hopHeader,
		PeerFields: peerFields,
	}
	if sess.RemoteAddr != nil {
		qenv.ClientAddr = sess.RemoteAddr.String()
	}
	for _, r := range env.Rcpts {
		addr := r.Addr
		if header.FoldEqual([]byte(addr), "postmaster") {
			addr = "postmaster@" + n.cfg.LocalDomains[0]
		}
		qenv.Rcpts = append(qenv.Rcpts, queue.Rcpt{Addr: addr, Notify: r.Notify, ORcpt: r.ORcpt})
	}
	err := n.q.Enqueue(ctx, qenv, stored)
	if errors.Is(err, queue.ErrCollision) {
		// The ID is known for another message: this one is not a
		// duplicate, whatever its ID says. Queue it under an ID of its
		// own (derived, so a resend of it is a duplicate of it), as a
		// message that enters the mesh here.
		n.metrics.collisions.Inc()
		n.log.Warn("copy ID collision: same ID, other content; queued as a new message", "qid", id, "peer", addrString(sess.RemoteAddr))
		id = meshid.Collision(id, digest)
		qenv.ID, qenv.Origin = id, id
		stored = header.Strip(stored, meshid.HeaderOrigin)
		if qenv.PeerFields > 0 {
			qenv.PeerFields = header.Leading(stored, meshid.FieldPrefix)
		}
		err = n.q.Enqueue(ctx, qenv, stored)
	}
	switch {
	case errors.Is(err, queue.ErrDuplicate):
		n.log.Info("duplicate message acknowledged", "qid", id, "via", source)
		return id, nil
	case errors.Is(err, queue.ErrFull):
		n.metrics.rejectedFull.Inc()
		n.log.Warn("queue full: message refused", "qid", id)
		return "", errQueueFull
	case err != nil:
		n.log.Error("enqueue failed", "qid", id, "err", err)
		return "", err
	}
	n.metrics.accepted.WithLabelValues(source).Inc()
	size := len(qenv.HopHeader) + len(stored)
	n.trk.Received(qenv, size, s.source)
	n.filterDSN(qenv, body, removed) // body: the whole message, as filtered
	if n.afterQueued != nil {
		n.afterQueued(id)
	}
	n.log.Debug("message queued", "qid", id, "from", env.From, "rcpts", len(qenv.Rcpts), "size", size, "via", source)
	return id, nil
}

// splitHop finds the message as received (rest) at the end of what the
// Authentication-Results check and the filters left (msg): what is in
// front of it is the hop's header. When they changed the message itself,
// or put mesh fields in front of it, the whole of msg is the body.
func splitHop(msg, rest []byte) (hop, body []byte) {
	if k := len(msg) - len(rest); k >= 0 && bytes.Equal(msg[k:], rest) && !header.ContainsFold(msg[:k], meshid.FieldPrefix) {
		return msg[:k], msg[k:]
	}
	return nil, msg
}

// contentDigest identifies a copy's content for dedup: SHA-256 over the
// envelope and the message as it entered the mesh, the same whatever
// path the copy took: without the trace fields at its top (the Received:
// fields every hop prepends, the mesh's own X-Meshd-* fields, which the
// sender rewrites on every hop).
func contentDigest(env smtp.Envelope, body []byte) string {
	h := sha256.New()
	h.Write([]byte(env.From + "\n"))
	rcpts := make([]string, len(env.Rcpts))
	for i, r := range env.Rcpts {
		rcpts[i] = strings.ToLower(r.Addr)
	}
	slices.Sort(rcpts)
	h.Write([]byte(strings.Join(rcpts, "\n") + "\n\n"))
	h.Write(header.Strip(skipTrace(body), meshid.HeaderID, meshid.HeaderTrace, meshid.HeaderOrigin))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// skipTrace drops the header fields at the top of body that hops prepend
// (Received:, X-Meshd-*), each with its continuation lines.
func skipTrace(body []byte) []byte {
	for {
		colon := bytes.IndexByte(body, ':')
		nl := bytes.IndexByte(body, '\n')
		if colon < 0 || (nl >= 0 && nl < colon) {
			return body
		}
		name := string(bytes.TrimSpace(body[:colon]))
		if !strings.EqualFold(name, "Received") && !strings.HasPrefix(strings.ToLower(name), "x-meshd-") {
			return body
		}
		body = dropFirstField(body)
	}
}

// dropFirstField removes the first header field (with its continuation lines).
func dropFirstField(body []byte) []byte {
	i := bytes.IndexByte(body, '\n')
	for i >= 0 && i+1 < len(body) && (body[i+1] == ' ' || body[i+1] == '\t') {
		j := bytes.IndexByte(body[i+1:], '\n')
		if j < 0 {
			return nil
		}
		i += 1 + j
	}
	if i < 0 {
		return nil
	}
	return body[i+1:]
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

package accept

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
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
	// ErrQueueFull is the reply to a message the queue has no room for.
	ErrQueueFull = reply.TempLocal("Queue full, try again later")
	errLoop      = reply.Loop("Routing loop detected: this routing group was already visited")
)

// Queue is where accepted mail goes (queue.Queue).
type Queue interface {
	Enqueue(ctx context.Context, env queue.Envelope, body []byte) error
}

// Tracker records a message received (tracking.Log).
type Tracker interface {
	Received(env queue.Envelope, size int, listener string)
}

// Metrics count what the sink did (node/metrics.Node).
type Metrics interface {
	Accepted(source string)
	QueueFull()
	Collision()
}

// Edge screens mail entering the organisation from anyone but a mesh
// peer: Authentication-Results and content filters.
type Edge interface {
	// Screen is asked once a message was received and given its ID. An
	// error is the reply to send instead of queueing it; Discard answers
	// 250 and queues nothing.
	Screen(ctx context.Context, sess *smtp.Session, id string, env smtp.Envelope, body []byte) (Screened, error)
	// Queued is told of the message queued as m with the recipients
	// Screen removed (their sender gets a DSN).
	Queued(m queue.Envelope, body []byte, removed []delivery.Refusal)
}

// Screened is what the edge left of a message.
type Screened struct {
	Env        smtp.Envelope
	Body       []byte
	Quarantine string // non-empty: queue it held, for this reason
	Discard    bool   // answer 250 and queue nothing
	// Removed are the client's recipients the filters took out: the
	// sender gets a DSN for them (Edge.Queued) once the message is queued.
	Removed []delivery.Refusal
	// Edited: the edge may have changed the message (a field added, a
	// filter's edits), so the sink looks for the message as received at
	// its end (splitHop) instead of taking it as it was.
	Edited bool
}

// Deps are the node's parts a sink uses.
type Deps struct {
	RG         string // this node's routing group: a trace visiting it too often is a loop
	Postmaster string // the domain of a bare "postmaster" recipient (the first local domain)
	Now        func() time.Time
	Log        *slog.Logger
	Queue      Queue
	Track      Tracker
	Metrics    Metrics
	Edge       Edge // nil: mail is queued as received
	// AfterQueued, when set (tests), runs when a message is committed to
	// the queue, before the client hears the reply.
	AfterQueued func(id string)
}

// Sink implements smtp.Sink (and smtp.QueueIDSink) for one listener: it gives
// the message its mesh ID and queues it; the 250 goes out only after
// queue.Enqueue returned, that is after the synced commit.
type Sink struct {
	d      *Deps
	source string // queue.Envelope.Source: "smtp" or "submission"
}

// New is the sink of one listener; source is "smtp" or "submission".
func New(d *Deps, source string) *Sink { return &Sink{d: d, source: source} }

// Accept queues the message (smtp.Sink).
func (s *Sink) Accept(ctx context.Context, sess *smtp.Session, env smtp.Envelope, body []byte) error {
	_, err := s.AcceptID(ctx, sess, env, body)
	return err
}

// AcceptID queues the message and returns its mesh ID for the 250 reply.
func (s *Sink) AcceptID(ctx context.Context, sess *smtp.Session, env smtp.Envelope, body []byte) (string, error) {
	n := s.d
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
		if meshid.Visits(trace, n.RG) >= meshid.MaxVisits {
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
	quarantine := ""
	var removed []delivery.Refusal // taken out by a filter: DSN once queued
	if n.Edge != nil && !sess.MeshPeer {
		f, err := n.Edge.Screen(ctx, sess, id, env, body)
		if err != nil || f.Discard {
			return id, err
		}
		env, body, quarantine, removed = f.Env, f.Body, f.Quarantine, f.Removed
		edited = f.Edited
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
		ReceivedAt: n.Now(),
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
			addr = "postmaster@" + n.Postmaster
		}
		qenv.Rcpts = append(qenv.Rcpts, queue.Rcpt{Addr: addr, Notify: r.Notify, ORcpt: r.ORcpt})
	}
	err := n.Queue.Enqueue(ctx, qenv, stored)
	if errors.Is(err, queue.ErrCollision) {
		// The ID is known for another message: this one is not a
		// duplicate, whatever its ID says. Queue it under an ID of its
		// own (derived, so a resend of it is a duplicate of it), as a
		// message that enters the mesh here.
		n.Metrics.Collision()
		n.Log.Warn("copy ID collision: same ID, other content; queued as a new message", "qid", id, "peer", addrString(sess.RemoteAddr))
		id = meshid.Collision(id, digest)
		qenv.ID, qenv.Origin = id, id
		stored = header.Strip(stored, meshid.HeaderOrigin)
		if qenv.PeerFields > 0 {
			qenv.PeerFields = header.Leading(stored, meshid.FieldPrefix)
		}
		err = n.Queue.Enqueue(ctx, qenv, stored)
	}
	switch {
	case errors.Is(err, queue.ErrDuplicate):
		n.Log.Info("duplicate message acknowledged", "qid", id, "via", source)
		return id, nil
	case errors.Is(err, queue.ErrFull):
		n.Metrics.QueueFull()
		n.Log.Warn("queue full: message refused", "qid", id)
		return "", ErrQueueFull
	case err != nil:
		n.Log.Error("enqueue failed", "qid", id, "err", err)
		return "", err
	}
	n.Metrics.Accepted(source)
	size := len(qenv.HopHeader) + len(stored)
	n.Track.Received(qenv, size, s.source)
	if n.Edge != nil && len(removed) > 0 {
		n.Edge.Queued(qenv, body, removed) // body: the whole message, as filtered
	}
	if n.AfterQueued != nil {
		n.AfterQueued(id)
	}
	n.Log.Debug("message queued", "qid", id, "from", env.From, "rcpts", len(qenv.Rcpts), "size", size, "via", source)
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

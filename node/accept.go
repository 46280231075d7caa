package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"net"
	"regexp"
	"slices"
	"strings"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/meshd/meshd/queue"
	"github.com/meshd/meshd/smtp"
)

// Header fields that carry mesh identity and trace between nodes.
const (
	hdrMeshID    = "X-Meshd-ID"
	hdrMeshTrace = "X-Meshd-Trace"
	// hdrMeshOrigin names the message as it entered the mesh; every copy's
	// ID derives from it, so a copy keeps its ID across hops and reroutes.
	hdrMeshOrigin = "X-Meshd-Origin"
)

var (
	idRe     = regexp.MustCompile(`^[a-z0-9.-]{8,80}$`)
	idBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

	errQueueFull = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "Queue full, try again later"}
	errLoop      = &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 4, 6}, Message: "Routing loop detected: this routing group was already visited"}
)

// newID returns a mesh message ID: 26 lowercase base32 characters of 16 random bytes.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return idBase32.EncodeToString(b[:])
}

// validID reports whether s can be used as a mesh message ID.
func validID(s string) bool { return idRe.MatchString(s) }

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
	if !validID(id) {
		id = newID()
	}
	source := s.source
	var trace []string
	digest := ""
	if sess.MeshPeer {
		// Only a mesh peer's identity and trace are believed (see the
		// contract): they make a resend after a crash a duplicate here.
		source = "mesh"
		if v := strings.ToLower(strings.TrimSpace(headerValue(body, hdrMeshID))); validID(v) {
			id = v
		}
		trace = parseTrace(headerValue(body, hdrMeshTrace))
		if visits(trace, n.cfg.Node.RoutingGroup) >= maxRGVisits {
			return "", errLoop
		}
		digest = contentDigest(env, body)
	} else {
		// Our trust headers in every spelling (RFC 5322 field names
		// compare as ASCII, case-insensitively): nobody but a mesh peer sets them.
		body = stripMeshHeaders(body)
	}
	quarantine := ""
	if n.filters != nil && !sess.MeshPeer {
		f, err := n.filter(ctx, sess, id, env, body)
		if err != nil || f.discard {
			return id, err
		}
		env, body, quarantine = f.env, f.body, f.quarantine
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
	}
	if sess.RemoteAddr != nil {
		qenv.ClientAddr = sess.RemoteAddr.String()
	}
	for _, r := range env.Rcpts {
		addr := r.Addr
		if asciiFoldEqual([]byte(addr), "postmaster") {
			addr = "postmaster@" + n.cfg.LocalDomains[0]
		}
		qenv.Rcpts = append(qenv.Rcpts, queue.Rcpt{Addr: addr, Notify: r.Notify, ORcpt: r.ORcpt})
	}
	err := n.q.Enqueue(ctx, qenv, body)
	if errors.Is(err, queue.ErrCollision) {
		// The ID is known for another message: this one is not a
		// duplicate, whatever its ID says. Queue it under an ID of its
		// own (derived, so a resend of it is a duplicate of it), as a
		// message that enters the mesh here.
		n.metrics.collisions.Inc()
		n.log.Warn("copy ID collision: same ID, other content; queued as a new message", "qid", id, "peer", addrString(sess.RemoteAddr))
		id = collisionID(id, digest)
		qenv.ID = id
		body = stripHeaders(body, hdrMeshOrigin)
		err = n.q.Enqueue(ctx, qenv, body)
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
	n.trackReceived(qenv, body, s.source)
	n.log.Debug("message queued", "qid", id, "from", env.From, "rcpts", len(qenv.Rcpts), "size", len(body), "via", source)
	return id, nil
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
	h.Write(stripHeaders(skipTrace(body), hdrMeshID, hdrMeshTrace, hdrMeshOrigin))
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

// collisionID is the ID of a message that arrived under an ID already
// taken by other content.
func collisionID(id, digest string) string {
	sum := sha256.Sum256([]byte("collision\n" + id + "\n" + digest))
	return idBase32.EncodeToString(sum[:16])
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// headerEnd returns the length of the header section including the blank
// line that ends it (or len(body) when there is no body).
func headerEnd(body []byte) int {
	for i := 0; i < len(body); {
		j := bytes.IndexByte(body[i:], '\n')
		if j < 0 {
			return len(body)
		}
		line := body[i : i+j+1]
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return i + j + 1
		}
		i += j + 1
	}
	return len(body)
}

// maxRGVisits is how often a message may enter one routing group. Once is
// the rule; a second time is allowed because a route can change under a
// message in transit (a connector fails after the message left a group,
// and the way forward now leads back through it). A third entry is a loop
// (554 5.4.6), whatever the link state says.
const maxRGVisits = 2

// visits counts the entries of rg in a trace.
func visits(trace []string, rg string) int {
	n := 0
	for _, t := range trace {
		if t == rg {
			n++
		}
	}
	return n
}

// parseTrace reads "rg1, rg2" into its routing group names.
func parseTrace(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.ToLower(strings.TrimSpace(f)); f != "" {
			out = append(out, f)
		}
	}
	return out
}

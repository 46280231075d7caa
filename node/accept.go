package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"regexp"
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
	} else {
		body = stripHeaders(body, hdrMeshID, hdrMeshTrace, hdrMeshOrigin)
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
	}
	if sess.RemoteAddr != nil {
		qenv.ClientAddr = sess.RemoteAddr.String()
	}
	for _, r := range env.Rcpts {
		addr := r.Addr
		if strings.EqualFold(addr, "postmaster") {
			addr = "postmaster@" + n.cfg.LocalDomains[0]
		}
		qenv.Rcpts = append(qenv.Rcpts, queue.Rcpt{Addr: addr, Notify: r.Notify, ORcpt: r.ORcpt})
	}
	err := n.q.Enqueue(ctx, qenv, body)
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

// headerValue returns the unfolded value of the first header field name.
func headerValue(body []byte, name string) string {
	h := body[:headerEnd(body)]
	var val []byte
	found := false
	for len(h) > 0 {
		j := bytes.IndexByte(h, '\n')
		line := h
		if j >= 0 {
			line = h[:j+1]
		}
		h = h[len(line):]
		isCont := len(line) > 0 && (line[0] == ' ' || line[0] == '\t')
		if found {
			if !isCont {
				break
			}
			val = append(val, bytes.TrimRight(line, "\r\n")...)
			continue
		}
		if k := bytes.IndexByte(line, ':'); k > 0 && strings.EqualFold(string(line[:k]), name) {
			found = true
			val = append(val, bytes.TrimRight(line[k+1:], "\r\n")...)
		}
	}
	return strings.TrimSpace(string(val))
}

// stripHeaders removes every field called one of names (with its
// continuation lines) from the header section of body.
func stripHeaders(body []byte, names ...string) []byte {
	end := headerEnd(body)
	h := body[:end]
	if !hasAnyField(h, names) {
		return body
	}
	out := make([]byte, 0, len(body))
	dropping := false
	for len(h) > 0 {
		j := bytes.IndexByte(h, '\n')
		line := h
		if j >= 0 {
			line = h[:j+1]
		}
		h = h[len(line):]
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') && dropping {
			continue
		}
		dropping = false
		if k := bytes.IndexByte(line, ':'); k > 0 {
			for _, nm := range names {
				if strings.EqualFold(string(bytes.TrimRight(line[:k], " \t")), nm) {
					dropping = true
				}
			}
		}
		if !dropping {
			out = append(out, line...)
		}
	}
	return append(out, body[end:]...)
}

// hasAnyField is a quick pre-check for stripHeaders: it reports whether any
// of names occurs anywhere in h, ignoring ASCII case, without copying h.
func hasAnyField(h []byte, names []string) bool {
	for _, nm := range names {
		if containsFold(h, nm) {
			return true
		}
	}
	return false
}

// containsFold reports whether s contains sub under ASCII case folding.
func containsFold(s []byte, sub string) bool {
	if len(sub) == 0 {
		return true
	}
	lo, up := lowerASCII(sub[0]), upperASCII(sub[0])
	for i := 0; i+len(sub) <= len(s); i++ {
		// Jump to the next possible first byte.
		j := bytes.IndexByte(s[i:len(s)-len(sub)+1], lo)
		if lo != up {
			if k := bytes.IndexByte(s[i:len(s)-len(sub)+1], up); k >= 0 && (j < 0 || k < j) {
				j = k
			}
		}
		if j < 0 {
			return false
		}
		i += j
		if strings.EqualFold(string(s[i:i+len(sub)]), sub) {
			return true
		}
	}
	return false
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func upperASCII(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
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

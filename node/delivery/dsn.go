package delivery

import (
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/meshd/meshd/meshid"
	"github.com/meshd/meshd/queue"
)

// Kinds of delivery status notification the node generates.
const (
	DSNFailure = "failure"
	DSNDelay   = "delay"
	DSNSuccess = "success" // final delivery with NOTIFY=SUCCESS (RFC 3461 §4.1)
	DSNRelayed = "relayed" // NOTIFY=SUCCESS, handed to a server without DSN (§4.2)
)

// dsnRcpt is one recipient reported in a DSN.
type dsnRcpt struct {
	Addr   string
	ORcpt  string
	Reply  string // last reply, e.g. "550 5.1.1 no such user"; may be empty
	Status string // RFC 3463 status when Reply does not carry it (expiry: 4.4.7)
	Remote string // host:port that gave the reply, if any

	LastAttempt time.Time
}

// dsnRequest is what the node knows when it must notify a sender; buildDSN
// turns it into an RFC 3464 message with smtp/dsn.
type dsnRequest struct {
	Kind  string // DSNFailure or DSNDelay
	Msg   *queue.Message
	Body  content // the message, for the DSN to return
	Rcpts []dsnRcpt
	Now   time.Time
}

// wantsNotify applies RFC 3461 §4.1 NOTIFY: NEVER suppresses everything; an
// absent NOTIFY means FAILURE and DELAY (the usual MTA default); SUCCESS is
// only ever sent when asked for.
func wantsNotify(notify []string, kind string) bool {
	if len(notify) == 0 {
		return kind != DSNSuccess && kind != DSNRelayed
	}
	want := "FAILURE"
	switch kind {
	case DSNDelay:
		want = "DELAY"
	case DSNSuccess, DSNRelayed:
		want = "SUCCESS"
	}
	for _, n := range notify {
		if strings.EqualFold(n, "NEVER") {
			return false
		}
	}
	return slices.ContainsFunc(notify, func(n string) bool { return strings.EqualFold(n, want) })
}

// dsnID derives the DSN's mesh ID from the message, the kind and the
// recipients, so re-generating the same DSN after a crash is dropped by the
// queue as a duplicate instead of reaching the sender twice.
func dsnID(msgID, kind string, rcpts []dsnRcpt) string {
	h := sha256.New()
	h.Write([]byte(msgID + "\x00" + kind))
	addrs := make([]string, len(rcpts))
	for i, r := range rcpts {
		addrs[i] = strings.ToLower(r.Addr)
	}
	slices.Sort(addrs)
	for _, a := range addrs {
		h.Write([]byte("\x00" + a))
	}
	return meshid.FromSum(h.Sum(nil))
}

// failureDSN queues a failure DSN for the failed recipients that asked for
// one. Never to the null sender: a bounce of a bounce could loop (RFC 5321 §4.5.5).
func (d *Deliverer) failureDSN(m *queue.Message, body content, failed []queue.Result, remote string) {
	if m.From == "" {
		return
	}
	var rcpts []dsnRcpt
	for _, f := range failed {
		r, ok := findRcpt(m, f.Addr)
		if !ok || !wantsNotify(r.Notify, DSNFailure) {
			continue
		}
		dr := dsnRcpt{Addr: r.Addr, ORcpt: r.ORcpt, Reply: f.Reply.String(), Remote: remote, LastAttempt: r.LastAttempt}
		if f.Outcome == queue.TempFail { // expired: the last reply was temporary
			dr.Status = "4.4.7"
		}
		rcpts = append(rcpts, dr)
	}
	d.sendDSN(dsnRequest{Kind: DSNFailure, Msg: m, Body: body, Rcpts: rcpts, Now: d.now()})
}

// successDSN queues a positive DSN for recipients that asked for one with
// NOTIFY=SUCCESS: kind DSNSuccess ("delivered") when they were delivered
// here (Maildir or LMTP: final delivery), DSNRelayed ("relayed") when they
// were handed to a server outside the mesh that does not support DSN.
// Relaying to a next hop with DSN passes NOTIFY on instead.
func (d *Deliverer) successDSN(m *queue.Message, body content, delivered []queue.Result, kind, remote string) {
	if m.From == "" {
		return
	}
	var rcpts []dsnRcpt
	for _, f := range delivered {
		r, ok := findRcpt(m, f.Addr)
		if !ok || !wantsNotify(r.Notify, kind) {
			continue
		}
		rc := dsnRcpt{Addr: r.Addr, ORcpt: r.ORcpt, Reply: f.Reply.String(), Status: "2.0.0", LastAttempt: d.now()}
		if kind == DSNRelayed {
			rc.Remote = remote
		}
		rcpts = append(rcpts, rc)
	}
	d.sendDSN(dsnRequest{Kind: kind, Msg: m, Body: body, Rcpts: rcpts, Now: d.now()})
}

// maybeDelayDSN sends one delay DSN once the message has waited
// queue.delay_warning, for the pending recipients that want one.
func (d *Deliverer) maybeDelayDSN(m *queue.Message, loadBody func() ([]byte, error), now time.Time) {
	if d.sched.Load().delayWarning <= 0 || m.DelayNotified || now.Sub(m.ReceivedAt) < d.sched.Load().delayWarning {
		return
	}
	var rcpts []dsnRcpt
	for _, r := range m.Recipients {
		if r.State != queue.Pending || r.Attempts == 0 || !wantsNotify(r.Notify, DSNDelay) {
			continue
		}
		dr := dsnRcpt{Addr: r.Addr, ORcpt: r.ORcpt, Reply: r.LastError, LastAttempt: r.LastAttempt}
		if dr.Reply == "" {
			dr.Status = "4.4.7"
		}
		rcpts = append(rcpts, dr)
	}
	if m.From != "" && len(rcpts) > 0 {
		body, err := loadBody()
		if err != nil {
			return
		}
		if !d.sendDSN(dsnRequest{Kind: DSNDelay, Msg: m, Body: stored(m, body), Rcpts: rcpts, Now: now}) {
			return // try again on the next pass
		}
	}
	if err := d.q.MarkDelayNotified(m.ID); err != nil && !errors.Is(err, queue.ErrNotFound) {
		d.log.Error("queue: mark delay notified", "qid", m.ID, "err", err)
	}
}

// sendDSN builds and queues the DSN; it reports whether it is queued (or
// there was nothing to send).
func (d *Deliverer) sendDSN(req dsnRequest) bool {
	if len(req.Rcpts) == 0 || req.Msg.From == "" {
		return true
	}
	body, err := d.buildDSN(req)
	if err != nil {
		d.log.Error("dsn: build", "qid", req.Msg.ID, "kind", req.Kind, "err", err)
		return false
	}
	id := dsnID(req.Msg.ID, req.Kind, req.Rcpts)
	env := queue.Envelope{
		ID:         id,
		From:       "",
		Rcpts:      []queue.Rcpt{{Addr: req.Msg.From}},
		ReceivedAt: req.Now,
		Source:     "dsn",
		Origin:     id,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = d.q.Enqueue(ctx, env, body)
	if err != nil && !errors.Is(err, queue.ErrDuplicate) {
		d.log.Error("dsn: enqueue", "qid", req.Msg.ID, "kind", req.Kind, "err", err)
		return false
	}
	d.metrics.DSNQueued(req.Kind)
	d.track.DSNQueued(req.Msg, id, req.Kind)
	d.log.Info("dsn queued", "qid", req.Msg.ID, "dsn_qid", id, "kind", req.Kind, "to", req.Msg.From, "rcpts", len(req.Rcpts))
	return true
}

func findRcpt(m *queue.Message, addr string) (queue.Recipient, bool) {
	for _, r := range m.Recipients {
		if strings.EqualFold(r.Addr, addr) {
			return r, true
		}
	}
	return queue.Recipient{}, false
}

package delivery

import (
	"github.com/meshd/meshd/queue"
)

// Refusal is a recipient that a content filter took out of a message
// after the client had its 250 for the RCPT (the filters run after DATA):
// the sender learns of it only by DSN.
type Refusal struct {
	queue.Rcpt
	// Reply is the filter's refusal ("550 5.7.1 ..."), or text saying
	// who removed the recipient when the filter gave no reply.
	Reply string
}

// FilterDSN queues one failure DSN to m's sender for the recipients a
// content filter refused or removed after DATA, those whose NOTIFY asks
// for failures (never to the null sender). body is the whole message
// (its hop header included). m is the message as queued
// (or as it would have been, when no recipient is left); its ID makes
// the DSN's, so a repeat for the same message and recipients is dropped
// by the queue as a duplicate. It reports whether the DSN is queued, or
// there was nothing to send.
func (d *Deliverer) FilterDSN(m queue.Envelope, body []byte, refused []Refusal) bool {
	msg := &queue.Message{Envelope: m}
	var rcpts []dsnRcpt
	for _, r := range refused {
		msg.Recipients = append(msg.Recipients, queue.Recipient{Rcpt: r.Rcpt, State: queue.Failed})
		if !wantsNotify(r.Notify, DSNFailure) {
			continue
		}
		dr := dsnRcpt{Addr: r.Addr, ORcpt: r.ORcpt, Reply: r.Reply, LastAttempt: d.now()}
		if !replyCode(r.Reply) {
			dr.Status = "5.7.1" // RFC 3463: delivery not authorized, message refused
		}
		rcpts = append(rcpts, dr)
	}
	return d.sendDSN(dsnRequest{Kind: DSNFailure, Msg: msg, Body: content{body: body}, Rcpts: rcpts, Now: d.now()}) // body: the whole message
}

// replyCode reports whether s starts with a 5xx reply code.
func replyCode(s string) bool {
	return len(s) >= 3 && s[0] == '5' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9'
}

package delivery

import (
	"github.com/meshd/meshd/header"
	"github.com/meshd/meshd/meshid"
	"github.com/meshd/meshd/smtp/dsn"
)

// buildDSN renders the notification with smtp/dsn (RFC 3464
// multipart/report; the original attached as RET asks).
func (d *Deliverer) buildDSN(req dsnRequest) ([]byte, error) {
	m := req.Msg
	action := dsn.ActionFailed
	switch req.Kind {
	case DSNDelay:
		action = dsn.ActionDelayed
	case DSNSuccess:
		action = dsn.ActionDelivered
	case DSNRelayed:
		action = dsn.ActionRelayed
	}
	r := dsn.Report{
		Hostname:    d.cfg.Node.Hostname,
		Postmaster:  "postmaster@" + d.cfg.LocalDomains[0],
		From:        m.From,
		EnvID:       m.EnvID,
		ArrivalDate: m.ReceivedAt,
		Ret:         m.Ret,
		// The returned message goes wherever the sender is, maybe out
		// of the organisation: without the mesh's fields (content.go).
		Original: header.StripPrefix(req.Body.joined(), meshid.FieldPrefix),
		Now:      req.Now,
	}
	for _, rc := range req.Rcpts {
		st := dsn.RcptStatus{
			Final:       rc.Addr,
			Original:    rc.ORcpt,
			Action:      action,
			Status:      rc.Status,
			Diagnostic:  rc.Reply,
			RemoteMTA:   rc.Remote,
			LastAttempt: rc.LastAttempt,
		}
		if req.Kind == DSNDelay {
			st.WillRetryUntil = m.ReceivedAt.Add(d.sched.Load().lifetime)
		}
		r.Rcpts = append(r.Rcpts, st)
	}
	_, body, err := dsn.Build(r)
	return body, err
}

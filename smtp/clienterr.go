package smtp

// DeliveryError is a whole-transaction failure of Client.Send: the
// connection, TLS, MAIL or DATA failed, so no recipient that reached this
// point was delivered. Its Reply is the server's (Code 0 when no reply was
// involved: network, TLS, local; Text then describes the failure).
type DeliveryError struct {
	Reply
	Temporary bool   // retry later (4xx, network, TLS errors); false for 5xx
	Op        string // "connect", "starttls", "mail", "data"
	Addr      string // host:port (or socket path) of the server
	Err       error  // underlying cause for non-reply failures
}

func (e *DeliveryError) Error() string {
	s := "smtp: deliver to " + e.Addr + ": " + e.Op + ": " + e.Reply.String()
	if e.Err != nil && e.Text == "" {
		s += e.Err.Error()
	}
	return s
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// RcptResult is the outcome for one recipient: the RCPT reply when it was
// refused there, otherwise the final DATA reply (LMTP: its own DATA reply).
type RcptResult struct {
	Addr string
	Reply
	// NoDSN: the server did not offer DSN (RFC 3461), so the recipient's
	// NOTIFY and ORCPT went no further than this hop; a sender who asked
	// for NOTIFY=SUCCESS is owed a "relayed" notification (§4.2).
	NoDSN bool
}

// OK reports a 2xx reply.
func (r RcptResult) OK() bool { return r.Positive() }

func deliveryError(r Reply, op, addr string) *DeliveryError {
	return &DeliveryError{Reply: r, Temporary: r.Code/100 != 5, Op: op, Addr: addr}
}

func rcptResult(r Reply, addr string) RcptResult {
	return RcptResult{Addr: addr, Reply: r}
}

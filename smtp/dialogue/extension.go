package dialogue

// An Extension adds to a listener's dialogue an SMTP service extension
// go-smtp does not know (go-smtp has no hook for verbs or EHLO keywords):
// smtp/xlink's X-LINK2STATE is one. Each accepted Conn opens a Handler of
// its own.
type Extension interface {
	// Open returns the extension's handler for a new connection.
	Open(c *Conn) Handler
}

// Handler is an Extension on one connection. Its methods run on the
// connection's reading goroutine, except Keywords, which runs where go-smtp
// writes its EHLO reply.
type Handler interface {
	// Command is offered every client line in command state before the
	// Conn and go-smtp act on it. It returns handled true when it
	// answered the line itself (with Conn.Reply), or an error to end the
	// session (Conn.Drop's); otherwise the line goes on.
	Command(cmd Command) (handled bool, err error)
	// Keywords are the EHLO keywords to announce after a successful EHLO.
	// The Conn's lock is held: use Conn.TLSConnectionState, OffersTLS and
	// RemoteAddr only.
	Keywords() []string
	// Reset forgets the extension's session state: EHLO, HELO, RSET and
	// STARTTLS reset the SMTP session (RFC 5321 §4.1.1.1, §4.1.1.5; RFC
	// 3207 §4.2).
	Reset()
}

// Command is one client line in command state.
type Command struct {
	Line     []byte // as read, with its line end; valid during the call only
	Verb     string // as Verb splits it: "" for a verb go-smtp does not parse
	Arg      string
	Complete bool // false: longer than the line buffer, or cut by EOF
}

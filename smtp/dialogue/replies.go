package dialogue

// Write implements net.Conn for go-smtp: reply lines pass through, with
// the EHLO reply's keywords added and Config.RewriteReply applied.
func (c *Conn) Write(p []byte) (int, error) {
	return c.w.WriteReplies(p, &c.mu, c.filterReply)
}

// filterReply handles one reply line from go-smtp (mu held) and returns
// send with what goes to the client appended.
func (c *Conn) filterReply(send, line []byte) []byte {
	code, final := ReplyCode(line)
	switch {
	case c.state == stPass:
		if final {
			c.countReply(code)
		}
		return append(send, line...)
	case c.swallow:
		if final {
			c.swallow = false
			c.afterReply(code)
		}
		return send
	case c.state == stBusy && c.verb == "EHLO":
		c.ehloHeld = append(c.ehloHeld, line...)
		if !final {
			return send
		}
		held := c.ehloHeld
		c.ehloHeld = nil
		if code == 250 {
			if kws := c.keywords(); len(kws) > 0 {
				held = InsertKeywords(held, kws)
			}
		}
		c.countReply(code)
		c.afterReply(code)
		return append(send, held...)
	}
	if final && (c.state == stBusy || c.state == stChunk) && !c.contentSeen && c.cfg.RewriteReply != nil {
		line = c.cfg.RewriteReply(c.verb, line)
	}
	send = append(send, line...)
	if final {
		sent, _ := ReplyCode(line) // rewritten or not
		c.countReply(sent)
		c.afterReply(code)
	}
	return send
}

// keywords are the EHLO keywords added to go-smtp's (mu held): STARTTLS
// while ours to run, then the extensions'.
func (c *Conn) keywords() []string {
	var kws []string
	if c.cfg.TLS != nil && !c.TLSOn() {
		kws = append(kws, "STARTTLS")
	}
	for _, h := range c.exts {
		kws = append(kws, h.Keywords()...)
	}
	return kws
}

// afterReply moves the dialogue on after go-smtp's final reply line (mu
// held), by the state it was in.
func (c *Conn) afterReply(code int) {
	switch c.state {
	case stBusy:
		switch {
		case code == 334: // SASL challenge: the next line is a response
		case code == 354 && c.verb == "DATA":
			c.state, c.contentSeen = stData, true
			c.eod.Reset()
		case c.verb == "QUIT":
			c.state = stPass
		default:
			c.state = stCommand
			switch {
			case c.verb == "EHLO":
				c.ehlo = code == 250
				c.needEHLO = c.needEHLO && code != 250
			case c.verb == "HELO" && code == 250:
				c.ehlo, c.needEHLO = false, false // extensions need EHLO
			}
		}
	case stChunk:
		// go-smtp refused the BDAT before reading its chunk; it still
		// reads the chunk, and then waits for a command.
		c.replied = true
	case stData:
		// A reply in the middle of content (timeout, line too long): the
		// session is ending and we no longer know where commands start.
		c.state = stPass
	}
}

// Reply writes lines (without CRLF), a reply of the Conn's own or of an
// extension's, for a command go-smtp never sees, and gives the client a
// fresh CommandTimeout for its next line. Call it only from an
// extension's Command.
func (c *Conn) Reply(lines ...string) error {
	var b []byte
	for _, l := range lines {
		if code, final := ReplyCode([]byte(l)); final {
			c.countReply(code)
		}
		b = append(b, l...)
		b = append(b, '\r', '\n')
	}
	c.ownRead = true
	return c.w.Reply(c.cfg.CommandTimeout, b)
}

// Drop writes lines, as Reply, and closes the connection: the session is
// over (RFC 5321 §3.8). It returns ErrDropped, for Command to return.
func (c *Conn) Drop(lines ...string) error {
	_ = c.Reply(lines...)
	_ = c.Close()
	return ErrDropped
}

// countReply counts one reply sent to the client (Config.OnReply).
func (c *Conn) countReply(code int) {
	if c.cfg.OnReply != nil && code > 0 {
		c.cfg.OnReply(code)
	}
}

// EHLO reports whether the client greeted with a successful EHLO since
// it connected or since STARTTLS (a HELO takes it back). It takes the
// Conn's lock: not for Handler.Keywords.
func (c *Conn) EHLO() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ehlo
}

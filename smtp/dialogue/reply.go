package dialogue

import "bytes"

// MaxHeldReply bounds how much of an unfinished reply line ReplyBuffer
// holds back; a longer one is not a reply line an interposer could act
// on and is sent as it is.
const MaxHeldReply = 4096

// ReplyBuffer cuts what go-smtp writes into reply lines. It is not safe
// for concurrent use: the interposer calls it under its own lock.
type ReplyBuffer struct {
	partial []byte
}

// Lines adds p to the buffered output and hands each complete line (with
// its LF) to filter, which appends what goes to the client to send and
// returns it. It returns send: what to write to the client now.
func (r *ReplyBuffer) Lines(p []byte, filter func(send, line []byte) []byte) []byte {
	r.partial = append(r.partial, p...)
	var send []byte
	for {
		i := bytes.IndexByte(r.partial, '\n')
		if i < 0 {
			break
		}
		send = filter(send, r.partial[:i+1])
		r.partial = r.partial[i+1:]
	}
	if len(r.partial) > MaxHeldReply {
		send = append(send, r.partial...)
		r.partial = nil
	}
	// Keep only a copy of the remainder so p's backing array is not held.
	r.partial = append([]byte(nil), r.partial...)
	return send
}

// ReplyCode parses a reply line's "ddd-" (continued) or "ddd " (final)
// prefix (RFC 5321 §4.2.1); anything else counts as a final line with
// code 0.
func ReplyCode(line []byte) (code int, final bool) {
	if len(line) < 3 {
		return 0, true
	}
	for _, b := range line[:3] {
		if b < '0' || b > '9' {
			return 0, true
		}
		code = code*10 + int(b-'0')
	}
	return code, len(line) == 3 || line[3] != '-'
}

// InsertKeywords adds a "250-KEYWORD" line for each of kws before the
// last line of an EHLO reply, turning a one-line reply into a multi-line
// one (RFC 5321 §4.1.1.1).
func InsertKeywords(reply []byte, kws []string) []byte {
	lastStart := bytes.LastIndexByte(bytes.TrimRight(reply, "\r\n"), '\n') + 1
	var out []byte
	if lastStart == 0 {
		out = append(out, reply...)
		if len(out) > 3 {
			out[3] = '-'
		}
		for i, kw := range kws {
			sep := "-"
			if i == len(kws)-1 {
				sep = " "
			}
			out = append(out, "250"+sep+kw+"\r\n"...)
		}
		return out
	}
	out = append(out, reply[:lastStart]...)
	for _, kw := range kws {
		out = append(out, "250-"+kw+"\r\n"...)
	}
	return append(out, reply[lastStart:]...)
}

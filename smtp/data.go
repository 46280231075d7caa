package smtp

import (
	"bufio"
	"bytes"
)

// writeData writes parts, one after the other, as SMTP DATA content (RFC
// 5321 §4.5.2) followed by the end-of-data line, whatever bytes the queue
// holds: every line break goes out as CRLF, and a line break is CRLF, a bare
// CR or a bare LF (so "\r\r\n" is two of them), which is what the node
// stores anyway under either limits.bare_line_ends policy. A line that
// starts with "." gets another one; a part that does not end with a line
// break gets one (the node's parts are header fields put in front of the
// body, CRLF ended). No other CR or LF is ever written, so a downstream
// server cannot find an end of data (or a command) where we did not put
// one: the SMTP smuggling class of CVE-2023-51764. The caller flushes w.
func writeData(w *bufio.Writer, parts ...[]byte) error {
	empty := true
	for _, body := range parts {
		for len(body) > 0 {
			empty = false
			line, rest := cutLine(body)
			if len(line) > 0 && line[0] == '.' {
				if err := w.WriteByte('.'); err != nil {
					return err
				}
			}
			if _, err := w.Write(line); err != nil {
				return err
			}
			if _, err := w.WriteString("\r\n"); err != nil {
				return err
			}
			body = rest
		}
	}
	if empty {
		// An empty line, then the dot (what net/textproto's DotWriter sends).
		_, err := w.WriteString("\r\n.\r\n")
		return err
	}
	_, err := w.WriteString(".\r\n")
	return err
}

// cutLine splits b after its first line break (CRLF, bare CR or bare LF):
// the line without it, and the rest. Without a line break the line is all
// of b. (Two IndexByte passes rather than IndexAny: they run word-wide.)
func cutLine(b []byte) (line, rest []byte) {
	lf := bytes.IndexByte(b, '\n')
	end := lf
	if end < 0 {
		end = len(b)
	}
	if cr := bytes.IndexByte(b[:end], '\r'); cr >= 0 {
		if cr == lf-1 {
			return b[:cr], b[lf+1:]
		}
		return b[:cr], b[cr+1:]
	}
	if lf < 0 {
		return b, nil
	}
	return b[:lf], b[lf+1:]
}

// hasBareLineEnd reports whether b holds a CR not followed by LF or an LF
// not preceded by CR.
func hasBareLineEnd(b []byte) bool {
	for len(b) > 0 {
		line, rest := cutLine(b)
		if len(b)-len(line)-len(rest) == 1 { // a one-byte line break
			return true
		}
		b = rest
	}
	return false
}

// normalizeLineEnds returns b with every bare CR and bare LF replaced by
// CRLF (the limits.bare_line_ends: normalize policy). b is returned
// unchanged when it has none.
func normalizeLineEnds(b []byte) []byte {
	if !hasBareLineEnd(b) {
		return b
	}
	out := make([]byte, 0, len(b)+len(b)/32+2)
	for len(b) > 0 {
		line, rest := cutLine(b)
		out = append(out, line...)
		if len(line) < len(b) {
			out = append(out, '\r', '\n')
		}
		b = rest
	}
	return out
}

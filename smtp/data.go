package smtp

import (
	"bufio"
	"bytes"
)

// writeData writes body as SMTP DATA content (RFC 5321 §4.5.2) followed by
// the end-of-data line: a line that starts with "." gets another one, a
// bare LF becomes CRLF, a body that does not end with a line break gets
// one (a trailing CR is taken for it). It is what net/textproto's
// DotWriter produces, a line at a time rather than a byte at a time, except
// that a run of CRs before a line break is kept as it is (DotWriter adds a
// CR after an even number of them). The caller flushes w.
func writeData(w *bufio.Writer, body []byte) error {
	if len(body) == 0 {
		// DotWriter's end of an empty body: an empty line, then the dot.
		_, err := w.WriteString("\r\n.\r\n")
		return err
	}
	for len(body) > 0 {
		if body[0] == '.' {
			if err := w.WriteByte('.'); err != nil {
				return err
			}
		}
		i := bytes.IndexByte(body, '\n')
		if i < 0 {
			// The last line, unterminated; a CR ending it counts as its
			// line break.
			body = bytes.TrimSuffix(body, []byte("\r"))
			if _, err := w.Write(body); err != nil {
				return err
			}
			if _, err := w.WriteString("\r\n"); err != nil {
				return err
			}
			break
		}
		line := body[:i]
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		if _, err := w.WriteString("\r\n"); err != nil {
			return err
		}
		body = body[i+1:]
	}
	_, err := w.WriteString(".\r\n")
	return err
}

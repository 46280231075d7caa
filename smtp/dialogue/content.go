package dialogue

import (
	"bufio"
	"bytes"
)

// ReadChunk reads into p at most left bytes of a BDAT chunk from br.
func ReadChunk(br *bufio.Reader, p []byte, left int64) (int, error) {
	if int64(len(p)) > left {
		p = p[:left]
	}
	return br.Read(p)
}

// EndOfData follows DATA content to find its end: the machine of
// go-smtp's dataReader (and net/textproto's dotReader), where a line
// begins only after CRLF and ".CRLF" at the beginning of a line ends the
// content (RFC 5321 §4.1.1.4). The zero value is at the beginning of a
// line, where content starts after the 354 reply.
type EndOfData struct {
	state int
	// Bare is set once the content held a CR not followed by LF or an LF
	// not preceded by CR (Reset clears it). It does not change where the
	// content ends.
	Bare bool
}

const (
	eodBeginLine = iota
	eodDot
	eodDotCR
	eodCR
	eodData
)

// Reset puts e back at the beginning of content.
func (e *EndOfData) Reset() { e.state, e.Bare = eodBeginLine, false }

// Scan follows buf and returns how many of its bytes belong to the
// content, up to and including the end-of-data line, and whether that
// line was seen.
func (e *EndOfData) Scan(buf []byte) (n int, ended bool) {
	for n < len(buf) && !ended {
		if e.state == eodData {
			// Inside a line nothing but CR matters: skip to it.
			i := bytes.IndexByte(buf[n:], '\r')
			if i < 0 {
				e.Bare = e.Bare || bytes.IndexByte(buf[n:], '\n') >= 0
				return len(buf), false
			}
			e.Bare = e.Bare || bytes.IndexByte(buf[n:n+i], '\n') >= 0
			n += i + 1
			e.state = eodCR
			continue
		}
		b := buf[n]
		n++
		switch e.state {
		case eodBeginLine:
			switch b {
			case '.':
				e.state = eodDot
			case '\r':
				e.state = eodCR
			default:
				e.Bare = e.Bare || b == '\n'
				e.state = eodData
			}
		case eodDot:
			if b == '\r' {
				e.state = eodDotCR
			} else {
				e.Bare = e.Bare || b == '\n'
				e.state = eodData
			}
		case eodDotCR:
			if b == '\n' {
				ended = true
			} else {
				e.Bare = true
				e.state = eodData
			}
		case eodCR:
			if b == '\n' {
				e.state = eodBeginLine
			} else {
				e.Bare = true
				e.state = eodData
			}
		}
	}
	return n, ended
}

// Read reads content from br into p, never past the end-of-data line,
// and reports whether it read that line. It waits for at least one byte
// and then takes only what br already holds.
func (e *EndOfData) Read(br *bufio.Reader, p []byte) (n int, ended bool, err error) {
	if _, err := br.Peek(1); err != nil {
		return 0, false, err
	}
	buf, _ := br.Peek(min(br.Buffered(), len(p)))
	n, ended = e.Scan(buf)
	copy(p, buf[:n])
	_, _ = br.Discard(n)
	return n, ended, nil
}

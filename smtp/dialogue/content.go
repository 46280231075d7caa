package dialogue

import (
	"bufio"
	"bytes"
	"io"
)

// ReadChunk reads into p at most left bytes of a BDAT chunk from br.
//
// The connection ending before the chunk does is io.ErrUnexpectedEOF, never
// io.EOF: go-smtp copies a chunk with io.Copy, which takes io.EOF for the
// end of the chunk and would pass a short BDAT ... LAST on as a complete
// message, to be queued while the client, seeing no reply, sends it again.
func ReadChunk(br *bufio.Reader, p []byte, left int64) (int, error) {
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := br.Read(p)
	if err == io.EOF && left > int64(n) {
		err = io.ErrUnexpectedEOF
	}
	return n, err
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
func (e *EndOfData) Scan(buf []byte) (n int, ended bool) { return e.scan(buf, false) }

// scan is Scan; with stopAtDot it also stops in front of a period that
// begins a line, unless that period is buf[0] (see Read).
func (e *EndOfData) scan(buf []byte, stopAtDot bool) (n int, ended bool) {
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
		if stopAtDot && b == '.' && n > 0 && e.state == eodBeginLine {
			return n, false
		}
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
//
// One thing it changes on the way: a line that begins with a period and a
// CR not followed by LF loses the period, which RFC 5321 §4.5.2 deletes,
// before the reader above sees it. go-smtp's reader (like net/textproto's)
// would delete the CR with it, so that the line's bare CR, the smuggler's
// tool, would vanish from what the node stores and from what
// limits.bare_line_ends judges (Bare is set). Content handed on is then
// what an RFC reading yields; the end of data is found where it was.
func (e *EndOfData) Read(br *bufio.Reader, p []byte) (n int, ended bool, err error) {
	if _, err := br.Peek(1); err != nil {
		return 0, false, err
	}
	for n < len(p) && !ended {
		if n > 0 && br.Buffered() == 0 {
			break
		}
		if e.state == eodBeginLine {
			if b, _ := br.Peek(1); len(b) == 1 && b[0] == '.' {
				if n > 0 && br.Buffered() < 3 {
					break // decided by the next Read, which may wait for the bytes
				}
				if la, _ := br.Peek(3); len(la) == 3 && la[1] == '\r' && la[2] != '\n' {
					_, _ = br.Discard(1)
					e.Bare = true
					continue
				}
			}
		}
		buf, _ := br.Peek(min(br.Buffered(), len(p)-n))
		k, end := e.scan(buf, true)
		copy(p[n:], buf[:k])
		_, _ = br.Discard(k)
		n, ended = n+k, end
	}
	return n, ended, nil
}

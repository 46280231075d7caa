package dialogue

import (
	"bufio"
	"strconv"
	"strings"
)

// ReadLine returns the next client line with its LF, or, when the line
// does not fit br's buffer or the stream ends, the bytes there are, with
// complete false. The slice is valid until the next read from br.
func ReadLine(br *bufio.Reader) (line []byte, complete bool, err error) {
	line, err = br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return line, false, nil
	}
	return line, err == nil, err
}

// Verb splits a command line the way go-smtp v0.25 does (parseCmd): any
// line starting with STARTTLS is STARTTLS; otherwise the verb is exactly
// four characters, upper-cased, followed by a space or the end of the
// line, and the argument is the trimmed rest. A line go-smtp refuses as
// mangled has the empty verb.
func Verb(line []byte) (verb, arg string) {
	s := strings.TrimRight(string(line), "\r\n")
	if strings.HasPrefix(strings.ToUpper(s), "STARTTLS") {
		return "STARTTLS", ""
	}
	switch {
	case len(s) == 4:
		return strings.ToUpper(s), ""
	case len(s) < 6 || s[4] != ' ':
		return "", ""
	}
	return strings.ToUpper(s[:4]), strings.TrimSpace(s[5:])
}

// IsSTARTTLS reports whether line is exactly STARTTLS (any case) with no
// parameters (RFC 3207 §4).
func IsSTARTTLS(line []byte) bool {
	return strings.EqualFold(strings.TrimRight(string(line), "\r\n"), "STARTTLS")
}

// ChunkSize mirrors go-smtp's checks of the arguments of BDAT (RFC 3030
// §2: "BDAT size [LAST]"): when they pass, go-smtp reads (or discards)
// exactly n bytes of chunk, whatever it answers.
func ChunkSize(arg string) (n int64, ok bool) {
	args := strings.Fields(arg)
	if len(args) == 0 || len(args) > 2 {
		return 0, false
	}
	if len(args) == 2 && !strings.EqualFold(args[1], "LAST") {
		return 0, false
	}
	u, err := strconv.ParseUint(args[0], 10, 32)
	if err != nil {
		return 0, false
	}
	return int64(u), true
}

package header

import "bytes"

// Header field names are printable ASCII (RFC 5322 §2.2, §3.6.8) and
// compare case-insensitively in ASCII only. Unicode case folding
// (strings.EqualFold) would take "X-Meſhd-Origin" (U+017F, long s) or a
// Kelvin sign for one of our fields; a name with any byte outside ASCII is
// never one of ours.

// FoldEqual reports whether a equals b under ASCII case folding;
// any non-ASCII byte makes them unequal.
func FoldEqual(a []byte, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x >= 0x80 || y >= 0x80 || lowerASCII(x) != lowerASCII(y) {
			return false
		}
	}
	return true
}

// HasPrefixFold is FoldEqual for the first len(prefix) bytes of s.
func HasPrefixFold(s []byte, prefix string) bool {
	return len(s) >= len(prefix) && FoldEqual(s[:len(prefix)], prefix)
}

// FieldName returns the name of the header line (before the colon, with
// the white space RFC 5322 §4.5.3 obsolete syntax allows before it), or nil
// for a continuation line or a line without a colon.
func FieldName(line []byte) []byte {
	if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
		return nil
	}
	k := bytes.IndexByte(line, ':')
	if k <= 0 {
		return nil
	}
	return bytes.TrimRight(line[:k], " \t")
}

// Value returns the unfolded value of the first header field name.
func Value(body []byte, name string) string {
	h := body[:End(body)]
	var val []byte
	found := false
	for len(h) > 0 {
		line := nextLine(h)
		h = h[len(line):]
		isCont := line[0] == ' ' || line[0] == '\t'
		if found {
			if !isCont {
				break
			}
			val = append(val, bytes.TrimRight(line, "\r\n")...)
			continue
		}
		if nm := FieldName(line); nm != nil && FoldEqual(nm, name) {
			found = true
			val = append(val, bytes.TrimRight(line[bytes.IndexByte(line, ':')+1:], "\r\n")...)
		}
	}
	return string(bytes.TrimSpace(val))
}

// nextLine returns the first line of non-empty h including its LF.
func nextLine(h []byte) []byte {
	if j := bytes.IndexByte(h, '\n'); j >= 0 {
		return h[:j+1]
	}
	return h
}

// Strip removes every field called one of names (with its
// continuation lines) from the header section of body.
func Strip(body []byte, names ...string) []byte {
	quick := func(h []byte) bool { return hasAnyField(h, names) }
	return stripFields(body, quick, func(nm []byte) bool {
		for _, want := range names {
			if FoldEqual(nm, want) {
				return true
			}
		}
		return false
	})
}

// StripPrefix removes every field whose name starts with prefix, in any
// ASCII case, from the header section of body (StripPrefix(body,
// meshid.FieldPrefix) drops every X-Meshd-* field).
func StripPrefix(body []byte, prefix string) []byte {
	quick := func(h []byte) bool { return ContainsFold(h, prefix) }
	return stripFields(body, quick, func(nm []byte) bool { return HasPrefixFold(nm, prefix) })
}

// stripFields drops the header fields whose name drop matches; quick is a
// cheap test that must be true whenever some field would be dropped.
func stripFields(body []byte, quick func([]byte) bool, drop func([]byte) bool) []byte {
	end := End(body)
	h := body[:end]
	if !quick(h) {
		return body
	}
	out := make([]byte, 0, len(body))
	dropping := false
	for len(h) > 0 {
		line := nextLine(h)
		h = h[len(line):]
		if (line[0] == ' ' || line[0] == '\t') && dropping {
			continue
		}
		dropping = false
		if nm := FieldName(line); nm != nil && drop(nm) {
			dropping = true
			continue
		}
		out = append(out, line...)
	}
	return append(out, body[end:]...)
}

// hasAnyField is a quick pre-check for Strip: it reports whether any
// of names occurs anywhere in h, ignoring ASCII case, without copying h.
func hasAnyField(h []byte, names []string) bool {
	for _, nm := range names {
		if ContainsFold(h, nm) {
			return true
		}
	}
	return false
}

// ContainsFold reports whether s contains sub under ASCII case folding.
func ContainsFold(s []byte, sub string) bool {
	if len(sub) == 0 {
		return true
	}
	lo, up := lowerASCII(sub[0]), upperASCII(sub[0])
	for i := 0; i+len(sub) <= len(s); i++ {
		// Jump to the next possible first byte.
		j := bytes.IndexByte(s[i:len(s)-len(sub)+1], lo)
		if lo != up {
			if k := bytes.IndexByte(s[i:len(s)-len(sub)+1], up); k >= 0 && (j < 0 || k < j) {
				j = k
			}
		}
		if j < 0 {
			return false
		}
		i += j
		if FoldEqual(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func upperASCII(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// End returns the length of the header section including the blank
// line that ends it (or len(body) when there is no body).
func End(body []byte) int {
	for i := 0; i < len(body); {
		j := bytes.IndexByte(body[i:], '\n')
		if j < 0 {
			return len(body)
		}
		line := body[i : i+j+1]
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return i + j + 1
		}
		i += j + 1
	}
	return len(body)
}

// ToCRLF turns every bare LF and lone CR of a message into CRLF: the queue
// and every outbound session hold content with CRLF line ends only.
func ToCRLF(b []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(b) + len(b)/32)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '\r':
			out.WriteString("\r\n")
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
		case '\n':
			out.WriteString("\r\n")
		default:
			out.WriteByte(c)
		}
	}
	return out.Bytes()
}

// Leading returns the length of the fields at the top of body whose names
// start with prefix (in any ASCII case), with their continuation lines:
// the block a mesh peer puts in front of the message it sends.
func Leading(body []byte, prefix string) int {
	n := 0
	for n < len(body) {
		end := n + len(nextLine(body[n:]))
		if nm := FieldName(body[n:end]); nm == nil || !HasPrefixFold(nm, prefix) {
			return n
		}
		for end < len(body) && (body[end] == ' ' || body[end] == '\t') {
			end += len(nextLine(body[end:]))
		}
		if body[end-1] != '\n' {
			return n // cut inside the field: not a whole one
		}
		n = end
	}
	return n
}

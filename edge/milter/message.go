package milter

import (
	"bytes"
	"strings"
)

// message is a message split into its header fields and body, so that
// milter edits can be applied field by field and the result written back
// byte for byte where nothing changed.
type message struct {
	fields []field
	sep    []byte // the empty line ending the header section ("" when absent)
	body   []byte
}

// field is one header field as it was: "Name: value\r\n" with its
// continuation lines.
type field struct {
	name string
	raw  []byte
}

// parseMessage splits b. The header section ends at the first empty line,
// or at the first line that is neither a field nor a continuation (that
// line and everything after it are body, as RFC 5322 parsers read it).
func parseMessage(b []byte) *message {
	m := &message{}
	for len(b) > 0 {
		line, rest := cutLine(b)
		if isBlank(line) {
			m.sep, m.body = line, rest
			return m
		}
		if (line[0] == ' ' || line[0] == '\t') && len(m.fields) > 0 {
			f := &m.fields[len(m.fields)-1]
			f.raw = append(f.raw, line...)
			b = rest
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || bytes.ContainsAny(line[:colon], " \t") {
			break
		}
		m.fields = append(m.fields, field{name: string(line[:colon]), raw: append([]byte(nil), line...)})
		b = rest
	}
	m.body = b
	return m
}

func cutLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i+1], b[i+1:]
	}
	return b, nil
}

func isBlank(line []byte) bool { return len(bytes.TrimRight(line, "\r\n")) == 0 }

// bytes writes the message back.
func (m *message) bytes() []byte {
	n := len(m.sep) + len(m.body)
	for _, f := range m.fields {
		n += len(f.raw)
	}
	out := make([]byte, 0, n)
	for _, f := range m.fields {
		out = append(out, f.raw...)
	}
	out = append(out, m.sep...)
	return append(out, m.body...)
}

// value is a field's value as the milter protocol carries it: after the
// colon, without the final line break (folding kept), and without the one
// space that conventionally follows the colon unless the milter asked for
// it (SMFIP_HDR_LEADSPC: leading).
func (f field) value(leading bool) string {
	v := f.raw[len(f.name)+1:]
	if !leading && len(v) > 0 && v[0] == ' ' {
		v = v[1:]
	}
	return strings.TrimRight(string(v), "\r\n")
}

// newField builds a header field from a milter's name and value (with
// its leading space when the milter asked for SMFIP_HDR_LEADSPC). The
// value's line breaks become CRLF and every line after the first is made a
// continuation line, so a value can never start a field of its own.
func newField(name, value string, leading bool) field {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte(':')
	if !leading && value != "" && value[0] != ' ' && value[0] != '\t' {
		b.WriteByte(' ')
	}
	lines := strings.Split(strings.ReplaceAll(strings.ReplaceAll(value, "\r\n", "\n"), "\r", "\n"), "\n")
	first := true
	for _, l := range lines {
		l = strings.TrimRight(l, "\r")
		if !first {
			if strings.TrimSpace(l) == "" {
				continue // an empty line would end the header section
			}
			b.WriteString("\r\n")
			if l[0] != ' ' && l[0] != '\t' {
				b.WriteByte('\t')
			}
		}
		b.WriteString(l)
		first = false
	}
	b.WriteString("\r\n")
	return field{name: name, raw: []byte(b.String())}
}

// validFieldName: printable ASCII without colon (RFC 5322 §3.6.8).
func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

// addField appends a field at the end of the header section
// (SMFIR_ADDHEADER).
func (m *message) addField(name, value string, leading bool) {
	m.fields = append(m.fields, newField(name, value, leading))
	m.ensureSep()
}

// insertField inserts a field after the index'th field, 0 being the top
// (SMFIR_INSHEADER); past the end it is appended.
func (m *message) insertField(index int, name, value string, leading bool) {
	index = min(max(index, 0), len(m.fields))
	m.fields = append(m.fields[:index], append([]field{newField(name, value, leading)}, m.fields[index:]...)...)
	m.ensureSep()
}

// changeField replaces the index'th (1-based) field called name, or
// removes it when value is empty (SMFIR_CHGHEADER). With fewer such
// fields a non-empty value is appended, as Sendmail does.
func (m *message) changeField(index int, name, value string, leading bool) {
	index = max(index, 1)
	seen := 0
	for i, f := range m.fields {
		if !strings.EqualFold(f.name, name) {
			continue
		}
		if seen++; seen != index {
			continue
		}
		if strings.TrimSpace(value) == "" {
			m.fields = append(m.fields[:i], m.fields[i+1:]...)
		} else {
			m.fields[i] = newField(f.name, value, leading)
		}
		return
	}
	if strings.TrimSpace(value) != "" {
		m.addField(name, value, leading)
	}
}

func (m *message) ensureSep() {
	if len(m.sep) == 0 {
		m.sep = []byte("\r\n")
	}
}

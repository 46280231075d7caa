package xlink

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Transfer kinds (PROTOCOL.md §4).
const (
	KindSummaries = "SUMMARIES"
	KindRecords   = "RECORDS"
)

// ChunkBytes is the number of payload bytes carried by one NEXT or LAST
// chunk: 732 bytes are 976 base64 characters, which keeps the longest
// command ("X-LINK2STATE NEXT " + 976 + CRLF = 996 bytes) and the longest
// reply line ("250-NEXT " + 976 + CRLF = 987 bytes) under 1,000 bytes.
const ChunkBytes = 732

// MaxLineBytes is the longest command or reply line, CRLF included.
const MaxLineBytes = 1000

var b64 = base64.StdEncoding.Strict()

// frameError is a violation of the transfer framing. code/enh are the
// reply the server sends before dropping the session.
type frameError struct {
	code int
	enh  string
	msg  string
}

func (e *frameError) Error() string { return fmt.Sprintf("%d %s %s", e.code, e.enh, e.msg) }

func errSequence(msg string) error { return &frameError{503, "5.5.1", msg} }
func errSyntax(msg string) error   { return &frameError{501, "5.5.4", msg} }
func errSize(msg string) error     { return &frameError{552, "5.3.4", msg} }
func errPayload(msg string) error  { return &frameError{554, "5.6.0", msg} }

// assembler receives one transfer: FIRST opens it, NEXT and LAST add
// chunks, LAST closes it after checking the declared length and hash.
type assembler struct {
	max      int
	open     bool
	kind     string
	declared int
	hash     [32]byte
	buf      []byte
}

// first parses "<kind> <total-length> <sha256-hex>".
func (a *assembler) first(args []string) error {
	if a.open {
		return errSequence("FIRST inside an open transfer")
	}
	if len(args) != 3 {
		return errSyntax("FIRST needs kind, length and hash")
	}
	kind := strings.ToUpper(args[0])
	if kind != KindSummaries && kind != KindRecords {
		return errSyntax("unknown transfer kind")
	}
	n, err := parseLength(args[1])
	if err != nil {
		return err
	}
	if n > a.max {
		return errSize("declared length exceeds limit")
	}
	h, err := parseHash(args[2])
	if err != nil {
		return err
	}
	*a = assembler{max: a.max, open: true, kind: kind, declared: n, hash: h}
	// Grow gradually: a declared length is a claim, not a promise.
	a.buf = make([]byte, 0, min(n, 64<<10))
	return nil
}

// next adds one chunk (NEXT requires a non-empty chunk, LAST allows none).
func (a *assembler) next(b64text string, last bool) error {
	if !a.open {
		if last {
			return errSequence("LAST without FIRST")
		}
		return errSequence("NEXT without FIRST")
	}
	if b64text == "" && !last {
		return errSyntax("empty NEXT chunk")
	}
	if len(b64text) > 4*ChunkBytes/3 {
		return errSyntax("chunk too long")
	}
	chunk, err := b64.DecodeString(b64text)
	if err != nil {
		return errSyntax("chunk is not base64")
	}
	if len(a.buf)+len(chunk) > a.declared {
		return errPayload("more data than declared")
	}
	a.buf = append(a.buf, chunk...)
	return nil
}

// finish closes the transfer after LAST and returns its payload.
func (a *assembler) finish() (kind string, payload []byte, err error) {
	a.open = false
	if len(a.buf) != a.declared {
		return "", nil, errPayload("length differs from declared")
	}
	if sha256.Sum256(a.buf) != a.hash {
		return "", nil, errPayload("hash mismatch")
	}
	kind, payload = a.kind, a.buf
	a.buf = nil
	return kind, payload, nil
}

func parseLength(s string) (int, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, errSyntax("bad length")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errSyntax("bad length")
		}
	}
	if len(s) > 10 {
		return 0, errSize("declared length exceeds limit")
	}
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, errSize("declared length exceeds limit")
	}
	return int(n), nil
}

func parseHash(s string) ([32]byte, error) {
	var h [32]byte
	if len(s) != 64 || strings.ToLower(s) != s {
		return h, errSyntax("hash must be 64 lowercase hex digits")
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, errSyntax("hash must be 64 lowercase hex digits")
	}
	return h, nil
}

// frameLines renders payload as a transfer: "FIRST <kind> <len> <hex>",
// then "NEXT <b64>" for every full chunk but the last, then "LAST <b64>"
// (or a bare "LAST" for an empty payload). Lines carry no CRLF or prefix.
func frameLines(kind string, payload []byte) []string {
	sum := sha256.Sum256(payload)
	lines := []string{fmt.Sprintf("FIRST %s %d %s", kind, len(payload), hex.EncodeToString(sum[:]))}
	for len(payload) > ChunkBytes {
		lines = append(lines, "NEXT "+b64.EncodeToString(payload[:ChunkBytes]))
		payload = payload[ChunkBytes:]
	}
	if len(payload) == 0 {
		return append(lines, "LAST")
	}
	return append(lines, "LAST "+b64.EncodeToString(payload))
}

// encodeRecords frames opaque records into one RECORDS payload:
// uint32 BE count, then per record uint32 BE length and the bytes. It
// stops before the record that would break maxBytes or maxRecords and
// reports how many records it took.
func encodeRecords(records [][]byte, maxBytes, maxRecords int) ([]byte, int) {
	out := make([]byte, 4, 4+64*len(records))
	n := 0
	for _, r := range records {
		if n == maxRecords || len(out)+4+len(r) > maxBytes {
			break
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(r)))
		out = append(out, r...)
		n++
	}
	binary.BigEndian.PutUint32(out, uint32(n))
	return out, n
}

var errRecordFraming = errors.New("malformed records payload")

// decodeRecords is the inverse of encodeRecords; every byte must be used.
func decodeRecords(p []byte, maxRecords int) ([][]byte, error) {
	if len(p) < 4 {
		return nil, errPayload(errRecordFraming.Error())
	}
	count := binary.BigEndian.Uint32(p)
	if uint64(count) > uint64(maxRecords) {
		return nil, errSize("too many records")
	}
	p = p[4:]
	// Each record costs at least 4 bytes: an honest count fits the payload.
	if uint64(count)*4 > uint64(len(p)) {
		return nil, errPayload(errRecordFraming.Error())
	}
	recs := make([][]byte, 0, count)
	for i := uint32(0); i < count; i++ {
		if len(p) < 4 {
			return nil, errPayload(errRecordFraming.Error())
		}
		l := binary.BigEndian.Uint32(p)
		p = p[4:]
		if uint64(l) > uint64(len(p)) {
			return nil, errPayload(errRecordFraming.Error())
		}
		recs = append(recs, p[:l:l])
		p = p[l:]
	}
	if len(p) != 0 {
		return nil, errPayload(errRecordFraming.Error())
	}
	return recs, nil
}

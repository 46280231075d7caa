package smtp

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net/textproto"
	"testing"
)

// dataBodies are hand-picked bodies around line breaks and dots, the
// end-of-data variants of SMTP smuggling among them, and random ones made
// of the bytes that matter (dots, CR, LF) and ordinary text.
func dataBodies() [][]byte {
	bodies := [][]byte{
		nil, []byte(""), []byte("."), []byte(".\r\n"), []byte("a"), []byte("a\n"), []byte("a\r\n"), []byte("\r\n"),
		[]byte("\n"), []byte("..x\r\n.\r\n"), []byte("a\r\n.b\n.\n"), []byte("x\ry\r\n"), []byte("end\r"),
		[]byte("Subject: t\r\n\r\n.hidden\r\nbody\r\n"), []byte("a\r\r\n.b"), []byte("end\r\r"),
	}
	for _, eod := range smugglingEnds {
		bodies = append(bodies, []byte("Subject: s\r\n\r\nouter"+eod+"MAIL FROM:<x@y>\r\nRCPT TO:<v@z>\r\nDATA\r\ninner\r\n"))
	}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte(".\r\nab")
	for range 20000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		bodies = append(bodies, b)
	}
	return bodies
}

// smugglingEnds are the end-of-data look-alikes of SMTP smuggling
// (CVE-2023-51764 and its kin): servers that disagree on them disagree on
// where a message ends.
var smugglingEnds = []string{"\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r", "\r.\r", "\r.\n", "\r\n.\n"}

// refData is the rule writeData implements, a byte at a time: split the
// body into lines at CRLF, bare CR or bare LF; a last line without a break
// still counts (an empty body is one empty line); write each line with a
// dot in front if it starts with one, then CRLF; then ".CRLF".
func refData(body []byte) []byte {
	var lines [][]byte
	cur := []byte{}
	for i := 0; i < len(body); i++ {
		switch c := body[i]; c {
		case '\r':
			if i+1 < len(body) && body[i+1] == '\n' {
				i++
			}
			fallthrough
		case '\n':
			lines, cur = append(lines, cur), []byte{}
		default:
			cur = append(cur, c)
		}
	}
	if len(cur) > 0 || len(lines) == 0 {
		lines = append(lines, cur)
	}
	var out []byte
	for _, l := range lines {
		if len(l) > 0 && l[0] == '.' {
			out = append(out, '.')
		}
		out = append(append(out, l...), '\r', '\n')
	}
	return append(out, '.', '\r', '\n')
}

func writeDataBytes(t testing.TB, body []byte) []byte {
	var got bytes.Buffer
	bw := bufio.NewWriter(&got)
	if err := writeData(bw, body); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	return got.Bytes()
}

// checkData checks writeData's output for body against refData, against
// the wire rules (no bare CR or LF; the first end-of-data line is the
// last line), and reads it back with net/textproto's DotReader: the
// content is the body with its line ends normalised.
func checkData(t testing.TB, body []byte) {
	got := writeDataBytes(t, body)
	if want := refData(body); !bytes.Equal(got, want) {
		t.Fatalf("body %q: writeData %q, rule %q", body, got, want)
	}
	if hasBareLineEnd(got) {
		t.Fatalf("body %q: bare CR or LF on the wire: %q", body, got)
	}
	if i := bytes.Index(append([]byte("\r\n"), got...), []byte("\r\n.\r\n")); i != len(got)-3 {
		t.Fatalf("body %q: end of data at %d of %d: %q", body, i, len(got), got)
	}
	br := bufio.NewReader(bytes.NewReader(got))
	read, err := io.ReadAll(textproto.NewReader(br).DotReader())
	if err != nil {
		t.Fatalf("body %q: DotReader: %v", body, err)
	}
	if br.Buffered() != 0 {
		t.Fatalf("body %q: %d bytes after the end of data", body, br.Buffered())
	}
	want := bytes.ReplaceAll(normalizeLineEnds(body), []byte("\r\n"), []byte("\n"))
	if len(want) == 0 || want[len(want)-1] != '\n' {
		want = append(want, '\n')
	}
	if !bytes.Equal(read, want) {
		t.Fatalf("body %q: read back %q, want %q", body, read, want)
	}
}

func TestWriteDataRule(t *testing.T) {
	for _, body := range dataBodies() {
		checkData(t, body)
	}
}

// TestWriteDataHeaderPart: header fields written as a part of their own
// (smtp.Outgoing.Header) go out exactly as the same fields in front of
// the body would, a dot at the start of either included.
func TestWriteDataHeaderPart(t *testing.T) {
	for _, hdr := range []string{"", "Received: from x\r\n\tby y\r\n", ".X: dotted\r\n", "X-Meshd-ID: a\r\nReceived: r\r\n"} {
		for _, body := range dataBodies() {
			var got bytes.Buffer
			bw := bufio.NewWriter(&got)
			if err := writeData(bw, []byte(hdr), body); err != nil {
				t.Fatal(err)
			}
			if err := bw.Flush(); err != nil {
				t.Fatal(err)
			}
			if want := writeDataBytes(t, append([]byte(hdr), body...)); !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("header %q, body %q: as two parts %q, joined %q", hdr, body, got.Bytes(), want)
			}
		}
	}
}

// TestWriteDataMatchesDotWriter: where the body has no bare CR, writeData
// produces exactly what net/textproto's DotWriter does.
func TestWriteDataMatchesDotWriter(t *testing.T) {
	for _, body := range dataBodies() {
		if bytes.Contains(bytes.ReplaceAll(body, []byte("\r\n"), nil), []byte("\r")) {
			continue
		}
		var want bytes.Buffer
		dw := textproto.NewWriter(bufio.NewWriter(&want)).DotWriter()
		if _, err := dw.Write(body); err != nil {
			t.Fatal(err)
		}
		if err := dw.Close(); err != nil {
			t.Fatal(err)
		}
		if got := writeDataBytes(t, body); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("body %q: writeData %q, DotWriter %q", body, got, want.Bytes())
		}
	}
}

func TestWriteDataSmuggling(t *testing.T) {
	for body, want := range map[string]string{
		"a\r\r\n.b":        "a\r\n\r\n..b\r\n.\r\n",
		"end\r\r":          "end\r\n\r\n.\r\n",
		"x\r\n.\rMAIL":     "x\r\n..\r\nMAIL\r\n.\r\n",
		"outer\r.\r\nMAIL": "outer\r\n..\r\nMAIL\r\n.\r\n",
		"outer\n.\nMAIL":   "outer\r\n..\r\nMAIL\r\n.\r\n",
	} {
		if got := string(writeDataBytes(t, []byte(body))); got != want {
			t.Errorf("body %q: %q, want %q", body, got, want)
		}
	}
}

// FuzzWriteData checks writeData against refData and the wire rules.
func FuzzWriteData(f *testing.F) {
	for _, b := range dataBodies()[:40] {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkData(t, body) })
}

func TestNormalizeLineEnds(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "a": "a", "a\r\nb": "a\r\nb", "a\nb": "a\r\nb", "a\rb": "a\r\nb", "a\r\r\n": "a\r\n\r\n",
		"\n.\n": "\r\n.\r\n", "end\r": "end\r\n",
	} {
		if got := string(normalizeLineEnds([]byte(in))); got != want {
			t.Errorf("normalizeLineEnds(%q) = %q, want %q", in, got, want)
		}
		if hasBareLineEnd([]byte(want)) {
			t.Errorf("%q: still bare", want)
		}
	}
}

func BenchmarkWriteData(b *testing.B) {
	body := bytes.Repeat([]byte("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n"), 50)
	b.Run("writeData", func(b *testing.B) {
		bw := bufio.NewWriterSize(&bytes.Buffer{}, 64<<10)
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			_ = writeData(bw, body)
			bw.Reset(&bytes.Buffer{})
		}
	})
	b.Run("textproto", func(b *testing.B) {
		bw := bufio.NewWriterSize(&bytes.Buffer{}, 64<<10)
		tw := textproto.NewWriter(bw)
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			dw := tw.DotWriter()
			_, _ = dw.Write(body)
			_ = dw.Close()
			bw.Reset(&bytes.Buffer{})
		}
	})
}

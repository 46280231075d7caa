package smtp

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"net/textproto"
	"testing"
)

// TestWriteDataMatchesDotWriter: writeData produces exactly what
// net/textproto's DotWriter does, on hand-picked and random bodies made of
// the bytes that matter (dots, CR, LF) and ordinary text, except where two
// CRs meet: DotWriter's state machine then adds a CR of its own, writeData
// keeps the bytes (checked separately).
func TestWriteDataMatchesDotWriter(t *testing.T) {
	bodies := [][]byte{
		nil, []byte(""), []byte("."), []byte(".\r\n"), []byte("a"), []byte("a\n"), []byte("a\r\n"), []byte("\r\n"),
		[]byte("\n"), []byte("..x\r\n.\r\n"), []byte("a\r\n.b\n.\n"), []byte("x\ry\r\n"), []byte("end\r"),
		[]byte("Subject: t\r\n\r\n.hidden\r\nbody\r\n"),
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
	for _, body := range bodies {
		if bytes.Contains(body, []byte("\r\r")) {
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
		var got bytes.Buffer
		bw := bufio.NewWriter(&got)
		if err := writeData(bw, body); err != nil {
			t.Fatal(err)
		}
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("body %q: writeData %q, DotWriter %q", body, got.Bytes(), want.Bytes())
		}
	}
}

func TestWriteDataKeepsCRRuns(t *testing.T) {
	for body, want := range map[string]string{
		"a\r\r\n.b": "a\r\r\n..b\r\n.\r\n",
		"end\r\r":   "end\r\r\n.\r\n",
	} {
		var got bytes.Buffer
		bw := bufio.NewWriter(&got)
		if err := writeData(bw, []byte(body)); err != nil {
			t.Fatal(err)
		}
		_ = bw.Flush()
		if got.String() != want {
			t.Errorf("body %q: %q, want %q", body, got.String(), want)
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

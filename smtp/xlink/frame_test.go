package xlink

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseLength(t *testing.T) {
	cases := []struct {
		in   string
		want int
		code int // 0 = ok
	}{
		{"0", 0, 0}, {"1", 1, 0}, {"16777216", 16777216, 0},
		{"", 0, 501}, {"01", 0, 501}, {"-1", 0, 501}, {"+1", 0, 501}, {"1e3", 0, 501}, {"١", 0, 501},
		{"2147483648", 0, 552}, {"99999999999999999999", 0, 552},
	}
	for _, tc := range cases {
		n, err := parseLength(tc.in)
		var fe *frameError
		switch {
		case tc.code == 0 && (err != nil || n != tc.want):
			t.Errorf("parseLength(%q) = %d, %v", tc.in, n, err)
		case tc.code != 0 && (!errors.As(err, &fe) || fe.code != tc.code):
			t.Errorf("parseLength(%q) err = %v, want %d", tc.in, err, tc.code)
		}
	}
}

func TestAssembler(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789"), 200) // 2000 bytes: 3 chunks
	lines := frameLines(KindRecords, payload)
	if len(lines) != 4 || !strings.HasPrefix(lines[1], "NEXT ") || !strings.HasPrefix(lines[3], "LAST ") {
		t.Fatalf("frameLines: %d lines", len(lines))
	}
	type step struct {
		op   string // first, next, last
		arg  string
		code int
	}
	first := strings.Fields(lines[0])[1:]
	chunk := func(i int) string { return strings.Fields(lines[i])[1] }
	cases := []struct {
		name  string
		steps []step
	}{
		{"ok", []step{{"first", strings.Join(first, " "), 0}, {"next", chunk(1), 0}, {"next", chunk(2), 0}, {"last", chunk(3), 0}}},
		{"next_without_first", []step{{"next", chunk(1), 503}}},
		{"last_without_first", []step{{"last", "", 503}}},
		{"first_twice", []step{{"first", strings.Join(first, " "), 0}, {"first", strings.Join(first, " "), 503}}},
		{"missing_chunk", []step{{"first", strings.Join(first, " "), 0}, {"next", chunk(1), 0}, {"last", chunk(3), 554}}},
		{"swapped_chunks", []step{{"first", strings.Join(first, " "), 0}, {"next", chunk(2), 0}, {"next", chunk(1), 0}, {"last", chunk(3), 554}}},
		{"extra_chunk", []step{{"first", strings.Join(first, " "), 0}, {"next", chunk(1), 0}, {"next", chunk(2), 0}, {"next", chunk(1), 554}}},
		{"junk", []step{{"first", strings.Join(first, " "), 0}, {"next", "!!!!", 501}}},
		{"unpadded", []step{{"first", strings.Join(first, " "), 0}, {"next", "QUJD", 0}, {"next", "QUI", 501}}},
		{"noncanonical_padding", []step{{"first", strings.Join(first, " "), 0}, {"next", "QUJ=", 501}}},
		{"empty_next", []step{{"first", strings.Join(first, " "), 0}, {"next", "", 501}}},
		{"kind", []step{{"first", "BLOBS 1 " + first[2], 501}}},
		{"oversize", []step{{"first", "RECORDS 3000 " + first[2], 552}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := assembler{max: 2500}
			for i, s := range tc.steps {
				var err error
				switch s.op {
				case "first":
					err = a.first(strings.Split(s.arg, " "))
				case "next":
					err = a.next(s.arg, false)
				case "last":
					if err = a.next(s.arg, true); err == nil {
						var got []byte
						if _, got, err = a.finish(); err == nil && !bytes.Equal(got, payload) {
							t.Fatal("payload differs")
						}
					}
				}
				var fe *frameError
				if s.code == 0 && err != nil || s.code != 0 && (!errors.As(err, &fe) || fe.code != s.code) {
					t.Fatalf("step %d %s: err = %v, want code %d", i, s.op, err, s.code)
				}
			}
		})
	}
}

func TestRecordsCodec(t *testing.T) {
	recs := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte{0xff}, 300)}
	p, n := encodeRecords(recs, 1<<20, 10)
	if n != 3 {
		t.Fatalf("n = %d", n)
	}
	got, err := decodeRecords(p, 10)
	if err != nil || len(got) != 3 || !bytes.Equal(got[2], recs[2]) || len(got[1]) != 0 {
		t.Fatalf("round trip: %q, %v", got, err)
	}
	if p, n := encodeRecords(recs, 4+4+1+4, 10); n != 2 || len(p) != 13 {
		t.Errorf("byte cap: n=%d len=%d", n, len(p))
	}
	if _, n := encodeRecords(recs, 1<<20, 1); n != 1 {
		t.Errorf("count cap: n=%d", n)
	}
	bad := []struct {
		name string
		p    []byte
		code int
	}{
		{"short", []byte{0, 0, 1}, 554},
		{"count_over_limit", []byte{0, 0, 0, 11}, 552},
		{"count_over_payload", []byte{0, 0, 0, 2, 0, 0, 0, 0}, 554},
		{"len_over_payload", []byte{0, 0, 0, 1, 0, 0, 0, 5, 'a'}, 554},
		{"trailing", append(append([]byte{}, p...), 0), 554},
	}
	for _, tc := range bad {
		_, err := decodeRecords(tc.p, 10)
		var fe *frameError
		if !errors.As(err, &fe) || fe.code != tc.code {
			t.Errorf("%s: err = %v, want %d", tc.name, err, tc.code)
		}
	}
}

package linkstate

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecodeRecord: the decoder never panics, fails only with the typed
// errors, and whatever it accepts re-encodes to exactly the same bytes
// (there is one encoding per record) which decode again to the same record.
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range []*Record{sampleRecord("rg1"), {RG: "x", Master: "m", IssuedAt: t0, TTL: MinTTL, Tombstone: true}} {
		b, err := EncodeRecord(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupportedFormat) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		enc, err := EncodeRecord(r)
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, enc)
		}
		r2, err := DecodeRecord(enc)
		if err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		enc2, err := EncodeRecord(r2)
		if err != nil || !bytes.Equal(enc2, enc) {
			t.Fatalf("second round trip differs: %v", err)
		}
	})
}

// FuzzDecodeSummaries: same property for summary lists, and Diff of a
// decoded list against itself asks for nothing.
func FuzzDecodeSummaries(f *testing.F) {
	r := sampleRecord("rg1")
	s1, err := Summarize(r)
	if err != nil {
		f.Fatal(err)
	}
	s2 := Summary{RG: "rg2", Version: Version{Epoch: 1}, Tombstone: true}
	for _, list := range [][]Summary{nil, {s1}, {s2, s1}} {
		b, err := EncodeSummaries(list)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		list, err := DecodeSummaries(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupportedFormat) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		enc, err := EncodeSummaries(list)
		if err != nil {
			t.Fatalf("decoded list does not encode: %v", err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, enc)
		}
		if send, req := Diff(list, list); len(send) != 0 || len(req) != 0 {
			t.Fatalf("Diff(x, x) = %v, %v", send, req)
		}
		if send, req := Diff(list, nil); len(send) != len(list) || len(req) != 0 {
			t.Fatalf("Diff(x, nil) = %d, %d for %d", len(send), len(req), len(list))
		}
	})
}

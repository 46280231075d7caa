package linkstate

import (
	"bytes"
	"encoding/hex"
	"errors"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
)

// hexLines renders b as 32 bytes of hex per line, for reviewable goldens.
func hexLines(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		n := min(32, len(b))
		sb.WriteString(hex.EncodeToString(b[:n]))
		sb.WriteByte('\n')
		b = b[n:]
	}
	return sb.String()
}

// checkGolden compares an encoding with testdata/name.hex (-update
// rewrites it). A change on purpose also bumps the format version.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	testkit.Golden(t, filepath.Join("testdata", name+".hex"), []byte(hexLines(got)))
}

func TestRecordGolden(t *testing.T) {
	k := testKeyring(t)
	ed := sampleRecord("rg1") // signed with Ed25519 key k1
	hm := sampleRecord("rg2") // signed with the org HMAC key
	for _, r := range []*Record{ed, hm} {
		if err := k.Sign(r); err != nil {
			t.Fatal(err)
		}
	}
	tomb := &Record{RG: "rg3", Version: Version{Epoch: 1, Major: 2, Minor: 3, User: 4}, Master: "rg3-n1",
		IssuedAt: t0, TTL: time.Hour, Tombstone: true}
	if err := k.Sign(tomb); err != nil {
		t.Fatal(err)
	}
	minimal := &Record{RG: "a", Master: "m", IssuedAt: time.Unix(0, 0), TTL: time.Second}
	for name, r := range map[string]*Record{"record-ed25519": ed, "record-hmac": hm, "record-tombstone": tomb, "record-minimal-unsigned": minimal} {
		t.Run(name, func(t *testing.T) {
			b, err := EncodeRecord(r)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, name, b)
			got, err := DecodeRecord(b)
			if err != nil {
				t.Fatal(err)
			}
			if r.Signature != nil {
				if err := k.Verify(got); err != nil {
					t.Errorf("golden record does not verify: %v", err)
				}
			}
		})
	}
}

func TestSummariesGolden(t *testing.T) {
	list := []Summary{
		{RG: "rg2", Version: Version{Epoch: 1, Major: 2, Minor: 3, User: 4}, Hash: [32]byte{1, 2, 3}},
		{RG: "rg1", Version: Version{Epoch: 9}, Tombstone: true, Hash: [32]byte{31: 0xff}},
	}
	b, err := EncodeSummaries(list)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "summaries", b)
	got, err := DecodeSummaries(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []Summary{list[1], list[0]}) {
		t.Errorf("round trip: %+v", got)
	}
}

// TestEncodeCanonical: list order in the input does not change the bytes,
// and decode gives back the record in canonical order.
func TestEncodeCanonical(t *testing.T) {
	a := sampleRecord("rg1")
	b := sampleRecord("rg1")
	reverse := func(r *Record) {
		for i, j := 0, len(r.Members)-1; i < j; i, j = i+1, j-1 {
			r.Members[i], r.Members[j] = r.Members[j], r.Members[i]
		}
		for i, j := 0, len(r.Connectors)-1; i < j; i, j = i+1, j-1 {
			r.Connectors[i], r.Connectors[j] = r.Connectors[j], r.Connectors[i]
		}
		r.AddressSpaces[0], r.AddressSpaces[1] = r.AddressSpaces[1], r.AddressSpaces[0]
		for i := range r.Connectors {
			c := &r.Connectors[i]
			if len(c.Pairs) == 2 {
				c.Pairs[0], c.Pairs[1] = c.Pairs[1], c.Pairs[0]
				c.SourceBridgeheads[0], c.SourceBridgeheads[1] = c.SourceBridgeheads[1], c.SourceBridgeheads[0]
			}
		}
	}
	reverse(b)
	before := sampleRecord("rg1")
	reverse(before)
	ea, err := EncodeRecord(a)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := EncodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ea, eb) {
		t.Fatal("list order changed the encoding")
	}
	if !reflect.DeepEqual(b, before) {
		t.Error("EncodeRecord modified its input")
	}
	d, err := DecodeRecord(ea)
	if err != nil {
		t.Fatal(err)
	}
	if d.Members[0].Name != "rg1-n1" || d.Connectors[0].ID != "internet" || d.Connectors[1].Pairs[0].Source != "rg1-n1" {
		t.Errorf("decoded record not in canonical order: %+v", d)
	}
	if !d.IssuedAt.Equal(a.IssuedAt) || d.TTL != a.TTL || d.Version != a.Version || d.Connectors[0].Smarthost != "[2001:db8::1]:587" || !d.Connectors[0].Suppressed {
		t.Errorf("round trip lost fields: %+v", d)
	}
}

func TestEncodeRejects(t *testing.T) {
	long := strings.Repeat("a", MaxNameLen+1)
	many := func(n int, f func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	tests := []struct {
		name string
		mod  func(r *Record)
	}{
		{"empty RG", func(r *Record) { r.RG = "" }},
		{"RG too long", func(r *Record) { r.RG = long }},
		{"RG with space", func(r *Record) { r.RG = "rg 1" }},
		{"RG invalid UTF-8", func(r *Record) { r.RG = "rg\xff" }},
		{"RG non-ASCII", func(r *Record) { r.RG = "rgé" }},
		{"RG leading dash", func(r *Record) { r.RG = "-rg" }},
		{"no master", func(r *Record) { r.Master = "" }},
		{"issued before 1970", func(r *Record) { r.IssuedAt = time.Unix(-1, 0) }},
		{"zero issued-at", func(r *Record) { r.IssuedAt = time.Time{} }},
		{"issued after 9999", func(r *Record) { r.IssuedAt = time.Unix(maxIssuedAt+1, 0) }},
		{"TTL zero", func(r *Record) { r.TTL = 0 }},
		{"TTL too long", func(r *Record) { r.TTL = MaxTTL + time.Second }},
		{"duplicate member", func(r *Record) { r.Members = append(r.Members, r.Members[0]) }},
		{"member bad name", func(r *Record) { r.Members[0].Name = "a/b" }},
		{"member bad SMTP", func(r *Record) { r.Members[0].SMTP = "10.0.0.1" }},
		{"member port 0", func(r *Record) { r.Members[0].SMTP = "10.0.0.1:0" }},
		{"member port leading zero", func(r *Record) { r.Members[0].SMTP = "10.0.0.1:025" }},
		{"member unbracketed IPv6", func(r *Record) { r.Members[0].SMTP = "2001:db8::1:25" }},
		{"too many members", func(r *Record) {
			r.Members = nil
			for _, n := range many(MaxMembers+1, func(i int) string { return "n" + itoa(i) }) {
				r.Members = append(r.Members, Member{Name: n})
			}
		}},
		{"duplicate connector", func(r *Record) { r.Connectors = append(r.Connectors, r.Connectors[0]) }},
		{"cost 0", func(r *Record) { r.Connectors[0].Cost = 0 }},
		{"cost 101", func(r *Record) { r.Connectors[0].Cost = 101 }},
		{"connector from other RG", func(r *Record) { r.Connectors[0].From = "other" }},
		{"connector to itself", func(r *Record) { r.Connectors[0].To = r.RG }},
		{"smarthost on internal connector", func(r *Record) { r.Connectors[0].Smarthost = "mx.example:25" }},
		{"duplicate source bridgehead", func(r *Record) {
			r.Connectors[0].SourceBridgeheads = []string{"a", "a"}
		}},
		{"too many target bridgeheads", func(r *Record) {
			r.Connectors[0].TargetBridgeheads = many(MaxBridgeheads+1, func(i int) string { return "h" + itoa(i) + ":25" })
		}},
		{"bad target bridgehead", func(r *Record) { r.Connectors[0].TargetBridgeheads = []string{"h 1:25"} }},
		{"duplicate pair", func(r *Record) {
			r.Connectors[0].Pairs = []PairState{{Source: "a", Target: "h:25"}, {Source: "a", Target: "h:25", Up: true}}
		}},
		{"pair bad target", func(r *Record) { r.Connectors[0].Pairs = []PairState{{Source: "a", Target: "h"}} }},
		{"uppercase pattern", func(r *Record) { r.AddressSpaces[0].Pattern = "Example.com" }},
		{"bad wildcard", func(r *Record) { r.AddressSpaces[0].Pattern = "a.*.com" }},
		{"empty label", func(r *Record) { r.AddressSpaces[0].Pattern = "a..com" }},
		{"address space cost 101", func(r *Record) { r.AddressSpaces[0].Cost = 101 }},
		{"duplicate address space", func(r *Record) { r.AddressSpaces = append(r.AddressSpaces, r.AddressSpaces[0]) }},
		{"too many address spaces", func(r *Record) {
			r.AddressSpaces = nil
			for i := range MaxAddressSpaces + 1 {
				r.AddressSpaces = append(r.AddressSpaces, AddressSpace{Pattern: "d" + itoa(i) + ".test"})
			}
		}},
		{"tombstone with members", func(r *Record) { r.Tombstone = true }},
		{"bad key ID", func(r *Record) { r.KeyID = "k 1" }},
		{"signature wrong length", func(r *Record) { r.Signature = make([]byte, 33) }},
		{"ed25519 signature length for HMAC", func(r *Record) { r.Signature = make([]byte, 64) }},
		{"over 1 MiB", func(r *Record) {
			for i := range r.Connectors {
				r.Connectors[i].TargetBridgeheads = many(MaxBridgeheads, func(j int) string {
					return strings.Repeat("h", 200) + itoa(j) + ":25"
				})
			}
			for i := range 20 {
				c := r.Connectors[0]
				c.ID = "extra" + itoa(i)
				r.Connectors = append(r.Connectors, c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sampleRecord("rg1")
			tt.mod(r)
			if _, err := EncodeRecord(r); !errors.Is(err, ErrInvalid) {
				t.Errorf("EncodeRecord: err = %v, want ErrInvalid", err)
			}
			// The decoder refuses the same record written without checks.
			b := appendBody(nil, canonical(r))
			b = append(b, byte(len(r.Signature)))
			b = append(b, r.Signature...)
			if _, err := DecodeRecord(b); err == nil {
				t.Errorf("DecodeRecord accepted it")
			}
		})
	}
}

func TestEncodeAccepts(t *testing.T) {
	tests := []struct {
		name string
		mod  func(r *Record)
	}{
		{"max name length", func(r *Record) { r.RG = strings.Repeat("r", MaxNameLen); r.Connectors = nil }},
		{"IPv6 member", func(r *Record) { r.Members[0].SMTP = "[::1]:2525" }},
		{"wildcard pattern", func(r *Record) { r.AddressSpaces[0].Pattern = "*.a-b.example" }},
		{"star pattern cost 0", func(r *Record) { r.AddressSpaces = []AddressSpace{{Pattern: "*"}} }},
		{"no members", func(r *Record) { r.Members = nil }},
		{"connector without bridgeheads", func(r *Record) {
			r.Connectors[1].SourceBridgeheads, r.Connectors[1].TargetBridgeheads, r.Connectors[1].Pairs = nil, nil, nil
		}},
		{"max TTL", func(r *Record) { r.TTL = MaxTTL }},
		{"min TTL", func(r *Record) { r.TTL = MinTTL }},
		{"sub-second issued-at truncated", func(r *Record) { r.IssuedAt = r.IssuedAt.Add(999 * time.Millisecond) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sampleRecord("rg1")
			tt.mod(r)
			b, err := EncodeRecord(r)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeRecord(b); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDecodeRejects covers what only bytes can express: framing errors
// and lists out of canonical order.
func TestDecodeRejects(t *testing.T) {
	valid, err := EncodeRecord(sampleRecord("rg1"))
	if err != nil {
		t.Fatal(err)
	}
	unsorted := func(mod func(r *Record)) []byte {
		r := canonical(sampleRecord("rg1"))
		mod(r)
		return append(appendBody(nil, r), 0)
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"bad magic", append([]byte("XLSR"), valid[4:]...), ErrMalformed},
		{"format 2", append([]byte("MLSR\x02"), valid[5:]...), ErrUnsupportedFormat},
		{"reserved flag", append([]byte("MLSR\x01\x02"), valid[6:]...), ErrMalformed},
		{"truncated", valid[:len(valid)-1], ErrMalformed},
		{"trailing byte", append(append([]byte(nil), valid...), 0), ErrMalformed},
		{"over 1 MiB", make([]byte, MaxRecordSize+1), ErrInvalid},
		{"members out of order", unsorted(func(r *Record) { r.Members[0], r.Members[1] = r.Members[1], r.Members[0] }), ErrInvalid},
		{"connectors out of order", unsorted(func(r *Record) { r.Connectors[0], r.Connectors[1] = r.Connectors[1], r.Connectors[0] }), ErrInvalid},
		{"pairs out of order", unsorted(func(r *Record) {
			p := r.Connectors[1].Pairs
			p[0], p[1] = p[1], p[0]
		}), ErrInvalid},
		{"address spaces out of order", unsorted(func(r *Record) {
			r.AddressSpaces[0], r.AddressSpaces[1] = r.AddressSpaces[1], r.AddressSpaces[0]
		}), ErrInvalid},
		{"bridgeheads out of order", unsorted(func(r *Record) {
			s := r.Connectors[1].TargetBridgeheads
			s[0], s[1] = s[1], s[0]
		}), ErrInvalid},
		{"huge member count", func() []byte {
			b := appendBody(nil, &Record{RG: "a", Master: "m", IssuedAt: t0, TTL: time.Hour})
			i := len(b) - 7 // member, connector, space counts, empty key ID
			b[i], b[i+1] = 0xff, 0xff
			return append(b, 0)
		}(), ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeRecord(tt.in); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDecodeSummariesRejects(t *testing.T) {
	s := Summary{RG: "rg1", Version: Version{Epoch: 1}}
	one, err := EncodeSummaries([]Summary{s})
	if err != nil {
		t.Fatal(err)
	}
	two := func(a, b string) []byte {
		x, y := s, s
		x.RG, y.RG = a, b
		out := append([]byte("MLSS\x01"), 0, 0, 0, 2)
		out = appendSummary(out, &x)
		return appendSummary(out, &y)
	}
	bad := append([]byte(nil), one...)
	bad[len(bad)-33] = 2 // reserved flag bit
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"format 9", append([]byte("MLSS\x09"), one[5:]...), ErrUnsupportedFormat},
		{"trailing", append(append([]byte(nil), one...), 0), ErrMalformed},
		{"truncated", one[:len(one)-1], ErrMalformed},
		{"count beyond input", []byte("MLSS\x01\x00\x00\x10\x00"), ErrMalformed},
		{"count beyond limit", []byte("MLSS\x01\x7f\xff\xff\xff"), ErrInvalid},
		{"out of order", two("rg2", "rg1"), ErrInvalid},
		{"duplicate", two("rg1", "rg1"), ErrInvalid},
		{"bad name", two("rg1", "r g"), ErrInvalid},
		{"reserved flag", bad, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeSummaries(tt.in); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := EncodeSummaries([]Summary{s, s}); !errors.Is(err, ErrInvalid) {
		t.Errorf("EncodeSummaries with duplicate: %v", err)
	}
}

func TestDiff(t *testing.T) {
	v := func(e uint64, m uint32) Version { return Version{Epoch: e, Major: m} }
	h := func(b byte) [32]byte { return [32]byte{b} }
	tests := []struct {
		name          string
		local, remote []Summary
		send, request []string
	}{
		{"both empty", nil, nil, nil, nil},
		{"equal", []Summary{{RG: "a", Version: v(1, 1), Hash: h(1)}}, []Summary{{RG: "a", Version: v(1, 1), Hash: h(1)}}, nil, nil},
		{"only local", []Summary{{RG: "a"}}, nil, []string{"a"}, nil},
		{"only remote", nil, []Summary{{RG: "a"}}, nil, []string{"a"}},
		{"local newer", []Summary{{RG: "a", Version: v(1, 2)}}, []Summary{{RG: "a", Version: v(1, 1)}}, []string{"a"}, nil},
		{"remote newer epoch", []Summary{{RG: "a", Version: v(1, 9)}}, []Summary{{RG: "a", Version: v(2, 0)}}, nil, []string{"a"}},
		{"conflict local hash higher", []Summary{{RG: "a", Hash: h(9)}}, []Summary{{RG: "a", Hash: h(1)}}, []string{"a"}, nil},
		{"conflict remote hash higher", []Summary{{RG: "a", Hash: h(1)}}, []Summary{{RG: "a", Hash: h(9)}}, nil, []string{"a"}},
		{"tombstone newer", []Summary{{RG: "a", Version: v(1, 1)}}, []Summary{{RG: "a", Version: v(1, 2), Tombstone: true}}, nil, []string{"a"}},
		{"mixed unsorted input",
			[]Summary{{RG: "d"}, {RG: "b", Version: v(3, 0)}, {RG: "a"}},
			[]Summary{{RG: "c"}, {RG: "b", Version: v(2, 0)}, {RG: "a"}},
			[]string{"b", "d"}, []string{"c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			send, req := Diff(tt.local, tt.remote)
			if !reflect.DeepEqual(send, tt.send) || !reflect.DeepEqual(req, tt.request) {
				t.Errorf("Diff = %v, %v; want %v, %v", send, req, tt.send, tt.request)
			}
		})
	}
}

var itoa = strconv.Itoa

// TestEncodeFractionalTTL: the wire carries whole seconds, so a TTL with
// a fraction has no encoding (rather than a silently different one).
func TestEncodeFractionalTTL(t *testing.T) {
	r := sampleRecord("rg1")
	r.TTL = time.Hour + time.Millisecond
	if _, err := EncodeRecord(r); !errors.Is(err, ErrInvalid) {
		t.Errorf("err = %v, want ErrInvalid", err)
	}
}

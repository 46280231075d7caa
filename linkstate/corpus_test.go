package linkstate

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/meshd/meshd/internal/testkit"
)

// seedInputs are the fuzz seeds written to testdata/fuzz/<target>: valid
// encodings and near misses of each rule, so the fuzzer starts next to
// every branch of the decoder.
func recordSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	valid, err := EncodeRecord(sampleRecord("rg1"))
	if err != nil {
		t.Fatal(err)
	}
	tomb, err := EncodeRecord(&Record{RG: "rg9", Version: Version{Epoch: 2}, Master: "m", IssuedAt: t0, TTL: MinTTL, Tombstone: true})
	if err != nil {
		t.Fatal(err)
	}
	seeds := map[string][]byte{
		"valid":     valid,
		"tombstone": tomb,
		"truncated": valid[:len(valid)/2],
		"trailing":  append(append([]byte(nil), valid...), 0),
		"badformat": append([]byte("MLSR\x02"), valid[5:]...),
		"empty":     {},
	}
	if k := testKeyring(t); k != nil {
		for _, name := range []string{"rg1", "rg2"} {
			r := sampleRecord(name)
			if err := k.Sign(r); err != nil {
				t.Fatal(err)
			}
			b, err := EncodeRecord(r)
			if err != nil {
				t.Fatal(err)
			}
			seeds["signed-"+name] = b
		}
	}
	return seeds
}

func summarySeeds(t testing.TB) map[string][]byte {
	t.Helper()
	var list []Summary
	for i := range 5 {
		s, err := Summarize(sampleRecord(fmt.Sprintf("rg%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		s.Tombstone = i == 3
		list = append(list, s)
	}
	valid, err := EncodeSummaries(list)
	if err != nil {
		t.Fatal(err)
	}
	empty, err := EncodeSummaries(nil)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"valid":     valid,
		"empty":     empty,
		"truncated": valid[:len(valid)-7],
		"trailing":  append(append([]byte(nil), valid...), 1),
		"hugecount": []byte("MLSS\x01\xff\xff\xff\xff"),
	}
}

// TestSeedCorpora keeps testdata/fuzz in step with the encoders: with
// -update it rewrites the seeds, without it it checks they still exist.
func TestSeedCorpora(t *testing.T) {
	for target, seeds := range map[string]map[string][]byte{
		"FuzzDecodeRecord":    recordSeeds(t),
		"FuzzDecodeSummaries": summarySeeds(t),
	} {
		dir := filepath.Join("testdata", "fuzz", target)
		for name, b := range seeds {
			path := filepath.Join(dir, "seed-"+name)
			if testkit.Update() {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				content := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
				if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("seed %s missing (run go test -run TestSeedCorpora -update): %v", path, err)
			}
		}
	}
}

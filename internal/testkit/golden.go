package testkit

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

// update is the one -update flag of every test binary that imports the
// kit: `go test ./pkg -update` rewrites that package's golden files (and
// whatever else a test keeps under testdata, see Update).
var update = flag.Bool("update", false, "rewrite golden files and seed corpora under testdata")

// Update reports whether the test run was asked to rewrite its expected
// outputs (-update), for tests that keep files other than golden ones
// (fuzz seed corpora, binary encodings).
func Update() bool { return *update }

// Golden compares got with the file at path. With -update it writes got
// there instead (creating the directory). A difference fails t with both
// texts and the command that rewrites the file.
func Golden(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run '%s' -update creates it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (if on purpose: go test -run '%s' -update, then review the diff)\n--- got\n%s\n--- want\n%s",
			path, t.Name(), got, want)
	}
}

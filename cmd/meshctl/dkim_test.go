package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshd/meshd/edge/dkim"
)

// TestDKIMKeygen: the key is written 0600 and loads; the TXT record names
// the selector and carries the key's type; an existing file is never
// overwritten; bad arguments are usage errors.
func TestDKIMKeygen(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range []string{"ed25519", "rsa"} {
		path := filepath.Join(dir, alg+".key")
		var out, errb bytes.Buffer
		if code := run([]string{"dkim", "keygen", "-alg", alg, "-out", path, "Example.ORG.", "s1"}, &out, &errb); code != exitOK {
			t.Fatalf("%s: exit %d: %s", alg, code, errb.String())
		}
		want := `s1._domainkey.example.org. IN TXT "v=DKIM1; k=` + alg + `; p=`
		if !strings.Contains(out.String(), want) {
			t.Fatalf("%s: output lacks %q:\n%s", alg, want, out.String())
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: key file %v %v", alg, fi, err)
		}
		if _, err := dkim.LoadKey(path); err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		before, _ := os.ReadFile(path)
		errb.Reset()
		if code := run([]string{"dkim", "keygen", "-alg", alg, "-out", path, "example.org", "s1"}, &out, &errb); code != exitError || !strings.Contains(errb.String(), "exists") {
			t.Fatalf("%s: second keygen over the file: exit %d %s", alg, code, errb.String())
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
			t.Fatalf("%s: key file overwritten", alg)
		}
	}
	for _, args := range [][]string{{"dkim"}, {"dkim", "keygen", "example.org"}, {"dkim", "keygen", "-alg", "dsa", "example.org", "s"}, {"dkim", "keygen", "not a domain", "s"}, {"dkim", "keygen", "example.org", "bad_sel"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, code, exitUsage, errb.String())
		}
	}
}

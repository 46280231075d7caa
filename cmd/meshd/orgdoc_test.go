package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/orgdoc"
	"github.com/meshd/meshd/pki"
)

// meshd org sign writes a document that verifies with the CA it names,
// and meshd org check refuses a broken file naming key and line.
func TestOrgSignCheck(t *testing.T) {
	dir := t.TempDir()
	org := filepath.Join(dir, "org")
	var out, errb bytes.Buffer
	if rc := runOrg([]string{"init", "-dir", org}, &out, &errb); rc != 0 {
		t.Fatalf("init: %d %s", rc, errb.String())
	}
	src, err := os.ReadFile("../../orgdoc/testdata/three-site.yaml")
	if err != nil {
		t.Fatal(err)
	}
	yml := filepath.Join(dir, "org.yaml")
	if err := os.WriteFile(yml, src, 0o644); err != nil {
		t.Fatal(err)
	}
	if rc := runOrg([]string{"sign", "-dir", org, "-version", "7", yml}, &out, &errb); rc != 0 {
		t.Fatalf("sign: %d %s", rc, errb.String())
	}
	raw, err := os.ReadFile(filepath.Join(dir, "org.signed"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := orgdoc.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	cas, err := pki.ReadCACerts([]string{filepath.Join(org, pki.CAFile)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(cas, time.Now()); err != nil || s.Doc.Version != 7 {
		t.Fatalf("verify: %v (version %d)", err, s.Doc.Version)
	}
	bad := strings.Replace(string(src), "cost: 10", "cost: 0", 1)
	if err := os.WriteFile(yml, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if rc := runOrg([]string{"check", yml}, &out, &errb); rc != 1 || !strings.Contains(errb.String(), "line 30: connectors[4].cost: must be 1..100") {
		t.Fatalf("check: %d %q", rc, errb.String())
	}
}

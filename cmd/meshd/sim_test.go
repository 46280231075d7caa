package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A one-group mesh: two nodes deliver mail for their own domain.
const simLocal = `
name: sim-local
topology:
  routing_groups:
    - {name: rga, nodes: [{name: a1}, {name: a2}]}
timeline:
  - {at: 0s, send: {from: a1, to: u@rga.test, count: 3, rate: 50}}
assert:
  - delivered_exactly_once: {by: 10s}
%s
`

func TestSimCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a mesh")
	}
	dir := t.TempDir()
	write := func(name, extra string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Replace(simLocal, "%s", extra, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pass := write("pass.yaml", "")
	fail := write("fail.yaml", "  - route: {from: a1, domain: rga.test, path: [rga, rga], by: 1s}\n")
	bad := write("bad.yaml", "  - bogus: {}\n")
	tests := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"usage", []string{"sim"}, 2, ""},
		{"bad scenario", []string{"sim", bad}, 2, ""},
		{"pass text", []string{"sim", pass}, 0, "scenario sim-local: PASS"},
		{"pass json", []string{"sim", "-json", pass}, 0, `"passed": true`},
		{"failing assertion", []string{"sim", fail}, 1, "FAIL  route a1 -> rga.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.out) {
				t.Errorf("stdout lacks %q:\n%s", tt.out, stdout.String())
			}
			if strings.Contains(tt.name, "json") {
				var rep struct {
					Messages struct{ Accepted, Delivered int }
				}
				if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil || rep.Messages.Delivered != 3 {
					t.Errorf("json report: %v %+v", err, rep)
				}
			}
		})
	}
}

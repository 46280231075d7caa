package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunFlagsAndConfigErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "node: {name: n9, data_dir: "+filepath.Join(dir, "data")+"}\n")
	badKey := write("badkey.yaml", "node:\n  nmae: n9\n")
	badVal := write("badval.yaml", "limits: {max_recipients: 0}\n")
	openAdmin := write("openadmin.yaml", "listen: {admin: '0.0.0.0:8025'}\n")
	authAdmin := write("authadmin.yaml", "node: {data_dir: "+filepath.Join(dir, "data")+"}\nlisten: {admin: '0.0.0.0:8025'}\nadmin: {auth: all}\n")

	tests := []struct {
		name       string
		args       []string
		code       int
		out, errIn string
	}{
		{"version", []string{"-version"}, 0, "meshd ", ""},
		{"check good", []string{"-config", good, "-check"}, 0, "configuration ok", ""},
		{"unknown key", []string{"-config", badKey, "-check"}, 2, "", "config: line 2: node.nmae: unknown key"},
		{"bad value", []string{"-config", badVal}, 2, "", "config: limits.max_recipients: must be 1..10000, got 0"},
		{"check public admin", []string{"-config", openAdmin, "-check"}, 2, "", "config: listen.admin: 0.0.0.0:8025 is not a loopback address"},
		{"start public admin", []string{"-config", openAdmin}, 2, "", "set admin.auth: all"},
		{"check public admin with auth", []string{"-config", authAdmin, "-check"}, 0, "configuration ok", ""},
		{"missing file", []string{"-config", filepath.Join(dir, "nope.yaml")}, 2, "", "no such file"},
		{"bad flag", []string{"-frobnicate"}, 2, "", "usage: meshd"},
		{"extra arg", []string{"run"}, 2, "", `unexpected argument "run"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.out) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tt.out)
			}
			if !strings.Contains(stderr.String(), tt.errIn) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.errIn)
			}
		})
	}
}

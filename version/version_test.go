package version

import (
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "v0.3.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"},
		{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	read := func() (*debug.BuildInfo, bool) { return bi, true }
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	devel := func() (*debug.BuildInfo, bool) { return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true }
	tests := []struct {
		name       string
		v, c, d    string
		read       func() (*debug.BuildInfo, bool)
		want       Info
		wantString string
	}{
		{"build info", "", "", "", read,
			Info{Version: "v0.3.0", Commit: "0123456789abcdef0123", Date: "2026-12-01T10:00:00Z", GoVersion: "go1.99", Modified: true},
			"v0.3.0 commit 0123456789ab+dirty built 2026-12-01T10:00:00Z go1.99"},
		{"ldflags win", "v1.0.0", "feedface", "2026-12-07T11:00:00Z", read,
			Info{Version: "v1.0.0", Commit: "feedface", Date: "2026-12-07T11:00:00Z", GoVersion: "go1.99", Modified: true},
			"v1.0.0 commit feedface+dirty built 2026-12-07T11:00:00Z go1.99"},
		{"devel", "", "", "", devel, Info{Version: "devel", Commit: "unknown", Date: "unknown"}, ""},
		{"no build info", "", "", "", none, Info{Version: "devel", Commit: "unknown", Date: "unknown"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolve(tt.v, tt.c, tt.d, tt.read)
			if tt.want.GoVersion == "" {
				tt.want.GoVersion = got.GoVersion // runtime.Version()
			}
			if got != tt.want {
				t.Fatalf("resolve = %+v, want %+v", got, tt.want)
			}
			if tt.wantString != "" && got.String() != tt.wantString {
				t.Fatalf("String = %q, want %q", got.String(), tt.wantString)
			}
		})
	}
}

// Package version says which build of meshd is running: the module
// version, the commit it was built from and when. Release builds
// (scripts/package) set all three with -ldflags:
//
//	-X github.com/meshd/meshd/version.version=v1.2.3
//	-X github.com/meshd/meshd/version.commit=0123abcd...
//	-X github.com/meshd/meshd/version.date=2026-12-07T11:00:00Z
//
// Anything they leave empty comes from debug.ReadBuildInfo: the module
// version `go install module@version` records, and the vcs.revision and
// vcs.time stamps `go build` records in a git checkout. meshd -version,
// meshctl -version, /api/status and the meshd_build_info metric all print
// Get().
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by the linker in release builds (see the package comment).
var version, commit, date string

// Info identifies one build.
type Info struct {
	Version   string `json:"version"`            // module version (v1.2.3), or "devel"
	Commit    string `json:"commit"`             // VCS revision, or "unknown"
	Date      string `json:"date"`               // build (release) or commit time, RFC 3339, or "unknown"
	GoVersion string `json:"go_version"`         // toolchain that built it
	Modified  bool   `json:"modified,omitempty"` // built from a work tree with uncommitted changes
}

// Get returns this binary's build information.
func Get() Info {
	return resolve(version, commit, date, debug.ReadBuildInfo)
}

// resolve prefers the linker-set values, then the build info, then placeholders.
func resolve(v, c, d string, read func() (*debug.BuildInfo, bool)) Info {
	info := Info{Version: v, Commit: c, Date: d, GoVersion: runtime.Version()}
	if bi, ok := read(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Commit == "" {
					info.Commit = s.Value
				}
			case "vcs.time":
				if info.Date == "" {
					info.Date = s.Value
				}
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	if info.Date == "" {
		info.Date = "unknown"
	}
	return info
}

// String is the one line -version prints: "v1.2.3 commit 0123abcd built
// 2026-12-07T11:00:00Z go1.26.8".
func (i Info) String() string {
	c := i.Commit
	if len(c) > 12 {
		c = c[:12]
	}
	if i.Modified {
		c += "+dirty"
	}
	return fmt.Sprintf("%s commit %s built %s %s", i.Version, c, i.Date, i.GoVersion)
}

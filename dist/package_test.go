package dist_test

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/meshd/meshd/harness/extern"
)

// The package is built once per test binary (scripts/package takes a while on a shared
// machine) into a directory TestMain removes.
var (
	buildOnce sync.Once
	builtDeb  string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildPackage runs scripts/package (once) and returns the .deb.
func buildPackage(t *testing.T) string {
	t.Helper()
	extern.Require(t, extern.FindDpkgDeb)
	buildOnce.Do(func() { builtDeb, buildErr = runPackage() })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtDeb
}

func runPackage() (string, error) {
	repo, err := extern.RepoRoot()
	if err != nil {
		return "", err
	}
	if buildDir, err = os.MkdirTemp("", "meshd-deb-"); err != nil {
		return "", err
	}
	cmd := exec.Command(filepath.Join(repo, "scripts", "package"), "-o", buildDir)
	cmd.Dir = repo
	b, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("scripts/package: %v\n%s", err, b)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	deb := lines[len(lines)-1]
	if !strings.HasSuffix(deb, ".deb") {
		return "", fmt.Errorf("scripts/package did not name a .deb:\n%s", b)
	}
	return deb, nil
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	b, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
	}
	return string(b)
}

// contents lists the package: path (without the leading ".") -> "mode owner".
func contents(t *testing.T, deb string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(run(t, "dpkg-deb", "-c", deb), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		p := strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")
		if p == "" {
			p = "/"
		}
		m[p] = f[0] + " " + f[1]
	}
	return m
}

// configKeys are the keys of the reference's tables, in order.
func configKeys(t *testing.T) []string {
	t.Helper()
	repo, _ := extern.RepoRoot()
	f, err := os.Open(filepath.Join(repo, "docs", "config.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var keys []string
	re := regexp.MustCompile("^\\| `([^`]+)` \\|")
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			keys = append(keys, m[1])
		}
	}
	if len(keys) < 50 {
		t.Fatalf("docs/config.md: only %d keys found", len(keys))
	}
	return keys
}

// TestPackageContents builds the package and inspects it as an operator's tools would:
// dpkg-deb -c lists the binaries, unit, example file, man pages and documents with root
// ownership; the example is a conffile; meshd.8 documents every key of docs/config.md;
// lintian reports no error and no warning.
func TestPackageContents(t *testing.T) {
	deb := buildPackage(t)
	files := contents(t, deb)
	want := map[string]string{
		"/usr/bin/meshd":                                   "-rwxr-xr-x root/root",
		"/usr/bin/meshctl":                                 "-rwxr-xr-x root/root",
		"/lib/systemd/system/meshd.service":                "-rw-r--r-- root/root",
		"/etc/meshd/meshd.yaml.example":                    "-rw-r--r-- root/root",
		"/usr/share/man/man8/meshd.8.gz":                   "-rw-r--r-- root/root",
		"/usr/share/man/man1/meshctl.1.gz":                 "-rw-r--r-- root/root",
		"/usr/share/doc/meshd/copyright":                   "-rw-r--r-- root/root",
		"/usr/share/doc/meshd/changelog.gz":                "-rw-r--r-- root/root",
		"/usr/share/doc/meshd/config.md.gz":                "-rw-r--r-- root/root",
		"/usr/share/lintian/overrides/meshd":               "-rw-r--r-- root/root",
		"/usr/share/doc/meshd/examples/three-site/a1.yaml": "-rw-r--r-- root/root",
	}
	for p, mode := range want {
		if got, ok := files[p]; !ok {
			t.Errorf("package lacks %s", p)
		} else if got != mode {
			t.Errorf("%s: %s, want %s", p, got, mode)
		}
	}
	if _, ok := files["/etc/meshd/meshd.yaml"]; ok {
		t.Errorf("the package ships /etc/meshd/meshd.yaml: a node would be configured before the operator wrote its file")
	}
	for p := range files {
		if strings.HasPrefix(p, "/var/") {
			t.Errorf("the package ships %s: the data directory belongs to postinst (owner meshd, 0700)", p)
		}
	}
	if got := strings.TrimSpace(run(t, "dpkg-deb", "-f", deb, "Package")); got != "meshd" {
		t.Errorf("Package: %q", got)
	}
	x := t.TempDir()
	run(t, "dpkg-deb", "-e", deb, filepath.Join(x, "DEBIAN"))
	if b, _ := os.ReadFile(filepath.Join(x, "DEBIAN", "conffiles")); strings.TrimSpace(string(b)) != "/etc/meshd/meshd.yaml.example" {
		t.Errorf("conffiles: %q", b)
	}

	// The man page carries the configuration reference, key by key.
	run(t, "dpkg-deb", "-x", deb, x)
	man := gunzip(t, filepath.Join(x, "usr/share/man/man8/meshd.8.gz"))
	for _, k := range configKeys(t) {
		if !strings.Contains(man, ".B "+strings.ReplaceAll(k, "-", `\-`)+"\n") {
			t.Errorf("meshd.8 does not document %s", k)
		}
	}
	// Every flag of meshd -h is in it too.
	h, _ := exec.Command(filepath.Join(x, "usr/bin/meshd"), "-h").CombinedOutput()
	for _, m := range regexp.MustCompile(`(?m)^  (-\w+)`).FindAllStringSubmatch(string(h), -1) {
		if !strings.Contains(man, `\`+m[1]) {
			t.Errorf("meshd.8 lacks the flag %s of meshd -h", m[1])
		}
	}

	// The release ldflags: both binaries name the package version, the commit and its date.
	debVersion := strings.TrimSpace(run(t, "dpkg-deb", "-f", deb, "Version"))
	repo, _ := extern.RepoRoot()
	commit := strings.TrimSpace(run(t, "git", "-C", repo, "rev-parse", "HEAD"))
	for _, bin := range []string{"meshd", "meshctl"} {
		v := run(t, filepath.Join(x, "usr/bin", bin), "-version")
		want := bin + " v" + debVersion + " commit " + commit[:12] + " built 20"
		if !strings.HasPrefix(v, want) {
			t.Errorf("%s -version: %q, want it to start %q", bin, v, want)
		}
	}

	lintian := extern.Require(t, extern.FindLintian)
	out, err := exec.Command(lintian, "--tag-display-limit", "0", deb).CombinedOutput()
	t.Logf("lintian:\n%s", out)
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "E: ") || strings.HasPrefix(line, "W: ") {
			t.Errorf("lintian: %s", line)
		}
	}
	if err != nil {
		t.Errorf("lintian exit: %v", err)
	}
}

func gunzip(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

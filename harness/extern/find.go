package extern

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ModulePath is the module whose checkout holds .deps/ (found by walking up to its go.mod).
const ModulePath = "github.com/meshd/meshd"

// EnvPostfixDir overrides where the unpacked Postfix lives (the directory that holds usr/sbin).
const EnvPostfixDir = "MESHD_POSTFIX_DIR"

// EnvSkip, when "1", turns a missing external program into t.Skip instead of a failure.
// Meant for a developer's machine only; CI must run scripts/install-deps instead.
const EnvSkip = "MESHD_SKIP_EXTERN"

// ErrMissing is matched by errors.Is for every *MissingError.
var ErrMissing = errors.New("external program missing")

// MissingError reports an external program that is not installed and where it was looked for.
type MissingError struct {
	Tool  string
	Tried []string
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("extern: %s not found (looked in %s): run scripts/install-deps (as root) to install it",
		e.Tool, strings.Join(e.Tried, ", "))
}

// Is makes errors.Is(err, ErrMissing) true.
func (e *MissingError) Is(target error) bool { return target == ErrMissing }

// findProgram returns the first executable among $PATH's name and the fixed candidates.
func findProgram(name string, candidates ...string) (string, error) {
	tried := []string{"$PATH"}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, c := range candidates {
		tried = append(tried, c)
		if isExecutable(c) {
			return c, nil
		}
	}
	return "", &MissingError{Tool: name, Tried: tried}
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// FindSwaks returns the path of swaks (Debian package swaks).
func FindSwaks() (string, error) { return findProgram("swaks", "/usr/bin/swaks") }

// FindPython3 returns the path of python3.
func FindPython3() (string, error) { return findProgram("python3", "/usr/bin/python3") }

// FindDNSMasq returns the path of dnsmasq (Debian package dnsmasq-base; /usr/sbin is often not in $PATH).
func FindDNSMasq() (string, error) {
	return findProgram("dnsmasq", "/usr/sbin/dnsmasq", "/sbin/dnsmasq")
}

// Postfix is an unpacked (or installed) Postfix tree: Root/usr/sbin/smtp-sink and so on.
type Postfix struct {
	Root string // "/" for a system install
}

// FindPostfix locates Postfix: $MESHD_POSTFIX_DIR, then <repo>/.deps/postfix (what
// scripts/install-deps makes), then a system-wide install.
func FindPostfix() (*Postfix, error) {
	var tried []string
	var roots []string
	if d := os.Getenv(EnvPostfixDir); d != "" {
		roots = append(roots, d)
	}
	if repo, err := RepoRoot(); err == nil {
		roots = append(roots, filepath.Join(repo, ".deps", "postfix"))
	}
	roots = append(roots, "/")
	for _, r := range roots {
		p := &Postfix{Root: r}
		tried = append(tried, p.SMTPSink())
		if isExecutable(p.SMTPSink()) && isExecutable(p.SMTPSource()) && isExecutable(filepath.Join(p.DaemonDir(), "smtpd")) {
			return p, nil
		}
	}
	return nil, &MissingError{Tool: "postfix (smtp-sink, smtp-source, smtpd)", Tried: tried}
}

// SMTPSink is the path of smtp-sink inside the tree.
func (p *Postfix) SMTPSink() string { return filepath.Join(p.Root, "usr", "sbin", "smtp-sink") }

// SMTPSource is the path of smtp-source inside the tree.
func (p *Postfix) SMTPSource() string { return filepath.Join(p.Root, "usr", "sbin", "smtp-source") }

// DaemonDir is Postfix's daemon_directory: smtpd, smtp, lmtp, cleanup, ...
func (p *Postfix) DaemonDir() string { return filepath.Join(p.Root, "usr", "lib", "postfix", "sbin") }

// LibDir holds Postfix's private shared libraries (libpostfix-*.so).
func (p *Postfix) LibDir() string { return filepath.Join(p.Root, "usr", "lib", "postfix") }

// Env returns os.Environ() with LD_LIBRARY_PATH extended so that the binaries find LibDir even
// when the tree is not at /.
func (p *Postfix) Env() []string {
	env := os.Environ()
	ld := p.LibDir()
	out := env[:0:0]
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "LD_LIBRARY_PATH="); ok {
			if v != "" {
				ld += ":" + v
			}
			continue
		}
		out = append(out, kv)
	}
	return append(out, "LD_LIBRARY_PATH="+ld)
}

// FindSMTPSink returns the path of Postfix's smtp-sink (see FindPostfix; run it with Postfix.Env).
func FindSMTPSink() (string, error) {
	p, err := FindPostfix()
	if err != nil {
		return "", err
	}
	return p.SMTPSink(), nil
}

// FindSMTPSource returns the path of Postfix's smtp-source (see FindPostfix; run it with Postfix.Env).
func FindSMTPSource() (string, error) {
	p, err := FindPostfix()
	if err != nil {
		return "", err
	}
	return p.SMTPSource(), nil
}

// FindPostfixDaemonDir returns the directory holding smtpd and the other Postfix daemons.
func FindPostfixDaemonDir() (string, error) {
	p, err := FindPostfix()
	if err != nil {
		return "", err
	}
	return p.DaemonDir(), nil
}

// RepoRoot walks up from the working directory to the go.mod of ModulePath.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("extern: repo root: %w", err)
	}
	for {
		if isModuleRoot(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("extern: repo root: no go.mod for %s above the working directory", ModulePath)
		}
		dir = parent
	}
}

func isModuleRoot(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if mod, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(mod), `"`) == ModulePath
		}
	}
	return false
}

// Require returns what find returns, or ends the test: t.Fatal with the error (which names
// scripts/install-deps), or t.Skip when MESHD_SKIP_EXTERN=1.
func Require(t testing.TB, find func() (string, error)) string {
	t.Helper()
	p, err := find()
	if err != nil {
		missing(t, err)
	}
	return p
}

// RequirePostfix is Require for FindPostfix.
func RequirePostfix(t testing.TB) *Postfix {
	t.Helper()
	p, err := FindPostfix()
	if err != nil {
		missing(t, err)
	}
	return p
}

func missing(t testing.TB, err error) {
	t.Helper()
	if os.Getenv(EnvSkip) == "1" {
		t.Skipf("%v (skipped because %s=1)", err, EnvSkip)
	}
	t.Fatalf("%v (set %s=1 to skip locally)", err, EnvSkip)
}

// FindOpenSSL finds Debian's openssl (s_client plays a node, or an
// intruder, against the mesh's mutual-TLS listeners).
func FindOpenSSL() (string, error) { return findProgram("openssl", "/usr/bin/openssl") }

package dist_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meshd/meshd/harness/extern"
	"github.com/meshd/meshd/internal/testkit"
)

// notifyListener is systemd's end of sd_notify, readable by the meshd user.
type notifyListener struct {
	t    *testing.T
	path string
	c    *net.UnixConn
}

func listenNotify(t *testing.T) *notifyListener {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := os.Chmod(p, 0o777); err != nil { // the node runs as meshd
		t.Fatal(err)
	}
	return &notifyListener{t: t, path: p, c: c}
}

func (l *notifyListener) expect(want string, timeout time.Duration) string {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	var seen []string
	buf := make([]byte, 4096)
	for {
		_ = l.c.SetReadDeadline(deadline)
		k, err := l.c.Read(buf)
		if err != nil {
			l.t.Fatalf("sd_notify: no %q within %v (seen %q): %v", want, timeout, seen, err)
		}
		msg := string(buf[:k])
		seen = append(seen, msg)
		for _, line := range strings.Split(msg, "\n") {
			if line == want {
				return msg
			}
		}
	}
}

// runningPackaged lists the processes running /usr/bin/meshd (other tests on this machine run
// meshd binaries of their own, elsewhere).
func runningPackaged() []string {
	var pids []string
	exes, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, e := range exes {
		if target, err := os.Readlink(e); err == nil && target == "/usr/bin/meshd" {
			pids = append(pids, filepath.Base(filepath.Dir(e)))
		}
	}
	return pids
}

func installed(pkg string) bool {
	out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Abbrev}", pkg).Output()
	return err == nil && strings.HasPrefix(string(out), "ii")
}

// TestPackageInstall installs the package on this machine (root only; CI runs as root),
// checks what postinst made and that it started nothing, verifies the unit with
// systemd-analyze, runs the packaged meshd on the packaged example file the way the unit
// does (user meshd, only CAP_NET_BIND_SERVICE, in /var/lib/meshd) under a notify socket:
// READY=1, then RELOADING=1/READY=1 on SIGHUP, mail through port 25 into its Maildir, a
// graceful SIGTERM with STOPPING=1; then purges the package and checks that none of its
// files, its configuration or its data remain.
func TestPackageInstall(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("TestPackageInstall installs a Debian package with dpkg -i: run it as root (CI does)")
	}
	dpkg := extern.Require(t, extern.FindDpkg)
	analyze := extern.Require(t, extern.FindSystemdAnalyze)
	swaks := extern.Require(t, extern.FindSwaks)
	if installed("meshd") {
		t.Fatalf("a meshd package is already installed on this machine; remove it first (dpkg --purge meshd)")
	}
	for _, p := range []string{"/etc/meshd", "/var/lib/meshd"} {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s exists before the install: the purge check would be meaningless", p)
		}
	}
	deb := buildPackage(t)
	files := contents(t, deb)
	t.Cleanup(func() {
		if installed("meshd") {
			_ = exec.Command(dpkg, "--purge", "meshd").Run()
		}
	})
	run(t, dpkg, "-i", deb)
	if !installed("meshd") {
		t.Fatal("dpkg -i did not leave meshd installed")
	}

	// postinst: the user and the data directory, nothing started, no configuration made.
	u, err := user.Lookup("meshd")
	if err != nil {
		t.Fatalf("no meshd user after install: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	st, err := os.Stat("/var/lib/meshd")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 || st.Sys().(*syscall.Stat_t).Uid != uint32(uid) {
		t.Errorf("/var/lib/meshd: mode %v uid %d, want 0700 meshd", st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Uid)
	}
	if _, err := os.Stat("/etc/meshd/meshd.yaml"); err == nil {
		t.Errorf("postinst wrote /etc/meshd/meshd.yaml: the node would start half-configured")
	}
	if pids := runningPackaged(); len(pids) > 0 {
		t.Errorf("/usr/bin/meshd runs right after the install (pids %v): postinst must not start a node", pids)
	}
	if out, err := exec.Command(analyze, "verify", "--man=no", "/lib/systemd/system/meshd.service").CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify meshd.service: %v\n%s", err, out)
	}

	// The node, as the unit runs it.
	nl := listenNotify(t)
	logf, err := os.CreateTemp("", "meshd-pkg-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(logf.Name())
	// The unit's PrivateTmp=yes gives the node a /tmp of its own; go-graphviz (the status
	// page) writes a compilation cache into $TMPDIR at start and panics when it cannot, as
	// under a shared /tmp where root's test runs made /tmp/go-graphviz.
	tmp, err := os.MkdirTemp("", "meshd-pkg-tmp-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chown(tmp, uid, gid); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/meshd", "-config", "/etc/meshd/meshd.yaml.example")
	cmd.Dir = "/var/lib/meshd"
	cmd.Env = []string{"NOTIFY_SOCKET=" + nl.path, "PATH=/usr/bin:/bin", "TMPDIR=" + tmp}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential:  &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
		AmbientCaps: []uintptr{unix.CAP_NET_BIND_SERVICE},
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	exited := false
	defer func() {
		if !exited {
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("meshd log:\n%s", b)
		}
	}()
	nl.expect("READY=1", 30*time.Second)

	_ = cmd.Process.Signal(syscall.SIGHUP)
	if msg := nl.expect("RELOADING=1", 10*time.Second); !strings.Contains(msg, "MONOTONIC_USEC=") {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", msg)
	}
	nl.expect("READY=1", 10*time.Second)

	subject := "package-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, swaks, "--server", "127.0.0.1:25", "--helo", "client.pkg.test",
		"--from", "alice@remote.test", "--to", "bob@example.test", "--header", "Subject: "+subject).CombinedOutput()
	if err != nil {
		t.Fatalf("swaks to the packaged node on port 25: %v\n%s", err, out)
	}
	newDir := "/var/lib/meshd/maildir/example.test/bob/new"
	if !testkit.Poll(20*time.Second, func() bool {
		ents, _ := os.ReadDir(newDir)
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(newDir, e.Name()))
			if strings.Contains(string(b), "Subject: "+subject) {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("the message did not reach %s", newDir)
	}

	_ = cmd.Process.Signal(syscall.SIGTERM)
	nl.expect("STOPPING=1", 10*time.Second)
	select {
	case err := <-done:
		exited = true
		if err != nil {
			t.Errorf("meshd exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second): // limits.shutdown_grace is 10s in the example
		t.Fatalf("meshd did not stop within limits.shutdown_grace after SIGTERM")
	}

	// Purge: nothing of the package, its configuration or its data is left.
	run(t, dpkg, "--purge", "meshd")
	if installed("meshd") {
		t.Fatal("meshd still installed after dpkg --purge")
	}
	if out, _ := exec.Command("dpkg-query", "-W", "-f=${db:Status-Abbrev}", "meshd").Output(); strings.TrimSpace(string(out)) != "" && !strings.HasPrefix(string(out), "un") {
		t.Errorf("dpkg still knows meshd after the purge: %q", out)
	}
	for p, mode := range files {
		if strings.HasPrefix(mode, "d") {
			continue // shared directories (/usr/bin, ...) stay
		}
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is left after the purge", p)
		}
	}
	for _, p := range []string{"/etc/meshd", "/var/lib/meshd", "/usr/share/doc/meshd"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is left after the purge", p)
		}
	}
}

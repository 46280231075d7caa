package extern

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// FindChromium returns the path of Debian's chromium (package chromium).
func FindChromium() (string, error) { return findProgram("chromium", "/usr/bin/chromium") }

// Chromium runs headless chromium once against url with extra flags (such
// as --screenshot=FILE or --dump-dom) and returns its standard output. It
// fails the test when chromium is missing (naming scripts/install-deps) or
// fails. The flags keep it off the network (this machine has none) and the
// browser runs in a process group of its own that is killed when it
// returns, so no helper process outlives the test. The window is
// 1280x900 at scale 1.
func Chromium(t testing.TB, url string, extra ...string) []byte {
	t.Helper()
	bin := Require(t, FindChromium)
	// Not t.TempDir: chromium's helpers may still be removing files when
	// the directory is cleaned up, and that must not fail the test.
	profile, err := os.MkdirTemp("", "meshd-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(profile) })

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1",
		"--user-data-dir=" + profile, "--window-size=1280,900",
	}, extra...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	cmd.Env = append(os.Environ(), "HOME="+profile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if cmd.Process != nil {
		if kerr := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); kerr != nil && !errors.Is(kerr, syscall.ESRCH) {
			t.Logf("kill chromium process group: %v", kerr)
		}
	}
	if err != nil {
		s := stderr.String()
		if len(s) > 2000 {
			s = "..." + s[len(s)-2000:]
		}
		t.Fatalf("chromium %v: %v\nstderr:\n%s", extra, err, s)
	}
	return stdout.Bytes()
}

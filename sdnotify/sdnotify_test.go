package sdnotify

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens a unixgram socket as systemd does and returns a function
// that reads the next datagram.
func listen(t *testing.T, name string) func() string {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return func() string {
		buf := make([]byte, 4096)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read notification: %v", err)
		}
		return string(buf[:k])
	}
}

func TestNotify(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), "@meshd-sdnotify-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)} {
		t.Run(name[:1], func(t *testing.T) {
			lname := name
			if strings.HasPrefix(lname, "@") {
				lname = "\x00" + lname[1:]
			}
			next := listen(t, lname)
			n := New(name)
			if err := n.Ready("running"); err != nil {
				t.Fatal(err)
			}
			if got := next(); got != "READY=1\nSTATUS=running\n" {
				t.Fatalf("got %q", got)
			}
			if err := n.Reloading(); err != nil {
				t.Fatal(err)
			}
			got := next()
			if !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
				t.Fatalf("got %q", got)
			}
			us, err := strconv.ParseInt(strings.SplitN(strings.TrimPrefix(got, "RELOADING=1\nMONOTONIC_USEC="), "\n", 2)[0], 10, 64)
			if err != nil || us <= 0 {
				t.Fatalf("MONOTONIC_USEC in %q: %d %v", got, us, err)
			}
			if err := n.Stopping(); err != nil {
				t.Fatal(err)
			}
			if got := next(); got != "STOPPING=1\nSTATUS=stopping\n" {
				t.Fatalf("got %q", got)
			}
		})
	}
}

func TestDisabled(t *testing.T) {
	var n *Notifier
	if n.Enabled() || n.Ready("x") != nil || New("").Stopping() != nil {
		t.Fatal("a notifier without socket must do nothing")
	}
}

func TestWatchdogInterval(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "2000000")
	t.Setenv("WATCHDOG_PID", "")
	if got := WatchdogInterval(); got != 2*time.Second {
		t.Fatalf("got %v", got)
	}
	t.Setenv("WATCHDOG_PID", "1")
	if got := WatchdogInterval(); got != 0 {
		t.Fatalf("another process's watchdog: got %v", got)
	}
}

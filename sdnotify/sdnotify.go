// Package sdnotify tells the service manager what state the daemon is in,
// with the sd_notify(3) protocol: one datagram of newline-separated
// VAR=value assignments (READY=1, RELOADING=1, STOPPING=1, WATCHDOG=1,
// STATUS=...) sent to the unix datagram socket named by $NOTIFY_SOCKET
// (a path, or an abstract name starting with "@"). systemd's Type=notify
// and Type=notify-reload units read them; without $NOTIFY_SOCKET every
// call does nothing, so the daemon runs the same outside systemd.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends state changes to one socket. The zero value and nil send
// nothing.
type Notifier struct {
	socket string
}

// New returns a Notifier for socket ("" sends nothing).
func New(socket string) *Notifier { return &Notifier{socket: socket} }

// FromEnv returns a Notifier for $NOTIFY_SOCKET.
func FromEnv() *Notifier { return New(os.Getenv("NOTIFY_SOCKET")) }

// Enabled reports whether a service manager listens.
func (n *Notifier) Enabled() bool { return n != nil && n.socket != "" }

// Send sends the assignments (e.g. "READY=1", "STATUS=running") in one
// datagram.
func (n *Notifier) Send(assignments ...string) error {
	if !n.Enabled() {
		return nil
	}
	name := n.socket
	if strings.HasPrefix(name, "@") {
		name = "\x00" + name[1:] // Linux abstract namespace
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: %s: %w", n.socket, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(assignments, "\n") + "\n")); err != nil {
		return fmt.Errorf("sdnotify: %s: %w", n.socket, err)
	}
	return nil
}

// Ready: start-up is finished (listeners open, queue loaded), or a reload is.
func (n *Notifier) Ready(status string) error {
	return n.Send("READY=1", "STATUS="+status)
}

// Reloading: a reload has begun. MONOTONIC_USEC is the CLOCK_MONOTONIC time
// of the start, which Type=notify-reload requires to match the reload to
// the signal it sent.
func (n *Notifier) Reloading() error {
	return n.Send("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(monotonicUsec(), 10), "STATUS=reloading configuration")
}

// Stopping: shutdown has begun.
func (n *Notifier) Stopping() error {
	return n.Send("STOPPING=1", "STATUS=stopping")
}

// Watchdog: the daemon is alive (WatchdogSec=).
func (n *Notifier) Watchdog() error { return n.Send("WATCHDOG=1") }

// WatchdogInterval is how often the service manager expects Watchdog
// ($WATCHDOG_USEC, when $WATCHDOG_PID is unset or this process); 0 when no
// watchdog is enabled.
func WatchdogInterval() time.Duration {
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || us <= 0 {
		return 0
	}
	return time.Duration(us) * time.Microsecond
}

func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Sec*1_000_000 + ts.Nsec/1_000
}

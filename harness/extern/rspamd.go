package extern

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// FindRspamd returns the path of Debian's rspamd (package rspamd). Tests run
// it in the foreground from a temporary config, never as a service.
func FindRspamd() (string, error) { return findProgram("rspamd", "/usr/bin/rspamd") }

// FindUnshare returns the path of unshare (package util-linux).
func FindUnshare() (string, error) { return findProgram("unshare", "/usr/bin/unshare") }

// Rspamd is a running rspamd whose rspamd_proxy worker speaks the milter
// protocol on a Unix socket.
type Rspamd struct {
	// Socket is the milter socket's path (a milter address unix:Socket).
	Socket string
	Dir    string
	proc   *process
}

// Log returns rspamd's log file.
func (r *Rspamd) Log() string {
	b, _ := os.ReadFile(filepath.Join(r.Dir, "rspamd.log"))
	return string(b)
}

// Stop ends rspamd (t.Cleanup does it otherwise): SIGTERM, so that the
// main process stops its workers, then SIGKILL after 10 s.
func (r *Rspamd) Stop() {
	if !r.proc.exited() {
		_ = r.proc.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.proc.done:
		case <-time.After(10 * time.Second):
		}
	}
	r.proc.stop()
}

// rspamdConf is a self-contained rspamd configuration: no stock modules but
// milter_headers (GTUBE is rspamd's core), no hyperscan compilation, a
// four-line TLD list instead of the public suffix list (its compilation
// takes half a minute), the milter proxy scanning by itself (no normal
// worker, no redis). rspamd runs in a network namespace of its own, with
// no interface up, and answers on a Unix socket: whatever lookup a module
// might try cannot leave the machine.
const rspamdConf = `options {
    pidfile = "{{DIR}}/rspamd.pid";
    disable_hyperscan = true;
    dns { nameserver = ["127.0.0.1:1"]; timeout = 100ms; retransmits = 1; }
    local_addrs = [];
    explicit_modules = ["settings"];
    filters = "";
    url_tld = "{{DIR}}/tld.dat";
    tempdir = "{{DIR}}";
    control_socket = "{{DIR}}/control.sock mode=0600";
}
logging { type = "file"; filename = "{{DIR}}/rspamd.log"; level = "info"; }
actions { reject = 15; add_header = 6; }
modules { path = "$PLUGINSDIR/milter_headers.lua"; }
milter_headers {
  use = ["x-spamd-result", "x-rspamd-server", "x-rspamd-queue-id", "x-spam-status"];
  skip_local = false;
  skip_authenticated = false;
}
worker "rspamd_proxy" {
    bind_socket = "{{DIR}}/milter.sock mode=0666";
    milter = yes;
    timeout = 30s;
    count = 1;
    upstream "local" { default = yes; self_scan = yes; }
    spam_header = "X-Spam";
    reject_message = "Spam message rejected";
}
`

// StartRspamd runs rspamd (as root, in a network namespace of its own made
// with unshare) with rspamdConf, waits until its milter socket negotiates,
// and kills it in t.Cleanup. extra is appended to the configuration.
func StartRspamd(t testing.TB, extra string) *Rspamd {
	t.Helper()
	bin := Require(t, FindRspamd)
	unshare := Require(t, FindUnshare)
	if os.Geteuid() != 0 {
		t.Fatalf("extern: rspamd runs in a network namespace of its own, which needs root (run the tests as root, as CI does)")
	}
	dir, err := os.MkdirTemp("", "meshd-rspamd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	_ = os.Chmod(dir, 0o755)
	conf := strings.ReplaceAll(rspamdConf, "{{DIR}}", dir) + extra
	for name, data := range map[string]string{"rspamd.conf": conf, "tld.dat": "com\nnet\norg\ntest\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(unshare, "--net", bin, "-f", "-i", "-c", filepath.Join(dir, "rspamd.conf"),
		"--var", "DBDIR="+dir, "--var", "RUNDIR="+dir, "--var", "LOGDIR="+dir)
	proc, err := startProcess(cmd)
	if err != nil {
		t.Fatalf("extern: start rspamd: %v", err)
	}
	r := &Rspamd{Socket: filepath.Join(dir, "milter.sock"), Dir: dir, proc: proc}
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			t.Logf("rspamd output:\n%s\nrspamd.log (tail):\n%s", proc.out.String(), tail(r.Log(), 4000))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if proc.exited() {
			t.Fatalf("extern: rspamd exited:\n%s\n%s", proc.out.String(), tail(r.Log(), 4000))
		}
		if err := probeMilter("unix", r.Socket); err == nil {
			return r
		} else if time.Now().After(deadline) {
			t.Fatalf("extern: rspamd's milter socket %s did not negotiate: %v\n%s", r.Socket, err, tail(r.Log(), 4000))
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}

// probeMilter sends a milter option negotiation (SMFIC_OPTNEG, version 6)
// and reads the reply's command byte.
func probeMilter(network, addr string) error {
	c, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	pkt := make([]byte, 4+1+12)
	binary.BigEndian.PutUint32(pkt, 13)
	pkt[4] = 'O'
	binary.BigEndian.PutUint32(pkt[5:], 6)
	binary.BigEndian.PutUint32(pkt[9:], 0x1ff)
	binary.BigEndian.PutUint32(pkt[13:], 0)
	if _, err := c.Write(pkt); err != nil {
		return err
	}
	var hdr [5]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return err
	}
	if hdr[4] != 'O' {
		return fmt.Errorf("milter answered %q to option negotiation", hdr[4])
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

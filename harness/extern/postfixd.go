package extern

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// PostfixServer is a private Postfix instance (master, smtpd, cleanup, qmgr, smtp) from the
// unpacked tree, with its own configuration, queue and log under a temporary directory: smtpd
// listens on one address and every message it accepts is relayed to a relay host. It is not
// installed as a service and touches nothing outside its directory.
type PostfixServer struct {
	Addr string // smtpd's listen address
	Dir  string
	pf   *Postfix
	conf string
}

// Maillog returns Postfix's log so far.
func (s *PostfixServer) Maillog() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "maillog"))
	return string(b)
}

// StartPostfix starts a private Postfix whose smtpd listens on addr (127.0.0.1:PORT) and
// relays everything from 127.0.0.0/8 to relay (host:port), waits for smtpd's greeting, and
// stops it in t.Cleanup. Postfix's master must start as root; its processes run as nobody
// (mail_owner), with group mail as setgid_group and daemon as default_privs, so that no
// postfix user is needed. extra lines are appended to main.cf.
func StartPostfix(t testing.TB, addr, relay string, extra ...string) *PostfixServer {
	t.Helper()
	pf, err := FindPostfix()
	if err != nil {
		t.Fatalf("%v (run scripts/install-deps)", err)
	}
	if os.Geteuid() != 0 {
		t.Fatalf("postfix: its master must start as root (run the test as root, as scripts/test does)")
	}
	// Not t.TempDir: Postfix's unprivileged processes must traverse the path (0755), and
	// its daemons may still be writing while the test cleans up.
	dir, err := os.MkdirTemp("", "meshd-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &PostfixServer{Addr: addr, Dir: dir, pf: pf, conf: filepath.Join(dir, "conf")}
	for _, d := range []string{s.conf, filepath.Join(dir, "queue"), filepath.Join(dir, "data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "nobody", filepath.Join(dir, "data")).CombinedOutput(); err != nil {
		t.Fatalf("postfix: chown data dir: %v %s", err, out)
	}
	root := pf.Root
	main := []string{
		"compatibility_level = 3.6",
		"queue_directory = " + filepath.Join(dir, "queue"),
		"data_directory = " + filepath.Join(dir, "data"),
		"daemon_directory = " + pf.DaemonDir(),
		"command_directory = " + filepath.Join(root, "usr", "sbin"),
		"shlib_directory = " + pf.LibDir(),
		"meta_directory = " + filepath.Join(root, "etc", "postfix"),
		"sendmail_path = " + filepath.Join(root, "usr", "sbin", "sendmail"),
		"newaliases_path = " + filepath.Join(root, "usr", "bin", "newaliases"),
		"mailq_path = " + filepath.Join(root, "usr", "bin", "mailq"),
		"manpage_directory = " + filepath.Join(root, "usr", "share", "man"),
		"sample_directory = " + filepath.Join(root, "etc", "postfix"),
		"readme_directory = no", "html_directory = no",
		"import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME LD_LIBRARY_PATH=" + pf.LibDir(),
		"mail_owner = nobody", "setgid_group = mail", "default_privs = daemon",
		"inet_interfaces = 127.0.0.1", "inet_protocols = ipv4",
		"myhostname = postfix.meshd.test", "mydomain = meshd.test", "myorigin = meshd.test",
		"mydestination =", "mynetworks = 127.0.0.0/8",
		"relayhost = [" + strings.Replace(relay, ":", "]:", 1),
		"smtp_dns_support_level = disabled", "alias_maps =", "alias_database =", "biff = no",
		"maillog_file = " + filepath.Join(dir, "maillog"), "maillog_file_prefixes = " + dir,
	}
	main = append(main, extra...)
	master := addr + ` inet n - n - - smtpd
pickup    unix  n - n 60   1 pickup
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -    - proxymap
smtp      unix  - - n -    - smtp
relay     unix  - - n -    - smtp
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
`
	if err := os.WriteFile(filepath.Join(s.conf, "main.cf"), []byte(strings.Join(main, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.conf, "master.cf"), []byte(master), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := s.postfix("start"); err != nil {
		t.Fatalf("postfix start: %v\n%s\nmaillog:\n%s", err, out, s.Maillog())
	}
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("postfix maillog:\n%s", s.Maillog())
		}
	})
	if err := waitGreetingAddr(addr, 30*time.Second); err != nil {
		t.Fatalf("postfix smtpd on %s: %v\nmaillog:\n%s", addr, err, s.Maillog())
	}
	return s
}

func (s *PostfixServer) postfix(args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(s.pf.Root, "usr", "sbin", "postfix"), append([]string{"-c", s.conf}, args...)...)
	cmd.Env = s.pf.Env()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// stop asks master to stop and waits (bounded) for it to exit; abort otherwise.
func (s *PostfixServer) stop(t testing.TB) {
	pidFile := filepath.Join(s.Dir, "queue", "pid", "master.pid")
	raw, _ := os.ReadFile(pidFile)
	var pid int
	fmt.Sscan(strings.TrimSpace(string(raw)), &pid)
	_, _ = s.postfix("stop")
	deadline := time.Now().Add(20 * time.Second)
	for pid > 0 && processAlive(pid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if pid > 0 && processAlive(pid) {
		t.Logf("postfix master %d did not stop: abort", pid)
		_, _ = s.postfix("abort")
	}
}

func processAlive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// waitGreetingAddr polls addr until it answers with a 220 greeting.
func waitGreetingAddr(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := greet(addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

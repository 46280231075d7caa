// End-to-end tests of the meshd binary.
//
// These tests build cmd/meshd once (TestMain), run it as a real process with a YAML config on
// free loopback ports, and drive it only from the outside, with clients and servers meshd's
// authors did not write: swaks and Python's smtplib send mail, dnsmasq serves MX records,
// Postfix's smtp-sink is the remote MX. Their results are read from the file system (Maildir,
// smtp-sink dumps) and from the admin HTTP API.
//
// A missing external program fails the test with a message naming scripts/install-deps
// (harness/extern); it is never skipped silently.
package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/meshd/meshd/internal/testkit"
)

// meshdBin is the binary every test of this package runs: the one named by
// MESHD_E2E_BIN, or else built once by TestMain. It is written once before
// any test runs and only read afterwards.
var meshdBin string

// binDir is TestMain's temp directory for the binaries it builds (meshd,
// meshctl), removed when the tests end.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// runTests builds cmd/meshd unless MESHD_E2E_BIN names a meshd binary
// already built from this tree (scripts/bench-mesh builds it once for all
// its rounds, whose every run of the test binary would otherwise build it
// again), then runs the tests.
func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "meshd-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: temp dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	if bin := os.Getenv("MESHD_E2E_BIN"); bin != "" {
		if meshdBin, err = filepath.Abs(bin); err == nil {
			_, err = os.Stat(meshdBin)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: MESHD_E2E_BIN: %v\n", err)
			return 1
		}
		return m.Run()
	}
	meshdBin = filepath.Join(dir, "meshd")
	build := exec.Command("go", "build", "-o", meshdBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build cmd/meshd: %v\n", err)
		return 1
	}
	return m.Run()
}

// nodeOptions is what a test changes in a node's config; the rest is filled in by startNode.
type nodeOptions struct {
	LocalDomains      []string
	AllowNetworks     []string
	Smarthost         string
	DNSServer         string
	MXPort            int
	MaxMessage        int64
	MaxRcpts          int
	RetryInitial      time.Duration     // default 200ms: tests wait for retries
	RetryMax          time.Duration     // default 1s
	Lifetime          time.Duration     // default 1h
	DelayWarning      time.Duration     // default 30m
	Users             map[string]string // name -> bcrypt/argon2 hash
	Extra             map[string]any    // merged over the generated config at top level (section maps merged key by key)
	Reserved          []string          // host:port addresses the test uses itself (e.g. mesh listeners named in Extra): never chosen
	Env               []string          // added to meshd's environment (NOTIFY_SOCKET=...)
	ReadyOnSubmission bool              // wait for the submission listener's 220, not smtp's (smtp is behind a balancer)
}

// meshNode is one running (or stopped) meshd process with its own config and data directory.
type meshNode struct {
	t          testing.TB
	Dir        string // temp root: config, data, log
	ConfigPath string
	DataDir    string
	Maildir    string
	SMTP       string // host:port
	Submission string
	Admin      string
	ready      string // the address whose 220 means the node is up

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error // cmd.Wait's result, valid once done is closed
	log     *os.File
	runs    int
	env     []string
	// bindRetries counts the starts retried for a port in use (Start).
	bindRetries int
}

// startNode writes a config for opts with free loopback ports and starts meshd on it. The
// process is killed in t.Cleanup; its log is printed when the test failed.
func startNode(t testing.TB, opts nodeOptions) *meshNode {
	t.Helper()
	dir := t.TempDir()
	// Six distinct ports: smtp, submission, admin, linkstate, gossip and a dead DNS server;
	// none of them one the test already chose for a server it starts later (smarthost, MX).
	avoid := map[int]bool{opts.MXPort: true}
	for _, a := range append([]string{opts.Smarthost, opts.DNSServer}, opts.Reserved...) {
		if _, p, err := net.SplitHostPort(a); err == nil {
			port, _ := strconv.Atoi(p)
			avoid[port] = true
		}
	}
	addrs := freeAddrs(t, 6, avoid)
	n := &meshNode{
		t:          t,
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "meshd.yaml"),
		DataDir:    filepath.Join(dir, "data"),
		Maildir:    filepath.Join(dir, "maildir"),
		SMTP:       addrs[0],
		Submission: addrs[1],
		Admin:      addrs[2],
		env:        opts.Env,
	}
	n.ready = n.SMTP
	if opts.ReadyOnSubmission {
		n.ready = n.Submission
	}
	cfg, err := yaml.Marshal(n.config(opts, addrs[3], addrs[4], addrs[5]))
	if err != nil {
		t.Fatalf("e2e: marshal config: %v", err)
	}
	if err := os.WriteFile(n.ConfigPath, cfg, 0o600); err != nil {
		t.Fatalf("e2e: write config: %v", err)
	}
	t.Cleanup(func() {
		n.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "meshd.log"))
			t.Logf("meshd config:\n%s\nmeshd log (last 8 KiB):\n%s", cfg, tail(b, 8<<10))
		}
	})
	n.Start()
	return n
}

// freeAddrs returns k distinct free loopback addresses whose ports are not in avoid. Every
// listener stays open until all ports are chosen, so the kernel cannot hand one out twice.
func freeAddrs(t testing.TB, k int, avoid map[int]bool) []string {
	t.Helper()
	var open []net.Listener
	defer func() {
		for _, l := range open {
			l.Close()
		}
	}()
	var addrs []string
	for len(addrs) < k {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("e2e: free port: %v", err)
		}
		open = append(open, l)
		if !avoid[l.Addr().(*net.TCPAddr).Port] {
			addrs = append(addrs, l.Addr().String())
		}
	}
	return addrs
}

// config builds the node's YAML document: linkstate and gossip get ports of their own, and
// deadDNS (nothing listens there) is the resolver when the test names no DNS server.
func (n *meshNode) config(o nodeOptions, linkstate, gossip, deadDNS string) map[string]any {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.RetryInitial, 200*time.Millisecond)
	def(&o.RetryMax, time.Second)
	def(&o.Lifetime, time.Hour)
	def(&o.DelayWarning, 30*time.Minute)
	if len(o.LocalDomains) == 0 {
		o.LocalDomains = []string{"example.test"}
	}
	users := []map[string]string{}
	for name, hash := range o.Users {
		users = append(users, map[string]string{"name": name, "hash": hash})
	}
	outbound := map[string]any{
		"connect_timeout": "5s",
		"command_timeout": "30s",
	}
	if o.Smarthost != "" {
		outbound["smarthost"] = o.Smarthost
	}
	if o.DNSServer != "" {
		outbound["dns_server"] = o.DNSServer
	} else {
		// Never ask the machine's resolver: an unused loopback port fails fast.
		outbound["dns_server"] = deadDNS
	}
	if o.MXPort != 0 {
		outbound["mx_port"] = o.MXPort
	}
	limits := map[string]any{}
	if o.MaxMessage != 0 {
		limits["max_message_bytes"] = o.MaxMessage
	}
	if o.MaxRcpts != 0 {
		limits["max_recipients"] = o.MaxRcpts
	}
	cfg := map[string]any{
		"node": map[string]any{
			"name": "e2e", "routing_group": "rg1", "data_dir": n.DataDir, "hostname": "mx.e2e.meshd.test",
		},
		"listen": map[string]any{
			"smtp": n.SMTP, "submission": n.Submission, "admin": n.Admin,
			"linkstate": linkstate, "gossip": gossip,
		},
		"tls":           map[string]any{"self_signed": true},
		"local_domains": o.LocalDomains,
		"delivery":      map[string]any{"mode": "maildir", "maildir": n.Maildir},
		"outbound":      outbound,
		"limits":        limits,
		"queue": map[string]any{
			"retry":         map[string]any{"initial": o.RetryInitial.String(), "max": o.RetryMax.String(), "factor": 2, "jitter": 0.1},
			"lifetime":      o.Lifetime.String(),
			"delay_warning": o.DelayWarning.String(),
		},
		"relay": map[string]any{"allow_networks": nonNil(o.AllowNetworks)},
		"auth":  map[string]any{"users": users},
		"log":   map[string]any{"level": "info", "format": "text"},
	}
	mergeSections(cfg, o.Extra)
	return cfg
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Start runs meshd on the node's config (again, after Kill or Stop) and waits until its SMTP
// port accepts connections and answers 220.
func (n *meshNode) Start() {
	t := n.t
	t.Helper()
	n.mu.Lock()
	if n.cmd != nil {
		n.mu.Unlock()
		t.Fatalf("e2e: meshd already running")
	}
	logf, err := os.OpenFile(filepath.Join(n.Dir, "meshd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		n.mu.Unlock()
		t.Fatalf("e2e: open log: %v", err)
	}
	n.runs++
	logStart, _ := logf.Seek(0, io.SeekEnd)
	fmt.Fprintf(logf, "===== e2e: start #%d at %s =====\n", n.runs, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(meshdBin, "-config", n.ConfigPath)
	cmd.Dir = n.Dir
	if len(n.env) > 0 {
		cmd.Env = append(os.Environ(), n.env...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		n.mu.Unlock()
		t.Fatalf("e2e: start meshd: %v", err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		n.mu.Lock()
		n.waitErr = err
		n.mu.Unlock()
		close(done)
	}()
	n.cmd, n.done, n.log = cmd, done, logf
	n.mu.Unlock()

	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-done:
			// A restart binds the same ports again; on a loaded machine one
			// may be taken for a moment by another process's outgoing
			// connection. That alone is retried, a bounded number of times.
			if n.bindRetries < maxBindRetries && n.runLogHas(logStart, "address already in use") {
				n.bindRetries++
				n.mu.Lock()
				n.cmd = nil
				n.mu.Unlock()
				logf.Close()
				time.Sleep(100 * time.Millisecond) // a retry interval, not a wait for a condition
				n.Start()
				return
			}
			t.Fatalf("e2e: meshd exited before listening on %s: %v\n%s", n.SMTP, cmd.ProcessState, n.logTail())
		default:
		}
		if err := smtpGreets(n.ready); err == nil {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("e2e: meshd not answering on %s after 20s: %v\n%s", n.SMTP, err, n.logTail())
		}
		time.Sleep(25 * time.Millisecond) // poll interval
	}
}

// smtpGreets connects to addr and reads a 220 greeting (or the 421 of a
// draining node).
func smtpGreets(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 512)
	k, err := c.Read(buf)
	if err != nil {
		return err
	}
	// A node that drains (docs/drain.md) is up, and refuses every session.
	if !bytes.HasPrefix(buf[:k], []byte("220")) && !bytes.HasPrefix(buf[:k], []byte("421 4.3.2 Service not available: this node is draining")) {
		return fmt.Errorf("greeting %q", buf[:k])
	}
	_, _ = c.Write([]byte("QUIT\r\n"))
	return nil
}

// maxBindRetries bounds the restarts Start makes for a port found in use.
const maxBindRetries = 50

// runLogHas reports whether the log written since offset contains s.
func (n *meshNode) runLogHas(offset int64, s string) bool {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "meshd.log"))
	return offset <= int64(len(b)) && bytes.Contains(b[offset:], []byte(s))
}

func (n *meshNode) logTail() string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "meshd.log"))
	return tail(b, 4<<10)
}

// Kill sends SIGKILL (a crash: no shutdown code runs) and waits for the process to be gone.
func (n *meshNode) Kill() { n.signal(syscall.SIGKILL, 5*time.Second) }

// Stop asks meshd to shut down (SIGTERM), kills it if it has not exited after 15s, and returns
// the error of its exit (nil for exit status 0).
func (n *meshNode) Stop() error { return n.signal(syscall.SIGTERM, 15*time.Second) }

func (n *meshNode) signal(sig syscall.Signal, grace time.Duration) error {
	n.mu.Lock()
	cmd, done, logf := n.cmd, n.done, n.log
	n.cmd, n.done, n.log = nil, nil, nil
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	defer logf.Close()
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(grace):
		n.t.Errorf("e2e: meshd did not exit on %v within %v; killing it", sig, grace)
		_ = cmd.Process.Kill()
		<-done
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.waitErr
}

// adminGet GETs path on the admin API and decodes JSON into v.
func (n *meshNode) adminGet(path string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.Admin+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: decode %q: %w", path, tail(b, 300), err)
	}
	return nil
}

// queueLen returns the number of messages the admin API lists. It accepts either a JSON array
// or an object holding one array (e.g. {"messages": [...]}).
func (n *meshNode) queueLen() (int, error) {
	var raw json.RawMessage
	if err := n.adminGet("/api/queue", &raw); err != nil {
		return 0, err
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err == nil {
		return len(list), nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return 0, fmt.Errorf("GET /api/queue: neither array nor object: %s", tail(raw, 300))
	}
	for _, v := range obj {
		if err := json.Unmarshal(v, &list); err == nil {
			return len(list), nil
		}
	}
	return 0, fmt.Errorf("GET /api/queue: no list in %s", tail(raw, 300))
}

// waitQueueEmpty polls the admin API until the queue is empty.
func (n *meshNode) waitQueueEmpty(timeout time.Duration) {
	n.t.Helper()
	var last string
	ok := testkit.Poll(timeout, func() bool {
		k, err := n.queueLen()
		if err != nil {
			last = err.Error()
			return false
		}
		last = strconv.Itoa(k) + " messages queued"
		return k == 0
	})
	if !ok {
		n.t.Fatalf("e2e: queue not empty after %v: %s", timeout, last)
	}
}

func tail(b []byte, k int) string {
	if len(b) > k {
		b = b[len(b)-k:]
	}
	return string(b)
}

// splitHostPort returns host and port of a "host:port" the test made itself.
func splitHostPort(t testing.TB, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return h, port
}

package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshd/meshd/harness/extern"
	"github.com/meshd/meshd/node/demo"
)

// TestDemoSwaksTrack runs the real `meshd demo` binary, sends one message
// with swaks from rga to rgc, and follows it with the real `meshctl track`:
// received in rga, relayed to rgb, relayed to rgc, delivered into a Maildir
// of an rgc node.
func TestDemoSwaksTrack(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 6-node demo mesh")
	}
	swaks := extern.Require(t, extern.FindSwaks) // missing: run scripts/install-deps
	dir := t.TempDir()
	meshctl := filepath.Join(dir, "meshctl")
	if out, err := exec.Command("go", "build", "-o", meshctl, "../meshctl").CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/meshctl: %v\n%s", err, out)
	}
	demoDir := filepath.Join(dir, "demo")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, meshdBin, "demo", "-dir", demoDir, "-base", "0")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		printed strings.Builder
	)
	converged := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			printed.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.HasPrefix(sc.Text(), "mesh converged") {
				once.Do(func() { close(converged) })
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("meshd demo after SIGTERM: %v", err)
		}
		<-readDone
	}
	defer stop()
	select {
	case <-converged:
	case <-time.After(60 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("meshd demo did not report convergence; it printed:\n%s", printed.String())
	}
	mu.Lock()
	t.Logf("meshd demo printed:\n%s", printed.String())
	out := printed.String()
	mu.Unlock()
	if !regexp.MustCompile(`swaks --server 127\.0\.0\.1:\d+ --from alice@rga\.test --to bob@rgc\.test`).MatchString(out) {
		t.Errorf("the demo does not print a ready-made swaks line")
	}

	raw, err := os.ReadFile(filepath.Join(demoDir, "demo.json"))
	if err != nil {
		t.Fatal(err)
	}
	var info demo.Info
	if err := json.Unmarshal(raw, &info); err != nil {
		t.Fatalf("demo.json: %v\n%s", err, raw)
	}
	if len(info.RGs) < 3 || len(info.Nodes) < 6 {
		t.Fatalf("demo.json describes %d RGs and %d nodes, want >= 3 and >= 6", len(info.RGs), len(info.Nodes))
	}
	a1 := info.Nodes[0]

	sw := exec.CommandContext(ctx, swaks, "--server", a1.SMTP, "--from", "alice@rga.test", "--to", "bob@rgc.test",
		"--helo", "client.e2e.test", "--timeout", "30s", "--header", "Subject: across the mesh")
	swOut, err := sw.CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, swOut)
	}
	m := regexp.MustCompile(`250 2\.0\.0 OK queued as ([a-z0-9]+)`).FindSubmatch(swOut)
	if m == nil {
		t.Fatalf("swaks got no 250 with a queue ID:\n%s", swOut)
	}
	id := string(m[1])

	// The demo is no open relay: a local client that is neither authenticated nor a mesh peer
	// may send to the demo's own domains (above) but not to a foreign one.
	relay := exec.CommandContext(ctx, swaks, "--server", a1.SMTP, "--from", "alice@rga.test",
		"--to", "victim@elsewhere.invalid", "--helo", "intruder.e2e.test", "--timeout", "30s", "--quit-after", "RCPT")
	relayOut, _ := relay.CombinedOutput()
	if !strings.Contains(string(relayOut), "<** 550 5.7.1 Relaying denied") {
		t.Errorf("RCPT TO:<victim@elsewhere.invalid> from a local client was not refused 550 5.7.1:\n%s", relayOut)
	}

	// meshctl track, until the last hop has delivered.
	var table string
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.CommandContext(ctx, meshctl, "-admin", a1.Admin, "track", id).CombinedOutput()
		table = string(out)
		if err == nil && strings.Contains(table, " delivered ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("meshctl track %s: %v\n%s", id, err, table)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("meshctl track %s:\n%s", id, table)
	var hops []string
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && (f[3] == "received" || f[3] == "relayed" || f[3] == "delivered") {
			hops = append(hops, f[2]+":"+f[3])
		}
	}
	want := "rga:received rga:relayed rgb:received rgb:relayed rgc:received rgc:delivered"
	if got := strings.Join(hops, " "); got != want {
		t.Errorf("hops:\n got %s\nwant %s", got, want)
	}
	// And the message is in a Maildir of an rgc node.
	found := ""
	for _, n := range info.Nodes {
		if n.RG != "rgc" {
			continue
		}
		_ = filepath.Walk(n.Maildir, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() && strings.Contains(p, string(filepath.Separator)+"new"+string(filepath.Separator)) {
				found = p
			}
			return nil
		})
	}
	if found == "" {
		t.Errorf("no message in the Maildirs of rgc's nodes")
	}
	stop()
}

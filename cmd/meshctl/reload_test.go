package main

import (
	"bytes"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/meshd/meshd/node"
	"github.com/meshd/meshd/node/config"
)

// TestReloadAgainstRealNode: meshctl reload asks a real node to read its configuration again
// (the node's Options.Reload here applies a prepared config): it prints what was applied and
// what needs a restart, and a refused file exits 1 with the node's reason.
func TestReloadAgainstRealNode(t *testing.T) {
	cfg := config.Default()
	cfg.Node.DataDir = t.TempDir()
	cfg.Listen = config.Listen{SMTP: "127.0.0.1:0", Admin: "127.0.0.1:0"}
	cfg.TLS.SelfSigned = false
	var n *node.Node
	// What the "file" holds now; set here, read by the admin handler's goroutine.
	var next atomic.Pointer[config.Config]
	var refuse atomic.Bool
	reload := func() (node.ReloadReport, error) {
		if refuse.Load() {
			return node.ReloadReport{}, errors.New("config: line 3: queue.retry.intial: unknown key")
		}
		return n.Reload(*next.Load())
	}
	n, err := node.New(cfg, node.Options{Reload: reload})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctl := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"-admin", n.AdminAddr().String()}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}

	changed := cfg
	changed.Queue.Lifetime = 2 * cfg.Queue.Lifetime
	changed.LocalDomains = []string{"example.test", "other.test"}
	next.Store(&changed)
	code, out, errOut := ctl("reload")
	want := "reloaded: applied queue.lifetime\nneeds a restart to take effect: local_domains\n"
	if code != 0 || out != want {
		t.Errorf("reload: exit %d, %q (stderr %q), want %q", code, out, errOut, want)
	}
	if code, out, _ := ctl("-json", "reload"); code != 0 || !strings.Contains(out, `"applied": []`) && !strings.Contains(out, `"applied": null`) {
		t.Errorf("reload -json of an unchanged file: exit %d:\n%s", code, out)
	}
	refuse.Store(true)
	if code, _, errOut := ctl("reload"); code != exitError || !strings.Contains(errOut, "queue.retry.intial") {
		t.Errorf("reload of a broken file: exit %d, stderr %q; want 1 naming the key", code, errOut)
	}
}

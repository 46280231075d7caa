package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/node"
	"github.com/meshd/meshd/node/config"
)

// TestAgainstRealNode drives meshctl against a node's real admin listener.
func TestAgainstRealNode(t *testing.T) {
	blackhole, err := net.Listen("tcp", "127.0.0.1:0") // a smarthost that never answers
	if err != nil {
		t.Fatal(err)
	}
	defer blackhole.Close()
	cfg := config.Default()
	cfg.Node.DataDir = t.TempDir()
	cfg.Listen = config.Listen{SMTP: "127.0.0.1:0", Admin: "127.0.0.1:0"}
	cfg.Outbound.Smarthost = blackhole.Addr().String()
	cfg.Outbound.ConnectTimeout = 200 * time.Millisecond
	cfg.Relay.AllowNetworks = []string{"127.0.0.1"}
	cfg.TLS.SelfSigned = false // net/smtp.SendMail would insist on verifying it
	n, err := node.New(cfg, node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := smtp.SendMail(n.SMTPAddr().String(), nil, "alice@example.test", []string{"x@far.test"},
		[]byte("Subject: meshctl\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	admin := n.AdminAddr().String()
	ctl := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"-admin", admin}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}

	code, out, errOut := ctl("-json", "queue", "list")
	var list node.QueueList
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Messages) != 1 {
		t.Fatalf("queue list -json: exit %d, %q %q", code, out, errOut)
	}
	id := list.Messages[0].ID
	if code, out, _ := ctl("queue", "list"); code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "alice@example.test") {
		t.Errorf("queue list: exit %d:\n%s", code, out)
	}
	if code, out, _ := ctl("status"); code != 0 || !strings.Contains(out, "1 messages") {
		t.Errorf("status: exit %d:\n%s", code, out)
	}
	if code, out, _ := ctl("queue", "hold", id); code != 0 || out != id+": hold done\n" {
		t.Errorf("hold: exit %d: %q", code, out)
	}
	if code, out, _ := ctl("queue", "show", id); code != 0 || !strings.Contains(out, "held            true") {
		t.Errorf("show after hold: exit %d:\n%s", code, out)
	}
	if code, _, _ := ctl("queue", "delete", id); code != 0 {
		t.Errorf("delete: exit %d", code)
	}
	if code, _, errOut := ctl("queue", "show", id); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("show after delete: exit %d, stderr %q", code, errOut)
	}
}

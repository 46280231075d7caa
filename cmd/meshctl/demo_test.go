package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/smtp"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/node/demo"
)

// startDemo runs the demo mesh of `meshd demo` in this process on free
// ports and waits until it has converged: every node routes to every
// routing group, rga's master is a1 and it sees both members.
func startDemo(t *testing.T) (*demo.Demo, string) {
	t.Helper()
	dir := t.TempDir()
	d, err := demo.Start(demo.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := d.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	admin := d.Info().Nodes[0].Admin
	testkit.Eventually(t, 30*time.Second, "a1 is master of rga with 2 members and 3 records", func() error {
		var m adminapi.Members
		if err := getJSON(admin, "/api/mesh/members", &m); err != nil {
			return err
		}
		if m.Master != "a1" || len(m.Members) != 2 {
			return fmt.Errorf("members %+v", m)
		}
		var l adminapi.LSDB
		if err := getJSON(admin, "/api/mesh/lsdb", &l); err != nil {
			return err
		}
		if len(l.Records) != 3 {
			return fmt.Errorf("%d records", len(l.Records))
		}
		for _, r := range l.Records {
			if len(r.Members) != 2 {
				return fmt.Errorf("record %s lists %d members", r.RG, len(r.Members))
			}
			for _, c := range r.Connectors {
				// In the triangle no connector is the only path.
				if !c.Up || c.Bridge {
					return fmt.Errorf("connector %s: up %t, bridge %t", c.ID, c.Up, c.Bridge)
				}
			}
		}
		return nil
	})
	return d, dir
}

func getJSON(admin, path string, v any) error {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-admin", admin, "-json", strings.TrimPrefix(path, "/api/mesh/")}, &stdout, &stderr); code != 0 {
		return fmt.Errorf("meshctl %s: exit %d: %s", path, code, stderr.String())
	}
	return json.Unmarshal(stdout.Bytes(), v)
}

// sendMail submits one message to addr and returns the queue ID of the 250.
func sendMail(t *testing.T, addr, from, to, msgID string) {
	t.Helper()
	body := "From: " + from + "\r\nTo: " + to + "\r\nSubject: demo\r\nMessage-ID: <" + msgID + ">\r\n\r\nhello mesh\r\n"
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, step := range []func() error{
		func() error { return c.Hello("client.test") },
		func() error { return c.Mail(from) },
		func() error { return c.Rcpt(to) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.Quit()
}

var normalizers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`127\.0\.0\.1:\d+`), "ADDR"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`), "TIME"},
	{regexp.MustCompile(`\b\d\d:\d\d:\d\d\.\d{3}\b`), "HH:MM:SS.mmm"},
	{regexp.MustCompile(`\b\d+\.\d+\.\d+\.\d+\b`), "E.M.m.U"},
	{regexp.MustCompile(`\b[0-9a-f]{64}\b`), "DIGEST"},
	{regexp.MustCompile(`digest [0-9a-f]{16}\b`), "digest DIGEST"},
	{regexp.MustCompile(`\b[a-z2-7]{26}\b`), "MESHID"},
	{regexp.MustCompile(`"age_seconds": \d+`), `"age_seconds": N`},
	{regexp.MustCompile(`(?m)^(r\w+\s+E\.M\.m\.U\s+\w+\s+)\d+s\b`), "${1}Ns"},
	{regexp.MustCompile(`"(size|penalty)": \d+(\.\d+)?`), `"$1": N`},
	{regexp.MustCompile(`M\d+P\d+\S*`), "MAILDIRFILE"},
	{regexp.MustCompile(`/1\d{9}\.`), "/TIMESTAMP."},
	// Tables are aligned before the values above are replaced; keep their
	// content, not the widths.
	{regexp.MustCompile(`(\S)[ \t]{2,}`), "$1  "},
}

// byNode hides which node of a routing group was chosen.
var byNode = regexp.MustCompile(`\b([abc])[12]\b`)

func normalize(s, dir string) string {
	s = strings.ReplaceAll(s, dir, "DIR")
	for _, n := range normalizers {
		s = n.re.ReplaceAllString(s, n.with)
	}
	return s
}

// TestGoldenDemo runs meshctl against a running demo mesh and compares
// tables and JSON with testdata/demo-*.golden (go test -update rewrites
// them). Ports, times, versions, digests and IDs are normalised.
func TestGoldenDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 6-node mesh")
	}
	d, dir := startDemo(t)
	info := d.Info()
	a1, c1 := info.Nodes[0], info.Nodes[4]
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"members", []string{"members"}, 0},
		{"members-json", []string{"-json", "members"}, 0},
		{"lsdb", []string{"lsdb"}, 0},
		{"lsdb-json", []string{"-json", "lsdb"}, 0},
		{"lsdb-from", []string{"lsdb", "-from", c1.LinkState, "-ca", filepath.Join(dir, "org", "ca.pem"),
			"-cert", filepath.Join(dir, "org", "nodes", "a1.pem"), "-key", filepath.Join(dir, "org", "nodes", "a1-key.pem")}, 0},
		{"lsdb-from-no-cert", []string{"lsdb", "-from", c1.LinkState}, 3},
		{"routes", []string{"routes"}, 0},
		{"routes-json", []string{"-json", "routes"}, 0},
		{"trace", []string{"trace", "-id", "golden-message-1", "bob@rgc.test"}, 0},
		{"trace-local", []string{"trace", "carol@rga.test"}, 0},
		{"trace-json", []string{"-json", "trace", "-id", "golden-message-1", "bob@rgb.test"}, 0},
		{"trace-bad", []string{"trace", "nodomain"}, 1},
		{"connector-unknown", []string{"connector", "down", "zz"}, 1},
		{"connector-usage", []string{"connector", "off", "ab"}, 2},
		{"track-unknown", []string{"track", "no-such-message"}, 1},
		{"graph", []string{"graph"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"-admin", a1.Admin}, tt.args...), &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.code, stderr.String())
			}
			got := fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", code, stdout.String(), stderr.String())
			got = normalize(got, dir)
			if strings.HasPrefix(tt.name, "trace") {
				// The choice among equal-cost bridgeheads hashes their
				// (random) addresses too.
				got = byNode.ReplaceAllString(got, "${1}N")
			}
			golden(t, "demo-"+tt.name, got)
		})
	}
	t.Run("graph-svg", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"-admin", a1.Admin, "graph", "-svg"}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		if out := stdout.String(); !strings.Contains(out, "<svg") || !strings.Contains(out, "rgb") || !strings.Contains(out, "cost 50") {
			t.Errorf("graph -svg is not the topology as SVG:\n%.500s", out)
		}
	})
	t.Run("lsdb-from-unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := ln.Addr().String()
		ln.Close()
		var stdout, stderr bytes.Buffer
		if code := run([]string{"lsdb", "-from", dead}, &stdout, &stderr); code != exitUnreachable {
			t.Errorf("exit %d, want %d; stderr %q", code, exitUnreachable, stderr.String())
		}
	})

	// One message from rga to rgc, tracked from a1: received at a1,
	// relayed over ab to a node of rgb, relayed over bc to a node of rgc,
	// delivered there.
	sendMail(t, a1.SMTP, "alice@rga.test", "bob@rgc.test", "golden-track-1@client.test")
	var tr adminapi.TrackResult
	testkit.Eventually(t, 30*time.Second, "message delivered in rgc", func() error {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"-admin", a1.Admin, "-json", "track", "golden-track-1@client.test"}, &stdout, &stderr); code != 0 {
			return fmt.Errorf("exit %d: %s", code, stderr.String())
		}
		tr = adminapi.TrackResult{}
		if err := json.Unmarshal(stdout.Bytes(), &tr); err != nil {
			return err
		}
		if n := len(tr.Events); n == 0 || tr.Events[n-1].Event != "delivered" {
			return fmt.Errorf("%d events so far", n)
		}
		return nil
	})
	var hops []string
	for _, e := range tr.Events {
		hops = append(hops, e.RG+":"+e.Event)
	}
	want := "rga:received rga:relayed rgb:received rgb:relayed rgc:received rgc:delivered"
	if got := strings.Join(hops, " "); got != want {
		t.Errorf("track hops:\n got %s\nwant %s", got, want)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-admin", a1.Admin, "track", tr.Events[0].ID}, &stdout, &stderr); code != 0 {
		t.Fatalf("track by queue ID: exit %d: %s", code, stderr.String())
	}
	// Which bridgehead of a group takes a copy depends on the message ID.
	golden(t, "demo-track", byNode.ReplaceAllString(normalize(stdout.String(), dir), "${1}N"))

	// Competing paths with ab down (ac takes it, ab explains itself), then
	// no route at all with ac down too: the refusal explains itself in the
	// table and in -json, with exit status 1.
	traceWhen := func(name string, code int, wantKind string, args ...string) {
		t.Helper()
		var out string
		testkit.Eventually(t, 20*time.Second, name, func() error {
			var stdout, stderr bytes.Buffer
			got := run(append([]string{"-admin", a1.Admin}, args...), &stdout, &stderr)
			out = fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", got, stdout.String(), stderr.String())
			if got != code || !strings.Contains(stdout.String(), wantKind) {
				return fmt.Errorf("exit %d: %s", got, out)
			}
			return nil
		})
		golden(t, "demo-"+name, byNode.ReplaceAllString(normalize(out, dir), "${1}N"))
	}
	connector := func(action, name string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run([]string{"-admin", a1.Admin, "connector", action, name}, &stdout, &stderr); code != 0 {
			t.Fatalf("connector %s %s: exit %d: %s", action, name, code, stderr.String())
		}
	}
	connector("down", "ab")
	traceWhen("trace-ab-down", 0, "via ab (to rgb, cost 10, down)", "trace", "-id", "golden-message-1", "bob@rgc.test")
	connector("down", "ac")
	traceWhen("trace-noroute", 1, "noroute", "trace", "-id", "golden-message-1", "bob@rgc.test")
	traceWhen("trace-noroute-json", 1, `"refused": "unreachable"`, "-json", "trace", "-id", "golden-message-1", "bob@rgc.test")
	connector("up", "ac")
	connector("up", "ab")
}

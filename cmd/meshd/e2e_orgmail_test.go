package main_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/routing"
)

// orgMesh is three single-node routing groups as real meshd processes:
// a1 (rga, with an external connector "inet" for "*" to a Postfix
// smtp-sink), b1 (rgb) and c1 (rgc), each joined to rga both ways;
// mesh.ttl 6s so that records age out within the test.
type orgMesh struct {
	a1, b1, c1 *meshNode
	sink       *sink
}

// filters, when given, is every node's filters section.
func startOrgMesh(t *testing.T, lifetime, delayWarning time.Duration, filters ...map[string]any) *orgMesh {
	t.Helper()
	smart := startSink(t, 0)
	extra := map[string]any{"mesh": map[string]any{"ttl": "6s", "refresh": "2s"}}
	if len(filters) > 0 {
		extra["filters"] = filters[0]
	}
	inet := map[string]any{"name": "inet", "cost": 10, "smarthost": smart.Addr, "address_spaces": []map[string]any{{"pattern": "*", "cost": 1}}}
	lab := startLab(t, labOptions{
		Members: []labMember{
			{Name: "a1", RG: "rga", Links: []labLink{{Name: "ab", To: "rgb"}, {Name: "ac", To: "rgc"}}, Connectors: []map[string]any{inet}},
			{Name: "b1", RG: "rgb", Links: []labLink{{Name: "ba", To: "rga"}}},
			{Name: "c1", RG: "rgc", Links: []labLink{{Name: "ca", To: "rga"}}},
		},
		Node: nodeOptions{Lifetime: lifetime, DelayWarning: delayWarning, Reserved: []string{smart.Addr}, Extra: extra},
	})
	return &orgMesh{a1: lab.node("a1"), b1: lab.node("b1"), c1: lab.node("c1"), sink: smart}
}

// trace asks a node's admin API for the route of rcpt.
func (n *meshNode) trace(rcpt string) (routing.Decision, error) {
	var tr adminapi.Trace
	err := n.adminGet("/api/mesh/trace?rcpt="+rcpt, &tr)
	return tr.Decision, err
}

func (n *meshNode) holdsRecord(rg string) (bool, error) {
	var l adminapi.LSDB
	if err := n.adminGet("/api/mesh/lsdb", &l); err != nil {
		return false, err
	}
	for _, r := range l.Records {
		if r.RG == rg && !r.Tombstone {
			return true, nil
		}
	}
	return false, nil
}

// TestE2EOrgMailWaitsForAgedOutOwner is the leak of issue 12 with real
// processes: rgb's and rgc's only nodes are killed -9 and stay down past
// the TTL, so their records age out of a1's LSDB and "*" (the external
// connector to the smarthost) is the only address space that matches
// their domains. Mail for them must wait at a1 (trace says why), get its
// delay DSN, and then: bob@rgb.test is delivered into b1's Maildir once b1
// is back; carol@rgc.test, whose c1 never returns, fails with a DSN at
// its lifetime. The smarthost receives nothing at all.
func TestE2EOrgMailWaitsForAgedOutOwner(t *testing.T) {
	om := startOrgMesh(t, 20*time.Second, 3*time.Second)
	a1 := om.a1
	for _, rcpt := range []string{"bob@rgb.test", "carol@rgc.test"} {
		if !testkit.Poll(20*time.Second, func() bool { d, err := a1.trace(rcpt); return err == nil && d.Kind == routing.Remote }) {
			t.Fatalf("a1 has no route to %s", rcpt)
		}
	}
	om.b1.Kill()
	om.c1.Kill()
	if !testkit.Poll(30*time.Second, func() bool {
		b, err1 := a1.holdsRecord("rgb")
		c, err2 := a1.holdsRecord("rgc")
		return err1 == nil && err2 == nil && !b && !c
	}) {
		t.Fatal("rgb's and rgc's records did not age out of a1's LSDB")
	}
	// The routing table follows the LSDB after the SPF hold-down: poll for it.
	for _, rcpt := range []string{"bob@rgb.test", "carol@rgc.test"} {
		var d routing.Decision
		var err error
		if !testkit.Poll(10*time.Second, func() bool {
			d, err = a1.trace(rcpt)
			return err == nil && d.Kind == routing.NoRoute
		}) || d.Refused != routing.ReasonOwnerUnreachable || !strings.Contains(d.Why, "never leaving") {
			t.Fatalf("trace %s after age-out: %v %+v", rcpt, err, d)
		}
		t.Logf("trace %s: %s", rcpt, d.Why)
	}
	send := func(rcpt, subject string) {
		msg := "From: alice@rga.test\r\nTo: " + rcpt + "\r\nSubject: " + subject + "\r\n\r\norganisation mail\r\n"
		if r := pythonSMTP(t, a1.SMTP, step("sendmail", "alice@rga.test", []string{rcpt}, msg)); r[0].Code != 250 {
			t.Fatalf("sendmail to %s: %v", rcpt, r[0])
		}
	}
	subB, subC := uniq(t)+"-b", uniq(t)+"-c"
	send("bob@rgb.test", subB)
	send("carol@rgc.test", subC)
	report := func(action, rcpt string) bool {
		for _, m := range mailbox(a1.Maildir, "alice@rga.test") {
			l := strings.ToLower(m)
			if strings.Contains(l, "multipart/report") && strings.Contains(l, "action: "+action) && strings.Contains(l, rcpt) {
				return true
			}
		}
		return false
	}
	// Both wait (the delay DSN proves at least one failed attempt each).
	if !testkit.Poll(20*time.Second, func() bool { return report("delayed", "bob@rgb.test") && report("delayed", "carol@rgc.test") }) {
		t.Fatalf("no delay DSNs; alice's mailbox:\n%s", strings.Join(mailbox(a1.Maildir, "alice@rga.test"), "\n----\n"))
	}
	if n := len(om.sink.Messages()); n != 0 {
		t.Fatalf("organisation mail leaked: the smarthost received %d messages:\n%s", n, strings.Join(om.sink.Messages(), "\n"))
	}
	om.b1.Start()
	if !testkit.Poll(30*time.Second, func() bool {
		for _, m := range mailbox(om.b1.Maildir, "bob@rgb.test") {
			if strings.Contains(m, "Subject: "+subB) {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("bob@rgb.test not delivered in b1's Maildir after b1 came back")
	}
	if !testkit.Poll(40*time.Second, func() bool { return report("failed", "carol@rgc.test") }) {
		t.Fatalf("no failure DSN for carol@rgc.test at its lifetime; alice's mailbox:\n%s", strings.Join(mailbox(a1.Maildir, "alice@rga.test"), "\n----\n"))
	}
	if report("failed", "bob@rgb.test") {
		t.Errorf("bob@rgb.test was delivered and must not have a failure DSN")
	}
	if n := len(om.sink.Messages()); n != 0 {
		t.Fatalf("organisation mail leaked: the smarthost received %d messages", n)
	}
	t.Logf("smarthost received 0 messages; bob delivered in rgb, carol bounced at lifetime")
}

// meshctl builds cmd/meshctl once per test binary run.
var meshctlOnce struct {
	sync.Once
	bin string
	err error
}

func meshctl(t *testing.T, args ...string) (string, int) {
	t.Helper()
	meshctlOnce.Do(func() {
		meshctlOnce.bin = filepath.Join(binDir, "meshctl")
		out, err := exec.Command("go", "build", "-o", meshctlOnce.bin, "../meshctl").CombinedOutput()
		if err != nil {
			meshctlOnce.err = fmt.Errorf("go build cmd/meshctl: %v\n%s", err, out)
		}
	})
	if meshctlOnce.err != nil {
		t.Fatal(meshctlOnce.err)
	}
	out, err := exec.Command(meshctlOnce.bin, args...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("meshctl %v: %v", args, err)
	}
	return string(out), code
}

// TestE2EDecommission: with rgb's and rgc's nodes down and mail for
// both waiting at a1, `meshctl rg remove rgb` through a1 originates
// rgb's tombstone and the mail for rgb.test fails with a DSN at once;
// taking rgc out of a1's configuration (restart) has the same outcome
// for rgc.test. The smarthost behind "*" receives nothing.
func TestE2EDecommission(t *testing.T) {
	om := startOrgMesh(t, time.Hour, time.Hour)
	a1 := om.a1
	for _, rcpt := range []string{"bob@rgb.test", "carol@rgc.test"} {
		if !testkit.Poll(20*time.Second, func() bool { d, err := a1.trace(rcpt); return err == nil && d.Kind == routing.Remote }) {
			t.Fatalf("a1 has no route to %s", rcpt)
		}
	}
	// The endpoint is a state change: without the node's token it is
	// refused and nothing is removed.
	resp, err := http.Post("http://"+a1.Admin+"/api/mesh/rg/rgb/remove", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("rg remove without a token: HTTP %d, want 401", resp.StatusCode)
	}
	if d, err := a1.trace("bob@rgb.test"); err != nil || d.Kind != routing.Remote {
		t.Fatalf("rgb affected by a refused remove: %v %+v", err, d)
	}
	om.b1.Kill()
	om.c1.Kill()
	for _, rcpt := range []string{"bob@rgb.test", "carol@rgc.test"} {
		msg := "From: alice@rga.test\r\nTo: " + rcpt + "\r\nSubject: " + uniq(t) + "\r\n\r\nfor a group being removed\r\n"
		if r := pythonSMTP(t, a1.SMTP, step("sendmail", "alice@rga.test", []string{rcpt}, msg)); r[0].Code != 250 {
			t.Fatalf("sendmail to %s: %v", rcpt, r[0])
		}
	}
	failed := func(rcpt string) bool {
		for _, m := range mailbox(a1.Maildir, "alice@rga.test") {
			l := strings.ToLower(m)
			if strings.Contains(l, "multipart/report") && strings.Contains(l, "action: failed") && strings.Contains(l, rcpt) {
				return true
			}
		}
		return false
	}
	if failed("bob@rgb.test") || failed("carol@rgc.test") {
		t.Fatal("a failure DSN before any group was removed")
	}
	out, code := meshctl(t, "-admin", a1.Admin, "rg", "remove", "rgb")
	if code != 0 || !strings.Contains(out, "routing group rgb removed: tombstone") {
		t.Fatalf("meshctl rg remove rgb: exit %d\n%s", code, out)
	}
	t.Logf("meshctl rg remove rgb: %s", strings.TrimSpace(out))
	if !testkit.Poll(20*time.Second, func() bool { return failed("bob@rgb.test") }) {
		t.Fatalf("no failure DSN for bob@rgb.test after rg remove; mailbox:\n%s", strings.Join(mailbox(a1.Maildir, "alice@rga.test"), "\n----\n"))
	}
	out, code = meshctl(t, "-admin", a1.Admin, "trace", "bob@rgb.test")
	if code != 1 || !strings.Contains(out, "refused (removed)") {
		t.Errorf("trace of a removed group's domain: exit %d\n%s", code, out)
	}
	if failed("carol@rgc.test") {
		t.Fatal("carol@rgc.test failed although rgc was not removed")
	}

	// rgc leaves a1's configuration.
	if err := a1.Stop(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(a1.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	m := cfg["mesh"].(map[string]any)
	m["routing_groups"] = []map[string]any{{"name": "rga"}, {"name": "rgb"}}
	var conns []any
	for _, c := range cfg["connectors"].([]any) {
		if c.(map[string]any)["to"] != "rgc" {
			conns = append(conns, c)
		}
	}
	cfg["connectors"] = conns
	if raw, err = yaml.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a1.ConfigPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	a1.Start()
	if !testkit.Poll(20*time.Second, func() bool { return failed("carol@rgc.test") }) {
		t.Fatalf("no failure DSN for carol@rgc.test after rgc left the configuration; mailbox:\n%s", strings.Join(mailbox(a1.Maildir, "alice@rga.test"), "\n----\n"))
	}
	if n := len(om.sink.Messages()); n != 0 {
		t.Fatalf("the smarthost received %d messages for removed groups", n)
	}
}

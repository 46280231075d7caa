package main_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/meshd/meshd/edge/milter/miltertest"
	"github.com/meshd/meshd/harness/extern"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/routing"
)

const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

// metric returns the value of one sample line of a node's /metrics
// ("" when absent).
func (n *meshNode) metric(t *testing.T, sample string) string {
	t.Helper()
	resp, err := http.Get("http://" + n.Admin + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindStringSubmatch(string(b))
	if m == nil {
		return ""
	}
	return m[1]
}

// trackLog returns the node's tracking log.
func (n *meshNode) trackLog(t *testing.T) string {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(n.DataDir, "track.log"))
	return string(b)
}

// TestE2EMilterRspamd: Debian's rspamd in milter mode, then our test
// milter, in front of the public listener. swaks's GTUBE message is
// refused with rspamd's own 554 reply and never queued; a clean message
// is delivered with rspamd's headers, and the second milter saw them
// (the chain's order). Verdicts are in the tracking log and the metrics.
func TestE2EMilterRspamd(t *testing.T) {
	rs := extern.StartRspamd(t, "")
	second := miltertest.Start(t, "second")
	n := startNode(t, nodeOptions{Extra: map[string]any{"filters": map[string]any{"milters": []map[string]any{
		{"name": "rspamd", "address": "unix:" + rs.Socket, "timeout": "20s"},
		{"name": "second", "address": second.Addr, "timeout": "5s"},
	}}}})
	spam := uniq(t) + "-spam"
	out, code := swaks(t, "--server", n.SMTP, "--from", "alice@sender.test", "--to", "bob@example.test",
		"--header", "Subject: "+spam, "--body", "Buy now.\n"+gtube+"\n")
	if code == 0 || !strings.Contains(out, "<** 554 5.7.1 Gtube pattern") {
		t.Fatalf("GTUBE: swaks exit %d, want rspamd's 554 passed through:\n%s", code, out)
	}
	t.Logf("GTUBE: %s", regexp.MustCompile(`<\*\* 554[^\n]*`).FindString(out))
	clean := uniq(t) + "-clean"
	if out, code := swaks(t, "--server", n.SMTP, "--from", "alice@sender.test", "--to", "bob@example.test",
		"--header", "Subject: "+clean, "--header", "X-Test-Milter: add-header", "--body", "Lunch at noon?\n"); code != 0 {
		t.Fatalf("clean: swaks exit %d:\n%s", code, out)
	}
	got := waitMailbox(t, n.Maildir, "bob@example.test", 20*time.Second, "Subject: "+clean)
	for _, want := range []string{"X-Spamd-Result:", "X-Rspamd-Server:", "X-Milter-second: seen"} {
		if !strings.Contains(got, want) {
			t.Errorf("delivered message lacks %q:\n%s", want, got)
		}
	}
	if i, j := strings.Index(got, "X-Spamd-Result:"), strings.Index(got, "X-Milter-second:"); i < 0 || j < i {
		t.Errorf("rspamd's header should come before the second milter's:\n%s", got)
	}
	seen := second.Seen()
	if len(seen) != 1 || seen[0].Headers["X-Spamd-Result"] == nil {
		t.Errorf("the second milter saw %d messages (want 1: the GTUBE one stopped at rspamd), without rspamd's header: %+v", len(seen), seen)
	}
	if c := countMailbox(t, n.Maildir, "bob@example.test", spam); c != 0 {
		t.Errorf("the GTUBE message was delivered %d times", c)
	}
	if c := countMailbox(t, n.Maildir, "bob@example.test", clean); c != 1 {
		t.Errorf("the clean message was delivered %d times, want once", c)
	}
	if v := n.metric(t, `meshd_filter_messages_total{verdict="reject"}`); v != "1" {
		t.Errorf("meshd_filter_messages_total{verdict=reject} = %q, want 1", v)
	}
	if v := n.metric(t, `meshd_filter_milter_results_total{milter="rspamd",result="reject"}`); v != "1" {
		t.Errorf("rspamd reject results = %q, want 1", v)
	}
	tl := n.trackLog(t)
	if !strings.Contains(tl, `"event":"filtered"`) || !strings.Contains(tl, `"reply":"554 5.7.1 Gtube pattern"`) || !strings.Contains(tl, `"kind":"accept"`) {
		t.Errorf("tracking log lacks the filter verdicts:\n%s", tl)
	}
}

// TestE2EMilterActions: quarantine holds the message in the queue
// (meshctl queue list shows it held; release delivers it once), discard
// answers 250 and delivers nothing, a replaced body and changed sender
// are delivered as the milter left them.
func TestE2EMilterActions(t *testing.T) {
	m := miltertest.Start(t, "act")
	n := startNode(t, nodeOptions{Extra: map[string]any{"filters": map[string]any{"milters": []map[string]any{
		{"name": "act", "address": m.Addr},
	}}}})
	send := func(subject, actions string, extra ...string) string {
		args := []string{"--server", n.SMTP, "--from", "alice@sender.test", "--to", "bob@example.test",
			"--header", "Subject: " + subject, "--header", "X-Test-Milter: " + actions, "--body", "original body\n"}
		out, code := swaks(t, append(args, extra...)...)
		if code != 0 {
			t.Fatalf("swaks (%s): exit %d\n%s", actions, code, out)
		}
		return regexp.MustCompile(`OK queued as (\S+)`).FindStringSubmatch(out)[1]
	}
	held := uniq(t) + "-held"
	id := send(held, "quarantine")
	out, code := meshctl(t, "-admin", n.Admin, "queue", "list")
	if code != 0 || !strings.Contains(out, id) || !regexp.MustCompile(id+`.*held`).MatchString(out) {
		t.Fatalf("meshctl queue list (exit %d) does not show %s held:\n%s", code, id, out)
	}
	dropped := uniq(t) + "-discard"
	send(dropped, "discard")
	changed := uniq(t) + "-changed"
	send(changed, "replace-body change-from delete-header", "--header", "X-Test-From: bounces@sender.test", "--header", "X-Delete-Me: yes")
	got := waitMailbox(t, n.Maildir, "bob@example.test", 20*time.Second, "Subject: "+changed)
	if !strings.Contains(got, "replaced by act") || strings.Contains(got, "original body") || strings.Contains(got, "X-Delete-Me") {
		t.Errorf("the milter's changes were not delivered:\n%s", got)
	}
	if !strings.Contains(got, "Return-Path: <bounces@sender.test>") {
		t.Errorf("changed sender not used:\n%s", got)
	}
	if c := countMailbox(t, n.Maildir, "bob@example.test", held); c != 0 {
		t.Fatalf("the quarantined message was delivered before its release")
	}
	if out, code := meshctl(t, "-admin", n.Admin, "queue", "release", id); code != 0 {
		t.Fatalf("meshctl queue release: exit %d\n%s", code, out)
	}
	waitMailbox(t, n.Maildir, "bob@example.test", 20*time.Second, "Subject: "+held)
	n.waitQueueEmpty(20 * time.Second)
	for subject, want := range map[string]int{held: 1, dropped: 0, changed: 1} {
		if c := countMailbox(t, n.Maildir, "bob@example.test", subject); c != want {
			t.Errorf("%s delivered %d times, want %d", subject, c, want)
		}
	}
	if v := n.metric(t, `meshd_filter_messages_total{verdict="quarantine"}`); v != "1" {
		t.Errorf("quarantine verdicts = %q, want 1", v)
	}
}

// TestE2EMilterFailureModes: a dead milter with on_failure tempfail gets
// the client a 451 and queues nothing; once the milter is back the same
// message is accepted and delivered once. A milter slower than its
// timeout with on_failure accept lets mail through unfiltered, once.
func TestE2EMilterFailureModes(t *testing.T) {
	ln := miltertest.Listen(t) // accepts connections, never answers
	silent := "tcp:" + ln.Addr().String()
	slow := miltertest.Start(t, "slow")
	slow.SetDelay(3 * time.Second)
	n := startNode(t, nodeOptions{Extra: map[string]any{"filters": map[string]any{"milters": []map[string]any{
		{"name": "silent", "address": silent, "timeout": "300ms", "on_failure": "tempfail"},
	}}}})
	subject := uniq(t)
	args := []string{"--server", n.SMTP, "--from", "alice@sender.test", "--to", "bob@example.test",
		"--header", "Subject: " + subject, "--header", "X-Test-Milter: add-header slow", "--body", "hello\n"}
	out, code := swaks(t, args...)
	if code == 0 || !strings.Contains(out, "<** 451 4.7.1 Content filter unavailable") {
		t.Fatalf("silent milter, tempfail: swaks exit %d, want 451 4.7.1:\n%s", code, out)
	}
	if q, _ := n.queueLen(); q != 0 {
		t.Fatalf("%d messages queued after a 451", q)
	}
	// The client tries again after the operator fixed the filter (here:
	// a milter that is slow, with on_failure accept).
	_ = n.Stop()
	rewriteFilters(t, n, []map[string]any{{"name": "slow", "address": slow.Addr, "timeout": "300ms", "on_failure": "accept"}})
	n.Start()
	if out, code := swaks(t, args...); code != 0 {
		t.Fatalf("slow milter, accept: swaks exit %d:\n%s", code, out)
	}
	got := waitMailbox(t, n.Maildir, "bob@example.test", 20*time.Second, "Subject: "+subject)
	if strings.Contains(got, "X-Milter-slow") {
		t.Errorf("the timed-out milter's change was applied:\n%s", got)
	}
	n.waitQueueEmpty(20 * time.Second)
	if c := countMailbox(t, n.Maildir, "bob@example.test", subject); c != 1 {
		t.Errorf("delivered %d times, want once", c)
	}
	if v := n.metric(t, `meshd_filter_milter_failures_total{milter="slow"}`); v != "1" {
		t.Errorf("meshd_filter_milter_failures_total{milter=slow} = %q, want 1", v)
	}
}

// rewriteFilters replaces filters.milters in a stopped node's config.
func rewriteFilters(t *testing.T, n *meshNode, milters []map[string]any) {
	t.Helper()
	b, err := os.ReadFile(n.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["filters"] = map[string]any{"milters": milters}
	if b, err = yaml.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.ConfigPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestE2EMilterAcrossMesh: a milter on every node of a three-group mesh
// adds a header and a recipient in another routing group when the
// message enters at a1; both recipients get the changed message exactly
// once, and the milter was asked once (mesh hops are not filtered).
func TestE2EMilterAcrossMesh(t *testing.T) {
	m := miltertest.Start(t, "edge")
	om := startOrgMesh(t, time.Hour, 30*time.Minute, map[string]any{"milters": []map[string]any{{"name": "edge", "address": m.Addr}}})
	for _, n := range []*meshNode{om.a1, om.b1, om.c1} {
		waitRoute(t, n, "bob@rgb.test")
		waitRoute(t, n, "carol@rgc.test")
	}
	subject := uniq(t)
	out, code := swaks(t, "--server", om.a1.SMTP, "--from", "alice@rga.test", "--to", "bob@rgb.test",
		"--header", "Subject: "+subject, "--header", "X-Test-Milter: add-header add-rcpt",
		"--header", "X-Test-Add-Rcpt: carol@rgc.test", "--body", "across the mesh\n")
	if code != 0 {
		t.Fatalf("swaks: exit %d\n%s", code, out)
	}
	for _, d := range []struct {
		n    *meshNode
		rcpt string
	}{{om.b1, "bob@rgb.test"}, {om.c1, "carol@rgc.test"}} {
		got := waitMailbox(t, d.n.Maildir, d.rcpt, 30*time.Second, "Subject: "+subject)
		if !strings.Contains(got, "X-Milter-edge: seen") {
			t.Errorf("%s got the message without the milter's header:\n%s", d.rcpt, got)
		}
	}
	for _, n := range []*meshNode{om.a1, om.b1, om.c1} {
		n.waitQueueEmpty(30 * time.Second)
	}
	if c := countMailbox(t, om.b1.Maildir, "bob@rgb.test", subject); c != 1 {
		t.Errorf("bob got it %d times, want once", c)
	}
	if c := countMailbox(t, om.c1.Maildir, "carol@rgc.test", subject); c != 1 {
		t.Errorf("carol got it %d times, want once", c)
	}
	if s := m.Seen(); len(s) != 1 {
		t.Errorf("the milter was asked %d times, want once (at a1 only)", len(s))
	}
}

// waitRoute waits until n has a route for rcpt.
func waitRoute(t *testing.T, n *meshNode, rcpt string) {
	t.Helper()
	if !testkit.Poll(30*time.Second, func() bool {
		d, err := n.trace(rcpt)
		return err == nil && d.Kind != routing.NoRoute
	}) {
		d, err := n.trace(rcpt)
		t.Fatalf("no route for %s: %+v %v", rcpt, d, err)
	}
}

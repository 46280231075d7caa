package main_test

import (
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
)

// TestE2EReloadAuthRes: SIGHUP applies authres.*. Mail from swaks to a
// Maildir of the node gets no Authentication-Results field while
// authres is off; after a reload that turns it on, one field of the new
// authserv-id (and a forged one claiming that id is removed); after a
// reload that changes the id, the new id. A reload with an authserv-id
// the field cannot carry is refused naming authres.authserv_id (log and
// POST /api/reload), and the next message still gets the id in force;
// a reload that turns authres off adds no field again.
func TestE2EReloadAuthRes(t *testing.T) {
	n := startNode(t, nodeOptions{})
	// send delivers one message with a forged field of id ar1 and returns
	// its Maildir copy.
	send := func(label string) string {
		t.Helper()
		subject := uniq(t) + "-" + label
		if out, code := swaks(t, "--server", n.SMTP, "--from", "alice@sender.test", "--to", "bob@example.test",
			"--header", "Subject: "+subject, "--header", "Authentication-Results: ar1.reload.test; dkim=pass header.d=bank.test",
			"--body", "authres reload\n"); code != 0 {
			t.Fatalf("%s: swaks exit %d\n%s", label, code, out)
		}
		return waitMailbox(t, n.Maildir, "bob@example.test", 20*time.Second, "Subject: "+subject)
	}
	fields := func(msg string) []string {
		var out []string
		hdr, _, _ := strings.Cut(msg, "\r\n\r\n")
		for _, l := range strings.Split(hdr, "\r\n") {
			if strings.HasPrefix(strings.ToLower(l), "authentication-results:") {
				out = append(out, l)
			}
		}
		return out
	}
	reload := func(authres map[string]any, wantLog string) {
		t.Helper()
		editConfig(t, n, func(cfg map[string]any) { cfg["authres"] = authres })
		before := strings.Count(n.logTail(), wantLog)
		n.hup(t)
		if !testkit.Poll(10*time.Second, func() bool { return strings.Count(n.logTail(), wantLog) > before }) {
			t.Fatalf("after SIGHUP, no log line with %q:\n%s", wantLog, n.logTail())
		}
	}
	ours := func(msg, id string) bool {
		f := fields(msg)
		return len(f) == 1 && strings.HasPrefix(f[0], "Authentication-Results: "+id+";")
	}

	if got := send("off"); len(fields(got)) != 1 || !strings.Contains(fields(got)[0], "ar1.reload.test; dkim=pass") {
		t.Fatalf("authres off: want the client's field only, got %q:\n%s", fields(got), got)
	}
	reload(map[string]any{"enabled": true, "authserv_id": "ar1.reload.test"}, `applied="[authres.enabled authres.authserv_id]"`)
	if got := send("on"); !ours(got, "ar1.reload.test") || strings.Contains(got, "bank.test") {
		t.Fatalf("after turning authres on: want one field of ar1.reload.test (the forged one removed), got %q:\n%s", fields(got), got)
	}
	reload(map[string]any{"enabled": true, "authserv_id": "ar2.reload.test"}, `applied=[authres.authserv_id]`)
	got := send("renamed")
	if f := fields(got); len(f) != 2 || !strings.HasPrefix(f[0], "Authentication-Results: ar2.reload.test;") {
		t.Fatalf("after renaming: want ar2's field on top and the client's ar1 field kept, got %q:\n%s", f, got)
	}

	reload(map[string]any{"enabled": true, "authserv_id": "bad;id"}, "reload refused")
	if !testkit.Poll(5*time.Second, func() bool { return strings.Contains(n.logTail(), "authres.authserv_id") }) {
		t.Errorf("the refused reload does not name authres.authserv_id:\n%s", n.logTail())
	}
	if rep := adminReload(t, n); rep.code != 422 || !strings.Contains(rep.body, "authres.authserv_id") {
		t.Errorf("POST /api/reload: %d %s, want 422 naming authres.authserv_id", rep.code, rep.body)
	}
	if got := send("refused"); !strings.HasPrefix(fields(got)[0], "Authentication-Results: ar2.reload.test;") {
		t.Fatalf("after a refused reload: want the id in force (ar2.reload.test), got %q:\n%s", fields(got), got)
	}

	reload(map[string]any{"enabled": false}, `applied="[authres.enabled authres.authserv_id]"`)
	if got := send("off-again"); len(fields(got)) != 1 || !strings.Contains(fields(got)[0], "ar1.reload.test; dkim=pass") {
		t.Fatalf("authres off again: want the client's field only, got %q:\n%s", fields(got), got)
	}
}

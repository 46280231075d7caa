package main_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/edge/milter/miltertest"
	"github.com/meshd/meshd/harness/extern"
	"github.com/meshd/meshd/internal/testkit"
)

// TestE2EReloadFiltersAndDKIM: SIGHUP reloads filters.milters and
// dkim.keys. A second milter added by a reload is asked about the next
// message and a removed one no longer is; a DKIM key added by a reload
// signs the next message leaving by the smarthost, and Debian's
// dkimverify accepts it against the TXT record dnsmasq serves. A reload
// naming a key file that does not exist, or a milter without an address,
// is refused naming the key; the node keeps the old chain and keys and
// goes on filtering and signing with them.
func TestE2EReloadFiltersAndDKIM(t *testing.T) {
	one, two := miltertest.Start(t, "one"), miltertest.Start(t, "two")
	keys := t.TempDir()
	txt := map[string]string{}
	for _, sel := range []string{"old", "new"} {
		out, code := meshctl(t, "-json", "dkim", "keygen", "-alg", "ed25519", "-out", filepath.Join(keys, sel+".key"), "example.org", sel)
		if code != 0 {
			t.Fatalf("meshctl dkim keygen: exit %d\n%s", code, out)
		}
		txt[sel] = regexp.MustCompile(`"txt": "([^"]+)"`).FindStringSubmatch(out)[1]
	}
	dns := startDKIMDNS(t, txt)
	smart := startSink(t, 0)
	key := func(sel string) map[string]any {
		return map[string]any{"domain": "example.org", "selector": sel, "key_file": filepath.Join(keys, sel+".key")}
	}
	n := startNode(t, nodeOptions{AllowNetworks: []string{"127.0.0.0/8"}, Smarthost: smart.Addr, Reserved: []string{dns.Addr},
		Extra: map[string]any{
			"filters": map[string]any{"milters": []map[string]any{{"name": "one", "address": one.Addr}}},
			"dkim":    map[string]any{"keys": []map[string]any{key("old")}},
		}})
	// send mails one message out by the smarthost and returns it as
	// the smarthost got it.
	send := func(label string) string {
		t.Helper()
		subject := uniq(t) + "-" + label
		if out, code := swaks(t, "--server", n.SMTP, "--from", "alice@example.org", "--to", "bob@remote.test",
			"--header", "Subject: "+subject, "--header", "X-Test-Milter: add-header", "--body", "reload\n"); code != 0 {
			t.Fatalf("%s: swaks exit %d\n%s", label, code, out)
		}
		got, ok := smart.waitMessage(20*time.Second, "Subject: "+subject)
		if !ok {
			t.Fatalf("%s: nothing reached the smarthost", label)
		}
		return got
	}
	selectors := func(msg string) string {
		var s []string
		for _, m := range regexp.MustCompile(`(?s)DKIM-Signature:.*?s=([a-z0-9]+);`).FindAllStringSubmatch(msg, -1) {
			s = append(s, m[1])
		}
		return strings.Join(s, ",")
	}
	reload := func(edit func(cfg map[string]any), wantLog string) {
		t.Helper()
		editConfig(t, n, edit)
		before := strings.Count(n.logTail(), wantLog)
		n.hup(t)
		if !testkit.Poll(10*time.Second, func() bool { return strings.Count(n.logTail(), wantLog) > before }) {
			t.Fatalf("after SIGHUP, no log line with %q:\n%s", wantLog, n.logTail())
		}
	}

	got := send("before")
	if !strings.Contains(got, "X-Milter-one: seen") || strings.Contains(got, "X-Milter-two") || selectors(got) != "old" {
		t.Fatalf("before the reload: want one's header and an 'old' signature:\n%s", got)
	}

	// Add milter two and key new.
	reload(func(cfg map[string]any) {
		cfg["filters"] = map[string]any{"milters": []map[string]any{{"name": "one", "address": one.Addr}, {"name": "two", "address": two.Addr}}}
		cfg["dkim"] = map[string]any{"keys": []map[string]any{key("old"), key("new")}}
	}, `applied="[filters.milters dkim.keys]"`)
	got = send("added")
	if !strings.Contains(got, "X-Milter-one: seen") || !strings.Contains(got, "X-Milter-two: seen") || selectors(got) != "new,old" && selectors(got) != "old,new" {
		t.Fatalf("after adding: want both milters' headers and both signatures (got %q):\n%s", selectors(got), got)
	}
	for i := range 2 {
		if out, ok := dkimVerify(t, dns.Port, got, i); !ok {
			t.Errorf("dkimverify --index %d: %s\n%s", i, out, got)
		}
	}

	// Remove milter one and key old.
	seenOne, rcptsOne := len(one.Seen()), len(one.Rcpts())
	reload(func(cfg map[string]any) {
		cfg["filters"] = map[string]any{"milters": []map[string]any{{"name": "two", "address": two.Addr}}}
		cfg["dkim"] = map[string]any{"keys": []map[string]any{key("new")}}
	}, `applied="[filters.milters dkim.keys]"`)
	got = send("removed")
	if strings.Contains(got, "X-Milter-one") || !strings.Contains(got, "X-Milter-two: seen") || selectors(got) != "new" {
		t.Fatalf("after removing: want two's header only and a 'new' signature:\n%s", got)
	}
	if len(one.Seen()) != seenOne || len(one.Rcpts()) != rcptsOne {
		t.Errorf("the removed milter was still asked: %d messages (had %d), %d RCPTs (had %d)", len(one.Seen()), seenOne, len(one.Rcpts()), rcptsOne)
	}

	// Broken: a key file that does not exist, then a milter without an
	// address. Each is refused naming the key; the old ones stay.
	for _, bad := range []struct {
		edit func(cfg map[string]any)
		key  string
	}{
		{func(cfg map[string]any) {
			cfg["dkim"] = map[string]any{"keys": []map[string]any{{"domain": "example.org", "selector": "gone", "key_file": filepath.Join(keys, "gone.key")}}}
		}, "dkim.keys[0].key_file"},
		{func(cfg map[string]any) {
			cfg["dkim"] = map[string]any{"keys": []map[string]any{key("new")}}
			cfg["filters"] = map[string]any{"milters": []map[string]any{{"name": "one"}}}
		}, "filters.milters[0].address"},
	} {
		reload(bad.edit, "reload refused")
		if !testkit.Poll(5*time.Second, func() bool { return strings.Contains(n.logTail(), bad.key) }) {
			t.Errorf("the refused reload does not name %s:\n%s", bad.key, n.logTail())
		}
		if rep := adminReload(t, n); rep.code != 422 || !strings.Contains(rep.body, bad.key) {
			t.Errorf("POST /api/reload: %d %s, want 422 naming %s", rep.code, rep.body, bad.key)
		}
		got = send("refused")
		if !strings.Contains(got, "X-Milter-two: seen") || strings.Contains(got, "X-Milter-one") || selectors(got) != "new" {
			t.Fatalf("after a refused reload (%s): want the chain and key in force before it:\n%s", bad.key, got)
		}
	}
	if _, err := os.Stat(filepath.Join(keys, "gone.key")); err == nil {
		t.Fatal("gone.key exists")
	}
}

// startDKIMDNS serves the TXT records of example.org's selectors
// (selector -> record value, one string per 255 bytes).
func startDKIMDNS(t *testing.T, txt map[string]string) *extern.DNSMasq {
	t.Helper()
	var recs []extern.Record
	for sel, v := range txt {
		var parts []string
		for len(v) > 255 {
			parts, v = append(parts, v[:255]), v[255:]
		}
		recs = append(recs, extern.TXT(sel+"._domainkey.example.org", strings.Join(append(parts, v), ",")))
	}
	return extern.StartDNSMasq(t, append(recs, extern.Local("example.org"))...)
}

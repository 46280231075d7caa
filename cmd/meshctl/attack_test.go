package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshd/meshd/harness/extern"
	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/adminapi"
)

// abState is connector ab as a1 sees it: up, and the override in force.
func abState(t *testing.T, admin string) string {
	t.Helper()
	var l adminapi.LSDB
	if err := getJSON(admin, "/api/mesh/lsdb", &l); err != nil {
		t.Fatal(err)
	}
	for _, r := range l.Records {
		for _, c := range r.Connectors {
			if c.ID == "ab" {
				return fmt.Sprintf("up=%t admin=%q", c.Up, c.Admin)
			}
		}
	}
	t.Fatal("no connector ab in a1's LSDB")
	return ""
}

// deliveredCopies counts the Maildir files of the demo's nodes that hold
// the message with msgID.
func deliveredCopies(t *testing.T, dir, msgID string) int {
	t.Helper()
	n := 0
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(path, string(filepath.Separator)+"maildir"+string(filepath.Separator)) {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte("Message-ID: <"+msgID+">")) {
			n++
		}
		return nil
	})
	return n
}

func waitDelivered(t *testing.T, dir, msgID string) {
	t.Helper()
	testkit.Eventually(t, 30*time.Second, msgID+" delivered", func() error {
		if n := deliveredCopies(t, dir, msgID); n != 1 {
			return fmt.Errorf("%d copies", n)
		}
		return nil
	})
}

// attackPage is a page of another origin that, as soon as it loads, posts
// to a1's admin API the way a page may without asking anyone: a no-cors
// fetch with a text/plain body, then a form (enctype as given) that
// submits itself into a frame. (A form that navigates the page itself
// leaves headless chromium's --dump-dom waiting forever.)
const attackPage = `<!doctype html><html><body>
<iframe name="sink"></iframe>
<form id="f" target="sink" method="POST" action="http://%[1]s/api/mesh/connector/ab/down" enctype="%[2]s">
<input name="x" value="y"></form>
<script>
fetch("http://%[1]s/api/mesh/connector/ab/down", {method: "POST", mode: "no-cors", body: "x=y"})
  .catch(function () {})
  .finally(function () { document.getElementById("f").submit(); });
</script></body></html>`

// refused returns a1's count of admin requests refused for reason.
func refused(t *testing.T, admin, reason string) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^meshd_admin_refused_requests_total\{reason="` + reason + `"\} (\d+)$`).FindStringSubmatch(httpGet(t, "http://"+admin+"/metrics"))
	if m == nil {
		return 0
	}
	var n int
	fmt.Sscan(m[1], &n)
	return n
}

// TestBrowserCrossSiteAdmin plays a web page that the operator of a demo
// node opens in a browser (headless chromium): from another origin it
// posts cross-site forms (urlencoded, multipart, text/plain) and a no-cors
// fetch to POST /api/mesh/connector/ab/down; every one is refused and ab
// is unchanged. A DNS-rebinding name that resolves to 127.0.0.1 is refused
// for reads and writes. meshctl, with no flags, still changes ab (it finds
// the node's token itself), and mail sent before and after the attack is
// delivered exactly once.
func TestBrowserCrossSiteAdmin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 6-node mesh and a browser")
	}
	extern.Require(t, extern.FindChromium)
	d, dir := startDemo(t)
	a1 := d.Info().Nodes[0]
	sendMail(t, a1.SMTP, "alice@rga.test", "bob@rgc.test", "before-attack@client.test")
	waitDelivered(t, dir, "before-attack@client.test")
	before := abState(t, a1.Admin)
	if before != `up=true admin=""` {
		t.Fatalf("ab before the attack: %s", before)
	}

	var loads atomic.Int32
	var enctype atomic.Value
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		loads.Add(1)
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, attackPage, a1.Admin, enctype.Load())
	}))
	defer attacker.Close()
	for _, et := range []string{"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"} {
		enctype.Store(et)
		n, r0 := loads.Load(), refused(t, a1.Admin, "origin")
		dom := string(browse(t, attacker.URL+"/", "--dump-dom"))
		if loads.Load() == n || !strings.Contains(dom, `id="f"`) {
			t.Fatalf("%s: chromium never loaded the attacker's page; DOM:\n%.2000s", et, dom)
		}
		if got := abState(t, a1.Admin); got != before {
			t.Fatalf("%s: ab changed by a cross-site request: %s", et, got)
		}
		// Both requests reached a1 and were refused as cross-site.
		if r := refused(t, a1.Admin, "origin"); r < r0+2 {
			t.Fatalf("%s: %d cross-site refusals counted, want the fetch and the form (2)", et, r-r0)
		} else {
			t.Logf("%s: %d cross-site requests refused", et, r-r0)
		}
	}

	// DNS rebinding: a name of the attacker's, resolved to 127.0.0.1,
	// is same-origin for the browser, so only the Host check stands.
	port := a1.Admin[strings.LastIndexByte(a1.Admin, ':')+1:]
	dom := string(browse(t, "http://rebind.attacker.test:"+port+"/api/mesh/lsdb", "--dump-dom",
		"--host-resolver-rules=MAP rebind.attacker.test 127.0.0.1"))
	if !strings.Contains(dom, "does not name this admin listener") || strings.Contains(dom, `"records"`) {
		t.Fatalf("rebinding read not refused; DOM:\n%.2000s", dom)
	}
	req, _ := http.NewRequest("POST", "http://"+a1.Admin+"/api/mesh/connector/ab/down", strings.NewReader("{}"))
	req.Host = "rebind.attacker.test:" + port
	req.Header.Set("Origin", "http://rebind.attacker.test:"+port)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("rebinding POST: HTTP %d %s, want 403", resp.StatusCode, body)
	}
	if got := abState(t, a1.Admin); got != before {
		t.Fatalf("ab changed by a rebinding request: %s", got)
	}
	if n := refused(t, a1.Admin, "host"); n < 2 {
		t.Errorf("%d rebinding requests counted as refused, want 2", n)
	}

	// The operator, with meshctl and no flags.
	for _, step := range []struct{ action, want string }{{"down", `admin="down"`}, {"up", `up=true admin=""`}} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"-admin", a1.Admin, "connector", step.action, "ab"}, &stdout, &stderr); code != 0 {
			t.Fatalf("meshctl connector %s ab: exit %d: %s", step.action, code, stderr.String())
		}
		testkit.Eventually(t, 30*time.Second, "ab "+step.action, func() error {
			if got := abState(t, a1.Admin); !strings.Contains(got, step.want) {
				return fmt.Errorf("ab: %s", got)
			}
			return nil
		})
	}

	sendMail(t, a1.SMTP, "alice@rga.test", "bob@rgc.test", "after-attack@client.test")
	waitDelivered(t, dir, "after-attack@client.test")
	if n := deliveredCopies(t, dir, "before-attack@client.test"); n != 1 {
		t.Errorf("the message sent before the attack: %d copies", n)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

package adminapi

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokenFileName)
	tok, err := LoadOrCreateToken(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 64 {
		t.Errorf("token %q: want 64 hex characters", tok)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %04o, want 0600", st.Mode().Perm())
	}
	again, err := LoadOrCreateToken(path)
	if err != nil || again != tok {
		t.Fatalf("second start: %q, %v; want the same token", again, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateToken(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable token file: %v, want refused", err)
	}
	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateToken(short); err == nil {
		t.Error("a 6-character token was accepted")
	}
}

const testToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// guardServer serves an OK handler behind Guard on a real loopback listener.
func guardServer(t *testing.T, readsNeedToken bool) (srv *httptest.Server, port string, refused *[]string) {
	t.Helper()
	var reasons []string
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := GuardConfig{
		Token: testToken, TokenFile: "/data/admin.token", Listener: ln.Addr(), Hosts: []string{"admin.example.test"},
		ReadsNeedToken: readsNeedToken, OnRefused: func(r string) { reasons = append(reasons, r) },
	}
	srv = httptest.NewUnstartedServer(Guard(cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"ok":true}`)
	})))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return srv, port, &reasons
}

// TestGuard drives the guard over real HTTP as a browser on another site,
// a rebinding page and a client without or with the token would.
func TestGuard(t *testing.T) {
	srv, port, reasons := guardServer(t, false)
	bearer := "Bearer " + testToken
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("op:"+testToken))
	tests := []struct {
		name, method, host string
		hdr                map[string]string
		code               int
		reason             string
	}{
		{"read, no token", "GET", "", nil, 200, ""},
		{"read via localhost", "GET", "localhost:" + port, nil, 200, ""},
		{"read via ::1", "GET", "[::1]:" + port, nil, 200, ""},
		{"read via configured name", "GET", "admin.example.test:" + port, nil, 200, ""},
		{"rebinding name", "GET", "attacker.example:" + port, nil, 403, "host"},
		{"rebinding name, no port", "GET", "attacker.example", nil, 403, "host"},
		{"other port", "GET", "127.0.0.1:1", nil, 403, "host"},
		{"rebinding name with token", "POST", "rebind.attacker.example:" + port, map[string]string{"Authorization": bearer}, 403, "host"},
		{"write, no token", "POST", "", nil, 401, "token"},
		{"write, wrong token", "POST", "", map[string]string{"Authorization": "Bearer " + strings.Repeat("0", 64)}, 401, "token"},
		{"write, token prefix", "POST", "", map[string]string{"Authorization": "Bearer " + testToken[:63]}, 401, "token"},
		{"write, bearer", "POST", "", map[string]string{"Authorization": bearer}, 200, ""},
		{"delete, bearer", "DELETE", "", map[string]string{"Authorization": bearer}, 200, ""},
		{"write, basic", "POST", "", map[string]string{"Authorization": basic}, 200, ""},
		{"write, json body", "POST", "", map[string]string{"Authorization": bearer, "Content-Type": "application/json"}, 200, ""},
		{"form urlencoded", "POST", "", map[string]string{"Authorization": bearer, "Content-Type": "application/x-www-form-urlencoded"}, 415, "content_type"},
		{"form multipart", "POST", "", map[string]string{"Authorization": bearer, "Content-Type": "multipart/form-data; boundary=x"}, 415, "content_type"},
		{"form text/plain", "POST", "", map[string]string{"Authorization": bearer, "Content-Type": "Text/Plain; charset=utf-8"}, 415, "content_type"},
		{"foreign origin", "POST", "", map[string]string{"Authorization": bearer, "Origin": "http://attacker.example"}, 403, "origin"},
		{"null origin", "POST", "", map[string]string{"Authorization": bearer, "Origin": "null"}, 403, "origin"},
		{"same origin", "POST", "", map[string]string{"Authorization": bearer, "Origin": "http://" + srv.Listener.Addr().String()}, 200, ""},
		{"sec-fetch-site cross-site", "POST", "", map[string]string{"Authorization": bearer, "Sec-Fetch-Site": "cross-site"}, 403, "origin"},
		{"foreign origin read", "GET", "", map[string]string{"Origin": "http://attacker.example"}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			*reasons = nil
			req, _ := http.NewRequest(tt.method, srv.URL+"/api/x", nil)
			if tt.host != "" {
				req.Host = tt.host
			}
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.code {
				t.Fatalf("HTTP %d, want %d: %s", resp.StatusCode, tt.code, body)
			}
			if got := strings.Join(*reasons, ","); got != tt.reason {
				t.Errorf("refusals %q, want %q", got, tt.reason)
			}
			if tt.code == 401 {
				var e ErrorInfo
				if err := json.Unmarshal(body, &e); err != nil || e.TokenFile != "/data/admin.token" {
					t.Errorf("401 answer %s: want the token file named to a loopback client", body)
				}
				if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
				}
			}
		})
	}
}

func TestGuardReadsNeedToken(t *testing.T) {
	srv, _, _ := guardServer(t, true)
	resp, err := http.Get(srv.URL + "/status/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || len(resp.Header.Values("WWW-Authenticate")) != 2 {
		t.Fatalf("read without token under auth all: HTTP %d, challenges %q", resp.StatusCode, resp.Header.Values("WWW-Authenticate"))
	}
	req, _ := http.NewRequest("GET", srv.URL+"/status/", nil)
	req.SetBasicAuth("anyone", testToken) // as a browser sends it after asking
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("read with the token: HTTP %d", resp.StatusCode)
	}
}

func TestGuardTokenFileOnlyToLoopback(t *testing.T) {
	if isLoopbackRemote("192.0.2.7:4000") || !isLoopbackRemote("127.0.0.1:4000") || !isLoopbackRemote("[::1]:1") {
		t.Fatal("isLoopbackRemote")
	}
}

func TestParseCredential(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for h, want := range map[string]string{
		"Bearer abc":             "abc",
		"bearer   abc":           "abc",
		"Basic " + b64("u:abc"):  "abc",
		"Basic " + b64(":abc"):   "abc",
		"Basic " + b64("u:a:b"):  "a:b",
		"Bearer":                 "",
		"Bearer ":                "",
		"Bearer a b":             "",
		"Token abc":              "",
		"Basic " + b64("abc"):    "",
		"Basic !!!":              "",
		"Basic " + b64("u:a\tb"): "",
		"":                       "",
	} {
		got, ok := ParseCredential(h)
		if got != want || ok != (want != "") {
			t.Errorf("ParseCredential(%q) = %q, %v; want %q", h, got, ok, want)
		}
	}
}

// FuzzParseCredential checks ParseCredential against its rule: what it
// returns is a non-empty token of printable ASCII without spaces, and
// every such token comes back out of both schemes. (A find kept as a seed:
// a form feed, which TrimSpace took.)
func FuzzParseCredential(f *testing.F) {
	for _, s := range []string{"Bearer abc", "Basic dTphYmM=", "basic Og==", "Bearer  x y", "Basic", "\x00 \x00"} {
		f.Add(s, "tok")
	}
	f.Fuzz(func(t *testing.T, h, tok string) {
		if got, ok := ParseCredential(h); ok && !printableToken(got) {
			t.Fatalf("ParseCredential(%q) = %q", h, got)
		} else if !ok && got != "" {
			t.Fatalf("ParseCredential(%q) = %q but not ok", h, got)
		}
		if !printableToken(tok) {
			return
		}
		if got, ok := ParseCredential("Bearer " + tok); !ok || got != tok {
			t.Fatalf("Bearer %q: %q, %v", tok, got, ok)
		}
		basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+tok))
		if got, ok := ParseCredential(basic); !ok || got != tok {
			t.Fatalf("Basic with %q: %q, %v", tok, got, ok)
		}
	})
}

// FuzzParseTokenFile: an accepted token is at least 32 printable ASCII
// characters without spaces, and is the file's content trimmed.
func FuzzParseTokenFile(f *testing.F) {
	f.Add([]byte(testToken + "\n"))
	f.Add([]byte("short\n"))
	f.Add([]byte(" " + testToken + "\x00"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		tok, err := ParseTokenFile(raw)
		if err != nil {
			return
		}
		if len(tok) < minTokenLen || tok != strings.TrimSpace(string(raw)) {
			t.Fatalf("ParseTokenFile(%q) = %q", raw, tok)
		}
		for i := 0; i < len(tok); i++ {
			if tok[i] <= ' ' || tok[i] > '~' {
				t.Fatalf("ParseTokenFile(%q) = %q: byte %q", raw, tok, tok[i])
			}
		}
	})
}

func TestHostAllowedWildcardListener(t *testing.T) {
	self := net.ParseIP("0.0.0.0")
	for host, want := range map[string]bool{
		"192.0.2.10:8025": true, "[2001:db8::1]:8025": true, "localhost:8025": true,
		"evil.example:8025": false, "192.0.2.10:9": false, "": false,
	} {
		if got := hostAllowed(host, "8025", self, nil); got != want {
			t.Errorf("hostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
}

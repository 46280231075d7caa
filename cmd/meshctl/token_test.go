package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/meshd/meshd/node/adminapi"
)

// guardedAdmin is an admin listener with the node's guard and token file in
// front of a connector endpoint; it counts the requests that got through.
func guardedAdmin(t *testing.T) (addr, tokenFile string, passed *atomic.Int32) {
	t.Helper()
	tokenFile = filepath.Join(t.TempDir(), adminapi.TokenFileName)
	tok, err := adminapi.LoadOrCreateToken(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	passed = new(atomic.Int32)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/mesh/connector/{name}/{action}", func(w http.ResponseWriter, r *http.Request) {
		passed.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"connector":"ab","action":"down","admin":"down"}`))
	})
	srv := httptest.NewUnstartedServer(adminapi.Guard(adminapi.GuardConfig{Token: tok, TokenFile: tokenFile, Listener: ln.Addr()}, mux))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return ln.Addr().String(), tokenFile, passed
}

func TestTokenDiscovery(t *testing.T) {
	addr, tokenFile, passed := guardedAdmin(t)
	ctl := func(env string, args ...string) (int, string) {
		t.Setenv("MESHD_ADMIN_TOKEN_FILE", env)
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"-admin", addr}, args...), &stdout, &stderr)
		return code, stderr.String()
	}
	// No flags: the 401 names the token file, meshctl reads it and asks again.
	if code, errOut := ctl("", "connector", "down", "ab"); code != 0 || passed.Load() != 1 {
		t.Fatalf("no flags: exit %d, %d requests passed: %s", code, passed.Load(), errOut)
	}
	if code, errOut := ctl(tokenFile, "connector", "down", "ab"); code != 0 || passed.Load() != 2 {
		t.Fatalf("MESHD_ADMIN_TOKEN_FILE: exit %d: %s", code, errOut)
	}
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte(strings.Repeat("f", 64)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, errOut := ctl("", "-token-file", wrong, "connector", "down", "ab"); code != exitError || !strings.Contains(errOut, "admin token refused (HTTP 401)") {
		t.Errorf("wrong token: exit %d, stderr %q", code, errOut)
	}
	if code, errOut := ctl("", "-token-file", filepath.Join(t.TempDir(), "none"), "connector", "down", "ab"); code != exitError || !strings.Contains(errOut, "run meshctl as the node's user, or give -token-file") {
		t.Errorf("missing token file: exit %d, stderr %q", code, errOut)
	}
	if passed.Load() != 2 {
		t.Errorf("%d requests passed the guard, want 2", passed.Load())
	}
}

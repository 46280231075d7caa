package node

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/node/adminapi"
)

// adminCall makes one admin API request with the node's token (token
// false: without it) and decodes the answer, which must be JSON, into v.
func adminCall(t *testing.T, n *Node, method, path string, token bool, wantCode int, v any) string {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+n.AdminAddr().String()+path, nil)
	if token {
		req.Header.Set("Authorization", "Bearer "+adminToken(t, n))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantCode {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, wantCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); v != nil && !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: content type %q", method, path, ct)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, body)
		}
	}
	return string(body)
}

func TestAdminAPI(t *testing.T) {
	cfg := testConfig(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0") // smarthost that never answers: mail stays queued
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg.Outbound.Smarthost = ln.Addr().String()
	cfg.Outbound.ConnectTimeout = 200 * time.Millisecond
	cfg.Queue.Retry.Initial, cfg.Queue.Retry.Max = time.Hour, time.Hour
	cfg.Relay.AllowNetworks = []string{"127.0.0.1"}
	n := startNode(t, cfg, Options{})
	base := "http://" + n.AdminAddr().String()
	mustSend(t, n.SMTPAddr(), "alice@example.test", []string{"x@far.test"}, message("admin"))

	do := func(method, path string, wantCode int, v any) {
		t.Helper()
		adminCall(t, n, method, path, method != "GET", wantCode, v)
	}

	var st StatusInfo
	do("GET", "/api/status", 200, &st)
	if st.Node != "n1" || st.RoutingGroup != "rg1" || st.Listeners["smtp"] != n.SMTPAddr().String() || st.Queue.Messages != 1 {
		t.Errorf("status = %+v", st)
	}
	var list QueueList
	do("GET", "/api/queue", 200, &list)
	if len(list.Messages) != 1 {
		t.Fatalf("list = %+v", list)
	}
	id := list.Messages[0].ID
	var mi MessageInfo
	do("GET", "/api/queue/"+id, 200, &mi)
	if mi.From != "alice@example.test" || len(mi.Recipients) != 1 || mi.Recipients[0].Addr != "x@far.test" || mi.Source != "smtp" {
		t.Errorf("show = %+v", mi)
	}

	var e ErrorInfo
	do("GET", "/api/queue/nosuchmessage", 404, &e)
	if !strings.Contains(e.Error, "not found") {
		t.Errorf("404 error body = %+v", e)
	}
	do("POST", "/api/queue/nosuchmessage/retry", 404, &e)
	do("POST", "/api/queue/"+id+"/explode", 404, &e)
	do("GET", "/api/queue?held=maybe", 400, &e)
	do("GET", "/api/nothing", 404, &e)

	var res ActionResult
	do("POST", "/api/queue/"+id+"/hold", 200, &res)
	if res.Result == nil || !res.Result.Held {
		t.Errorf("hold result = %+v", res)
	}
	do("GET", "/api/queue?held=true", 200, &list)
	if len(list.Messages) != 1 {
		t.Errorf("held list = %+v", list)
	}
	do("POST", "/api/queue/"+id+"/release", 200, &res)
	do("POST", "/api/queue/"+id+"/retry", 200, &res)
	do("DELETE", "/api/queue/"+id, 200, &res)
	do("GET", "/api/queue/"+id, 404, &e)

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`meshd_smtp_accepted_messages_total{source="smtp"} 1`, "meshd_queue_messages 0"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// adminToken is the admin token n created at its start.
func adminToken(t testing.TB, n *Node) string {
	t.Helper()
	b, err := os.ReadFile(n.cfg.Admin.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := adminapi.ParseTokenFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

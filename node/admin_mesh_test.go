package node

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAdminMeshEndpoints covers the mesh endpoints on a standalone node
// and on a mesh node: answers, status codes, the status page and metrics.
func TestAdminMeshEndpoints(t *testing.T) {
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var token string // a1's, for the state-changing requests (all to a1)
	get := func(t *testing.T, method, url string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		if method != "GET" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	// A standalone node whose smarthost never answers: mail waits for it.
	blackhole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer blackhole.Close()
	scfg := testConfig(t)
	scfg.Outbound.Smarthost = blackhole.Addr().String()
	scfg.Outbound.ConnectTimeout = 200 * time.Millisecond
	scfg.Queue.Retry.Initial, scfg.Queue.Retry.Max = time.Hour, time.Hour
	scfg.Relay.AllowNetworks = []string{"127.0.0.1"}
	standalone := startNode(t, scfg, Options{})
	mustSend(t, standalone.SMTPAddr(), "alice@example.test", []string{"x@far.test"}, message("waiting"))
	hop := "smarthost " + blackhole.Addr().String()
	tm := newTestMesh(t, map[string][]string{"rga": {"a1"}, "rgb": {"b1"}},
		[]meshLink{{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10}})
	a1 := tm.nodes["a1"]
	// Both records, and the routing table computed from them (it follows
	// the LSDB after the SPF hold-down).
	poll(t, 30*time.Second, "a1 holds both records and routes to rgb", func() error {
		if a1.Mesh().LSDB().Snapshot().Len() != 2 {
			return io.EOF
		}
		return tm.pathIs("a1", "rgb.test", "rga>rgb")()
	})
	sbase, mbase := "http://"+standalone.AdminAddr().String(), "http://"+a1.AdminAddr().String()
	token = adminToken(t, a1)

	tests := []struct {
		name, method, url string
		code              int
		contains          string
	}{
		{"standalone members", "GET", sbase + "/api/mesh/members", 409, "standalone"},
		{"standalone lsdb", "GET", sbase + "/api/mesh/lsdb", 409, "standalone"},
		{"standalone track", "GET", sbase + "/api/track/nothing", 404, "no tracking events"},
		{"standalone status page", "GET", sbase + "/status/", 200, "<html"},
		{"standalone queue per next hop", "GET", sbase + "/status/status.json", 200, `"next_hop": "` + hop + `"`},
		{"standalone next-hop metrics", "GET", sbase + "/metrics", 200, `meshd_queue_next_hop_messages{next_hop="` + hop + `"} 1`},
		{"root redirects", "GET", mbase + "/", 302, ""},
		{"members", "GET", mbase + "/api/mesh/members", 200, `"master": "a1"`},
		{"lsdb", "GET", mbase + "/api/mesh/lsdb", 200, `"rg": "rgb"`},
		{"routes", "GET", mbase + "/api/mesh/routes", 200, `"address_space": "rgb.test"`},
		{"trace", "GET", mbase + "/api/mesh/trace?rcpt=bob@rgb.test&id=m1", 200, "path: rga -\\u003e rgb"},
		{"trace no rcpt", "GET", mbase + "/api/mesh/trace", 400, "rcpt"},
		{"connector unknown", "POST", mbase + "/api/mesh/connector/zz/down", 404, "no such connector"},
		{"connector bad action", "POST", mbase + "/api/mesh/connector/ab/off", 404, "want up, down or drain"},
		{"connector drain", "POST", mbase + "/api/mesh/connector/ab/drain", 200, `"admin": "drain"`},
		{"connector up", "POST", mbase + "/api/mesh/connector/ab/up", 200, `"admin": "auto"`},
		{"graph dot", "GET", mbase + "/api/mesh/graph.dot", 200, "digraph"},
		{"status json", "GET", mbase + "/status/status.json", 200, `"node": "a1"`},
		{"metrics", "GET", mbase + "/metrics", 200, `meshd_connector_up{connector="ab",rg="rga"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, hdr := get(t, tt.method, tt.url)
			if code != tt.code {
				t.Fatalf("%s %s: HTTP %d, want %d: %s", tt.method, tt.url, code, tt.code, body)
			}
			if !strings.Contains(body, tt.contains) {
				t.Errorf("%s %s: body lacks %q:\n%s", tt.method, tt.url, tt.contains, body)
			}
			if code == 302 && hdr.Get("Location") != "/status/" {
				t.Errorf("redirect to %q, want /status/", hdr.Get("Location"))
			}
		})
	}
	// The tables a1 used were timed (the gauge loop observes each new one).
	poll(t, 10*time.Second, "an SPF duration observed", func() error {
		if h := metricOf(t, a1, "meshd_routing_spf_duration_seconds").GetHistogram(); h.GetSampleCount() == 0 || h.GetSampleSum() <= 0 {
			return fmt.Errorf("histogram %d samples, sum %v", h.GetSampleCount(), h.GetSampleSum())
		}
		return nil
	})
	_, metrics, _ := get(t, "GET", mbase+"/metrics")
	for _, name := range []string{"meshd_linkstate_records 2", "meshd_mesh_is_master{rg=\"rga\"} 1", "meshd_xlink_sessions_total",
		"meshd_linkstate_convergence_seconds_count", "meshd_queue_oldest_age_seconds 0", "meshd_connector_admin_overrides_total{action=\"drain\"} 1"} {
		if !strings.Contains(metrics, name) {
			t.Errorf("metrics lack %q", name)
		}
	}
}

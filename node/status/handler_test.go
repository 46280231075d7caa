package status

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func newTestServer(t *testing.T, src Source) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(NewHandler(src, Options{Now: func() time.Time { return testTime }}))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestHandlerRoutes(t *testing.T) {
	srv := newTestServer(t, &fakeSource{abUp: true})
	tests := []struct {
		path   string
		code   int
		ctype  string
		substr []string
	}{
		{"/", 200, "text/html; charset=utf-8", []string{
			"<svg", `id="conn-a-ab" data-state="up"`, `id="conn-a-ac" data-state="drain"`, "(admin drain)",
			`id="conn-b-bc" data-state="suppressed"`, `id="conn-c-cd" data-state="held"`,
			"a2 &rarr; 127.0.0.1:25b1: <b>up</b>", ">1500<", "b via 127.0.0.1:25b1", ">4m3s<", "1.2.7.1",
			`style="background: #1e9e3a"`, "00070e151c232a31"}},
		{"/graph.svg", 200, "image/svg+xml", []string{"<svg", "conn&#45;a&#45;ab"}},
		{"/graph.dot", 200, "text/vnd.graphviz; charset=utf-8", []string{"digraph meshd {", `"rg:a" -> "rg:b"`, "ac  cost 30\\ndrain"}},
		{"/status.json", 200, "application/json", []string{`"node": "a1"`}},
		{"/nope", 404, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body := get(t, srv.URL+tt.path)
			if resp.StatusCode != tt.code {
				t.Fatalf("GET %s: %d, want %d", tt.path, resp.StatusCode, tt.code)
			}
			if tt.ctype != "" && resp.Header.Get("Content-Type") != tt.ctype {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tt.ctype)
			}
			for _, s := range tt.substr {
				if !strings.Contains(body, s) {
					t.Errorf("GET %s lacks %q", tt.path, s)
				}
			}
		})
	}
	resp, err := http.Post(srv.URL+"/status.json", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /status.json: %d, want 405", resp.StatusCode)
	}
}

func TestHandlerJSON(t *testing.T) {
	src := &fakeSource{abUp: true}
	srv := newTestServer(t, src)
	fetch := func() Status {
		_, body := get(t, srv.URL+"/status.json")
		var st Status
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("status.json: %v\n%s", err, body)
		}
		return st
	}
	conn := func(st Status, rg, id string) ConnectorStatus {
		for _, c := range st.Connectors {
			if c.RG == rg && c.ID == id {
				return c
			}
		}
		t.Fatalf("no connector %s/%s in %+v", rg, id, st.Connectors)
		return ConnectorStatus{}
	}
	st := fetch()
	if st.Node != "a1" || st.RG != "a" || st.Master != "a1" || st.Records != 4 || !st.Time.Equal(testTime) {
		t.Errorf("header fields: %+v", st)
	}
	if len(st.Members) != 2 || st.Members[0].Name != "a1" || !st.Members[0].Master || st.Members[1].Master {
		t.Errorf("members: %+v", st.Members)
	}
	if len(st.Queues) != 2 || st.Queues[0].NextHop != "b via 127.0.0.1:25b1" || st.Queues[0].Messages != 12 || st.Queues[0].OldestAgeSeconds != 243 {
		t.Errorf("queues not sorted or wrong: %+v", st.Queues)
	}
	var got []string
	for _, rg := range st.RoutingGroups {
		got = append(got, rg.Name+"@"+rg.Version)
	}
	if strings.Join(got, " ") != "a@1.2.7.1 b@2.1.1.1 c@3.1.4.2 d@1.1.0.0" {
		t.Errorf("routing groups %v", got)
	}
	ab := conn(st, "a", "ab")
	if ab.State != StateUp || ab.Penalty == nil || *ab.Penalty != 1500 || len(ab.Pairs) != 2 || ab.Pairs[0].Source != "a1" {
		t.Errorf("ab: %+v", ab)
	}
	if ac := conn(st, "a", "ac"); ac.State != StateDrain || ac.Admin != "drain" || ac.Penalty == nil || *ac.Penalty != 0 {
		t.Errorf("ac: %+v", ac)
	}
	if ba := conn(st, "b", "ba"); ba.Penalty != nil {
		t.Errorf("penalty shown for another RG's connector: %+v", ba)
	}
	if cx := conn(st, "c", "cx"); cx.To != "" || cx.Smarthost != "127.0.0.1:2500" || len(cx.AddressSpaces) != 1 || cx.AddressSpaces[0] != "* (100)" {
		t.Errorf("cx: %+v", cx)
	}

	src.setAB(false)
	st2 := fetch()
	if ab := conn(st2, "a", "ab"); ab.State != StateDown || ab.Color != StateDown.Color() || ab.Pairs[0].State != StateDown {
		t.Errorf("after flip ab: %+v", ab)
	}
	if st2.Digest == st.Digest {
		t.Error("digest did not change with the source")
	}
}

// TestHandlerSVGFollowsSource: the SVG cache is keyed by the DOT text, so
// a changed topology is drawn at once.
func TestHandlerSVGFollowsSource(t *testing.T) {
	src := &fakeSource{abUp: true}
	srv := newTestServer(t, src)
	_, up := get(t, srv.URL+"/graph.svg")
	_, up2 := get(t, srv.URL+"/graph.svg")
	if up != up2 {
		t.Error("same topology drew differently")
	}
	src.setAB(false)
	_, down := get(t, srv.URL+"/graph.svg")
	if up == down || !strings.Contains(down, `class="edge conn state&#45;down"`) {
		t.Errorf("SVG did not follow the source")
	}
}

// TestHandlerRendersOnChange: polling an unchanged topology renders it
// once (go-graphviz keeps some memory per rendering); a change renders
// again; the decaying damping penalties are not part of the drawing.
func TestHandlerRendersOnChange(t *testing.T) {
	src := &fakeSource{abUp: true}
	h := NewHandler(src, Options{}).(*handler)
	srv := httptest.NewServer(h)
	defer srv.Close()
	renders := func() int {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.renders
	}
	for i := 0; i < 5; i++ {
		get(t, srv.URL+"/graph.svg")
		get(t, srv.URL+"/")
	}
	if n := renders(); n != 1 {
		t.Errorf("5 polls of an unchanged topology rendered %d times, want 1", n)
	}
	_, dot := get(t, srv.URL+"/graph.dot")
	if strings.Contains(dot, "penalty") {
		t.Errorf("graph.dot carries damping penalties:\n%s", dot)
	}
	src.setAB(false)
	get(t, srv.URL+"/graph.svg")
	get(t, srv.URL+"/graph.svg")
	if n := renders(); n != 2 {
		t.Errorf("after one change: %d renderings, want 2", n)
	}
}

// TestHandlerPrefix: mounted under a prefix, the page and its data work.
func TestHandlerPrefix(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/status/", http.StripPrefix("/status", NewHandler(&fakeSource{abUp: true}, Options{})))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, p := range []string{"/status/", "/status/status.json", "/status/graph.svg", "/status/graph.dot"} {
		if resp, _ := get(t, srv.URL+p); resp.StatusCode != 200 {
			t.Errorf("GET %s: %d", p, resp.StatusCode)
		}
	}
	_, page := get(t, srv.URL+"/status/")
	if strings.Contains(page, `fetch("/`) {
		t.Error("page fetches an absolute path; it breaks under a prefix")
	}
}

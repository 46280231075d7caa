package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node"
)

func tp(s string) *time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return &t
}

// fakeAdmin serves canned admin API answers, so the golden output is stable.
func fakeAdmin(t *testing.T) string {
	t.Helper()
	msgs := []node.MessageInfo{
		{
			ID: "k2yq4xw7d3h5n6p8r9s2t4v6wa", From: "alice@example.test", Size: 4321,
			ReceivedAt: *tp("2026-11-25T10:00:00Z"), Source: "submission", AuthUser: "alice", ClientAddr: "127.0.0.1:40000",
			NextAttempt: tp("2026-11-25T10:08:00Z"),
			Recipients: []node.RecipientInfo{
				{Addr: "bob@far.test", State: "pending", Attempts: 3, LastAttempt: tp("2026-11-25T10:04:00Z"),
					NextAttempt: tp("2026-11-25T10:08:00Z"), LastError: "451 4.4.1 far.test: connect: connection refused"},
				{Addr: "carol@example.test", State: "delivered", Attempts: 1, LastAttempt: tp("2026-11-25T10:00:01Z"),
					LastReply: "250 2.0.0 delivered"},
			},
		},
		{
			ID: "a7b3c5d7e2f4g6h8i3j5k7m2na", From: "", Size: 3 << 20, Held: true,
			ReceivedAt: *tp("2026-11-25T09:30:00Z"), Source: "dsn",
			Recipients: []node.RecipientInfo{{Addr: "dave@far.test", State: "pending"}},
		},
	}
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, node.StatusInfo{
			Node: "n1", RoutingGroup: "rg1", Hostname: "n1.rg1.meshd.test", LocalDomains: []string{"example.test"},
			Listeners: map[string]string{"smtp": "127.0.0.1:2525", "submission": "127.0.0.1:2587", "admin": "127.0.0.1:8025"},
			Queue:     node.QueueStats{Messages: 2, Bytes: 3<<20 + 4321, Oldest: tp("2026-11-25T09:30:00Z")},
		})
	})
	mux.HandleFunc("GET /api/queue", func(w http.ResponseWriter, r *http.Request) {
		out := msgs
		if r.URL.Query().Get("held") == "true" {
			out = msgs[1:]
		}
		writeJSON(w, 200, node.QueueList{Messages: out})
	})
	find := func(id string) *node.MessageInfo {
		for i := range msgs {
			if msgs[i].ID == id {
				return &msgs[i]
			}
		}
		return nil
	}
	mux.HandleFunc("GET /api/queue/{id}", func(w http.ResponseWriter, r *http.Request) {
		if m := find(r.PathValue("id")); m != nil {
			writeJSON(w, 200, m)
			return
		}
		writeJSON(w, 404, node.ErrorInfo{Error: "queue: message not found"})
	})
	mux.HandleFunc("POST /api/queue/{id}/{action}", func(w http.ResponseWriter, r *http.Request) {
		m := find(r.PathValue("id"))
		if m == nil {
			writeJSON(w, 404, node.ErrorInfo{Error: "queue: message not found"})
			return
		}
		writeJSON(w, 200, node.ActionResult{ID: m.ID, Action: r.PathValue("action"), Result: m})
	})
	mux.HandleFunc("DELETE /api/queue/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, node.ActionResult{ID: r.PathValue("id"), Action: "delete"})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestGolden(t *testing.T) {
	t.Setenv("MESHD_ADMIN", "") // the usage text shows the default address
	admin := fakeAdmin(t)
	// A port nothing listens on, for the unreachable case.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	tests := []struct {
		name string
		args []string
		code int
	}{
		{"status", []string{"status"}, 0},
		{"status-json", []string{"-json", "status"}, 0},
		{"queue-list", []string{"queue", "list"}, 0},
		{"queue-list-held", []string{"queue", "list", "-held"}, 0},
		{"queue-list-json", []string{"-json", "queue", "list"}, 0},
		{"queue-show", []string{"queue", "show", "k2yq4xw7d3h5n6p8r9s2t4v6wa"}, 0},
		{"queue-show-unknown", []string{"queue", "show", "nosuchmessage"}, 1},
		{"queue-hold", []string{"queue", "hold", "k2yq4xw7d3h5n6p8r9s2t4v6wa"}, 0},
		{"queue-retry-unknown", []string{"queue", "retry", "nosuchmessage"}, 1},
		{"queue-delete-json", []string{"-json", "queue", "delete", "a7b3c5d7e2f4g6h8i3j5k7m2na"}, 0},
		{"usage-no-command", nil, 2},
		{"usage-unknown", []string{"frobnicate"}, 2},
		{"usage-show-no-id", []string{"queue", "show"}, 2},
		{"usage-queue-bad", []string{"queue", "purge"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"-admin", admin}, tt.args...), &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.code, stderr.String())
			}
			got := fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", code, stdout.String(), stderr.String())
			golden(t, tt.name, got)
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"-admin", dead, "status"}, &stdout, &stderr); code != exitUnreachable {
			t.Errorf("exit code %d, want %d", code, exitUnreachable)
		}
		if !strings.Contains(stderr.String(), "cannot reach node admin API at "+dead) {
			t.Errorf("stderr = %q", stderr.String())
		}
	})
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	testkit.Golden(t, filepath.Join("testdata", name+".golden"), []byte(got))
}

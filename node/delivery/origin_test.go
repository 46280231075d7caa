package delivery

import (
	"testing"

	"github.com/meshd/meshd/queue"
)

// TestOriginID: the origin recorded at accept is used; a record queued
// before Envelope.Origin existed falls back to the X-Meshd-Origin a mesh
// peer gave the message, or its own ID, so its copies keep their IDs.
func TestOriginID(t *testing.T) {
	body := []byte("X-Meshd-Origin: origin-0001\r\nSubject: s\r\n\r\nb\r\n")
	for _, tc := range []struct {
		name string
		env  queue.Envelope
		body []byte
		want string
	}{
		{"recorded", queue.Envelope{ID: "copy-0002", Origin: "origin-0009"}, body, "origin-0009"},
		{"old record, mesh copy", queue.Envelope{ID: "copy-0002"}, body, "origin-0001"},
		{"old record, entered here", queue.Envelope{ID: "local-0003"}, []byte("Subject: s\r\n\r\n"), "local-0003"},
	} {
		if got := originID(&queue.Message{Envelope: tc.env}, tc.body); got != tc.want {
			t.Errorf("%s: originID = %q, want %q", tc.name, got, tc.want)
		}
	}
}

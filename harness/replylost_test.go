package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTallyReplyLost: a message found twice only at an external receiver,
// whose sender logged the first transaction unanswered after the final
// dot, is the duplicate RFC 5321 §6.1 accepts, not a mesh fault; every
// other second copy stays a duplicate.
func TestTallyReplyLost(t *testing.T) {
	sent := []sentMsg{{id: "a", accepted: true}, {id: "b", accepted: true}, {id: "c", accepted: true}, {id: "d", accepted: true}}
	d := Deliveries{
		Copies:    map[string]int{"a": 2, "b": 2, "c": 2, "d": 3},
		External:  map[string]int{"a": 2, "b": 2, "c": 1, "d": 3},
		ReplyLost: map[string]int{"a": 1, "c": 1, "d": 1},
		Bounced:   map[string]string{},
	}
	// a: both copies out, one lost reply. b: no lost reply. c: one copy
	// inside the mesh. d: two extra copies, one lost reply.
	m := tally(sent, d)
	if m.DuplicatedReplyLost != 1 || m.Duplicated != 3 || m.Delivered != 4 {
		t.Errorf("tally: %+v, want 1 after a lost reply, 3 duplicated, 4 delivered", m)
	}
}

// TestCountReplyLost reads the senders' word from a tracking log: the
// Message-ID of the received event, once per deferral with reply_lost
// outside the mesh, across the rotated file.
func TestCountReplyLost(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "track.log")
	old := `{"event":"received","id":"q1","message_id":"m1@test"}` + "\n"
	cur := strings.Join([]string{
		`{"event":"deferred","id":"q1","kind":"smarthost","reply_lost":true}`,
		`{"event":"deferred","id":"q1","kind":"smarthost"}`,
		`{"event":"received","id":"q2","message_id":"m2@test"}`,
		`{"event":"deferred","id":"q2","kind":"mesh","reply_lost":true}`,
		`{"event":"deferred","id":"q1","kind":"mx","reply_lost":true}`,
		`{"event":"deferr`,
	}, "\n")
	if err := os.WriteFile(path+".1", []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(cur), 0o600); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	if err := countReplyLost(path, out); err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out["m1@test"] != 2 {
		t.Errorf("reply lost %v, want m1@test 2", out)
	}
	if err := countReplyLost(filepath.Join(dir, "none"), out); err != nil {
		t.Errorf("a node without a log: %v", err)
	}
}

package tracking

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshd/meshd/node/delivery"
	"github.com/meshd/meshd/queue"
)

// Log appends events to the node's tracking log.
type Log struct {
	node, rg string
	now      func() time.Time
	path     string
	max      int64
	log      *slog.Logger

	mu   sync.Mutex
	f    *os.File
	size int64
}

// Open opens (or creates) dir/track.log for node of routing group rg.
func Open(dir, node, rg string, now func() time.Time, log *slog.Logger) (*Log, error) {
	t := &Log{node: node, rg: rg, now: now, path: filepath.Join(dir, trackFile), max: trackMaxBytes, log: log}
	if err := t.open(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Log) open() error {
	f, err := os.OpenFile(t.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("tracking: open log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("tracking: open log: %w", err)
	}
	t.f, t.size = f, st.Size()
	return nil
}

// add appends ev. Tracking never fails mail: errors are logged.
func (t *Log) add(ev Event) {
	ev.Node, ev.RG = t.node, t.rg
	line, err := json.Marshal(ev)
	if err != nil {
		return
	}
	line = append(line, '\n')
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f == nil {
		return
	}
	if t.size+int64(len(line)) > t.max && t.size > 0 {
		t.rotateLocked()
	}
	n, err := t.f.Write(line)
	t.size += int64(n)
	if err != nil {
		t.log.Warn("tracking log write failed", "err", err)
	}
}

func (t *Log) rotateLocked() {
	t.f.Close()
	t.f = nil
	if err := os.Rename(t.path, t.path+".1"); err != nil {
		t.log.Warn("tracking log rotate failed", "err", err)
	}
	if err := t.open(); err != nil {
		t.log.Warn("tracking log reopen failed", "err", err)
	}
}

// Close closes the log; later events are dropped.
func (t *Log) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f == nil {
		return nil
	}
	err := t.f.Close()
	t.f = nil
	return err
}

// Find returns the events of this node whose ID, Message-ID or DSN ID is
// one of keys, oldest first.
func (t *Log) Find(keys []string) []Event {
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[normKey(k)] = true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Event
	for _, p := range []string{t.path + ".1", t.path} {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if !containsAny(line, want) {
				continue
			}
			var ev Event
			if json.Unmarshal(line, &ev) != nil {
				continue
			}
			if want[ev.ID] || (ev.MessageID != "" && want[normKey(ev.MessageID)]) || (ev.DSNID != "" && want[ev.DSNID]) {
				out = append(out, ev)
			}
		}
		f.Close()
	}
	return out
}

// containsAny is a cheap filter before decoding a line.
func containsAny(line []byte, keys map[string]bool) bool {
	lower := bytes.ToLower(line)
	for k := range keys {
		if bytes.Contains(lower, []byte(k)) {
			return true
		}
	}
	return false
}

// normKey makes "<Abc@host>" and "abc@host" the same key.
func normKey(k string) string {
	return strings.ToLower(strings.Trim(strings.TrimSpace(k), "<>"))
}

// Record appends ev, stamped with the clock when it has no time yet.
func (t *Log) Record(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = t.now().UTC()
	}
	t.add(ev)
}

// Received records a message the node has just queued (size: body bytes).
func (t *Log) Received(env queue.Envelope, size int, listener string) {
	ev := Event{Event: Received, ID: env.ID, MessageID: env.MessageID,
		From: env.From, Source: env.Source, Listener: listener, Client: env.ClientAddr, Size: int64(size)}
	for _, r := range env.Rcpts {
		ev.Rcpts = append(ev.Rcpts, r.Addr)
	}
	t.Record(ev)
}

// Attempted records the outcome of one delivery attempt of a destination
// group (delivery.Tracker).
func (t *Log) Attempted(m *queue.Message, a delivery.Attempt) {
	byOutcome := map[queue.Outcome][]queue.Result{}
	for _, r := range a.Results {
		byOutcome[r.Outcome] = append(byOutcome[r.Outcome], r)
	}
	for _, o := range []queue.Outcome{queue.Delivered, queue.TempFail, queue.PermFail} {
		rs := byOutcome[o]
		if len(rs) == 0 {
			continue
		}
		ev := Event{ID: m.ID, Kind: a.Kind, Dest: a.Dest, Addr: a.Remote, Reply: rs[0].Reply.String(), Connector: a.Connector}
		for _, r := range rs {
			ev.Rcpts = append(ev.Rcpts, r.Addr)
		}
		switch o {
		case queue.Delivered:
			ev.Event = Delivered
			if a.Kind == delivery.KindMesh {
				ev.Event = Relayed
				ev.CopyID = a.CopyID
				ev.NextHop = a.NextHop
			}
		case queue.TempFail:
			ev.Event = Deferred
			ev.ReplyLost = slices.ContainsFunc(rs, func(r queue.Result) bool { return r.ReplyLost })
		case queue.PermFail:
			ev.Event = Bounced
		}
		t.Record(ev)
	}
}

// DSNQueued records a delivery status notification queued for m
// (delivery.Tracker).
func (t *Log) DSNQueued(m *queue.Message, dsnID, kind string) {
	t.Record(Event{Event: DSN, ID: m.ID, DSNID: dsnID, Kind: kind, Rcpts: []string{m.From}})
}

// Answer serves the channel's tracking requests (channel.ServerConfig.Track).
func (t *Log) Answer(_ context.Context, keys []string) [][]byte {
	var out [][]byte
	for _, ev := range t.Find(keys) {
		if b, err := json.Marshal(ev); err == nil {
			out = append(out, b)
		}
	}
	return out
}

package queue

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// TestValueLogGC stores bodies in small value-log files, deletes them and
// lets the GC goroutine run; Close must stop it (goleak checks in TestMain)
// and the surviving bodies must still read back.
func TestValueLogGC(t *testing.T) {
	q := openQueue(t, Options{GCInterval: 5 * time.Millisecond, tune: func(o badger.Options) badger.Options {
		return o.WithValueThreshold(1 << 10).WithValueLogFileSize(1 << 20)
	}})
	body := bytes.Repeat([]byte("v"), 8<<10)
	for i := range 400 {
		mustEnqueue(t, q, env(fmt.Sprintf("gc-%06d", i), "a@x"), body)
	}
	for i := range 400 {
		if i%10 == 0 {
			continue
		}
		if err := q.Delete(fmt.Sprintf("gc-%06d", i)); err != nil {
			t.Fatal(err)
		}
	}
	q.runGC() // also directly, so the path runs even if the ticker has not fired
	for i := 0; i < 400; i += 10 {
		b, err := q.Body(fmt.Sprintf("gc-%06d", i))
		if err != nil || !bytes.Equal(b, body) {
			t.Fatalf("body %d after GC: %v", i, err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}

// logRecorder is a slog handler that keeps records.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logRecorder) Enabled(_ context.Context, l slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r)
	h.mu.Unlock()
	return nil
}
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

func TestBadgerLogLevels(t *testing.T) {
	h := &logRecorder{}
	l := badgerLogger{slog.New(h)}
	l.Infof("opened %d tables\n", 3)
	l.Debugf("debug")
	l.Warningf("warn %s", "x")
	l.Errorf("boom")
	want := []struct {
		level slog.Level
		msg   string
	}{
		{slog.LevelDebug, "badger: opened 3 tables"},
		{slog.LevelDebug, "badger: debug"},
		{slog.LevelWarn, "badger: warn x"},
		{slog.LevelError, "badger: boom"},
	}
	if len(h.recs) != len(want) {
		t.Fatalf("got %d records", len(h.recs))
	}
	for i, w := range want {
		if h.recs[i].Level != w.level || h.recs[i].Message != w.msg || strings.HasSuffix(h.recs[i].Message, "\n") {
			t.Errorf("record %d = %v %q, want %v %q", i, h.recs[i].Level, h.recs[i].Message, w.level, w.msg)
		}
	}
}

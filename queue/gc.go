package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// gcLoop runs value-log GC every GCInterval, repeating while it reclaims a
// file, until Close.
func (q *Queue) gcLoop() {
	defer q.wg.Done()
	if q.opts.InMemory {
		<-q.stop
		return
	}
	t := time.NewTicker(q.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-t.C:
		}
		if _, err := q.ExpireShadows(q.now()); err != nil && !errors.Is(err, ErrClosed) {
			q.log.Warn("queue: expire shadows", "err", err)
		}
		q.runGC()
	}
}

// runGC rewrites value-log files until badger finds none worth rewriting.
func (q *Queue) runGC() {
	for n := 0; ; n++ {
		select {
		case <-q.stop:
			return
		default:
		}
		err := q.db.RunValueLogGC(gcDiscardRatio)
		switch {
		case err == nil:
			continue
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			if n > 0 {
				q.log.Debug("queue: value-log gc", "files", n)
			}
		default:
			q.log.Warn("queue: value-log gc", "err", err)
		}
		return
	}
}

// badgerLogger routes badger's logging to slog: errors and warnings as such,
// its chatty info and debug lines at debug level.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) log(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !b.l.Enabled(ctx, level) {
		return
	}
	b.l.Log(ctx, level, "badger: "+strings.TrimRight(fmt.Sprintf(format, args...), "\n"))
}

func (b badgerLogger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a) }
func (b badgerLogger) Infof(f string, a ...any)    { b.log(slog.LevelDebug, f, a) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug, f, a) }

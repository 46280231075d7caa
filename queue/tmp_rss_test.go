package queue

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func rss() string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func TestTmpFootprint(t *testing.T) {
	mode := os.Getenv("FP")
	var tune func(badger.Options) badger.Options
	if mode == "default" {
		tune = func(o badger.Options) badger.Options {
			d := badger.DefaultOptions(o.Dir)
			return d.WithSyncWrites(true).WithLogger(o.Logger).WithMetricsEnabled(false)
		}
	}
	t.Logf("before open %s", rss())
	dir := t.TempDir()
	q := openQueue(t, Options{Dir: dir, tune: tune})
	t.Logf("after open %s", rss())
	body := make([]byte, 4096)
	for i := range 20000 {
		if i%2000 == 0 {
		}
		if err := q.Enqueue(context.Background(), env(fmt.Sprintf("fp-%08d", i), "a@x"), body); err != nil {
			t.Fatal(err)
		}
		if i >= 1000 {
			q.Delete(fmt.Sprintf("fp-%08d", i-1000))
		}
	}
	t.Logf("after 20000 enq/19000 del %s disk=%dMB", rss(), dirSize(dir)>>20)
	_ = dirSize
}

package harness

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func testLogger() *slog.Logger {
	if os.Getenv("HARNESS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// TestScenarioLibrary runs every scenario of the library against real
// nodes and requires each to pass its assertions.
func TestScenarioLibrary(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real meshes for minutes")
	}
	files, err := filepath.Glob("scenarios/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name[:len(name)-len(".yaml")], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			dir := t.TempDir()
			if keep := os.Getenv("HARNESS_KEEP"); keep != "" {
				dir = filepath.Join(keep, t.Name())
			}
			rep, err := RunFile(ctx, f, Options{DataDir: dir, Logger: testLogger()})
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			rep.WriteText(&buf)
			t.Logf("\n%s", buf.String())
			if !rep.Passed {
				for _, a := range rep.Failed() {
					t.Errorf("%s: %s", a.Name, a.Detail)
				}
			}
		})
	}
}

package harness

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testLogger() *slog.Logger {
	if os.Getenv("HARNESS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// scenarioEnv names the one scenario file a child test process runs.
const scenarioEnv = "HARNESS_SCENARIO_FILE"

// TestScenarioLibrary runs every scenario of the library against real
// nodes and requires each to pass its assertions. Each scenario runs in a
// child process of this test binary: a node that panics fails its
// scenario, not the whole library.
func TestScenarioLibrary(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real meshes for minutes")
	}
	if f := os.Getenv(scenarioEnv); f != "" {
		runScenario(t, f)
		return
	}
	files, err := filepath.Glob("scenarios/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestScenarioLibrary$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), scenarioEnv+"="+f)
			out, err := cmd.CombinedOutput()
			t.Logf("\n%s", childReport(out))
			if err != nil {
				t.Errorf("scenario %s failed: %v", name, err)
			}
		})
	}
}

// childReport keeps a child's report and failures, or its panic.
func childReport(out []byte) string {
	s := string(out)
	if i := strings.Index(s, "panic:"); i >= 0 {
		end := min(len(s), i+3000)
		return "NODE PANIC in the scenario's process:\n" + s[i:end]
	}
	return s
}

func runScenario(t *testing.T, file string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	if keep := os.Getenv("HARNESS_KEEP"); keep != "" {
		dir = filepath.Join(keep, strings.TrimSuffix(filepath.Base(file), ".yaml"))
	}
	rep, err := RunFile(ctx, file, Options{DataDir: dir, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	rep.WriteText(&buf)
	t.Logf("\n%s", buf.String())
	for _, a := range rep.Failed() {
		t.Errorf("%s: %s", a.Name, a.Detail)
	}
}

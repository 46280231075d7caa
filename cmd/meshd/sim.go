package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/meshd/meshd/harness"
)

// runSim is `meshd sim [-json] [-keep DIR] [-v] FILE`: it runs one
// harness scenario in this process and prints its report. The exit code is
// 0 when every assertion passed, 1 when one failed or the run could not be
// carried out, 2 for usage and scenario errors.
func runSim(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("meshd sim", "[-json] [-keep DIR] [-v] SCENARIO.yaml", stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	keep := fs.String("keep", "", "keep the nodes' data directories under `DIR` (default: a temporary directory, removed)")
	verbose := fs.Bool("v", false, "log what the nodes do (debug) to stderr")
	if !parseArgs(fs, args, 1, stderr) {
		return 2
	}
	sc, err := harness.LoadScenario(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "meshd sim: %v\n", err)
		return 2
	}
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if *keep != "" {
		if err := os.MkdirAll(*keep, 0o700); err != nil {
			fmt.Fprintf(stderr, "meshd sim: %v\n", err)
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := harness.Run(ctx, sc, harness.Options{Logger: logger, DataDir: *keep})
	if err != nil {
		fmt.Fprintf(stderr, "meshd sim: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "meshd sim: %v\n", err)
			return 1
		}
	} else if err := rep.WriteText(stdout); err != nil {
		fmt.Fprintf(stderr, "meshd sim: %v\n", err)
		return 1
	}
	if !rep.Passed {
		return 1
	}
	return 0
}

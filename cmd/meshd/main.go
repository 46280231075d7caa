// Command meshd runs one meshd node: SMTP in, durable queue, delivery to
// Maildir, LMTP, a smarthost or MX hosts, and the admin HTTP API.
//
//	meshd [-config FILE]
//
// Without -config it runs on the embedded defaults: one node on loopback
// high ports, data in ./meshd-data, local domain example.test. SIGINT or
// SIGTERM stops it gracefully.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/meshd/meshd/node"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/sdnotify"
	buildversion "github.com/meshd/meshd/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it parses args, runs the node until a
// signal and returns the exit code (0 ok, 1 runtime error, 2 usage/config).
// SIGINT and SIGTERM stop the node gracefully; SIGHUP reloads the
// configuration file (reload.go) and never stops it.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "sim" {
		return runSim(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "org" {
		return runOrg(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "demo" {
		return runDemo(args[1:], stdout, stderr)
	}
	fs := newFlagSet("meshd", "[-config FILE] [-check] [-version]\n       meshd org init|issue ...\n       meshd demo [-dir DIR] [-base PORT] [-v]\n       meshd sim [-json] [-keep DIR] [-v] SCENARIO.yaml", stderr)
	configPath := fs.String("config", "", "YAML configuration `file` (default: embedded defaults on loopback)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	checkOnly := fs.Bool("check", false, "validate the configuration and exit")
	if !parseArgs(fs, args, 0, stderr) {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "meshd", version())
		return 0
	}
	cfg := config.Default()
	if *configPath != "" {
		var err error
		if cfg, err = config.Load(*configPath); err != nil {
			fmt.Fprintf(stderr, "meshd: %v\n", err)
			return 2
		}
	} else if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "meshd: %v\n", err)
		return 2
	}
	if *checkOnly {
		fmt.Fprintln(stdout, "meshd: configuration ok")
		return 0
	}
	level := new(slog.LevelVar)
	logger := newLogger(cfg.Log, level, stderr)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGHUP reloads (systemd's ExecReload sends it); registered before the
	// node exists so that an early one cannot kill the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	notify := sdnotify.FromEnv()

	var n *node.Node
	r := &reloader{path: *configPath, log: logger, notify: notify}
	n, err := node.New(cfg, node.Options{Logger: logger, LogLevel: level, Reload: r.reload})
	if err != nil {
		fmt.Fprintf(stderr, "meshd: %v\n", err)
		return 1
	}
	r.node = n
	if err := n.Start(); err != nil {
		fmt.Fprintf(stderr, "meshd: %v\n", err)
		_ = n.Close()
		return 1
	}
	printListeners(stdout, n, cfg, *configPath == "")
	// Listeners are open and the queue is loaded: the unit is up.
	if err := notify.Ready("accepting mail"); err != nil {
		logger.Warn("sd_notify", "err", err)
	}
	stopWatchdog := startWatchdog(notify, logger)
	defer stopWatchdog()
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-hup:
			logger.Info("SIGHUP received, reloading configuration", "config_file", *configPath)
			_, _ = r.reload()
		}
	}
	logger.Info("signal received, shutting down")
	_ = notify.Stopping()
	if err := n.Close(); err != nil {
		fmt.Fprintf(stderr, "meshd: shutdown: %v\n", err)
		return 1
	}
	return 0
}

func printListeners(w io.Writer, n *node.Node, cfg config.Config, defaults bool) {
	if defaults {
		fmt.Fprintf(w, "meshd %s: running on embedded defaults (no -config)\n", version())
	} else {
		fmt.Fprintf(w, "meshd %s: node %s in routing group %s\n", version(), cfg.Node.Name, cfg.Node.RoutingGroup)
	}
	fmt.Fprintf(w, "  smtp        %s\n", n.SMTPAddr())
	if a := n.SubmissionAddr(); a != nil {
		fmt.Fprintf(w, "  submission  %s (AUTH after STARTTLS)\n", a)
	}
	if a := n.AdminAddr(); a != nil {
		fmt.Fprintf(w, "  admin       http://%s/api/status\n", a)
	}
	fmt.Fprintf(w, "  data        %s\n", cfg.Node.DataDir)
	fmt.Fprintf(w, "  local       %v", cfg.LocalDomains)
	if cfg.Delivery.Mode == "maildir" {
		fmt.Fprintf(w, " -> Maildir %s\n", cfg.Delivery.Maildir)
	} else {
		fmt.Fprintf(w, " -> LMTP %s\n", cfg.Delivery.LMTP)
	}
}

func newLogger(c config.Log, level *slog.LevelVar, w io.Writer) *slog.Logger {
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func version() string { return buildversion.Get().String() }

// newFlagSet is a flag set for meshd or one of its subcommands, whose
// usage line is "usage: NAME SYNOPSIS" followed by the flags.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses args and checks that exactly want positional arguments
// remain; on an error it prints why and the usage, and reports false.
func parseArgs(fs *flag.FlagSet, args []string, want int, stderr io.Writer) bool {
	if err := fs.Parse(args); err != nil {
		return false
	}
	if fs.NArg() != want {
		if fs.NArg() > want {
			fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(want))
		}
		fs.Usage()
		return false
	}
	return true
}

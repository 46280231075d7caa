package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/meshd/meshd/node/demo"
)

// defaultDemoBase is the first port of `meshd demo`: node i listens on
// base+10*i+{0 smtp, 1 admin, 2 linkstate, 3 mesh, 4 gossip}.
const defaultDemoBase = 25000

// runDemo is `meshd demo -dir DIR [-base PORT] [-v]`: it runs the demo
// mesh of package demo until SIGINT or SIGTERM. Exit code 0 after a
// signal, 1 when the mesh could not start, 2 for usage errors. With
// -write DIR it writes a three-site deployment instead and exits.
func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("meshd demo", "[-dir DIR] [-base PORT] [-v] | -write DIR [-base PORT]", stderr)
	dir := fs.String("dir", "meshd-demo", "`DIR` for demo.json, the nodes' data and Maildirs, and meshd.log")
	base := fs.Int("base", defaultDemoBase, "first listening `port` (node i uses base+10*i .. base+10*i+4); 0 picks free ports")
	verbose := fs.Bool("v", false, "log to stderr instead of DIR/meshd.log")
	write := fs.String("write", "", "write a three-site deployment (org document, node files, certificates, README.txt) to `DIR` and exit")
	if !parseArgs(fs, args, 0, stderr) {
		return 2
	}
	if *write != "" {
		w, err := demo.Write(demo.WriteOptions{Dir: *write, BasePort: *base})
		if err != nil {
			fmt.Fprintf(stderr, "meshd demo: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "meshd demo: a three-site deployment in %s\n", w.Dir)
		fmt.Fprintf(stdout, "  organisation document  %s (signed: %s)\n", w.Org, w.Signed)
		for i, f := range w.Files {
			fmt.Fprintf(stdout, "  node %-4s %-4s        meshd -config %s\n", w.Nodes[i].Name, w.Nodes[i].RG, f)
		}
		fmt.Fprintf(stdout, "  how to start it        %s\n", w.Readme)
		return 0
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		fmt.Fprintf(stderr, "meshd demo: %v\n", err)
		return 1
	}
	logOut := stderr
	logPath := filepath.Join(*dir, "meshd.log")
	if !*verbose {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			fmt.Fprintf(stderr, "meshd demo: %v\n", err)
			return 1
		}
		defer f.Close()
		logOut = f
	}
	logger := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelInfo}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	d, err := demo.Start(demo.Options{Dir: *dir, BasePort: *base, Logger: logger})
	if err != nil {
		fmt.Fprintf(stderr, "meshd demo: %v\n", err)
		return 1
	}
	defer d.Close()
	abs, _ := filepath.Abs(*dir)
	printDemo(stdout, d.Info(), abs, *verbose)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = d.WaitReady(wctx)
	cancel()
	switch {
	case ctx.Err() != nil:
	case err != nil:
		fmt.Fprintf(stdout, "warning: %v (see %s)\n", err, logPath)
	default:
		fmt.Fprintf(stdout, "mesh converged in %s; Ctrl-C stops the demo\n", time.Since(start).Round(100*time.Millisecond))
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "meshd demo: stopping")
	if err := d.Close(); err != nil {
		fmt.Fprintf(stderr, "meshd demo: shutdown: %v\n", err)
		return 1
	}
	return 0
}

func printDemo(w io.Writer, info demo.Info, dir string, verbose bool) {
	fmt.Fprintf(w, "meshd demo: %d routing groups, %d nodes on loopback\n", len(info.RGs), len(info.Nodes))
	fmt.Fprintf(w, "  description  %s\n", filepath.Join(dir, "demo.json"))
	if !verbose {
		fmt.Fprintf(w, "  log          %s\n", filepath.Join(dir, "meshd.log"))
	}
	fmt.Fprintln(w, "  connectors   rga-rgb cost 10 (ab, ba), rgb-rgc cost 10 (bc, cb), rga-rgc cost 50 (ac, ca)")
	fmt.Fprintf(w, "\n  %-5s %-4s %-9s %-16s %-16s %-16s %s\n", "node", "rg", "domain", "smtp", "admin", "linkstate", "maildir")
	domain := map[string]string{}
	for _, rg := range info.RGs {
		domain[rg.Name] = rg.Domain
	}
	for _, n := range info.Nodes {
		fmt.Fprintf(w, "  %-5s %-4s %-9s %-16s %-16s %-16s %s\n", n.Name, n.RG, domain[n.RG], n.SMTP, n.Admin, n.LinkState, n.Maildir)
	}
	if len(info.Nodes) == 0 || len(info.RGs) == 0 {
		return
	}
	first, last := info.Nodes[0], info.RGs[len(info.RGs)-1]
	fmt.Fprintf(w, "\nsend a message from %s to %s (it crosses the mesh):\n", first.RG, last.Name)
	fmt.Fprintf(w, "  swaks --server %s --from alice@%s --to bob@%s\n", first.SMTP, domain[first.RG], last.Domain)
	fmt.Fprintf(w, "look at the mesh:\n")
	fmt.Fprintf(w, "  meshctl -admin %s lsdb\n", first.Admin)
	fmt.Fprintf(w, "  meshctl -admin %s trace bob@%s\n", first.Admin, last.Domain)
	fmt.Fprintf(w, "  status page: http://%s/status/\n", first.Admin)
}

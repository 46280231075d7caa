package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/meshd/meshd/node/adminapi"
)

// node runs "node drain|undrain|status" (docs/drain.md).
func (c *cli) node(args []string) int {
	if len(args) == 0 {
		return c.usage("node needs a subcommand: drain, undrain or status")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "drain":
		return c.nodeDrain(args)
	case "undrain", "status":
		if len(args) != 0 {
			return c.usage("node " + sub + " takes no arguments")
		}
		method, path := http.MethodGet, "/api/node/drain"
		if sub == "undrain" {
			method, path = http.MethodPost, "/api/node/undrain"
		}
		var st adminapi.DrainStatus
		raw, err := c.call(method, path, &st)
		if err != nil {
			return c.fail(err)
		}
		if c.json {
			return c.writeRaw(raw)
		}
		printDrain(c.stdout, st)
		return exitOK
	}
	return c.usage(fmt.Sprintf("unknown node subcommand %q", sub))
}

// nodeDrain starts the drain and, with -wait, asks again every -interval
// until the node holds no mail (exit 0) or -timeout passes (exit 1).
func (c *cli) nodeDrain(args []string) int {
	fs := flag.NewFlagSet("node drain", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	wait := fs.Bool("wait", false, "return only when the node holds no mail (queue empty, no transaction in progress)")
	timeout := fs.Duration("timeout", 10*time.Minute, "with -wait: give up after `DURATION` (exit status 1)")
	interval := fs.Duration("interval", time.Second, "with -wait: ask the node every `DURATION`")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		return c.usage(fmt.Sprintf("node drain: unexpected argument %q", fs.Arg(0)))
	}
	if *timeout <= 0 || *interval <= 0 {
		return c.usage("node drain: -timeout and -interval must be positive")
	}
	var st adminapi.DrainStatus
	raw, err := c.call(http.MethodPost, "/api/node/drain", &st)
	if err != nil {
		return c.fail(err)
	}
	if !*wait {
		if c.json {
			return c.writeRaw(raw)
		}
		printDrain(c.stdout, st)
		return exitOK
	}
	deadline := time.Now().Add(*timeout)
	last := ""
	for {
		if !c.json {
			if line := drainProgress(st); line != last {
				fmt.Fprintln(c.stdout, line)
				last = line
			}
		}
		if st.Done {
			break
		}
		if !st.Draining {
			return c.fail(fmt.Errorf("node %s no longer drains (undrained meanwhile)", st.Node))
		}
		if time.Now().After(deadline) {
			c.fail(fmt.Errorf("node %s still holds mail after %v: %s", st.Node, *timeout, drainProgress(st)))
			return exitError
		}
		t := time.NewTimer(min(*interval, time.Until(deadline)+time.Millisecond))
		<-t.C
		if raw, err = c.call(http.MethodGet, "/api/node/drain", &st); err != nil {
			return c.fail(err)
		}
	}
	if c.json {
		return c.writeRaw(raw)
	}
	fmt.Fprintf(c.stdout, "drained: %s holds no mail; it can be stopped and its data directory removed\n", st.Node)
	return exitOK
}

// drainProgress is one line of what a draining node still holds.
func drainProgress(st adminapi.DrainStatus) string {
	s := fmt.Sprintf("%s: %d queued (%d held), %d transactions in progress, %d shadows", st.Node, st.Queued, st.Held, st.Transactions, st.Shadows)
	if st.Held > 0 {
		s += "; held messages are not handed on: release or delete them"
	}
	if len(st.Members) == 0 {
		s += "; no member of " + st.RG + " can take its mail"
	}
	return s
}

func printDrain(w io.Writer, st adminapi.DrainStatus) {
	state := "in service"
	if st.Draining {
		state = "draining"
		if st.Since != nil {
			state += " since " + st.Since.UTC().Format(time.RFC3339)
		}
	}
	fmt.Fprintf(w, "node %s (%s): %s\n", st.Node, st.RG, state)
	fmt.Fprintf(w, "queued: %d (held %d), transactions in progress: %d, shadows: %d\n", st.Queued, st.Held, st.Transactions, st.Shadows)
	fmt.Fprintf(w, "members taking its mail: %s\n", listOr(st.Members, "none"))
	if len(st.DrainingMembers) > 0 {
		fmt.Fprintf(w, "draining in %s: %s\n", st.RG, strings.Join(st.DrainingMembers, ", "))
	}
	if st.Done {
		fmt.Fprintln(w, "drained: it holds no mail; it can be stopped and its data directory removed")
	}
}

func listOr(xs []string, none string) string {
	if len(xs) == 0 {
		return none
	}
	return strings.Join(xs, ", ")
}

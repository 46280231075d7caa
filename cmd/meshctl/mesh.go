package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/linkstate/channel"
	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/pki"
	"github.com/meshd/meshd/routing"
)

// mesh runs the mesh commands: members, lsdb, routes, trace, connector,
// track and graph.
func (c *cli) mesh(cmd string, args []string) int {
	switch cmd {
	case "members", "routes":
		if len(args) != 0 {
			return c.usage(cmd + " takes no arguments")
		}
		if cmd == "members" {
			var v adminapi.Members
			return c.show("/api/mesh/members", &v, func(w io.Writer) { printMembers(w, v) })
		}
		var v adminapi.Routes
		return c.show("/api/mesh/routes", &v, func(w io.Writer) { printRoutes(w, v) })
	case "lsdb":
		return c.lsdb(args)
	case "trace":
		return c.trace(args)
	case "rg":
		return c.rg(args)
	case "connector":
		if len(args) != 2 || (args[0] != "up" && args[0] != "down" && args[0] != "drain") || args[1] == "" {
			return c.usage("connector needs an action (up, down or drain) and a connector name")
		}
		var v adminapi.ConnectorResult
		raw, err := c.call(http.MethodPost, "/api/mesh/connector/"+url.PathEscape(args[1])+"/"+args[0], &v)
		if err != nil {
			return c.fail(err)
		}
		if c.json {
			return c.writeRaw(raw)
		}
		fmt.Fprintf(c.stdout, "connector %s: %s (override now %s)\n", v.Connector, v.Action, v.Admin)
		return exitOK
	case "track":
		return c.track(args)
	case "graph":
		fs := flag.NewFlagSet("graph", flag.ContinueOnError)
		fs.SetOutput(c.stderr)
		svg := fs.Bool("svg", false, "SVG instead of DOT")
		if err := fs.Parse(args); err != nil {
			return exitUsage
		}
		if fs.NArg() > 0 {
			return c.usage(fmt.Sprintf("graph: unexpected argument %q", fs.Arg(0)))
		}
		path := "/status/graph.dot"
		if *svg {
			path = "/status/graph.svg"
		}
		body, err := c.get(path)
		if err != nil {
			return c.fail(err)
		}
		_, _ = c.stdout.Write(body)
		return exitOK
	}
	return c.usage(fmt.Sprintf("unknown command %q", cmd))
}

// track prints the hops of a message; with -wait it asks again until
// every copy has reached its end (delivered or bounced) or the time is up.
func (c *cli) track(args []string) int {
	fs := flag.NewFlagSet("track", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	wait := fs.Duration("wait", 0, "ask again until every copy is delivered or bounced, for at most `DURATION` (e.g. 10s)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 || fs.Arg(0) == "" {
		return c.usage("track needs exactly one message ID")
	}
	path := "/api/track/" + url.PathEscape(fs.Arg(0))
	deadline := time.Now().Add(*wait)
	for {
		var v adminapi.TrackResult
		raw, err := c.call(http.MethodGet, path, &v)
		var ue *unreachableError
		done := err == nil && trackDone(v)
		if done || time.Now().After(deadline) || errors.As(err, &ue) {
			if err != nil {
				return c.fail(err)
			}
			if c.json {
				return c.writeRaw(raw)
			}
			printTrack(c.stdout, v)
			if !done && *wait > 0 {
				fmt.Fprintf(c.stdout, "still on its way after %s\n", *wait)
			}
			return exitOK
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// trackDone reports whether every copy of the message has reached its
// end: each relayed copy was received by the next hop, and each copy
// not relayed further was delivered or bounced for all its recipients.
func trackDone(v adminapi.TrackResult) bool {
	seen := map[string]bool{}
	for _, e := range v.Events {
		seen[e.ID] = true
	}
	pending := map[string]map[string]bool{} // ID -> recipients without an end
	for _, e := range v.Events {
		if pending[e.ID] == nil {
			pending[e.ID] = map[string]bool{}
		}
		switch e.Event {
		case "received":
			for _, r := range e.Rcpts {
				pending[e.ID][strings.ToLower(r)] = true
			}
		case "relayed":
			if !seen[e.CopyID] {
				return false
			}
			fallthrough
		case "delivered", "bounced":
			for _, r := range e.Rcpts {
				delete(pending[e.ID], strings.ToLower(r))
			}
		}
	}
	for _, p := range pending {
		if len(p) > 0 {
			return false
		}
	}
	return len(v.Events) > 0
}

// show GETs path into v and prints it with table, or the raw JSON.
func (c *cli) show(path string, v any, table func(io.Writer)) int {
	raw, err := c.call(http.MethodGet, path, v)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.writeRaw(raw)
	}
	table(c.stdout)
	return exitOK
}

func (c *cli) lsdb(args []string) int {
	fs := flag.NewFlagSet("lsdb", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	from := fs.String("from", "", "read the LSDB over the port-691 link-state listener at `HOST:PORT` instead of the admin API")
	cert := fs.String("cert", "", "with -from: a node certificate `file` of the organisation (mesh.identity.cert_file); port 691 serves only the organisation's nodes")
	key := fs.String("key", "", "with -from: the certificate's key `file`")
	ca := fs.String("ca", "", "with -from: the organisation's CA `files`, comma-separated (mesh.identity.ca_files)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		return c.usage(fmt.Sprintf("lsdb: unexpected argument %q", fs.Arg(0)))
	}
	if *from == "" {
		var v adminapi.LSDB
		return c.show("/api/mesh/lsdb", &v, func(w io.Writer) { printLSDB(w, v) })
	}
	var tc *tls.Config
	if *cert != "" {
		id, err := pki.Load(strings.Split(*ca, ","), *cert, *key, pki.Identity{}, nil)
		if err != nil {
			return c.fail(err)
		}
		tc = id.ClientConfig(nil)
	}
	v, err := c.dump(*from, tc)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		b, _ := json.Marshal(v)
		return c.writeRaw(b)
	}
	printLSDB(c.stdout, v)
	return exitOK
}

// dump reads the LSDB of the node at addr over the link-state channel.
// Signatures are not checked (meshctl holds no keys): it shows what the
// node holds, which the node verified when it installed it.
func (c *cli) dump(addr string, tc *tls.Config) (adminapi.LSDB, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	raw, err := channel.Dump(ctx, nil, tc, addr)
	if err != nil {
		return adminapi.LSDB{}, &unreachableError{fmt.Errorf("read LSDB from %s: %w", addr, err)}
	}
	var recs []*linkstate.Record
	var sums []linkstate.Summary
	for _, b := range raw {
		if linkstate.IsOrgRecord(b) {
			continue // the organisation document: `meshctl org show`
		}
		r, err := linkstate.DecodeRecord(b)
		if err != nil {
			return adminapi.LSDB{}, fmt.Errorf("record from %s: %w", addr, err)
		}
		recs = append(recs, r)
		if s, err := linkstate.Summarize(r); err == nil {
			sums = append(sums, s)
		}
	}
	out := adminapi.LSDB{Source: addr, Records: adminapi.FromRecords(recs, time.Now(), "", nil, nil)}
	if d, err := linkstate.DigestSummaries(sums); err == nil {
		out.Digest = adminapi.Digest(d)
	}
	return out, nil
}

func (c *cli) trace(args []string) int {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	id := fs.String("id", "", "route as message `MSGID` (the choice among equal-cost next hops depends on it)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		return c.usage("trace needs exactly one address")
	}
	q := url.Values{"rcpt": {fs.Arg(0)}}
	if *id != "" {
		q.Set("id", *id)
	}
	var v adminapi.Trace
	code := c.show("/api/mesh/trace?"+q.Encode(), &v, func(w io.Writer) {
		for _, l := range v.Lines {
			fmt.Fprintln(w, l)
		}
	})
	if code == exitOK && v.Decision.Kind == routing.NoRoute {
		// The decision was printed with its reason; scripts see a refusal.
		fmt.Fprintf(c.stderr, "meshctl: no route for %s: %s: %s\n", v.Rcpt, v.Decision.Refused, v.Decision.Why)
		return exitError
	}
	return code
}

// rg runs "rg remove NAME": decommission a routing group.
func (c *cli) rg(args []string) int {
	if len(args) != 2 || args[0] != "remove" || args[1] == "" {
		return c.usage("rg needs an action (remove) and a routing group name")
	}
	var v adminapi.RGRemoveResult
	raw, err := c.call(http.MethodPost, "/api/mesh/rg/"+url.PathEscape(args[1])+"/remove", &v)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.writeRaw(raw)
	}
	fmt.Fprintf(c.stdout, "routing group %s removed: tombstone %s from %s, kept until %s\n", v.RG, v.Version, v.Node, v.ExpiresAt.UTC().Format(time.RFC3339))
	return exitOK
}

// get fetches a non-JSON document from the admin listener.
func (c *cli) get(path string) ([]byte, error) {
	body, status, err := c.fetch(http.MethodGet, path)
	if err != nil {
		return nil, err
	}
	if status/100 != 2 {
		return nil, fmt.Errorf("GET %s: HTTP %d %s", path, status, http.StatusText(status))
	}
	return body, nil
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/version"
)

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1 // the node answered with an error, or what was asked for is not there (unknown ID, connector, ...)
	exitUsage       = 2
	exitUnreachable = 3 // the node (admin API, or the -from link-state listener) could not be reached
)

const usageText = `usage: meshctl [-admin HOST:PORT] [-token-file FILE] [-json] COMMAND

commands:
  status                          node, listeners, queue summary and build version
  reload                          make the node read its configuration file again (as SIGHUP):
                                  prints what was applied and what needs a restart
  members                         gossip view of the node's routing group, with its master
  lsdb [-from HOST:PORT]          link-state database: per routing group its version
                                  (epoch.major.minor.user), master, age, TTL, members, and
                                  connectors with bridgehead pairs, flags and damping penalties;
                                  -from reads it over a node's port-691 link-state listener
  routes                          routing groups and address spaces with costs and first hops
  trace [-id MSGID] ADDRESS       route of ADDRESS from this node: path, costs, next hops,
                                  every path out with its total cost, and why each
                                  alternative lost; exit status 1 with the reason when
                                  there is no route
  connector up|down|drain NAME    override a connector of the node's routing group
                                  (up: follow observations again)
  node drain [-wait] [-timeout DURATION] [-interval DURATION]
                                  take the node out of service: new SMTP sessions get
                                  421 4.3.2 and its queue goes to the other members of its
                                  routing group (kept across restarts); -wait returns once
                                  it holds no mail (exit status 1 after -timeout, default 10m)
  node undrain                    return the node to service
  node status                     whether the node drains, what it still holds, and which
                                  members take its mail
  rg remove NAME                  decommission a routing group: a signed tombstone that
                                  floods the mesh; mail waiting for it fails with a DSN
  track [-wait DURATION] MESSAGE-ID
                                  every hop of a message across the mesh (mesh ID, queue ID
                                  or Message-ID header value); -wait asks again until every
                                  copy is delivered or bounced
  graph [-svg]                    the topology as Graphviz DOT (or SVG) from the status page
  org apply [-dir DIR | -ca FILE -key FILE] FILE
                                  put an organisation document in force across the mesh:
                                  FILE is org.yaml (signed here with the CA key; version 0
                                  becomes the next one) or a document of meshd org sign
  org show [-version N]           the document in force (or a kept version) as YAML
  org diff [-from N] [-to N] [FILE]
                                  what changed: from the previous version (or N, or the
                                  version in force when FILE is given) to the one in force
                                  (or N, or FILE)
  org history                     the versions this node keeps
  org status                      the version each node applied; exit status 1 when one lags
  queue list [-held|-active] [-limit N]
                                  queued messages
  queue show ID                   one message with its recipients
  queue retry ID                  make pending recipients due now
  queue hold ID                   keep the message from delivery
  queue release ID                undo hold
  queue delete ID                 remove the message (no DSN)
  dkim keygen [-alg rsa|ed25519] [-out FILE] DOMAIN SELECTOR
                                  write a new DKIM signing key (mode 0600; needs no node)
                                  and print the DNS TXT record that publishes it

exit status:
  0  success
  1  the node answered with an error, or the message, connector or ID is unknown
  2  usage error
  3  the node could not be reached

flags:
`

// cli is one invocation: where to reach the node and how to print.
type cli struct {
	admin     string
	tokenFile string // -token-file; empty: the file the node names in a 401
	token     string // read from the token file, sent from then on
	json      bool
	stdout    io.Writer
	stderr    io.Writer
	client    *http.Client
	timeout   time.Duration
	body      []byte // sent with the next requests (POST /api/org); nil: none
}

// run executes meshctl with args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr, client: &http.Client{}, timeout: 30 * time.Second}
	fs := flag.NewFlagSet("meshctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defAdmin := os.Getenv("MESHD_ADMIN")
	if defAdmin == "" {
		defAdmin = adminapi.DefaultAddr
	}
	fs.StringVar(&c.admin, "admin", defAdmin, "admin API address `host:port` of the node (env MESHD_ADMIN)")
	fs.StringVar(&c.tokenFile, "token-file", os.Getenv("MESHD_ADMIN_TOKEN_FILE"),
		"admin token `file` of the node (env MESHD_ADMIN_TOKEN_FILE; default: the file the node names, which works on its own machine)")
	fs.BoolVar(&c.json, "json", false, "print JSON (for scripts) instead of tables")
	showVersion := fs.Bool("version", false, "print meshctl's version and exit")
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *showVersion {
		fmt.Fprintln(stdout, "meshctl", version.Get())
		return exitOK
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return exitUsage
	}
	switch rest[0] {
	case "status":
		if len(rest) != 1 {
			return c.usage("status takes no arguments")
		}
		return c.status()
	case "reload":
		if len(rest) != 1 {
			return c.usage("reload takes no arguments")
		}
		return c.reload()
	case "queue":
		return c.queue(rest[1:])
	case "dkim":
		return c.dkimCmd(rest[1:])
	case "org":
		return c.org(rest[1:]) // org.go
	case "node":
		return c.node(rest[1:]) // node.go
	case "members", "lsdb", "routes", "trace", "connector", "rg", "track", "graph":
		return c.mesh(rest[0], rest[1:])
	case "help":
		fs.Usage()
		return exitOK
	}
	return c.usage(fmt.Sprintf("unknown command %q", rest[0]))
}

func (c *cli) usage(msg string) int {
	fmt.Fprintf(c.stderr, "meshctl: %s\n", msg)
	fmt.Fprint(c.stderr, "run 'meshctl help' for usage\n")
	return exitUsage
}

func (c *cli) fail(err error) int {
	fmt.Fprintf(c.stderr, "meshctl: %v\n", err)
	var ue *unreachableError
	if errors.As(err, &ue) {
		return exitUnreachable
	}
	return exitError
}

// unreachableError: no answer at all from the node.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

func (c *cli) queue(args []string) int {
	if len(args) == 0 {
		return c.usage("queue needs a subcommand: list, show, retry, hold, release or delete")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "-shadow", "--shadow", "shadow":
		return c.queueShadow(args)
	case "list":
		return c.queueList(args)
	case "show", "retry", "hold", "release", "delete":
		if len(args) != 1 || args[0] == "" {
			return c.usage(fmt.Sprintf("queue %s needs exactly one message ID", sub))
		}
		if sub == "show" {
			return c.queueShow(args[0])
		}
		return c.queueAction(sub, args[0])
	}
	return c.usage(fmt.Sprintf("unknown queue subcommand %q", sub))
}

func (c *cli) status() int {
	var st adminapi.StatusInfo
	raw, err := c.call(http.MethodGet, "/api/status", &st)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.writeRaw(raw)
	}
	printStatus(c.stdout, st)
	return exitOK
}

func (c *cli) reload() int {
	var rep adminapi.ReloadReport
	raw, err := c.call(http.MethodPost, "/api/reload", &rep)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.writeRaw(raw)
	}
	fmt.Fprintf(c.stdout, "reloaded: applied %s\n", listOrNone(rep.Applied))
	if len(rep.NeedsRestart) > 0 {
		fmt.Fprintf(c.stdout, "needs a restart to take effect: %s\n", strings.Join(rep.NeedsRestart, ", "))
	}
	return exitOK
}

func listOrNone(keys []string) string {
	if len(keys) == 0 {
		return "nothing (no live setting changed)"
	}
	return strings.Join(keys, ", ")
}

func (c *cli) queueList(args []string) int {
	fs := flag.NewFlagSet("queue list", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	held := fs.Bool("held", false, "only held messages")
	active := fs.Bool("active", false, "only messages not held")
	limit := fs.Int("limit", 0, "at most `N` messages (0: all)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		return c.usage(fmt.Sprintf("queue list: unexpected argument %q", fs.Arg(0)))
	}
	if *held && *active {
		return c.usage("queue list: -held and -active exclude each other")
	}
	q := url.Values{}
	switch {
	case *held:
		q.Set("held", "true")
	case *active:
		q.Set("held", "false")
	}
	if *limit > 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	path := "/api/queue"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var list adminapi.QueueList
	raw, err := c.call(http.MethodGet, path, &list)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.writeRaw(raw)
	}
	printQueue(c.stdout, list.Messages)
	return exitOK
}

// queueShadow lists the shadow copies (docs/shadow.md).
func (c *cli) queueShadow(args []string) int {
	fs := flag.NewFlagSet("queue -shadow", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	peer := fs.String("peer", "", "only shadows of copies handed to `NODE`")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	path := "/api/queue/shadow"
	if *peer != "" {
		path += "?" + url.Values{"peer": {*peer}}.Encode()
	}
	var list adminapi.ShadowList
	raw, err := c.call(http.MethodGet, path, &list)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.writeRaw(raw)
	}
	printShadows(c.stdout, list)
	return exitOK
}

func (c *cli) queueShow(id string) int {
	var m adminapi.MessageInfo
	raw, err := c.call(http.MethodGet, "/api/queue/"+url.PathEscape(id), &m)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.writeRaw(raw)
	}
	printMessage(c.stdout, m)
	return exitOK
}

func (c *cli) queueAction(action, id string) int {
	method, path := http.MethodPost, "/api/queue/"+url.PathEscape(id)+"/"+action
	if action == "delete" {
		method, path = http.MethodDelete, "/api/queue/"+url.PathEscape(id)
	}
	var res adminapi.ActionResult
	raw, err := c.call(method, path, &res)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.writeRaw(raw)
	}
	fmt.Fprintf(c.stdout, "%s: %s done\n", res.ID, res.Action)
	return exitOK
}

// call performs one request and decodes a 2xx answer into v; any other
// status becomes an error carrying the API's {"error": ...} text. A 401
// answer that names the node's token file (the node does so for clients on
// its own machine) makes call read the token from it and ask once more:
// that is how meshctl works with no flags where the node runs, for
// whoever may read the file.
func (c *cli) call(method, path string, v any) ([]byte, error) {
	raw, status, err := c.fetch(method, path)
	if err != nil {
		return nil, err
	}
	if status/100 != 2 {
		var e adminapi.ErrorInfo
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s (HTTP %d)", e.Error, status)
		}
		return nil, fmt.Errorf("%s %s: HTTP %d %s", method, path, status, http.StatusText(status))
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return raw, nil
}

// fetch performs one request with the admin token, finding the token
// first if the node asks for it.
func (c *cli) fetch(method, path string) ([]byte, int, error) {
	if c.token == "" && c.tokenFile != "" {
		if err := c.readToken(c.tokenFile); err != nil {
			return nil, 0, err
		}
	}
	raw, status, err := c.do(method, path)
	if err != nil || status != http.StatusUnauthorized || c.tokenFile != "" {
		return raw, status, err
	}
	var e adminapi.ErrorInfo
	if json.Unmarshal(raw, &e) != nil || e.TokenFile == "" {
		return raw, status, nil
	}
	c.tokenFile = e.TokenFile
	if err := c.readToken(e.TokenFile); err != nil {
		return nil, 0, err
	}
	return c.do(method, path)
}

// readToken loads the admin token from file.
func (c *cli) readToken(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("admin token: %w (run meshctl as the node's user, or give -token-file)", err)
	}
	tok, err := adminapi.ParseTokenFile(b)
	if err != nil {
		return fmt.Errorf("admin token file %s: %w", file, err)
	}
	c.token = tok
	return nil
}

// do sends one request, with the token when there is one, and returns
// the answer's body and status.
func (c *cli) do(method, path string) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	u := "http://" + c.admin + path
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, 0, &unreachableError{fmt.Errorf("cannot reach node admin API at %s: %w", c.admin, unwrapURL(err))}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, 0, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	return raw, resp.StatusCode, nil
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// writeRaw prints the API's JSON re-indented, one document per line set.
func (c *cli) writeRaw(raw []byte) int {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		return c.fail(fmt.Errorf("bad JSON from node: %w", err))
	}
	buf.WriteByte('\n')
	_, _ = c.stdout.Write(buf.Bytes())
	return exitOK
}

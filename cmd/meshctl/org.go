package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/orgdoc"
	"github.com/meshd/meshd/pki"
)

// org is `meshctl org apply|show|diff|history|status` (docs/org.md).
func (c *cli) org(args []string) int {
	if len(args) == 0 {
		return c.usage("org needs apply, show, diff, history or status")
	}
	switch args[0] {
	case "apply":
		return c.orgApply(args[1:])
	case "show":
		return c.orgShow(args[1:])
	case "diff":
		return c.orgDiff(args[1:])
	case "history":
		if len(args) != 1 {
			return c.usage("org history takes no arguments")
		}
		var h adminapi.OrgHistory
		return c.show("/api/org/history", &h, func(w io.Writer) { printOrgHistory(w, h) })
	case "status":
		if len(args) != 1 {
			return c.usage("org status takes no arguments")
		}
		var st adminapi.OrgStatus
		if rc := c.show("/api/org/status", &st, func(w io.Writer) { printOrgStatus(w, st) }); rc != exitOK {
			return rc
		}
		for _, n := range st.Nodes {
			if n.Lags {
				return exitError
			}
		}
		return exitOK
	}
	return c.usage(fmt.Sprintf("unknown org command %q", args[0]))
}

// orgApply signs a YAML document here (the CA key never goes to the node)
// or takes a signed one, and posts it to the node, which floods it.
func (c *cli) orgApply(args []string) int {
	fs := flag.NewFlagSet("org apply", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	dir := fs.String("dir", "", "organisation `DIR` of meshd org init (its newest CA signs)")
	caFile := fs.String("ca", "", "CA certificate `file`")
	keyFile := fs.String("key", "", "CA private key `file` (default: the certificate's name with -key.pem)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return c.usage("org apply [-dir DIR | -ca FILE -key FILE] FILE")
	}
	src, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return c.fail(err)
	}
	doc := src
	if !isSigned(src) {
		if doc, err = c.signYAML(fs.Arg(0), src, *dir, *caFile, *keyFile); err != nil {
			return c.fail(err)
		}
	}
	var res adminapi.OrgApplyResult
	c.body = doc
	raw, err := c.call(http.MethodPost, "/api/org", &res)
	c.body = nil
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.writeRaw(raw)
	}
	if res.Fresh {
		fmt.Fprintf(c.stdout, "version %d in force; the mesh floods it (meshctl org status)\n", res.Version)
	} else {
		fmt.Fprintf(c.stdout, "version %d was already in force\n", res.Version)
	}
	return exitOK
}

func isSigned(b []byte) bool { return bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) }

func (c *cli) signYAML(path string, src []byte, dir, caFile, keyFile string) ([]byte, error) {
	d, err := orgdoc.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if d.Version == 0 {
		cur, err := c.current()
		if err != nil {
			return nil, err
		}
		d.Version = 1
		if cur != nil {
			d.Version = cur.Doc.Version + 1
		}
	}
	switch {
	case caFile != "":
	case dir != "":
		files, err := pki.CAFiles(dir)
		if err != nil {
			return nil, err
		}
		caFile = files[len(files)-1]
	default:
		return nil, fmt.Errorf("%s is not signed: give -dir DIR or -ca FILE -key FILE (the CA of meshd org init)", path)
	}
	if keyFile == "" {
		keyFile = strings.TrimSuffix(caFile, ".pem") + "-key.pem"
	}
	ca, key, err := pki.ReadCA(caFile, keyFile)
	if err != nil {
		return nil, err
	}
	s, err := orgdoc.Sign(*d, ca, key, time.Now())
	if err != nil {
		return nil, err
	}
	return s.Encode()
}

// current is the node's document in force (nil: none).
func (c *cli) current() (*orgdoc.Signed, error) { return c.signedVersion(0) }

// signedVersion fetches a kept version (0: the one in force; nil when
// there is none).
func (c *cli) signedVersion(v uint64) (*orgdoc.Signed, error) {
	path := "/api/org/signed"
	if v > 0 {
		path += "?version=" + strconv.FormatUint(v, 10)
	}
	raw, status, err := c.fetch(http.MethodGet, path)
	if err != nil {
		return nil, err
	}
	if status == http.StatusNotFound && v == 0 {
		return nil, nil
	}
	if status/100 != 2 {
		var e adminapi.ErrorInfo
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s (HTTP %d)", e.Error, status)
		}
		return nil, fmt.Errorf("GET %s: HTTP %d", path, status)
	}
	return orgdoc.Decode(raw)
}

func (c *cli) orgShow(args []string) int {
	fs := flag.NewFlagSet("org show", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	v := fs.Uint64("version", 0, "a kept `version` instead of the one in force")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return c.usage("org show [-version N]")
	}
	s, err := c.signedVersion(*v)
	if err != nil {
		return c.fail(err)
	}
	if s == nil {
		return c.fail(fmt.Errorf("no organisation document in force on the node"))
	}
	if c.json {
		b, _ := json.Marshal(s)
		return c.writeRaw(b)
	}
	fmt.Fprintf(c.stdout, "# version %d, issued %s, signed by %s\n", s.Doc.Version,
		time.Unix(s.Doc.IssuedAt, 0).UTC().Format(time.RFC3339), s.Signer)
	y, err := yaml.Marshal(&s.Doc)
	if err != nil {
		return c.fail(err)
	}
	_, _ = c.stdout.Write(y)
	return exitOK
}

func (c *cli) orgDiff(args []string) int {
	fs := flag.NewFlagSet("org diff", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	from := fs.Uint64("from", 0, "compare from this kept `version`")
	to := fs.Uint64("to", 0, "compare to this kept `version` (default: the one in force)")
	if err := fs.Parse(args); err != nil || fs.NArg() > 1 {
		return c.usage("org diff [-from N] [-to N] [FILE]")
	}
	b, err := c.signedVersion(*to)
	if err != nil {
		return c.fail(err)
	}
	if b == nil {
		return c.fail(fmt.Errorf("no organisation document in force on the node"))
	}
	var a, bd *orgdoc.Document
	bd = &b.Doc
	switch {
	case fs.NArg() == 1:
		// The file against what is in force: what applying it would change.
		src, err := os.ReadFile(fs.Arg(0))
		if err != nil {
			return c.fail(err)
		}
		var d *orgdoc.Document
		if isSigned(src) {
			s, err := orgdoc.Decode(src)
			if err != nil {
				return c.fail(err)
			}
			d = &s.Doc
		} else if d, err = orgdoc.Parse(src); err != nil {
			return c.fail(fmt.Errorf("%s: %w", fs.Arg(0), err))
		}
		if d.Version == 0 {
			d.Version = bd.Version + 1
		}
		a, bd = bd, d
	case *from > 0:
		s, err := c.signedVersion(*from)
		if err != nil {
			return c.fail(err)
		}
		a = &s.Doc
	case bd.Version > 1:
		// The version before: the newest kept one below.
		var h adminapi.OrgHistory
		if _, err := c.call(http.MethodGet, "/api/org/history", &h); err != nil {
			return c.fail(err)
		}
		for _, v := range h.Versions {
			if v.Version < bd.Version {
				if s, err := c.signedVersion(v.Version); err == nil {
					a = &s.Doc
				}
			}
		}
	}
	lines := orgdoc.Diff(a, bd)
	if c.json {
		b, _ := json.Marshal(lines)
		return c.writeRaw(b)
	}
	if len(lines) == 0 {
		fmt.Fprintln(c.stdout, "no change")
	}
	for _, l := range lines {
		fmt.Fprintln(c.stdout, l)
	}
	return exitOK
}

func printOrgHistory(w io.Writer, h adminapi.OrgHistory) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tISSUED\tIN FORCE\tCOMMENT")
	for _, v := range h.Versions {
		force := ""
		if v.InForce {
			force = "*"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", v.Version, v.IssuedAt.UTC().Format(time.RFC3339), force, v.Comment)
	}
	tw.Flush()
}

func printOrgStatus(w io.Writer, st adminapi.OrgStatus) {
	fmt.Fprintf(w, "version %d in force on %s@%s\n", st.Version, st.Node, st.RG)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RG\tNODE\tVERSION\tFROM\tSTATE")
	for _, n := range st.Nodes {
		state := "ok"
		if n.Lags {
			state = "LAGS"
		}
		if n.Source == "unknown" {
			state = "no word yet"
		}
		from := n.Source
		if n.Seen != nil {
			from += " " + time.Since(*n.Seen).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", n.RG, n.Node, n.Version, from, state)
	}
	tw.Flush()
}

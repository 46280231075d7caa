package main

import (
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/meshd/meshd/pki"
)

// runOrg is `meshd org init|issue`: the organisation's CA (package pki),
// and `meshd org check|sign` (orgdoc.go): the organisation document.
//
//	meshd org init  [-dir DIR] [-name NAME] [-alg ed25519|ecdsa] [-next]
//	meshd org issue [-dir DIR] -node NAME -rg RG [-out DIR] [-days N] [-renew-within D]
func runOrg(args []string, stdout, stderr io.Writer) int {
	usage := "init [-dir DIR] [-name NAME] [-alg ed25519|ecdsa] [-next]\n       meshd org issue [-dir DIR] -node NAME -rg RG [-out DIR] [-days N] [-renew-within DURATION]\n       meshd org check org.yaml\n       meshd org sign [-dir DIR | -ca ca.pem -key ca-key.pem] [-version N] [-o FILE] org.yaml"
	if len(args) == 0 {
		fmt.Fprintf(stderr, "usage: meshd org %s\n", usage)
		return 2
	}
	if rc := runOrgDoc(args[0], args[1:], stdout, stderr); rc >= 0 {
		return rc
	}
	switch args[0] {
	case "init":
		fs := newFlagSet("meshd org init", "[-dir DIR] [-name NAME] [-alg ed25519|ecdsa] [-next]", stderr)
		dir := fs.String("dir", "meshd-org", "organisation `DIR` (CA, org and gossip keys)")
		name := fs.String("name", "meshd organisation", "organisation `name` in the CA certificate")
		alg := fs.String("alg", pki.Ed25519, "key `algorithm`: ed25519 or ecdsa (P-256)")
		next := fs.Bool("next", false, "create the next CA for a rollover (ca-N.pem), keeping the current one")
		if !parseArgs(fs, args[1:], 0, stderr) {
			return 2
		}
		ca, err := pki.Init(pki.InitOptions{Dir: *dir, Name: *name, Algorithm: *alg, Next: *next})
		if err != nil {
			fmt.Fprintf(stderr, "meshd org init: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "CA certificate  %s\n", ca)
		if !*next {
			fmt.Fprintf(stdout, "org key         %s (mesh.org_key)\n", filepath.Join(*dir, pki.OrgKeyFile))
			fmt.Fprintf(stdout, "gossip key      %s (mesh.gossip_key)\n", filepath.Join(*dir, pki.GossipKeyFile))
		} else {
			fmt.Fprintln(stdout, "list it in every node's mesh.identity.ca_files beside the old CA, then reissue the node certificates")
		}
		return 0
	case "issue":
		fs := newFlagSet("meshd org issue", "[-dir DIR] -node NAME -rg RG [-out DIR] [-days N] [-renew-within DURATION]", stderr)
		dir := fs.String("dir", "meshd-org", "organisation `DIR` made by meshd org init")
		node := fs.String("node", "", "node `name` (node.name)")
		rg := fs.String("rg", "", "routing `group` (node.routing_group)")
		out := fs.String("out", "", "`directory` for NODE.pem and NODE-key.pem (default DIR/nodes)")
		alg := fs.String("alg", pki.Ed25519, "key `algorithm`: ed25519 or ecdsa (P-256)")
		days := fs.Int("days", 365, "validity in `days`")
		within := fs.Duration("renew-within", 0, "only reissue when the current certificate expires within this `duration` (0: always)")
		if !parseArgs(fs, args[1:], 0, stderr) {
			return 2
		}
		if *node == "" || *rg == "" {
			fs.Usage()
			return 2
		}
		o := pki.IssueOptions{Dir: *dir, Node: *node, RG: *rg, Out: *out, Algorithm: *alg, Validity: time.Duration(*days) * 24 * time.Hour}
		if *within > 0 {
			left, err := pki.ExpiresIn(o)
			if err == nil && left > *within {
				fmt.Fprintf(stdout, "certificate of %s@%s is valid for %s more: not renewed\n", *node, *rg, left.Round(time.Hour))
				return 0
			}
		}
		cert, key, err := pki.Issue(o)
		if err != nil {
			fmt.Fprintf(stderr, "meshd org issue: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "certificate  %s (mesh.identity.cert_file)\nkey          %s (mesh.identity.key_file)\n", cert, key)
		return 0
	}
	fmt.Fprintf(stderr, "meshd org: unknown command %q\nusage: meshd org %s\n", args[0], usage)
	return 2
}

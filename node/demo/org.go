package demo

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/meshd/meshd/orgdoc"
	"github.com/meshd/meshd/pki"
)

// site is one routing group of the demo and the nodes it has.
type site struct {
	rg    string
	nodes []orgdoc.Node
}

// documentYAML is the demo's organisation document (org.yaml): every
// site with its domain and nodes, and the triangle of connectors.
func documentYAML(version uint64, comment string, sites []site) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# The meshd demo's organisation (docs/org.md): change it, then\n")
	fmt.Fprintf(&b, "# meshctl -admin ADMIN org apply -dir org org.yaml\n")
	fmt.Fprintf(&b, "version: %d\norganisation: meshd demo\ncomment: %s\n", version, comment)
	fmt.Fprintf(&b, "routing_groups:\n")
	for _, s := range sites {
		fmt.Fprintf(&b, "  - name: %s\n    domains: [%s.test]\n    nodes:\n", s.rg, s.rg)
		for _, n := range s.nodes {
			fmt.Fprintf(&b, "      - {name: %s, mesh: %q", n.Name, n.Mesh)
			if n.Linkstate != "" {
				fmt.Fprintf(&b, ", linkstate: %q", n.Linkstate)
			}
			if n.Gossip != "" {
				fmt.Fprintf(&b, ", gossip: %q", n.Gossip)
			}
			b.WriteString("}\n")
		}
	}
	fmt.Fprintf(&b, "connectors:\n")
	for _, l := range links {
		fmt.Fprintf(&b, "  - {name: %s, from: %s, to: %s, cost: %d}\n", l.name, l.from, l.to, l.cost)
	}
	return b.String()
}

// signDocument checks the YAML and signs it with the CA of orgDir.
func signDocument(orgDir, src string) ([]byte, error) {
	doc, err := orgdoc.Parse([]byte(src))
	if err != nil {
		return nil, fmt.Errorf("demo: organisation document: %w", err)
	}
	ca, key, err := pki.ReadCA(filepath.Join(orgDir, pki.CAFile), filepath.Join(orgDir, pki.CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	s, err := orgdoc.Sign(*doc, ca, key, time.Now())
	if err != nil {
		return nil, fmt.Errorf("demo: sign the organisation document: %w", err)
	}
	b, err := s.Encode()
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	return b, nil
}

// seedStore puts the signed document into the store of the node whose
// data directory is dataDir, where the node finds it when it starts.
func seedStore(dataDir, orgDir string, signed []byte) error {
	st, err := orgdoc.OpenStore(filepath.Join(dataDir, "org"))
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	cas, err := pki.ReadCACerts([]string{filepath.Join(orgDir, pki.CAFile)})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if _, _, err := st.Offer(signed, cas, time.Now()); err != nil {
		return fmt.Errorf("demo: store the organisation document in %s: %w", dataDir, err)
	}
	return nil
}

// WriteOptions configures Write.
type WriteOptions struct {
	// Dir receives the deployment. Required; created when missing.
	Dir string
	// BasePort, when not 0, puts site i's node on ports
	// BasePort+10*i+{0 smtp, 1 admin, 2 linkstate, 3 mesh, 4 gossip}; 0
	// picks ports that are free now.
	BasePort int
}

// Written describes a deployment written by Write.
type Written struct {
	Dir      string     // absolute
	Org      string     // org.yaml
	Signed   string     // org.signed
	Files    []string   // the node files, one per site
	Nodes    []NodeInfo // where each node listens
	Readme   string
	OrgDir   string // the CA, keys and node certificates
	Document []byte // the signed document
}

// Write writes a three-site deployment into opts.Dir: the CA and one
// certificate per node in DIR/org, the organisation document (org.yaml
// and org.signed, version 1, signed by that CA), one short node file per
// site (a1.yaml, b1.yaml, c1.yaml: name, data dir, listeners, identity,
// keys), the nodes' data directories holding the document, and
// README.txt saying how to start them and apply a change. Every path in
// the files is absolute.
func Write(opts WriteOptions) (*Written, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("demo: a directory is needed")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	for _, f := range []string{"org.yaml", "org.signed", "a1.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return nil, fmt.Errorf("demo: %s already holds a deployment (%s); choose an empty directory", dir, f)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("demo: create %s: %w", dir, err)
	}
	w := &Written{Dir: dir, OrgDir: filepath.Join(dir, "org"), Org: filepath.Join(dir, "org.yaml"),
		Signed: filepath.Join(dir, "org.signed"), Readme: filepath.Join(dir, "README.txt")}
	var ids []pki.Identity
	for _, rg := range rgNames {
		ids = append(ids, pki.Identity{Node: nodeNames(rg)[0], RG: rg})
	}
	caFile, certs, err := pki.Lab(w.OrgDir, ids...)
	if err != nil {
		return nil, fmt.Errorf("demo: organisation: %w", err)
	}
	orgKey, err := readKeyFile(filepath.Join(w.OrgDir, pki.OrgKeyFile))
	if err != nil {
		return nil, err
	}
	gossipKey, err := readKeyFile(filepath.Join(w.OrgDir, pki.GossipKeyFile))
	if err != nil {
		return nil, err
	}
	ports, err := writePorts(opts.BasePort, len(rgNames))
	if err != nil {
		return nil, err
	}
	var sites []site
	for i, rg := range rgNames {
		name := nodeNames(rg)[0]
		p := ports[i]
		sites = append(sites, site{rg: rg, nodes: []orgdoc.Node{{Name: name, Mesh: p[3], Linkstate: p[2], Gossip: p[4]}}})
		w.Nodes = append(w.Nodes, NodeInfo{Name: name, RG: rg, SMTP: p[0], Admin: p[1], LinkState: p[2],
			Maildir: filepath.Join(dir, name, "maildir")})
	}
	src := documentYAML(1, "the demo's three sites", sites)
	if err := os.WriteFile(w.Org, []byte(src), 0o644); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if w.Document, err = signDocument(w.OrgDir, src); err != nil {
		return nil, err
	}
	if err := os.WriteFile(w.Signed, w.Document, 0o644); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	for i, n := range w.Nodes {
		p := ports[i]
		file := filepath.Join(dir, n.Name+".yaml")
		body := fmt.Sprintf(`# %s of the meshd demo deployment (site %s): a short node file
# (docs/org.md); the sites and their links come from org.yaml.
node: {name: %s, routing_group: %s, hostname: %s.%s.test, data_dir: %q}
listen: {smtp: %q, admin: %q, linkstate: %q, mesh: %q, gossip: %q, submission: ""}
local_domains: [%s.test]
mesh:
  gossip_key: %q
  org_key: %q
  identity: {ca_files: [%q], cert_file: %q, key_file: %q}
  # fast timers, so the demo converges in seconds
  fast_gossip: true
  collect_window: 100ms
  sync_interval: 2s
  probe: {interval: 200ms, keepalive: 1s, timeout: 1s}
`, n.Name, n.RG, n.Name, n.RG, n.Name, n.RG, filepath.Join(dir, n.Name), p[0], p[1], p[2], p[3], p[4], n.RG,
			gossipKey, orgKey, caFile, certs[n.Name][0], certs[n.Name][1])
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		if err := seedStore(filepath.Join(dir, n.Name), w.OrgDir, w.Document); err != nil {
			return nil, err
		}
		w.Files = append(w.Files, file)
	}
	if err := os.WriteFile(w.Readme, []byte(readme(w)), 0o644); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	return w, nil
}

// writePorts are the five listen addresses of each of n nodes.
func writePorts(base, n int) ([][5]string, error) {
	out := make([][5]string, n)
	if base != 0 {
		for i := range out {
			for off := range 5 {
				out[i][off] = port(base, i, off)
			}
		}
		return out, nil
	}
	// Ports free now: every listener stays open until all are chosen.
	var open []net.Listener
	defer func() {
		for _, l := range open {
			l.Close()
		}
	}()
	for i := range out {
		for off := range 5 {
			l, err := listenFree()
			if err != nil {
				return nil, fmt.Errorf("demo: free port: %w", err)
			}
			open = append(open, l)
			out[i][off] = l.Addr().String()
		}
	}
	return out, nil
}

func readme(w *Written) string {
	var b strings.Builder
	fmt.Fprintf(&b, `A three-site meshd deployment written by "meshd demo -write"

One organisation document describes the sites (org.yaml, signed by the CA
in org/ as org.signed); each node has a short file naming only itself, its
listeners, its certificate and the keys. Every node's data directory
already holds the document.

  org/          CA (ca.pem, ca-key.pem), node certificates and keys, org.key, gossip.key
  org.yaml      the organisation document (version 1)
  org.signed    the same, signed
`)
	for _, n := range w.Nodes {
		fmt.Fprintf(&b, "  %-13s node %s of %s (%s.test): smtp %s, admin %s\n", n.Name+".yaml", n.Name, n.RG, n.RG, n.SMTP, n.Admin)
	}
	fmt.Fprintf(&b, "\nStart each node (one terminal each, from the meshd repository):\n\n")
	for _, f := range w.Files {
		fmt.Fprintf(&b, "  go run ./cmd/meshd -config %s\n", f)
	}
	first, last := w.Nodes[0], w.Nodes[len(w.Nodes)-1]
	fmt.Fprintf(&b, `
Send a message across the sites and find it in %s's Maildir:

  swaks --server %s --from alice@%s.test --to bob@%s.test
  find %s -type f

Look at the mesh and the document in force:

  go run ./cmd/meshctl -admin %s lsdb
  go run ./cmd/meshctl -admin %s org status

Apply a change: edit org.yaml (say, the cost of connector ab), raise its
version, and apply it at any node; it floods to every node, which reroutes
live:

  go run ./cmd/meshctl -admin %s org apply -dir %s %s
  go run ./cmd/meshctl -admin %s trace bob@%s.test
`, last.Name, first.SMTP, first.RG, last.RG, last.Maildir, first.Admin, first.Admin,
		last.Admin, w.OrgDir, w.Org, first.Admin, last.RG)
	return b.String()
}

func listenFree() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

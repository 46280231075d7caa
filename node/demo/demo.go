// Package demo runs a small mesh in one process on loopback: three
// routing groups (rga, rgb, rgc) of two nodes each, joined by connectors
// of different costs in a triangle, so that one path is redundant:
//
//	rga ──ab/ba 10── rgb ──bc/cb 10── rgc
//	 └──────────────ac/ca 50────────────┘
//
// Mail for rgc.test from rga goes rga → rgb → rgc (cost 20) while ab and
// bc are up, and over ac (cost 50) when one of them is down.
//
// Every node delivers its routing group's domain (rga.test, ...) into a
// Maildir under its data directory and runs fast gossip and short probe
// timers so the mesh converges in a few seconds. The mesh keys are
// generated for each run. Start writes DIR/demo.json describing where
// every node listens; `meshd demo` is the command that runs it.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/meshd/meshd/node"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/mesh"
	"github.com/meshd/meshd/pki"
	"github.com/meshd/meshd/queue"
)

// Options configures a demo mesh.
type Options struct {
	// Dir holds demo.json and one data directory per node. Required.
	Dir string
	// BasePort, when not 0, puts node i's listeners on fixed ports
	// BasePort+10*i+{0 smtp, 1 admin, 2 linkstate, 3 mesh, 4 gossip};
	// 0 picks free ports.
	BasePort int
	// Logger receives every node's log; default discards.
	Logger *slog.Logger
}

// Info is DIR/demo.json.
type Info struct {
	RGs   []RG       `json:"rgs"`
	Nodes []NodeInfo `json:"nodes"`
}

// RG is one routing group of the demo and the domain it delivers.
type RG struct {
	Name   string `json:"name"`
	Domain string `json:"domain"`
}

// NodeInfo is where one demo node listens and delivers.
type NodeInfo struct {
	Name      string `json:"name"`
	RG        string `json:"rg"`
	SMTP      string `json:"smtp"`
	Admin     string `json:"admin"`
	LinkState string `json:"linkstate"`
	Maildir   string `json:"maildir"`
}

// link is one connector of the demo topology.
type link struct {
	name, from, to string
	cost           uint32
}

var (
	rgNames = []string{"rga", "rgb", "rgc"}
	links   = []link{
		{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10},
		{"bc", "rgb", "rgc", 10}, {"cb", "rgc", "rgb", 10},
		{"ac", "rga", "rgc", 50}, {"ca", "rgc", "rga", 50},
	}
)

// nodeNames are the two nodes of rg: rga → a1, a2.
func nodeNames(rg string) []string {
	s := rg[len(rg)-1:]
	return []string{s + "1", s + "2"}
}

// Demo is a running demo mesh.
type Demo struct {
	info  Info
	nodes []*node.Node

	closeOnce sync.Once
	closeErr  error
}

// Start builds and starts the mesh and writes DIR/demo.json. On error,
// whatever was started is stopped again.
func Start(opts Options) (d *Demo, err error) {
	if opts.Dir == "" {
		return nil, errors.New("demo: a directory is needed")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("demo: create %s: %w", dir, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The organisation: a CA, a certificate per node (mutual TLS on every
	// node-to-node channel), the org key and the gossip key, in DIR/org.
	var ids []pki.Identity
	for _, rg := range rgNames {
		for _, name := range nodeNames(rg) {
			ids = append(ids, pki.Identity{Node: name, RG: rg})
		}
	}
	orgDir := filepath.Join(dir, "org")
	caFile, certs, err := pki.Lab(orgDir, ids...)
	if err != nil {
		return nil, fmt.Errorf("demo: organisation: %w", err)
	}
	orgKey, err := readKeyFile(filepath.Join(orgDir, pki.OrgKeyFile))
	if err != nil {
		return nil, err
	}
	gossipKey, err := readKeyFile(filepath.Join(orgDir, pki.GossipKeyFile))
	if err != nil {
		return nil, err
	}

	// The mesh listeners are bound first: connectors name them.
	held := map[string]net.Listener{}
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	meshAddr := map[string]string{}
	i := 0
	for _, rg := range rgNames {
		for _, name := range nodeNames(rg) {
			l, err := net.Listen("tcp", port(opts.BasePort, i, 3))
			if err != nil {
				return nil, fmt.Errorf("demo: listen.mesh of %s: %w", name, err)
			}
			held[l.Addr().String()] = l
			meshAddr[name] = l.Addr().String()
			i++
		}
	}
	// Hand the bound mesh listeners to the nodes.
	var mu sync.Mutex
	listen := func(network, addr string) (net.Listener, error) {
		mu.Lock()
		defer mu.Unlock()
		if l, ok := held[addr]; ok {
			delete(held, addr)
			return l, nil
		}
		return net.Listen(network, addr)
	}

	d = &Demo{}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	i = 0
	for _, rg := range rgNames {
		d.info.RGs = append(d.info.RGs, RG{Name: rg, Domain: rg + ".test"})
		seed := ""
		for _, name := range nodeNames(rg) {
			cfg := nodeConfig(dir, name, rg, i, opts.BasePort, orgKey, meshAddr)
			cfg.Mesh.GossipKey = gossipKey
			cfg.Mesh.Identity = config.Identity{CAFiles: []string{caFile}, CertFile: certs[name][0], KeyFile: certs[name][1]}
			if seed != "" {
				cfg.Mesh.Seeds = []string{seed}
			}
			n, err := node.New(cfg, node.Options{Logger: log, Listen: listen})
			if err != nil {
				return d, fmt.Errorf("demo: node %s: %w", name, err)
			}
			d.nodes = append(d.nodes, n)
			if err := n.Start(); err != nil {
				return d, fmt.Errorf("demo: start %s: %w", name, err)
			}
			if seed == "" {
				seed = n.Mesh().GossipAddr()
			}
			l := n.Listeners()
			d.info.Nodes = append(d.info.Nodes, NodeInfo{
				Name: name, RG: rg, SMTP: l["smtp"], Admin: l["admin"], LinkState: n.LinkStateAddr(), Maildir: cfg.Delivery.Maildir,
			})
			i++
		}
	}
	b, err := json.MarshalIndent(d.info, "", "  ")
	if err != nil {
		return d, fmt.Errorf("demo: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "demo.json"), append(b, '\n'), 0o600); err != nil {
		return d, fmt.Errorf("demo: write demo.json: %w", err)
	}
	return d, nil
}

func readKeyFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("demo: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func port(base, i, off int) string {
	if base == 0 {
		return "127.0.0.1:0"
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(base+10*i+off))
}

// nodeConfig is one demo node's configuration.
func nodeConfig(dir, name, rg string, i, base int, orgKey string, meshAddr map[string]string) config.Config {
	cfg := config.Default()
	cfg.Node.Name, cfg.Node.RoutingGroup = name, rg
	cfg.Node.DataDir = filepath.Join(dir, name)
	cfg.Node.Hostname = name + "." + rg + ".test"
	cfg.Listen = config.Listen{
		SMTP: port(base, i, 0), Admin: port(base, i, 1), Linkstate: port(base, i, 2),
		Mesh: meshAddr[name], Gossip: port(base, i, 4),
	}
	cfg.LocalDomains = []string{rg + ".test"}
	cfg.Delivery.Maildir = filepath.Join(cfg.Node.DataDir, "maildir")
	cfg.Queue.Retry = queue.Backoff{Initial: time.Second, Max: 10 * time.Second, Factor: 2, Jitter: 0.1}
	cfg.Outbound.ConnectTimeout, cfg.Outbound.CommandTimeout, cfg.Outbound.DeadTime = 2*time.Second, 10*time.Second, 0
	cfg.Mesh.OrgKey = orgKey
	cfg.Mesh.FastGossip = true
	cfg.Mesh.CollectWindow = 100 * time.Millisecond
	cfg.Mesh.SyncInterval = 2 * time.Second
	cfg.Mesh.Probe = mesh.ProbeConfig{Interval: 200 * time.Millisecond, Keepalive: time.Second, Timeout: time.Second,
		GlitchRetries: 2, GlitchDelay: 20 * time.Millisecond, UpAfter: 2}
	for _, r := range rgNames {
		// Declared, so that a group's mail waits for it even before its
		// record is learned.
		cfg.Mesh.RoutingGroups = append(cfg.Mesh.RoutingGroups, config.RoutingGroup{Name: r, Domains: []string{r + ".test"}})
	}
	for _, l := range links {
		if l.from != rg {
			continue
		}
		var targets []string
		for _, t := range nodeNames(l.to) {
			targets = append(targets, meshAddr[t])
		}
		cfg.Connectors = append(cfg.Connectors, mesh.Connector{Name: l.name, To: l.to, Cost: l.cost, Targets: targets})
	}
	return cfg
}

// Info describes the running mesh (what demo.json holds).
func (d *Demo) Info() Info { return d.info }

// Nodes are the running nodes, in the order of Info().Nodes.
func (d *Demo) Nodes() []*node.Node { return d.nodes }

// WaitReady waits until every node holds a record of every routing group,
// routes to every routing group's domain, and no record marks a connector
// as a bridge (none is in the triangle; a master that has not yet heard
// of the other groups marks its connectors so for a moment).
func (d *Demo) WaitReady(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if d.ready() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo: mesh not converged: %w", ctx.Err())
		case <-t.C:
		}
	}
}

func (d *Demo) ready() bool {
	for _, n := range d.nodes {
		m := n.Mesh()
		if m == nil || m.LSDB().Snapshot().Len() < len(rgNames) {
			return false
		}
		for _, r := range m.LSDB().Snapshot().Records() {
			for _, c := range r.Connectors {
				// Every member of the group is a source bridgehead: ready
				// once each has reported each of its pairs up.
				if c.Bridge || len(c.Pairs) < len(r.Members)*len(c.TargetBridgeheads) {
					return false
				}
				for _, p := range c.Pairs {
					if !p.Up {
						return false
					}
				}
			}
		}
		tab := m.Routes()
		if tab == nil {
			return false
		}
		for _, rg := range tab.RGs() {
			if !rg.Reachable {
				return false
			}
		}
		if len(tab.RGs()) < len(rgNames) {
			return false
		}
	}
	return true
}

// Close stops every node.
func (d *Demo) Close() error {
	d.closeOnce.Do(func() {
		var errs []error
		for _, n := range d.nodes {
			errs = append(errs, n.Close())
		}
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}

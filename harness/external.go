package harness

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/node/maildir"
	"github.com/meshd/meshd/node/mesh"
	"github.com/meshd/meshd/smtp"
)

// ExternalSpec is an external connector of a routing group: mail for its
// address spaces leaves the mesh through a smarthost. The harness runs
// the smarthost, an SMTP sink on a netem host of its own named
// "ext-<name>" that files every message in a Maildir, so mail that left
// the mesh counts as delivered. Faults name it like any connector.
type ExternalSpec struct {
	Name              string   `yaml:"name"`
	From              string   `yaml:"from"`
	Cost              uint32   `yaml:"cost"`
	SourceBridgeheads []string `yaml:"source_bridgeheads"`
	// Domains are address-space patterns (domain, *.domain or *); default *.
	Domains []string `yaml:"domains"`
}

func (e *ExternalSpec) host() string { return "ext-" + e.Name }

func (t *Topology) validateExternal(known map[string]bool) error {
	for i := range t.External {
		e := &t.External[i]
		if !validName(e.Name) || known[e.Name] {
			return fmt.Errorf("harness: topology: external %q: bad name or already a connector", e.Name)
		}
		known[e.Name] = true
		if t.rg(e.From) == nil {
			return fmt.Errorf("harness: topology: external %s: unknown routing group %q", e.Name, e.From)
		}
		if e.Cost < 1 || e.Cost > 100 {
			return fmt.Errorf("harness: topology: external %s: cost %d not in 1..100", e.Name, e.Cost)
		}
		for _, n := range e.SourceBridgeheads {
			if rg, _ := t.rgOf(n); rg != e.From {
				return fmt.Errorf("harness: topology: external %s: source bridgehead %q is not a node of %s", e.Name, n, e.From)
			}
		}
		if len(e.Domains) == 0 {
			e.Domains = []string{"*"}
		}
		for _, d := range e.Domains {
			if d == "" || (strings.Contains(d, "*") && d != "*" && !strings.HasPrefix(d, "*.")) {
				return fmt.Errorf("harness: topology: external %s: bad domain pattern %q", e.Name, d)
			}
		}
	}
	return nil
}

func (t *Topology) external(name string) *ExternalSpec {
	for i := range t.External {
		if t.External[i].Name == name {
			return &t.External[i]
		}
	}
	return nil
}

// externalFor reports whether an external connector takes the domain.
func (t *Topology) externalFor(domain string) bool {
	domain = strings.ToLower(domain)
	for _, e := range t.External {
		for _, p := range e.Domains {
			p = strings.ToLower(p)
			if p == "*" || p == domain || (strings.HasPrefix(p, "*.") && strings.HasSuffix(domain, p[1:])) {
				return true
			}
		}
	}
	return false
}

// smarthost is the SMTP sink behind an external connector.
type smarthost struct {
	srv  *smtp.Server
	root string
}

type acceptAll struct{}

func (acceptAll) CheckRcpt(*smtp.Session, string) error { return nil }

type maildirSink struct{ root string }

func (s maildirSink) Accept(_ context.Context, _ *smtp.Session, env smtp.Envelope, body []byte) error {
	for _, r := range env.Rcpts {
		if _, err := maildir.Deliver(s.root, r.Addr, body); err != nil {
			return fmt.Errorf("harness: smarthost: %w", err)
		}
	}
	return nil
}

// startSmarthosts starts one sink per external connector and returns
// their addresses by connector name.
func (c *nodeCluster) startSmarthosts() (map[string]string, error) {
	addrs := map[string]string{}
	for _, e := range c.sc.Topology.External {
		h := c.net.Host(e.host())
		ln, err := h.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("harness: smarthost %s: %w", e.Name, err)
		}
		root := filepath.Join(c.opts.DataDir, e.host(), "maildir")
		srv, err := smtp.NewServer(smtp.ServerConfig{Hostname: e.Name + ".external.test", Listener: ln,
			Policy: acceptAll{}, Sink: maildirSink{root}, Logger: c.log.With("smarthost", e.Name)})
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("harness: smarthost %s: %w", e.Name, err)
		}
		if err := srv.Start(); err != nil {
			srv.Close()
			return nil, fmt.Errorf("harness: smarthost %s: %w", e.Name, err)
		}
		c.smarthosts = append(c.smarthosts, smarthost{srv: srv, root: root})
		addrs[e.Name] = ln.Addr().String()
	}
	return addrs, nil
}

func externalConnectors(t *Topology, rg string, addrs map[string]string) []mesh.Connector {
	var out []mesh.Connector
	for _, e := range t.External {
		if e.From != rg {
			continue
		}
		k := mesh.Connector{Name: e.Name, Cost: e.Cost, SourceBridgeheads: e.SourceBridgeheads, Smarthost: addrs[e.Name]}
		for _, d := range e.Domains {
			k.AddressSpaces = append(k.AddressSpaces, linkstate.AddressSpace{Pattern: d, Cost: 1})
		}
		out = append(out, k)
	}
	return out
}

func (c *nodeCluster) closeSmarthosts() error {
	var errs []error
	for _, s := range c.smarthosts {
		errs = append(errs, s.srv.Close())
	}
	c.smarthosts = nil
	return errors.Join(errs...)
}

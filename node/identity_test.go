package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/hashicorp/memberlist"

	"github.com/meshd/meshd/harness/extern"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/pki"
)

// The intruder tests: a local process on the mesh's own address plays
// each attack of issue 11 with real clients (swaks, openssl s_client).
// Mail sent before and after is delivered exactly once.

func swaksRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	swaks := extern.Require(t, extern.FindSwaks)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, swaks, args...).CombinedOutput()
	return string(out), err
}

func TestIntruderOnMeshListener(t *testing.T) {
	tm := newTestMesh(t, map[string][]string{"rga": {"a1"}, "rgb": {"b1"}},
		[]meshLink{{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10}})
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)
	a1 := tm.nodes["a1"]
	mesh := a1.MeshAddr().String()
	b1id := tm.cfgs["b1"].Mesh.Identity
	_, rogueFiles, err := pki.Lab(t.TempDir(), pki.Identity{Node: "b1", RG: "rgb"}) // another CA, same name
	if err != nil {
		t.Fatal(err)
	}

	// X-LINK2STATE is offered only to an authenticated peer.
	out, err := swaksRun(t, "--server", mesh, "--quit-after", "EHLO", "--ehlo", "intruder.test")
	if err != nil || strings.Contains(out, "X-LINK2STATE") {
		t.Errorf("plain client on the mesh listener is offered X-LINK2STATE (err %v):\n%s", err, out)
	}
	out, err = swaksRun(t, "--server", mesh, "--tls", "--quit-after", "EHLO", "--ehlo", "b1.test",
		"--tls-cert", b1id.CertFile, "--tls-key", b1id.KeyFile)
	if err != nil || !strings.Contains(out, "X-LINK2STATE") {
		t.Errorf("node b1's certificate does not get X-LINK2STATE offered (err %v):\n%s", err, out)
	}
	out, err = swaksRun(t, "--server", mesh, "--tls", "--quit-after", "EHLO", "--ehlo", "b1.test",
		"--tls-cert", rogueFiles["b1"][0], "--tls-key", rogueFiles["b1"][1])
	if err == nil && strings.Contains(out, "X-LINK2STATE") {
		t.Errorf("a certificate of another CA gets X-LINK2STATE offered:\n%s", out)
	}

	// Forged X-Meshd-ID: two different messages under one ID, from a plain
	// client (headers removed) and from an authenticated peer (content
	// digest differs): all four are delivered, as are mail before and after.
	send := func(subject string, extra ...string) {
		t.Helper()
		args := append([]string{"--server", mesh, "--from", "x@rga.test", "--to", "victim@rga.test",
			"--header", "Subject: " + subject, "--header", "Message-Id: <" + subject + "@client.test>", "--header", "Date: Mon, 07 Dec 2026 10:00:00 +0000", "--header", "X-Meshd-ID: forgedforgedforged01",
			"--header", "X-Meshd-Origin: forgedforgedforged01", "--body", "body of " + subject}, extra...)
		if out, err := swaksRun(t, args...); err != nil {
			t.Fatalf("swaks %s: %v\n%s", subject, err, out)
		}
	}
	peer := []string{"--tls", "--tls-cert", b1id.CertFile, "--tls-key", b1id.KeyFile}
	mustSend(t, a1.SMTPAddr(), "x@rga.test", []string{"victim@rga.test"}, message("before"))
	send("plain-one")
	send("plain-two")
	send("peer-one", peer...)
	send("peer-two", peer...)
	send("peer-one", peer...) // a resend of the same copy: a duplicate, dropped
	mustSend(t, a1.SMTPAddr(), "x@rga.test", []string{"victim@rga.test"}, message("after"))
	want := []string{"before", "plain-one", "plain-two", "peer-one", "peer-two", "after"}
	count := func() map[string]int {
		got := map[string]int{}
		for id, n := range tm.delivered("rga") {
			got[strings.TrimSuffix(strings.TrimPrefix(id, "<"), "@client.test>")] = n
		}
		return got
	}
	poll(t, 20*time.Second, "all six delivered", func() error {
		if got := count(); len(got) != len(want) {
			return fmt.Errorf("delivered %v", got)
		}
		return nil
	})
	for w, n := range count() {
		if n != 1 {
			t.Errorf("%q delivered %d times, want once", w, n)
		}
	}
	if got := gathered(t, a1, "meshd_dedup_id_collisions_total"); got != 1 {
		t.Errorf("collisions counted %v, want 1", got)
	}
}

// TestOpenSSLAgainstMeshListeners: the mesh listener (STARTTLS) and the
// port-691 channel need a client certificate of the organisation.
func TestOpenSSLAgainstMeshListeners(t *testing.T) {
	openssl := extern.Require(t, extern.FindOpenSSL)
	tm := newTestMesh(t, map[string][]string{"rga": {"a1", "a2"}}, nil)
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)
	a1 := tm.nodes["a1"]
	a2id := tm.cfgs["a2"].Mesh.Identity
	_, rogue, err := pki.Lab(t.TempDir(), pki.Identity{Node: "a2", RG: "rga"})
	if err != nil {
		t.Fatal(err)
	}
	// served is what the listener answers only once it took the session:
	// 221 to our QUIT on the mesh listener, the REFUSE of our bytes (no
	// HELLO) on the port-691 listener. A refusal of our certificate ends
	// the connection before that, with an alert or, as often under load, a
	// TCP reset that openssl reports as neither: so "accepted" needs the
	// listener's answer, and "refused" a handshake that reached the
	// listener (its certificate verified) and no answer.
	served := map[bool]string{true: "221 ", false: "expected HELLO"}
	run := func(addr string, starttls bool, cert, key string) (string, bool) {
		args := []string{"s_client", "-connect", addr, "-CAfile", a2id.CAFiles[0], "-verify_return_error"}
		if starttls {
			args = append(args, "-starttls", "smtp")
		}
		if cert != "" {
			args = append(args, "-cert", cert, "-key", key)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		// -ign_eof: wait for the server to end the session, so TLS 1.3's
		// verdict on our certificate (an alert after the handshake) is read.
		cmd := exec.CommandContext(ctx, openssl, append(args, "-ign_eof")...)
		cmd.Stdin = strings.NewReader("QUIT\r\n")
		out, _ := cmd.CombinedOutput()
		s := string(out)
		return s, strings.Contains(s, served[starttls])
	}
	refused := func(t *testing.T, what, out string) {
		t.Helper()
		if !strings.Contains(out, "Verify return code: 0 (ok)") && !strings.Contains(out, "BEGIN CERTIFICATE") {
			t.Errorf("%s: the handshake never reached the listener:\n%s", what, out)
		}
	}
	for _, l := range []struct {
		name     string
		addr     string
		starttls bool
	}{{"mesh", a1.MeshAddr().String(), true}, {"linkstate", a1.LinkStateAddr(), false}} {
		if out, ok := run(l.addr, l.starttls, a2id.CertFile, a2id.KeyFile); !ok {
			t.Errorf("%s: node certificate refused:\n%s", l.name, out)
		}
		if out, ok := run(l.addr, l.starttls, "", ""); ok {
			t.Errorf("%s: accepted a client without certificate:\n%s", l.name, out)
		} else {
			refused(t, l.name+" without certificate", out)
		}
		if out, ok := run(l.addr, l.starttls, rogue["a2"][0], rogue["a2"][1]); ok {
			t.Errorf("%s: accepted a certificate of another CA:\n%s", l.name, out)
		} else {
			refused(t, l.name+" with another CA's certificate", out)
		}
	}
}

// gathered is the value of a counter without labels in n's registry.
func gathered(t *testing.T, n *Node, name string) float64 {
	t.Helper()
	fams, err := n.metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name && len(f.GetMetric()) > 0 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// mitmProxy sits where a1's connector ab expects rgb's bridgehead. Passing,
// it forwards TCP to b1; intercepting, it hands the session to an SMTP
// server that terminates STARTTLS with a certificate of its own.
type mitmProxy struct {
	ln        net.Listener
	intercept atomic.Bool
	pass      func() string // b1's mesh address
	rogue     string
	mu        sync.Mutex
	conns     []net.Conn
}

// start intercepting: the sessions forwarded so far are cut, so a1 must
// dial again (into the interception).
func (p *mitmProxy) startIntercepting() {
	p.intercept.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *mitmProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		to := p.pass()
		if p.intercept.Load() {
			to = p.rogue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		go func() {
			defer c.Close()
			up, err := net.Dial("tcp", to)
			if err != nil {
				return
			}
			defer up.Close()
			go func() { io.Copy(up, c); up.Close() }()
			io.Copy(c, up)
		}()
	}
}

func TestTLSInterceptingProxyRefused(t *testing.T) {
	_, rogueFiles, err := pki.Lab(t.TempDir(), pki.Identity{Node: "b1", RG: "rgb"}) // its own CA, b1's name
	if err != nil {
		t.Fatal(err)
	}
	rogueCert, err := tls.LoadX509KeyPair(rogueFiles["b1"][0], rogueFiles["b1"][1])
	if err != nil {
		t.Fatal(err)
	}
	rogue := startRemoteWith(t, nil, func(s *gosmtp.Server) {
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{rogueCert}}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var started atomic.Pointer[testMesh]
	proxy := &mitmProxy{ln: ln, rogue: rogue.addr.String(), pass: func() string {
		if tm := started.Load(); tm != nil {
			return tm.meshL["b1"]
		}
		return "127.0.0.1:1" // still starting: refused
	}}
	go proxy.serve()
	tm := newTestMeshWith(t, map[string][]string{"rga": {"a1"}, "rgb": {"b1"}},
		[]meshLink{{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10}}, func(c *config.Config) {
			for i := range c.Connectors {
				if c.Connectors[i].Name == "ab" {
					c.Connectors[i].Targets = []string{ln.Addr().String()}
				}
			}
		})
	started.Store(tm)
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)
	a1 := tm.nodes["a1"]
	delivered := func(id string, want int) func() error {
		return func() error {
			if got := tm.delivered("rgb")["<"+id+">"]; got != want {
				return fmt.Errorf("%s delivered %d times", id, got)
			}
			return nil
		}
	}
	if err := tm.sendTo("a1", "lee@rgb.test", "<before@test>"); err != nil {
		t.Fatal(err)
	}
	poll(t, 20*time.Second, "mail before the interception", delivered("before@test", 1))

	proxy.startIntercepting()
	if err := tm.sendTo("a1", "lee@rgb.test", "<during@test>"); err != nil {
		t.Fatal(err)
	}
	poll(t, 20*time.Second, "the interception refused and counted", func() error {
		if v := gatheredLabel(t, a1, "meshd_mesh_tls_peers_refused_total", "hop"); v < 1 {
			return fmt.Errorf("refused hops %v", v)
		}
		return nil
	})
	if got := rogue.received(); len(got) != 0 {
		t.Fatalf("the intercepting proxy was handed mail: %+v", got)
	}
	proxy.intercept.Store(false)
	if err := tm.sendTo("a1", "lee@rgb.test", "<after@test>"); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "mail after the interception", delivered("after@test", 1))
	poll(t, 30*time.Second, "mail held during the interception", delivered("during@test", 1))
	if got := tm.delivered("rgb")["<before@test>"]; got != 1 {
		t.Errorf("before@test delivered %d times", got)
	}
	if got := rogue.received(); len(got) != 0 {
		t.Fatalf("the intercepting proxy was handed mail: %+v", got)
	}
}

// gatheredLabel is a counter's value for one label value in n's registry.
func gatheredLabel(t *testing.T, n *Node, name, label string) float64 {
	t.Helper()
	fams, err := n.metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestRogueGossipMemberCannotJoin: a process on loopback without the
// organisation's gossip key tries to join rga's pool (with a priority in
// its metadata that would make it master): the join fails, rga's view
// never lists it, and mail keeps flowing exactly once.
func TestRogueGossipMemberCannotJoin(t *testing.T) {
	tm := newTestMesh(t, map[string][]string{"rga": {"a1", "a2"}}, nil)
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)
	a1 := tm.nodes["a1"]
	if err := tm.sendTo("a1", "lee@rga.test", "<before@test>"); err != nil {
		t.Fatal(err)
	}
	for _, key := range [][]byte{nil, []byte("0123456789abcdef0123456789abcdef")} {
		cfg := memberlist.DefaultLANConfig()
		cfg.Name, cfg.BindAddr, cfg.BindPort, cfg.AdvertisePort = "zz-rogue", "127.0.0.1", 0, 0
		cfg.SecretKey = key
		cfg.Label = "meshd/rg/rga" // public: the routing group's name
		cfg.LogOutput = io.Discard
		ml, err := memberlist.Create(cfg)
		if err != nil {
			t.Fatal(err)
		}
		n, err := ml.Join([]string{a1.Mesh().GossipAddr()})
		ml.Shutdown()
		if err == nil || n != 0 {
			t.Errorf("rogue (key %v) joined rga's pool: %d contacted, err %v", key != nil, n, err)
		}
		for _, m := range a1.Mesh().View().Members {
			if m.Name == "zz-rogue" {
				t.Fatalf("rga's view lists the rogue member: %+v", m)
			}
		}
	}
	if err := tm.sendTo("a1", "lee@rga.test", "<after@test>"); err != nil {
		t.Fatal(err)
	}
	poll(t, 20*time.Second, "mail before and after delivered once", func() error {
		got := tm.delivered("rga")
		if got["<before@test>"] != 1 || got["<after@test>"] != 1 || len(got) != 2 {
			return fmt.Errorf("delivered %v", got)
		}
		return nil
	})
}

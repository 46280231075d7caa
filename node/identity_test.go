package node

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/harness/extern"
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
		// A refused client certificate shows as an alert after the handshake.
		ok := strings.Contains(s, "Verify return code: 0 (ok)") && !strings.Contains(s, "alert") && !strings.Contains(s, ":error:")
		return s, ok
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
		}
		if out, ok := run(l.addr, l.starttls, rogue["a2"][0], rogue["a2"][1]); ok {
			t.Errorf("%s: accepted a certificate of another CA:\n%s", l.name, out)
		}
	}
}

// gathered is the value of a counter without labels in n's registry.
func gathered(t *testing.T, n *Node, name string) float64 {
	t.Helper()
	fams, err := n.metrics.reg.Gather()
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

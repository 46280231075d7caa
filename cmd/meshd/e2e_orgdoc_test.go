package main_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/pki"
)

// TestE2EOrgDocumentLive: three meshd processes (one node per site)
// started from short files (no routing groups, no connectors) learn
// their topology from an organisation document applied at one node with
// meshctl; a second document applied at another node makes rgb's
// connector to rgc dear and adds a direct pair between rga and rgc:
// every node routes by it (the time is logged), and the mail sent from
// a1 to rgc before and right after the change is delivered exactly once.
// A stale document and one signed by another CA are refused at every
// node, which keeps the version in force.
func TestE2EOrgDocumentLive(t *testing.T) {
	lab := startLab(t, labOptions{
		// The short file: name, data dir, listeners, certificate, keys.
		Members:  []labMember{{Name: "a1", RG: "rga"}, {Name: "b1", RG: "rgb"}, {Name: "c1", RG: "rgc"}},
		NoGroups: true,
	})
	line := `  - {name: ab, from: rga, to: rgb, cost: 10}
  - {name: ba, from: rgb, to: rga, cost: 10}
  - {name: bc, from: rgb, to: rgc, cost: 10}
  - {name: cb, from: rgc, to: rgb, cost: 10}
`
	v1 := lab.orgDoc("v1.yaml", 1, line)
	if out, code := meshctl(t, "-admin", lab.node("a1").Admin, "org", "apply", "-dir", lab.Dir, v1); code != 0 {
		t.Fatalf("meshctl org apply v1 at a1: exit %d\n%s", code, out)
	}
	routes := func(want map[string][2]string) func() bool {
		return func() bool {
			for name, w := range want {
				d, err := lab.node(name).trace(w[0])
				if err != nil || strings.Join(d.Path, ">") != w[1] {
					return false
				}
			}
			return true
		}
	}
	v1Routes := map[string][2]string{"a1": {"u@rgc.test", "rga>rgb>rgc"}, "c1": {"u@rga.test", "rgc>rgb>rga"}, "b1": {"u@rgc.test", "rgb>rgc"}}
	if !testkit.Poll(30*time.Second, routes(v1Routes)) {
		t.Fatal("the nodes do not route by v1")
	}

	subject := uniq(t)
	send := func(from, to int) error {
		for i := from; i < to; i++ {
			if out, code := swaks(t, "--server", lab.node("a1").SMTP, "--from", "alice@rga.test", "--to", "carol@rgc.test",
				"--header", fmt.Sprintf("Subject: %s-%02d", subject, i)); code != 0 {
				return fmt.Errorf("swaks %d: exit %d\n%s", i, code, out)
			}
		}
		return nil
	}
	sendN := func(from, to int) {
		if err := send(from, to); err != nil {
			t.Fatal(err)
		}
	}
	sendN(0, 5)
	v2 := lab.orgDoc("v2.yaml", 2, strings.Replace(line, "to: rgc, cost: 10", "to: rgc, cost: 60", 1)+
		"  - {name: ac, from: rga, to: rgc, cost: 15}\n  - {name: ca, from: rgc, to: rga, cost: 15}\n")
	start := time.Now()
	if out, code := meshctl(t, "-admin", lab.node("c1").Admin, "org", "apply", "-dir", lab.Dir, v2); code != 0 {
		t.Fatalf("meshctl org apply v2 at c1: exit %d\n%s", code, out)
	}
	applied := time.Since(start)
	during := make(chan error, 1)
	go func() { during <- send(5, 10) }() // mail while the mesh takes v2
	v2Routes := map[string][2]string{"a1": {"u@rgc.test", "rga>rgc"}, "c1": {"u@rga.test", "rgc>rga"}, "b1": {"u@rgc.test", "rgb>rga>rgc"}}
	if !testkit.Poll(30*time.Second, routes(v2Routes)) {
		t.Fatal("the nodes do not route by v2")
	}
	t.Logf("v2 applied at c1 (meshctl took %v): every node routes by it %v after meshctl started", applied.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if err := <-during; err != nil {
		t.Fatal(err)
	}
	sendN(10, 15)
	md := lab.node("c1").Maildir
	for i := range 15 {
		want := fmt.Sprintf("Subject: %s-%02d", subject, i)
		waitMailbox(t, md, "carol@rgc.test", 60*time.Second, want)
		n := 0
		for _, m := range mailbox(md, "carol@rgc.test") {
			if strings.Contains(m, want) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("message %d delivered %d times, want exactly once", i, n)
		}
	}

	// The attacks: v1 again (stale), and a v3 signed by another CA.
	other := t.TempDir()
	if _, err := pki.Init(pki.InitOptions{Dir: other}); err != nil {
		t.Fatal(err)
	}
	v3 := lab.orgDoc("v3.yaml", 3, line)
	for name, n := range lab.nodes {
		if out, code := meshctl(t, "-admin", n.Admin, "org", "apply", "-dir", lab.Dir, v1); code != 1 || !strings.Contains(out, "not newer") {
			t.Errorf("%s: stale v1: exit %d\n%s", name, code, out)
		}
		if out, code := meshctl(t, "-admin", n.Admin, "org", "apply", "-dir", other, v3); code != 1 || !strings.Contains(out, "signature does not verify") {
			t.Errorf("%s: v3 of another CA: exit %d\n%s", name, code, out)
		}
	}
	for name, n := range lab.nodes {
		if out, code := meshctl(t, "-admin", n.Admin, "org", "show"); code != 0 || !strings.Contains(out, "# version 2,") {
			t.Errorf("%s: org show after the attacks: exit %d\n%s", name, code, out)
		}
	}
	if !testkit.Poll(10*time.Second, routes(v2Routes)) {
		t.Error("the nodes no longer route by v2 after the attacks")
	}
}

package node

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshd/meshd/node/config"

	"github.com/meshd/meshd/pki"
)

// TestMemberWithExpiredCertificateStopsCounting: a2 joins rga with a
// certificate valid for a few seconds, proves its name and counts; once
// the certificate has expired a1 no longer counts it (listed unverified,
// with the reason), although a2 stays in the gossip pool. Before, a
// member's proof was never made again while it stayed in the pool.
func TestMemberWithExpiredCertificateStopsCounting(t *testing.T) {
	const validity = 10 * time.Second
	var expires time.Time
	tm := newTestMeshWith(t, map[string][]string{"rga": {"a1", "a2"}}, nil, func(c *config.Config) {
		if c.Node.Name != "a2" {
			return
		}
		now := time.Now()
		cert, key, err := pki.Issue(pki.IssueOptions{Dir: filepath.Dir(c.Mesh.Identity.CAFiles[0]), Node: "a2", RG: "rga",
			Validity: validity, Out: t.TempDir(), Now: now})
		if err != nil {
			t.Fatal(err)
		}
		c.Mesh.Identity.CertFile, c.Mesh.Identity.KeyFile = cert, key
		expires = now.Add(validity)
	})
	a1 := tm.nodes["a1"]
	poll(t, validity, "a2 counted at a1", func() error {
		if _, ok := a1.Mesh().View().Member("a2"); !ok {
			return fmt.Errorf("a1's view: %+v", a1.Mesh().View())
		}
		return nil
	})
	if time.Now().After(expires) {
		t.Fatal("a2's certificate expired before a2 counted: the machine is too slow for this test")
	}
	took := poll(t, validity+20*time.Second, "a2 no longer counted at a1 after its certificate expired", func() error {
		v := a1.Mesh().View()
		if _, ok := v.Member("a2"); ok {
			return fmt.Errorf("a1 still counts a2 (certificate expires %s)", expires.Format(time.TimeOnly))
		}
		for _, u := range v.Unverified {
			if u.Name == "a2" {
				return nil
			}
		}
		return fmt.Errorf("a2 is not listed unverified: %+v", v.Unverified)
	})
	t.Logf("a2 stopped counting %v after the test began waiting (certificate expired at %s)", took, expires.Format(time.TimeOnly))
}

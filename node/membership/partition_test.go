package membership

import (
	"testing"
	"time"

	"github.com/meshd/meshd/harness/netem"
	"github.com/meshd/meshd/internal/testkit"
)

func TestPartitionHeals(t *testing.T) {
	nw := netem.New(netem.Options{Seed: 7})
	defer nw.Close()
	start := func(name string, seeds ...string) *Pool {
		tr, err := nw.Host(name).GossipTransport("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p, err := Start(Config{Name: name, Meta: Meta{RG: "rg1"}, Transport: tr, Seeds: seeds, Fast: true, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := start("a")
	defer a.Close()
	b := start("b", a.Addr())
	defer b.Close()
	c := start("c", a.Addr())
	defer c.Close()
	testkit.Eventually(t, 10*time.Second, "joined", sameView([]string{"a", "b", "c"}, "a", a, b, c))

	nw.Partition([]string{"a"}, []string{"b", "c"})
	testkit.Eventually(t, 15*time.Second, "b,c elect b", sameView([]string{"b", "c"}, "b", b, c))
	testkit.Eventually(t, 15*time.Second, "a alone", sameView([]string{"a"}, "a", a))

	nw.HealAll()
	testkit.Eventually(t, 15*time.Second, "healed", sameView([]string{"a", "b", "c"}, "a", a, b, c))
}

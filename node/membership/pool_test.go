package membership

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshd/meshd/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// changes records every view a pool reported.
type changes struct {
	mu    sync.Mutex
	views []View
}

func (c *changes) add(v View) { c.mu.Lock(); c.views = append(c.views, v); c.mu.Unlock() }

func (c *changes) last() View {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.views) == 0 {
		return View{}
	}
	return c.views[len(c.views)-1]
}

func start(t *testing.T, name, rg string, prio uint32, key []byte, seeds ...string) (*Pool, *changes) {
	t.Helper()
	ch := &changes{}
	p, err := Start(Config{
		Name: name, Meta: Meta{RG: rg, SMTP: "127.0.0.1:25", LinkState: "127.0.0.1:691", Priority: prio},
		Bind: "127.0.0.1:0", Seeds: seeds, Key: key, Fast: true, OnChange: ch.add, Logger: quiet,
	})
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return p, ch
}

func sameView(want []string, master string, pools ...*Pool) func() error {
	return func() error {
		for _, p := range pools {
			v := p.View()
			var names []string
			for _, m := range v.Members {
				names = append(names, m.Name)
			}
			if fmt.Sprint(names) != fmt.Sprint(want) || v.Master != master {
				return fmt.Errorf("%s sees %v master %q", p.cfg.Name, names, v.Master)
			}
		}
		return nil
	}
}

func TestElectionAndFailover(t *testing.T) {
	a, _ := start(t, "a", "rg1", 0, nil)
	b, bch := start(t, "b", "rg1", 0, nil, a.Addr())
	c, _ := start(t, "c", "rg1", 0, nil, a.Addr())
	defer b.Close()
	defer c.Close()
	testkit.Eventually(t, 5*time.Second, "three members, master a", sameView([]string{"a", "b", "c"}, "a", a, b, c))
	if !a.IsMaster() || b.IsMaster() {
		t.Fatalf("IsMaster: a=%v b=%v", a.IsMaster(), b.IsMaster())
	}
	if m, ok := b.View().Member("c"); !ok || m.SMTP != "127.0.0.1:25" || m.LinkState != "127.0.0.1:691" {
		t.Fatalf("metadata of c as b sees it: %+v %v", m, ok)
	}
	// The master dies without a word: the next in rank takes over.
	if err := a.Crash(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "b master after a crashed", sameView([]string{"b", "c"}, "b", b, c))
	if got := bch.last().Master; got != "b" {
		t.Fatalf("OnChange last master = %q, want b", got)
	}
}

func TestPriorityBeatsName(t *testing.T) {
	a, _ := start(t, "a", "rg1", 0, nil)
	z, _ := start(t, "z", "rg1", 10, nil, a.Addr())
	defer a.Close()
	testkit.Eventually(t, 5*time.Second, "z master by priority", sameView([]string{"z", "a"}, "z", a, z))
	// A graceful leave is seen at once, without waiting for suspicion.
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 3*time.Second, "a master after z left", sameView([]string{"a"}, "a", a))
}

func TestPoolsOfOtherGroupsStayApart(t *testing.T) {
	a, _ := start(t, "a", "rg1", 0, nil)
	defer a.Close()
	x, _ := start(t, "x", "rg2", 0, nil, a.Addr()) // wrong label: the join fails
	defer x.Close()
	b, _ := start(t, "b", "rg1", 0, nil, a.Addr())
	defer b.Close()
	testkit.Eventually(t, 5*time.Second, "rg1 pool", sameView([]string{"a", "b"}, "a", a, b))
	if got := len(x.View().Members); got != 1 {
		t.Fatalf("x sees %d members, want only itself", got)
	}
}

func TestEncryptedPool(t *testing.T) {
	key := []byte("0123456789abcdef")
	a, _ := start(t, "a", "rg1", 0, key)
	defer a.Close()
	b, _ := start(t, "b", "rg1", 0, key, a.Addr())
	defer b.Close()
	testkit.Eventually(t, 5*time.Second, "encrypted pool", sameView([]string{"a", "b"}, "a", a, b))
	// A member with another key cannot join.
	c, _ := start(t, "c", "rg1", 0, []byte("fedcba9876543210"), a.Addr())
	defer c.Close()
	if got := len(c.View().Members); got != 1 {
		t.Fatalf("member with wrong key sees %d members", got)
	}
	if got := len(a.View().Members); got != 2 {
		t.Fatalf("a sees %d members after a wrong-key join, want 2", got)
	}
}

func TestMetaCodec(t *testing.T) {
	m := Meta{RG: "rg1", SMTP: "127.0.0.1:2525", LinkState: "127.0.0.1:6910", Priority: 7}
	b, err := encodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeMeta(b)
	if err != nil || got != m {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, bad := range []string{"", "{", `{"v":2,"rg":"x"}`, `{"rg":"x"}`} {
		if _, err := decodeMeta([]byte(bad)); err == nil {
			t.Errorf("decodeMeta(%q) accepted", bad)
		}
	}
	if _, err := encodeMeta(Meta{RG: string(make([]byte, 600))}); err == nil {
		t.Error("oversized meta accepted")
	}
}

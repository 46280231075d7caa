package node

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestAlertRules checks docs/alerts.yml with promtool and that every meshd
// metric it uses is one a node exports.
func TestAlertRules(t *testing.T) {
	const rules = "../docs/alerts.yml"
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/promtool"); serr != nil {
			t.Fatalf("promtool not found (Debian package prometheus): run scripts/install-deps")
		}
		promtool = "/usr/bin/promtool"
	}
	out, err := exec.Command(promtool, "check", "rules", rules).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", rules, err, out)
	}
	if !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool did not report SUCCESS:\n%s", out)
	}

	text, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	exported := exportedMetricNames(t)
	used := regexp.MustCompile(`\bmeshd_[a-z0-9_]+`).FindAllString(string(text), -1)
	if len(used) < 10 {
		t.Fatalf("only %d metric uses found in %s", len(used), rules)
	}
	for _, name := range used {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if !exported[name] && !exported[base] {
			t.Errorf("%s uses %s, which no node exports", rules, name)
		}
	}
}

// exportedMetricNames lists every metric a mesh node's registry describes.
func exportedMetricNames(t *testing.T) map[string]bool {
	tm := newTestMesh(t, map[string][]string{"rga": {"a1"}}, nil)
	n := tm.nodes["a1"]
	n.adminHandler() // registers the scrape-time collector, as New does with listen.admin
	ch := make(chan *prometheus.Desc, 256)
	go func() {
		n.metrics.Registry().Describe(ch)
		close(ch)
	}()
	re := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for d := range ch {
		if m := re.FindStringSubmatch(d.String()); m != nil {
			names[m[1]] = true
		}
	}
	if !names["meshd_connector_suppressed"] || !names["meshd_queue_messages"] {
		t.Fatalf("registry does not describe the expected metrics: %v", names)
	}
	return names
}

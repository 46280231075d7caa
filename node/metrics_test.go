package node

import (
	"net"
	"net/textproto"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// metricOf is the metric called name in n's registry whose labels hold
// the name/value pairs of labels (nil when there is none: a counter
// never counted).
func metricOf(t *testing.T, n *Node, name string, labels ...string) *dto.Metric {
	t.Helper()
	fams, err := n.metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !slices.ContainsFunc(m.GetLabel(), func(lp *dto.LabelPair) bool {
					return lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
				}) {
					continue next
				}
			}
			return m
		}
	}
	return nil
}

// counterOf is the value of a counter of metricOf (0 when never counted).
func counterOf(t *testing.T, n *Node, name string, labels ...string) float64 {
	t.Helper()
	return metricOf(t, n, name, labels...).GetCounter().GetValue()
}

// TestReplyMetrics: meshd_smtp_replies_total counts every reply of the
// dialogue by listener and code, not only the verdict on the message.
func TestReplyMetrics(t *testing.T) {
	n := startNode(t, testConfig(t), Options{})
	c, err := net.DialTimeout("tcp", n.SMTPAddr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	tp := textproto.NewConn(c)
	step := func(cmd string, want int) {
		t.Helper()
		if cmd != "" {
			if err := tp.PrintfLine("%s", cmd); err != nil {
				t.Fatal(err)
			}
		}
		if code, msg, err := tp.ReadResponse(0); code != want {
			t.Fatalf("%q: %d %s (%v), want %d", cmd, code, msg, err, want)
		}
	}
	step("", 220)
	step("EHLO client.test", 250)
	step("RCPT TO:<bob@example.test>", 503)
	step("MAIL FROM:<alice@example.test>", 250)
	step("RCPT TO:<someone@far.test>", 550)
	step("RCPT TO:<bob@example.test>", 250)
	step("DATA", 354)
	if _, err := c.Write([]byte(message("metrics") + ".\r\n")); err != nil {
		t.Fatal(err)
	}
	step("", 250)
	step("QUIT", 221)
	want := map[string]float64{"220": 1, "250": 4, "503": 1, "550": 1, "354": 1, "221": 1}
	for code, n0 := range want {
		if got := counterOf(t, n, "meshd_smtp_replies_total", "listener", "smtp", "code", code); got != n0 {
			t.Errorf(`meshd_smtp_replies_total{listener="smtp",code=%q} = %v, want %v`, code, got, n0)
		}
	}
}

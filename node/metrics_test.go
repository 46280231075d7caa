package node

import (
	"net"
	"net/textproto"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func testutilCount(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
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
		if got := testutilCount(n.metrics.replies.WithLabelValues("smtp", code)); got != n0 {
			t.Errorf(`meshd_smtp_replies_total{listener="smtp",code=%q} = %v, want %v`, code, got, n0)
		}
	}
}

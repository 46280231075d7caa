package node

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/node/adminapi"
)

// TestSmarthostReplyLostIsSaid: a smarthost that takes the whole message
// and drops the connection before its reply to the final dot may hold the
// message; nobody outside the mesh can be asked, so the retry may deliver
// it twice (RFC 5321 §6.1). The node says so: the deferral is tracked
// with reply_lost and counted in meshd_delivery_reply_lost_total.
func TestSmarthostReplyLostIsSaid(t *testing.T) {
	peer := testkit.NewScript(t,
		testkit.Step{Reply: "220 smarthost.test ESMTP"}, testkit.Step{Expect: "EHLO", Reply: "250 smarthost.test"},
		testkit.Step{Expect: "MAIL", Reply: "250 2.1.0 ok"}, testkit.Step{Expect: "RCPT", Reply: "250 2.1.5 ok"},
		testkit.Step{Expect: "DATA", Reply: "354 go"}, testkit.Step{Expect: testkit.Data})
	cfg := testConfig(t)
	cfg.Outbound.Smarthost = peer.Addr
	cfg.Relay.AllowNetworks = []string{"127.0.0.1"}
	n := startNode(t, cfg, Options{})
	mustSend(t, n.SMTPAddr(), "alice@example.test", []string{"r@far.test"}, message("reply-lost"))

	var lost, other []adminapi.TrackEvent
	waitFor(t, 10*time.Second, "a deferral after the dot, then one before it", func() bool {
		lost, other = nil, nil
		b, _ := os.ReadFile(filepath.Join(cfg.Node.DataDir, "track.log"))
		for line := range strings.Lines(string(b)) {
			var ev adminapi.TrackEvent
			if json.Unmarshal([]byte(line), &ev) != nil || ev.Event != "deferred" {
				continue
			}
			if ev.ReplyLost {
				lost = append(lost, ev)
			} else {
				other = append(other, ev)
			}
		}
		return len(lost) > 0 && len(other) > 0
	})
	if len(lost) != 1 || lost[0].Kind != "smarthost" || !strings.Contains(lost[0].Reply, "after the final dot") {
		t.Errorf("reply-lost deferrals %+v, want one of kind smarthost naming the final dot", lost)
	}
	// The retry found no listener: a deferral, but no reply was lost.
	resp, err := http.Get("http://" + n.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `meshd_delivery_reply_lost_total{kind="smarthost"} 1`; !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %q", want)
	}
}

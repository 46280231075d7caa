package smtp

import (
	"bytes"
	"testing"

	"github.com/meshd/meshd/internal/testkit"
)

// TestClientSendsNoBareLineEnds: whatever body the queue holds (here every
// end-of-data look-alike, and a bare CR before a dot line), the client, over
// SMTP and LMTP, sends only CRLF line ends and one message per send, whose
// content read back is the body with its line ends normalised.
func TestClientSendsNoBareLineEnds(t *testing.T) {
	for _, lmtp := range []bool{false, true} {
		rec := testkit.NewSink(t, testkit.SinkOptions{LMTP: lmtp})
		c := newTestClient(t, ClientConfig{LMTP: lmtp})
		var bodies [][]byte
		for _, eod := range append(smugglingEnds, "\r\n.\rX", "\r\r\n.\r\n") {
			bodies = append(bodies, []byte("Subject: s\r\n\r\nouter"+eod+"MAIL FROM:<f@evil.test>\r\nRCPT TO:<v@x.test>\r\nDATA\r\nforged\r\n.\r\nQUIT\r\n"))
		}
		for _, b := range bodies {
			res, err := send(t, c, rec.Addr, Outgoing{From: "a@example.test", Rcpts: []Rcpt{{Addr: "b@remote.test"}}, Body: b})
			if err != nil || len(res) != 1 || !res[0].OK() {
				t.Fatalf("lmtp %v: send %q: %+v, %v", lmtp, b, res, err)
			}
		}
		raw, msgs := rec.Raw(), rec.Messages()
		if hasBareLineEnd(raw) {
			t.Fatalf("lmtp %v: bare CR or LF on the wire: %q", lmtp, raw)
		}
		if len(msgs) != len(bodies) {
			t.Fatalf("lmtp %v: %d messages arrived for %d sent", lmtp, len(msgs), len(bodies))
		}
		for i, m := range msgs {
			got := bytes.ReplaceAll(bytes.TrimSuffix(m.Data, []byte(".\r\n")), []byte("\r\n.."), []byte("\r\n."))
			if want := normalizeLineEnds(bodies[i]); !bytes.Equal(got, want) {
				t.Errorf("lmtp %v: message %d arrived as %q, want %q", lmtp, i, got, want)
			}
		}
	}
}

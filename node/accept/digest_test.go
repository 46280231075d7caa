package accept

import (
	"testing"

	"github.com/meshd/meshd/smtp"
)

// TestContentDigestIgnoresHopFields: a copy's digest is the same whatever
// path it took (Received: and X-Meshd-* fields each hop prepends or
// rewrites), and differs when the envelope or the content does.
func TestContentDigestIgnoresHopFields(t *testing.T) {
	env := smtp.Envelope{From: "a@x.test", Rcpts: []smtp.Rcpt{{Addr: "B@y.test"}, {Addr: "c@y.test"}}}
	body := []byte("Subject: hi\r\n\r\nbody\r\n")
	hopped := []byte("Received: from a1\r\n\tby b1; Mon, 7 Dec 2026\r\nX-Meshd-ID: abc\r\nX-Meshd-Trace: rga\r\nReceived: from x\r\n" + string(body))
	base := contentDigest(env, body)
	if got := contentDigest(env, hopped); got != base {
		t.Errorf("digest with hop fields %s, without %s: want the same", got, base)
	}
	reordered := smtp.Envelope{From: env.From, Rcpts: []smtp.Rcpt{{Addr: "c@y.test"}, {Addr: "b@y.test"}}}
	if got := contentDigest(reordered, body); got != base {
		t.Errorf("recipients reordered or recased changed the digest: %s, want %s", got, base)
	}
	for name, d := range map[string]string{
		"other sender":      contentDigest(smtp.Envelope{From: "z@x.test", Rcpts: env.Rcpts}, body),
		"other recipients":  contentDigest(smtp.Envelope{From: env.From, Rcpts: env.Rcpts[:1]}, body),
		"other content":     contentDigest(env, []byte("Subject: hi\r\n\r\nBODY\r\n")),
		"field not a hop's": contentDigest(env, []byte("X-Other: 1\r\n"+string(body))),
	} {
		if d == base {
			t.Errorf("%s: same digest", name)
		}
	}
}

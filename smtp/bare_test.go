package smtp

import (
	"bytes"
	"strings"
	"testing"
)

// TestBareLineEndsInbound plays a smuggling client on a real session: each
// end-of-data look-alike sits inside a message, followed by the commands
// of a second, forged one, and then the real end of data. Under normalize
// exactly one message is stored, with CRLF line ends only and the forged
// commands kept as content; under reject the message is refused with 550
// 5.6.0 and nothing is stored; either way the session goes on and the next
// message (clean) is accepted, and no forged message appears.
func TestBareLineEndsInbound(t *testing.T) {
	variants := append([]string{"\r\n.\rX"}, smugglingEnds...)
	for _, policy := range []BarePolicy{BareNormalize, BareReject} {
		for _, eod := range variants {
			t.Run(string(policy)+"/"+strings.NewReplacer("\r", "CR", "\n", "LF").Replace(eod), func(t *testing.T) {
				sink := &fakeSink{}
				srv := startServer(t, sink, func(c *ServerConfig) { c.Limits.BareLineEnds = policy })
				w := dialWire(t, srv.Addr().String())
				w.expect("220")
				w.cmd("EHLO client.test", "250")
				w.cmd("MAIL FROM:<a@example.test>", "250")
				w.cmd("RCPT TO:<b@example.test>", "250")
				w.cmd("DATA", "354")
				w.raw("Subject: outer\r\n\r\nouter" + eod + "MAIL FROM:<forged@example.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nforged\r\n.\r\n")
				if policy == BareReject {
					w.expect("550 5.6.0")
				} else {
					w.expect("250")
				}
				w.cmd("MAIL FROM:<a@example.test>", "250")
				w.cmd("RCPT TO:<b@example.test>", "250")
				w.cmd("DATA", "354")
				w.raw(msg("after") + ".\r\n")
				w.expect("250")
				w.cmd("QUIT", "221")
				msgs := sink.messages()
				want := 2
				if policy == BareReject {
					want = 1
				}
				if len(msgs) != want {
					t.Fatalf("%d messages stored, want %d", len(msgs), want)
				}
				for _, m := range msgs {
					if m.env.From != "a@example.test" {
						t.Errorf("forged envelope stored: %+v", m.env)
					}
					if hasBareLineEnd(m.body) {
						t.Errorf("stored body has a bare CR or LF: %q", m.body)
					}
				}
				if policy == BareNormalize && !bytes.Contains(msgs[0].body, []byte("MAIL FROM:<forged@example.test>\r\n")) {
					t.Errorf("forged commands not kept as content: %q", msgs[0].body)
				}
				// "\r\n.\rX": RFC 5321 §4.5.2 deletes the period only; the
				// CR after it is a bare one, normalised.
				if policy == BareNormalize && eod == "\r\n.\rX" && !bytes.Contains(msgs[0].body, []byte("outer\r\n\r\nXMAIL FROM:")) {
					t.Errorf("a line starting .<CR> stored as %q", msgs[0].body)
				}
			})
		}
	}
}

// TestBareLineEndsBDAT: BDAT content is taken raw; the policy applies to it
// too.
func TestBareLineEndsBDAT(t *testing.T) {
	for _, policy := range []BarePolicy{BareNormalize, BareReject} {
		sink := &fakeSink{}
		srv := startServer(t, sink, func(c *ServerConfig) { c.Limits.BareLineEnds = policy })
		w := dialWire(t, srv.Addr().String())
		w.expect("220")
		w.cmd("EHLO client.test", "250")
		w.cmd("MAIL FROM:<a@example.test>", "250")
		w.cmd("RCPT TO:<b@example.test>", "250")
		chunk := "Subject: b\r\n\r\nx\r.\rMAIL FROM:<f@example.test>\n"
		w.send("BDAT " + itoa(len(chunk)) + " LAST")
		w.raw(chunk)
		if policy == BareReject {
			w.expect("550 5.6.0")
			if n := len(sink.messages()); n != 0 {
				t.Fatalf("%s: %d messages stored", policy, n)
			}
			continue
		}
		w.expect("250")
		m := sink.messages()
		if len(m) != 1 || hasBareLineEnd(m[0].body) || !bytes.HasSuffix(m[0].body, []byte("x\r\n.\r\nMAIL FROM:<f@example.test>\r\n")) {
			t.Fatalf("%s: stored %+v", policy, m)
		}
	}
}

func itoa(n int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		if n /= 10; n == 0 {
			return string(b)
		}
	}
}

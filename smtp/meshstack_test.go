package smtp_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/smtp"
	"github.com/meshd/meshd/smtp/dialogue"
	"github.com/meshd/meshd/smtp/xlink"
)

// TestMeshListenerStack runs the server the way node runs a mesh listener:
// one dialogue follower terminates STARTTLS and runs smtp/xlink's
// extension. Sequence errors must be 503 before and after STARTTLS, the session
// must see TLS, and content must pass untouched.
func TestMeshListenerStack(t *testing.T) {
	host := testkit.Localhost(t)
	serverTLS, clientTLS := host.ServerTLS(), host.ClientTLS()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := &stackSink{}
	srv, err := smtp.NewServer(smtp.ServerConfig{
		Hostname: "mesh.meshd.test",
		Listener: inner,
		TLS:      serverTLS,
		Extensions: []dialogue.Extension{xlink.NewExtension(xlink.Config{Hostname: "mesh.meshd.test", Store: emptyStore{},
			Allow: func(net.Addr, *tls.ConnectionState) bool { return true }})},
		Mesh:     true,
		MeshPeer: func(*smtp.Session, *tls.ConnectionState) bool { return true },
		Policy:   acceptAll{},
		Sink:     sink,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })

	c, err := net.DialTimeout("tcp", srv.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	tp := textproto.NewConn(c)
	cmd := func(line, want string) string {
		t.Helper()
		if line != "" {
			if err := tp.PrintfLine("%s", line); err != nil {
				t.Fatal(err)
			}
		}
		code, msg, err := tp.ReadResponse(0)
		got := strings.TrimSpace(strings.Join([]string{itoa3(code), msg}, " "))
		if err != nil && code == 0 {
			t.Fatalf("%q: %v", line, err)
		}
		if !strings.HasPrefix(got, want) {
			t.Fatalf("%q: reply %q, want prefix %q", line, got, want)
		}
		return got
	}

	cmd("", "220")
	caps := cmd("EHLO peer.mesh.test", "250")
	// X-LINK2STATE is for a known peer: offered only after STARTTLS.
	if !strings.Contains(caps, "\nSTARTTLS") || strings.Contains(caps, "X-LINK2STATE") {
		t.Fatalf("EHLO before TLS: %q", caps)
	}
	cmd("RCPT TO:<b@example.test>", "503 5.5.1 Missing MAIL FROM command.")
	cmd("STARTTLS", "220")
	tc := tls.Client(c, clientTLS)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	tp = textproto.NewConn(tc)
	cmd("MAIL FROM:<a@example.test>", "503 5.5.1")
	caps = cmd("EHLO peer.mesh.test", "250")
	if strings.Contains(caps, "STARTTLS") || !strings.Contains(caps, "\nX-LINK2STATE") {
		t.Fatalf("EHLO after TLS: %q", caps)
	}
	cmd("DATA", "503 5.5.1 Missing RCPT TO command.")
	// The same follower answers X-LINK2STATE, in order with go-smtp's
	// replies under PIPELINING, and renumbers go-smtp's around it.
	zero := strings.Repeat("0", 64)
	if err := tp.PrintfLine("RCPT TO:<b@example.test>\r\nX-LINK2STATE DIGEST %s\r\nDATA", zero); err != nil {
		t.Fatal(err)
	}
	cmd("", "503 5.5.1 Missing MAIL FROM command.")
	cmd("", "250 2.0.0 DIGEST "+zero)
	cmd("", "503 5.5.1 Missing RCPT TO command.")
	cmd("MAIL FROM:<a@example.test>", "250")
	cmd("RCPT TO:<b@example.test>", "250")
	cmd("DATA", "354")
	body := "Subject: lookalikes\r\n\r\n502 5.5.1 Missing MAIL FROM command.\r\nSTARTTLS\r\n"
	cmd(body+".", "250 2.0.0")
	cmd("QUIT", "221")

	msgs := sink.all()
	if len(msgs) != 1 || !msgs[0].s.TLS || !msgs[0].s.MeshPeer || !strings.HasSuffix(msgs[0].body, body) {
		t.Fatalf("sink holds %+v", msgs)
	}
}

func itoa3(c int) string {
	return string([]byte{byte('0' + c/100%10), byte('0' + c/10%10), byte('0' + c%10)})
}

type acceptAll struct{}

func (acceptAll) CheckRcpt(*smtp.Session, string) error { return nil }

type stackMsg struct {
	s    smtp.Session
	body string
}

type stackSink struct {
	mu   sync.Mutex
	msgs []stackMsg
}

func (k *stackSink) Accept(_ context.Context, s *smtp.Session, _ smtp.Envelope, body []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.msgs = append(k.msgs, stackMsg{s: *s, body: string(body)})
	return nil
}

func (k *stackSink) all() []stackMsg {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]stackMsg(nil), k.msgs...)
}

// emptyStore is a link-state store that holds nothing.
type emptyStore struct{}

func (emptyStore) Digest() [32]byte                               { return [32]byte{} }
func (emptyStore) Summaries() []byte                              { return nil }
func (emptyStore) Newer([]byte) ([][]byte, error)                 { return nil, nil }
func (emptyStore) Install(context.Context, [][]byte) (int, error) { return 0, nil }

package dialogue

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
)

// pipe returns both ends of a loopback TCP connection.
func pipe(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// mxCert is a certificate for mx.test from a test CA.
func mxCert(t *testing.T) tls.Certificate {
	t.Helper()
	return testkit.NewCA(t).Host(t, "mx.test").Cert
}

func TestWireWriteReplies(t *testing.T) {
	client, server := pipe(t)
	w := NewWire(server)
	var mu sync.Mutex
	lines := 0
	filter := func(send, line []byte) []byte {
		lines++ // mu is held: the race detector checks it
		return append(send, bytes.Replace(line, []byte("502"), []byte("503"), 1)...)
	}
	for _, p := range []string{"250-a\r\n25", "0 b\r\n502 5.5.1 x\r\n"} {
		n, err := w.WriteReplies([]byte(p), &mu, filter)
		if err != nil || n != len(p) {
			t.Fatalf("WriteReplies(%q) = %d, %v", p, n, err)
		}
	}
	if err := w.Reply(time.Minute, []byte("221 bye\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(client)
	var got []string
	for range 4 {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, l)
	}
	want := []string{"250-a\r\n", "250 b\r\n", "503 5.5.1 x\r\n", "221 bye\r\n"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("client got %q, want %q", got, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if lines != 3 {
		t.Fatalf("filter saw %d lines, want 3", lines)
	}
}

func TestWireStartTLS(t *testing.T) {
	client, server := pipe(t)
	w := NewWire(server)
	if _, ok := w.TLS(); ok {
		t.Fatal("TLS before STARTTLS")
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{mxCert(t)}}

	type result struct {
		line string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		_ = client.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(client)
		line, err := br.ReadString('\n')
		if err != nil {
			done <- result{line, err}
			return
		}
		tc := tls.Client(client, &tls.Config{ServerName: "mx.test", InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			done <- result{line, err}
			return
		}
		got, err := bufio.NewReader(tc).ReadString('\n')
		done <- result{line + got, err}
	}()

	tc, err := w.StartTLS(cfg, 10*time.Second, func(tc *tls.Conn) error { return tc.Handshake() })
	if err != nil {
		t.Fatal(err)
	}
	cs, ok := w.TLS()
	if !ok || !cs.HandshakeComplete || tc == nil {
		t.Fatalf("TLS() = %v, %v after StartTLS", cs.HandshakeComplete, ok)
	}
	// Replies now go through the TLS session.
	if err := w.Reply(10*time.Second, []byte("250 over tls\r\n")); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.line != "220 2.0.0 Ready to start TLS\r\n250 over tls\r\n" {
		t.Fatalf("client saw %q, %v", r.line, r.err)
	}
	if err := w.Close(time.Second); err != nil {
		t.Fatalf("Close after STARTTLS: %v", err)
	}
}

func TestWireStartTLSHandshakeFails(t *testing.T) {
	client, server := pipe(t)
	w := NewWire(server)
	cfg := &tls.Config{Certificates: []tls.Certificate{mxCert(t)}}
	go func() {
		_ = client.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(client)
		_, _ = br.ReadString('\n')
		_, _ = client.Write([]byte("not a TLS client hello\r\n"))
	}()
	_, err := w.StartTLS(cfg, 10*time.Second, func(tc *tls.Conn) error { return tc.Handshake() })
	var he *HandshakeError
	if !errors.As(err, &he) || he.Err == nil {
		t.Fatalf("StartTLS = %v, want a *HandshakeError", err)
	}
	if _, ok := w.TLS(); ok {
		t.Fatal("TLS after a failed handshake")
	}
	// The connection is closed: the client sees EOF.
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	for {
		if _, err := client.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("connection not closed after a failed handshake")
			}
			break
		}
	}
}

func TestWireClosePlain(t *testing.T) {
	_, server := pipe(t)
	w := NewWire(server)
	if err := w.Close(time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Write([]byte("x")); err == nil {
		t.Fatal("write after Close succeeded")
	}
}

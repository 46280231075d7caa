package smtp

import (
	"net"
	"testing"
	"time"
)

func TestScanHeader(t *testing.T) {
	tests := []struct {
		name     string
		msg      string
		size     int
		received int
	}{
		{"empty", "", 0, 0},
		{"no body", "Subject: x\r\n", 12, 0},
		{"header and body", "Received: a\r\nSubject: x\r\n\r\nReceived: in body\r\n", 27, 1},
		{"folded and case", "received: a\r\n\tcontinued Received: no\r\nRECEIVED : b\r\n\r\n", 54, 2},
		{"LF only", "Received: a\nReceived: b\n\nbody\n", 25, 2},
		{"not a field", "Received-SPF: pass\r\nX-Received: y\r\n\r\n", 37, 0},
		{"empty first line", "\r\nReceived: body\r\n", 2, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			size, rc := scanHeader([]byte(tc.msg))
			if size != tc.size || rc != tc.received {
				t.Fatalf("scanHeader = %d, %d; want %d, %d", size, rc, tc.size, tc.received)
			}
		})
	}
}

func TestReceivedHeader(t *testing.T) {
	s := &Server{cfg: ServerConfig{Hostname: "mx.meshd.test"}, now: func() time.Time {
		return time.Date(2026, 11, 25, 13, 10, 0, 0, time.FixedZone("", 3600))
	}}
	v4 := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 4000}
	v6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 4000}
	one := Envelope{Rcpts: []Rcpt{{Addr: "b@example.test"}}}
	two := Envelope{Rcpts: []Rcpt{{Addr: "b@example.test"}, {Addr: "c@example.test"}}}
	tests := []struct {
		name string
		info Session
		env  Envelope
		want string
	}{
		{"plain one rcpt", Session{RemoteAddr: v4, Helo: "client.test", ID: "abc"}, one,
			"Received: from client.test ([192.0.2.7])\r\n\tby mx.meshd.test with ESMTP id abc\r\n\tfor <b@example.test>; Wed, 25 Nov 2026 13:10:00 +0100\r\n"},
		{"tls auth two rcpts v6", Session{RemoteAddr: v6, Helo: "client.test", ID: "abc", TLS: true, AuthUser: "alice"}, two,
			"Received: from client.test ([IPv6:2001:db8::1])\r\n\tby mx.meshd.test with ESMTPSA id abc; Wed, 25 Nov 2026 13:10:00 +0100\r\n"},
		{"utf8 tls", Session{RemoteAddr: v4, Helo: "c", ID: "abc", TLS: true}, Envelope{SMTPUTF8: true},
			"Received: from c ([192.0.2.7])\r\n\tby mx.meshd.test with UTF8SMTPS id abc; Wed, 25 Nov 2026 13:10:00 +0100\r\n"},
		{"hostile helo", Session{RemoteAddr: v4, Helo: "evil (x); Bcc: y", ID: "abc"}, two,
			"Received: from evil??x???Bcc:?y ([192.0.2.7])\r\n\tby mx.meshd.test with ESMTP id abc; Wed, 25 Nov 2026 13:10:00 +0100\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(s.receivedHeader(&tc.info, tc.env)); got != tc.want {
				t.Fatalf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

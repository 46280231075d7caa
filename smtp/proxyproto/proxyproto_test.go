package proxyproto

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func v2(cmd, fam byte, addrs []byte) string {
	b := append([]byte{}, sigV2...)
	b = append(b, 0x20|cmd, fam, 0, 0)
	binary.BigEndian.PutUint16(b[14:], uint16(len(addrs)))
	return string(append(b, addrs...))
}

func v2tcp4(src, dst string, sp, dp uint16) string {
	a := append(netip.MustParseAddr(src).AsSlice(), netip.MustParseAddr(dst).AsSlice()...)
	a = binary.BigEndian.AppendUint16(a, sp)
	a = binary.BigEndian.AppendUint16(a, dp)
	return v2(1, 0x11, a)
}

func TestReadHeader(t *testing.T) {
	six := append(netip.MustParseAddr("2001:db8::7").AsSlice(), netip.MustParseAddr("2001:db8::1").AsSlice()...)
	six = append(six, 0x30, 0x39, 0, 25, 0xee, 0xee) // ports, then 2 bytes of TLV ignored
	tests := []struct {
		name, in, src, rest, err string
		version                  int
	}{
		{"v1 tcp4", "PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\r\nEHLO", "192.0.2.7:40000", "EHLO", "", 1},
		{"v1 tcp6", "PROXY TCP6 2001:db8::7 ::1 1 25\r\n", "[2001:db8::7]:1", "", "", 1},
		{"v1 unknown", "PROXY UNKNOWN whatever\r\n", "", "", "", 1},
		{"v1 family mismatch", "PROXY TCP4 2001:db8::7 ::1 1 25\r\n", "", "", "is not TCP4", 0},
		{"v1 leading zero port", "PROXY TCP4 192.0.2.7 127.0.0.1 040 25\r\n", "", "", "port", 0},
		{"v1 port range", "PROXY TCP4 192.0.2.7 127.0.0.1 65536 25\r\n", "", "", "port", 0},
		{"v1 fields", "PROXY TCP4 192.0.2.7 127.0.0.1 1\r\n", "", "", "6 fields", 0},
		{"v1 no CRLF", "PROXY TCP4 192.0.2.7 127.0.0.1 1 2\n", "", "", "no CRLF", 0},
		{"v1 too long", "PROXY TCP4 " + strings.Repeat("1", 120) + "\r\n", "", "", "no CRLF", 0},
		{"v1 cut", "PROXY TCP4 192.0", "", "", "unexpected EOF", 0},
		{"not a header", "EHLO x\r\n", "", "", "no PROXY header", 0},
		{"smtp verb starting with P", "PING\r\n", "", "", "no PROXY header", 0},
		{"v2 tcp4", v2tcp4("198.51.100.9", "127.0.0.1", 5555, 25) + "rest", "198.51.100.9:5555", "rest", "", 2},
		{"v2 tcp6 with TLV", v2(1, 0x21, six), "[2001:db8::7]:12345", "", "", 2},
		{"v2 local", v2(0, 0x11, make([]byte, 12)), "", "", "", 2},
		{"v2 unix", v2(1, 0x31, make([]byte, 216)), "", "", "", 2},
		{"v2 short addresses", v2(1, 0x11, make([]byte, 11)), "", "", "too short", 0},
		{"v2 bad command", v2(2, 0x11, make([]byte, 12)), "", "", "command 2", 0},
		{"v2 bad version", strings.Replace(v2tcp4("1.2.3.4", "1.2.3.4", 1, 1), "\x21", "\x11", 1), "", "", "version 1", 0},
		{"v2 cut", v2tcp4("1.2.3.4", "1.2.3.4", 1, 1)[:20], "", "", "unexpected EOF", 0},
		{"v2 bad signature", "\r\n\r\nXXXXXXXXXXXXXXXXXX", "", "", "no PROXY header", 0},
		{"v2 too long", string(append(append([]byte{}, sigV2...), 0x21, 0x11, 0xff, 0xff)), "", "", "at most", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(tc.in))
			h, err := ReadHeader(r)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if h.Source != nil {
				got = h.Source.String()
			}
			if got != tc.src || h.Version != tc.version {
				t.Fatalf("source %q v%d, want %q v%d", got, h.Version, tc.src, tc.version)
			}
			rest, _ := io.ReadAll(r)
			if string(rest) != tc.rest {
				t.Fatalf("rest %q, want %q", rest, tc.rest)
			}
		})
	}
}

func listen(t *testing.T, allow string) *Listener {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(inner, Config{Allow: []netip.Prefix{netip.MustParsePrefix(allow)}, Timeout: time.Second,
		Refusal: []byte("554 5.7.1 refused\r\n")})
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func dial(t *testing.T, l *Listener, send string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(send)); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestListener: an allowed balancer's header becomes the connection's
// RemoteAddr and the bytes after it reach the reader; a connection with a
// bad header is dropped without blocking the next one.
func TestListener(t *testing.T) {
	l := listen(t, "127.0.0.0/8")
	dial(t, l, "PROXY TCP4 garbage\r\n")
	silent := dial(t, l, "") // never sends its header: must not hold up the next
	_ = silent
	dial(t, l, v2tcp4("203.0.113.5", "127.0.0.1", 4242, 25)+"EHLO x\r\n")
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.RemoteAddr().String(); got != "203.0.113.5:4242" {
		t.Fatalf("RemoteAddr %s", got)
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	if line != "EHLO x\r\n" {
		t.Fatalf("after header %q", line)
	}
}

// TestListenerRefusesOthers plays the intruder: from an address outside
// Allow, a PROXY header claiming another client is refused, and the
// connection never reaches Accept.
func TestListenerRefusesOthers(t *testing.T) {
	l := listen(t, "192.0.2.0/24")
	c := dial(t, l, "PROXY TCP4 192.0.2.1 127.0.0.1 1 25\r\n")
	got, _ := io.ReadAll(c)
	if string(got) != "554 5.7.1 refused\r\n" {
		t.Fatalf("intruder got %q", got)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			accepted <- c
		}
	}()
	select {
	case c := <-accepted:
		t.Fatalf("refused connection accepted from %s", c.RemoteAddr())
	case <-time.After(100 * time.Millisecond):
	}
	_ = l.Close()
}

func FuzzReadHeader(f *testing.F) {
	for _, s := range []string{"PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\r\n", "PROXY UNKNOWN\r\n",
		"PROXY TCP6 ::1 ::1 1 2\r\n", v2tcp4("1.2.3.4", "5.6.7.8", 1, 2), v2(0, 0, nil), v2(1, 0x21, make([]byte, 36))} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(strings.NewReader(string(b)))
		h, err := ReadHeader(r)
		if err != nil {
			return
		}
		if h.Version != 1 && h.Version != 2 {
			t.Fatalf("version %d", h.Version)
		}
		if (h.Source == nil) != (h.Dest == nil) {
			t.Fatalf("half an address: %+v", h)
		}
		rest, _ := io.ReadAll(r)
		if len(rest) > len(b) {
			t.Fatal("read more than given")
		}
		if h.Version == 1 && len(b)-len(rest) > maxV1 {
			t.Fatalf("v1 header of %d bytes", len(b)-len(rest))
		}
	})
}

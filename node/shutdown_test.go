package node

import (
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// TestCloseTellsIdleSessions: closing a node answers an idle session on
// each SMTP listener (the public one and the mesh one, whose connections
// pass the X-LINK2STATE interposer) with 421 4.3.2 at once; the node does
// not wait out limits.shutdown_grace for them (the reads would time out).
func TestCloseTellsIdleSessions(t *testing.T) {
	tm := newTestMesh(t, map[string][]string{"rga": {"a1"}}, nil)
	n := tm.nodes["a1"]
	var conns []*textproto.Conn
	for _, addr := range []net.Addr{n.SMTPAddr(), n.MeshAddr()} {
		c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		tp := textproto.NewConn(c)
		if _, _, err := tp.ReadResponse(220); err != nil {
			t.Fatal(err)
		}
		if err := tp.PrintfLine("EHLO idle.test"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := tp.ReadResponse(250); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, tp)
	}
	closed := make(chan error, 1)
	go func() { closed <- n.Close() }()
	for i, tp := range conns {
		code, msg, err := tp.ReadResponse(0)
		if code != 421 || !strings.HasPrefix(msg, "4.3.2 ") {
			t.Errorf("session %d got %d %q (%v) on close, want 421 4.3.2", i, code, msg, err)
		}
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	tm.mu.Lock()
	tm.nodes["a1"] = nil
	tm.mu.Unlock()
}

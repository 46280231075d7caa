package channel

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/harness/extern"
)

// holdScript opens argv[2] connections to argv[1], sends each the hex
// bytes argv[3], prints "open N" and holds them until stdin closes.
const holdScript = `
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
n, data = int(sys.argv[2]), bytes.fromhex(sys.argv[3])
socks = []
for i in range(n):
    s = socket.create_connection((host, int(port)), timeout=20)
    if data:
        s.sendall(data)
    socks.append(s)
print("open", len(socks), flush=True)
sys.stdin.read()
`

func frameBytes(t frameType, payload []byte) []byte {
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	_ = writeFrame(bw, t, payload)
	return b.Bytes()
}

func holdConns(t *testing.T, py, addr string, n int, data []byte) (stop func()) {
	t.Helper()
	cmd := exec.Command(py, "-c", holdScript, addr, fmt.Sprint(n), hex.EncodeToString(data))
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "open") {
		in.Close()
		cmd.Wait()
		t.Fatalf("python3 holder: %q %v", line, err)
	}
	return func() { in.Close(); cmd.Wait() }
}

func liveBytes() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// TestAttackIdlePreHelloConnections: 500 connections from python3, each
// with a frame header claiming 2 MiB and 100 bytes of it, then 500 more
// claiming a HELLO of 4000 bytes and sending 100, then idle. The server's
// heap and stacks stay bounded (before the fix each 2 MiB claim was
// allocated in full: 1 GB), and with the default caps only a few of one
// address's connections are even served.
func TestAttackIdlePreHelloConnections(t *testing.T) {
	py := extern.Require(t, extern.FindPython3) // missing: run scripts/install-deps
	attack := func(size uint32) []byte {
		var claim [5]byte
		binary.BigEndian.PutUint32(claim[:4], size)
		claim[4] = byte(fHello)
		return append(claim[:], make([]byte, 100)...)
	}
	t.Run("uncapped", func(t *testing.T) {
		s := startServerWith(t, func(c *ServerConfig) { c.MaxConns, c.MaxPendingPerIP = 2000, 2000 })
		before := liveBytes()
		stop := holdConns(t, py, s.Addr().String(), 500, attack(2<<20))
		defer stop()
		stop2 := holdConns(t, py, s.Addr().String(), 500, attack(4000))
		defer stop2()
		waitFor(t, "1000 connections served", func() bool { return s.Stats().ConnsAccepted == 1000 })
		waitFor(t, "2 MiB claims closed", func() bool { s.Server.mu.Lock(); defer s.Server.mu.Unlock(); return s.Server.conns <= 500 })
		grown := int64(liveBytes()) - int64(before)
		t.Logf("1000 pre-HELLO attack connections (500 still open, idle): server heap+stacks grew by %.2f MiB (%.1f KiB per open one)",
			float64(grown)/(1<<20), float64(grown)/500/1024)
		if grown > 16<<20 {
			t.Fatalf("500 idle connections cost %d bytes", grown)
		}
	})
	t.Run("default caps", func(t *testing.T) {
		s := startServerWith(t, nil)
		stop := holdConns(t, py, s.Addr().String(), 500, attack(4000))
		defer stop()
		waitFor(t, "refusals counted", func() bool { return s.Stats().ConnsRefused >= 500-8 })
		s.mu.Lock()
		open := s.conns
		s.mu.Unlock()
		t.Logf("default caps: %d served, %d refused", open, s.Stats().ConnsRefused)
		if open > 8 {
			t.Fatalf("%d pre-HELLO connections from one address served, cap 8", open)
		}
	})
	// After the attack a member still connects and is served.
	s := startServerWith(t, nil)
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(frameBytes(fHello, encodeHello(hello{Version: Version, Role: RoleMember, Node: "n2", RG: "rg1"})))
	if ft, _, err := readFrame(c); err != nil || ft != fWelcome {
		t.Fatalf("member after the attack: frame %d, %v", ft, err)
	}
}

// TestAttackFutureObservationRefused: a member (python3 raw socket) sends
// an observation dated year 9999 beside a current one: only the current
// one reaches the master, and nothing of the forged one remains after
// the member disconnects.
func TestAttackFutureObservationRefused(t *testing.T) {
	py := extern.Require(t, extern.FindPython3) // missing: run scripts/install-deps
	s := startServerWith(t, nil)
	now := time.Now()
	forged := Observation{Connector: "ab", Source: "a2", Target: "10.0.0.1:25", Up: false, At: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}
	real := Observation{Connector: "ab", Source: "a2", Target: "10.0.0.2:25", Up: true, At: now}
	var data []byte
	data = append(data, frameBytes(fHello, encodeHello(hello{Version: Version, Role: RoleMember, Node: "a2", RG: "rg1"}))...)
	data = append(data, frameBytes(fObserve, encodeObservations([]Observation{forged, real}))...)
	stop := holdConns(t, py, s.Addr().String(), 1, data)
	waitFor(t, "current observation at master", func() bool { return len(s.db.observations()) > 0 })
	stop()
	waitFor(t, "member gone", func() bool { return len(s.Members()) == 0 })
	got := s.db.observations()
	if len(got) != 1 || got[0].Target != real.Target {
		t.Fatalf("master holds %+v, want only the current observation", got)
	}
	if s.Stats().ObservationsSkew != 1 {
		t.Fatalf("skew drops = %d, want 1", s.Stats().ObservationsSkew)
	}
}

func startServerWith(t *testing.T, mod func(*ServerConfig)) *server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{db: &lsdb{}, master: "m"}
	s.fn = &Funcs{MasterFunc: s.getMaster, RecordsFunc: s.db.Records, ObserveFunc: s.db.observe}
	cfg := ServerConfig{Listener: l, Node: "m", RG: "rg1", Delegate: s.fn, Logger: quiet}
	if mod != nil {
		mod(&cfg)
	}
	s.Server = NewServer(cfg)
	t.Cleanup(func() { s.Close() })
	return s
}

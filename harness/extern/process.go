package extern

import (
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago (the listener is closed
// before returning, so a racing process may take it: callers that start a server on it retry).
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort(false)
	if err != nil {
		t.Fatalf("extern: free port: %v", err)
	}
	return p
}

// FreeAddr is "127.0.0.1:" + FreePort.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// freePort finds a port free for TCP and, when udp is set, for UDP as well.
func freePort(udp bool) (int, error) {
	var lastErr error
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if !udp {
			l.Close()
			return port, nil
		}
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err != nil {
			lastErr = err
			continue
		}
		pc.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no port free for both TCP and UDP: %w", lastErr)
}

// syncBuffer collects a process's stdout and stderr.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// process is a started external program whose exit is observed by one goroutine.
type process struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, valid after done
	killed sync.Once
}

func startProcess(cmd *exec.Cmd) (*process, error) {
	p := &process{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout = p.out
	cmd.Stderr = p.out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop kills the process and waits for it.
func (p *process) stop() {
	p.killed.Do(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
		}
		<-p.done
	})
}

// cleanup registers stop and, when the test failed, logs the process's output.
func (p *process) cleanup(t testing.TB, name string) {
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
}

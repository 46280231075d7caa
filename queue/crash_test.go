package queue

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	crashDirEnv    = "MESHD_QUEUE_CRASH_DIR"
	crashPrefixEnv = "MESHD_QUEUE_CRASH_PREFIX"
)

// crashBody is a 4 KiB body that names its message, so a body mixed up
// with another message's would be noticed.
func crashBody(id string) []byte {
	b := bytes.Repeat([]byte{'.'}, 4096)
	copy(b, id)
	return b
}

// TestCrashChild is not a test: TestCrashDurability runs the test binary
// again with this test selected, and the child enqueues from eight
// goroutines until it is killed with SIGKILL. After each call returns nil it
// writes one line to stdout ("E id", "A id", "D id" for Enqueue, Attempt,
// Record), in a single write so only the last line can be torn. "R id" is
// written before Record: a message finished by a Record that committed
// just before the kill is legitimately gone without a "D" line.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashDurability")
	}
	prefix := os.Getenv(crashPrefixEnv)
	q, err := Open(Options{Dir: dir, Logger: quietLogger()})
	if err != nil {
		fmt.Fprintf(os.Stdout, "X open: %v\n", err)
		os.Exit(2)
	}
	var outMu sync.Mutex
	ack := func(kind, id string) {
		outMu.Lock()
		os.Stdout.Write([]byte(kind + " " + id + "\n"))
		outMu.Unlock()
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("%s-w%d-%07d", prefix, w, i)
				if err := q.Enqueue(context.Background(), env(id, "a@x", "b@x"), crashBody(id)); err != nil {
					ack("X", err.Error())
					return
				}
				ack("E", id)
				switch i % 4 {
				case 1:
					if q.Attempt(id, []string{"b@x"}, time.Now().Add(time.Hour)) == nil {
						ack("A", id)
					}
				case 2:
					ack("R", id) // intent: from here the message may be gone
					if q.Record(id, []Result{{Addr: "a@x", Outcome: Delivered}, {Addr: "b@x", Outcome: PermFail}}) == nil {
						ack("D", id)
					}
				}
			}
		})
	}
	wg.Wait()
	os.Exit(3) // only reached after an error
}

// TestCrashDurability kills a child process that is enqueueing at full
// speed, reopens its directory and checks that every acknowledged write
// survived exactly once. Three crash cycles share the directory.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	total := 0
	for cycle := range 3 {
		prefix := fmt.Sprintf("crash%d", cycle)
		acks := runCrashChild(t, dir, prefix, 1000+cycle*700)
		total += verifyCrash(t, dir, prefix, acks)
	}
	t.Logf("%d acknowledged enqueues survived 3 kills", total)
}

type crashAcks struct {
	enqueued, attempted, recording, recorded map[string]bool
}

// runCrashChild starts the child, reads acknowledgements until it has at
// least want enqueues, kills it with SIGKILL and returns every complete
// acknowledgement it wrote before dying.
func runCrashChild(t *testing.T, dir, prefix string, want int) crashAcks {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashPrefixEnv+"="+prefix)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acks := crashAcks{map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}}
	r := bufio.NewReader(stdout)
	killed := false
	kill := func() {
		if !killed {
			killed = true
			if err := cmd.Process.Kill(); err != nil {
				t.Errorf("kill child: %v", err)
			}
		}
	}
	deadline := time.AfterFunc(20*time.Second, kill)
	defer deadline.Stop()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if err != io.EOF {
				t.Errorf("read child: %v", err)
			}
			break // a torn last line (no newline) is not an acknowledgement
		}
		kind, id, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		switch kind {
		case "E":
			acks.enqueued[id] = true
		case "A":
			acks.attempted[id] = true
		case "R":
			acks.recording[id] = true
		case "D":
			acks.recorded[id] = true
		default:
			t.Errorf("child: %s", line)
		}
		if len(acks.enqueued) >= want {
			kill() // keep reading: lines already in the pipe were acknowledged
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited on its own: %v", err)
	}
	if len(acks.enqueued) < want {
		t.Fatalf("child acknowledged only %d enqueues before the deadline", len(acks.enqueued))
	}
	return acks
}

// verifyCrash reopens dir and checks the acknowledged writes of one child.
// It returns how many enqueues were acknowledged.
func verifyCrash(t *testing.T, dir, prefix string, acks crashAcks) int {
	t.Helper()
	q, err := Open(Options{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer q.Close()

	all, err := q.List(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var total int64
	for _, m := range all {
		seen[m.ID]++
		total += m.Size
	}
	if s := q.Stats(); s.Messages != len(all) || s.Bytes != total {
		t.Errorf("Stats %+v disagree with List: %d messages, %d bytes", s, len(all), total)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s listed %d times", id, n)
		}
	}
	for id := range acks.enqueued {
		m, err := q.Get(id)
		if acks.recorded[id] {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: finished before the crash but Get = %v, %v", id, m, err)
			}
		} else if errors.Is(err, ErrNotFound) && acks.recording[id] {
			// Record committed, its acknowledgement did not get out.
		} else if err != nil {
			t.Errorf("%s: acknowledged enqueue lost: %v", id, err)
			continue
		} else {
			body, err := q.Body(id)
			if err != nil || !bytes.Equal(body, crashBody(id)) {
				t.Errorf("%s: body lost or wrong: %v", id, err)
			}
			if acks.attempted[id] {
				if r := m.Recipients[1]; r.Attempts != 1 || r.NextAttempt.Before(time.Now().Add(30*time.Minute)) {
					t.Errorf("%s: acknowledged attempt lost: %+v", id, r)
				}
			}
		}
		// Exactly once: the same ID is refused whether queued or finished.
		if err := q.Enqueue(context.Background(), env(id, "a@x"), nil); !errors.Is(err, ErrDuplicate) {
			t.Errorf("%s: re-enqueue after crash = %v, want ErrDuplicate", id, err)
		}
	}
	// Unacknowledged writes may or may not have made it, but what did is whole.
	for _, m := range all {
		if !strings.HasPrefix(m.ID, prefix+"-") {
			continue
		}
		if len(m.Recipients) != 2 || m.Size != 4096 {
			t.Errorf("%s: torn message %+v", m.ID, m)
		}
	}
	t.Logf("%s: %d enqueues, %d attempts, %d records acknowledged; %d messages queued",
		prefix, len(acks.enqueued), len(acks.attempted), len(acks.recorded), len(all))
	return len(acks.enqueued)
}

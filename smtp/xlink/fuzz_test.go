package xlink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/meshd/meshd/internal/testkit"
)

// trackListener records, per client address, when the server side of
// each accepted connection is closed.
type trackListener struct {
	net.Listener
	done sync.Map // remote addr string -> chan struct{}
}

func (l *trackListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	dc := &doneConn{Conn: c, done: make(chan struct{})}
	l.done.Store(c.RemoteAddr().String(), dc.done)
	return dc, nil
}

// doneConn signals when the server side closes the connection.
type doneConn struct {
	net.Conn
	once sync.Once
	done chan struct{}
}

func (c *doneConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.Conn.Close()
}

// recordingStore wraps a memStore and keeps every batch installed.
type recordingStore struct {
	*memStore
	mu      sync.Mutex
	batches [][][]byte
}

func (s *recordingStore) Install(ctx context.Context, recs [][]byte) (int, error) {
	s.mu.Lock()
	cp := make([][]byte, len(recs))
	for i, r := range recs {
		cp[i] = append([]byte(nil), r...)
	}
	s.batches = append(s.batches, cp)
	s.mu.Unlock()
	return s.memStore.Install(ctx, recs)
}

// swapStore lets one server serve a fresh store per fuzz input.
type swapStore struct {
	cur atomic.Pointer[recordingStore]
}

func (s *swapStore) Digest() [32]byte                 { return s.cur.Load().Digest() }
func (s *swapStore) Summaries() []byte                { return s.cur.Load().Summaries() }
func (s *swapStore) Newer(p []byte) ([][]byte, error) { return s.cur.Load().Newer(p) }
func (s *swapStore) Install(ctx context.Context, r [][]byte) (int, error) {
	return s.cur.Load().Install(ctx, r)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// fuzzSeeds are client byte streams: sessions that sync, mail that only
// looks like link state, and broken sequences.
func fuzzSeeds() map[string][]byte {
	sums := xfer(KindSummaries, []byte("rg1:0\n"))
	recs, _ := encodeRecords([][]byte{[]byte("rg1:5:new"), []byte("rg2:1:" + strings.Repeat("b", 900))}, 1<<20, 10)
	ehlo := "EHLO peer.test\r\n"
	dig := "X-LINK2STATE DIGEST " + strings.Repeat("0", 64) + "\r\n"
	mail := "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
	return map[string][]byte{
		"full_sync":       []byte(ehlo + dig + sums + xfer(KindRecords, recs) + dig + "QUIT\r\n"),
		"data_lookalike":  []byte(ehlo + mail + "DATA\r\n" + testMessage + ".\r\n" + dig + "QUIT\r\n"),
		"bdat_lookalike":  []byte(ehlo + mail + "BDAT 30 LAST\r\nX-LINK2STATE LAST AAAA\r\nQUIT\r\n" + dig),
		"bdat_chunks":     []byte(ehlo + mail + "BDAT 5\r\nX-LINBDAT 7 LAST\r\nK2STATE" + sums),
		"pipelined":       []byte(ehlo + mail + dig + "DATA\r\nhello\r\n.\r\nRSET\r\n" + dig + sums + "RSET\r\n"),
		"next_no_first":   []byte(ehlo + "X-LINK2STATE NEXT AAAA\r\n"),
		"wrong_hash":      []byte(ehlo + dig + sums + "X-LINK2STATE FIRST RECORDS 4 " + sum([]byte("abcd")) + "\r\nX-LINK2STATE LAST YWJjZQ==\r\n"),
		"before_ehlo":     []byte(dig + sums + "HELO x\r\n" + dig),
		"auth_line":       []byte(ehlo + "AUTH PLAIN\r\n" + dig + "*\r\n"),
		"starttls_no_tls": []byte(ehlo + "STARTTLS\r\n" + dig),
		"junk":            []byte("\x00\xff" + ehlo + "X-LINK2STATE \x80\x81\r\n"),
		"long_line":       []byte(ehlo + strings.Repeat("X", 5000) + "\r\n" + dig),
	}
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzInterposer with -update.
func TestWriteFuzzSeeds(t *testing.T) {
	if !testkit.Update() {
		t.Skip("run with -update to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzInterposer")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range fuzzSeeds() {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fuzzEnv is one go-smtp server behind the interposer on in-memory
// connections, with a fresh store per input.
type fuzzEnv struct {
	store  *swapStore
	tl     *trackListener
	errLog *lockedBuffer
	be     *backend
}

func newFuzzEnv(tb testing.TB) *fuzzEnv {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	e := &fuzzEnv{store: &swapStore{}, tl: &trackListener{Listener: ln}, errLog: &lockedBuffer{}, be: &backend{}}
	e.store.cur.Store(&recordingStore{memStore: newMemStore("rg1:1:a")})
	s := gosmtp.NewServer(e.be)
	s.Domain = "mesh.test"
	s.MaxMessageBytes = 1 << 16
	s.ReadTimeout = 5 * time.Second
	s.WriteTimeout = 5 * time.Second
	s.ErrorLog = log.New(e.errLog, "", 0)
	cfg := Config{Store: e.store, Allow: allowAll, Hostname: "mesh.test", InstallTimeout: time.Second,
		Limits: Limits{MaxTransferBytes: 1 << 16, MaxRecords: 100}}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = s.Serve(Listen(e.tl, cfg))
	}()
	tb.Cleanup(func() {
		_ = s.Close()
		<-served
	})
	return e
}

// run feeds one client byte stream and checks the invariants: the
// connection ends (no hang), go-smtp recovered no panic, and the store
// changed only through a transfer whose declared length and hash the
// input itself holds.
func (e *fuzzEnv) run(t testing.TB, in []byte) *recordingStore {
	rs := &recordingStore{memStore: newMemStore("rg1:1:a")}
	before := rs.Digest()
	e.store.cur.Store(rs)

	conn, err := net.Dial("tcp", e.tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cli := conn.(*net.TCPConn)
	defer cli.Close()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		_, _ = io.Copy(io.Discard, cli)
	}()
	// Write the input, then half-close: the server reads everything,
	// then EOF, while its replies still flow back.
	_ = cli.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, werr := cli.Write(in)
	_ = cli.CloseWrite()
	var done chan struct{}
	deadline := time.Now().Add(10 * time.Second)
	for done == nil {
		if v, ok := e.tl.done.Load(cli.LocalAddr().String()); ok {
			done = v.(chan struct{})
		} else if time.Now().After(deadline) {
			t.Fatal("server did not accept")
		} else {
			time.Sleep(time.Millisecond)
		}
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("server connection still open 10s after input ended (write err %v)", werr)
	}
	e.tl.done.Delete(cli.LocalAddr().String())
	_ = cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	<-drained
	if isTimeout(werr) {
		t.Fatalf("server stopped reading input: %v", werr)
	}
	if strings.Contains(e.errLog.String(), "panic") {
		t.Fatalf("go-smtp recovered a panic:\n%s", e.errLog.String())
	}
	rs.mu.Lock()
	batches := rs.batches
	rs.mu.Unlock()
	for _, b := range batches {
		payload, _ := encodeRecords(b, 1<<20, 1<<20)
		want := fmt.Sprintf("FIRST RECORDS %d %s", len(payload), sum(payload))
		if !bytes.Contains(bytes.ToUpper(in), []byte(strings.ToUpper(want))) {
			t.Fatalf("records installed without a well-formed transfer in the input: %q", b)
		}
	}
	if len(batches) == 0 && rs.Digest() != before {
		t.Fatal("store changed without Install")
	}
	return rs
}

// FuzzInterposer feeds arbitrary client byte streams to a real go-smtp
// server behind the interposer (see fuzzEnv.run for the invariants).
func FuzzInterposer(f *testing.F) {
	for _, b := range fuzzSeeds() {
		f.Add(b)
	}
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, in []byte) { e.run(t, in) })
}

// TestFuzzSeeds checks that the harness sees what the seeds are for: the
// well-formed session installs, the look-alikes deliver mail and do not.
func TestFuzzSeeds(t *testing.T) {
	e := newFuzzEnv(t)
	seeds := fuzzSeeds()
	for _, tc := range []struct {
		seed     string
		installs int
		mails    int
	}{
		{"full_sync", 1, 0},
		{"data_lookalike", 0, 1},
		{"bdat_lookalike", 0, 1},
		{"bdat_chunks", 0, 1},
		{"wrong_hash", 0, 0},
		{"pipelined", 0, 1},
	} {
		before := len(e.be.messages())
		rs := e.run(t, seeds[tc.seed])
		waitFor(t, tc.seed+" delivery", func() bool { return len(e.be.messages())-before >= tc.mails })
		if got := rs.installCount(); got != tc.installs {
			t.Errorf("%s: %d installs, want %d", tc.seed, got, tc.installs)
		}
		if got := len(e.be.messages()) - before; got != tc.mails {
			t.Errorf("%s: %d messages, want %d", tc.seed, got, tc.mails)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

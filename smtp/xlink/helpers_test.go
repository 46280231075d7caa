package xlink

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/meshd/meshd/internal/testkit"
)

// memStore is an in-memory Store. Records are "name:version:body";
// summaries are sorted "name:version\n" lines.
type memStore struct {
	mu       sync.Mutex
	recs     map[string]memRec
	installs int // Install calls that changed something
}

type memRec struct {
	ver  uint64
	body string
}

func newMemStore(recs ...string) *memStore {
	s := &memStore{recs: map[string]memRec{}}
	for _, r := range recs {
		name, rec, err := parseMemRecord([]byte(r))
		if err != nil {
			panic(err)
		}
		s.recs[name] = rec
	}
	return s
}

func parseMemRecord(b []byte) (string, memRec, error) {
	f := strings.SplitN(string(b), ":", 3)
	if len(f) != 3 || !validName(f[0]) {
		return "", memRec{}, fmt.Errorf("memstore: bad record %q", b)
	}
	v, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return "", memRec{}, fmt.Errorf("memstore: bad version in %q", b)
	}
	return f[0], memRec{ver: v, body: f[2]}, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func (s *memStore) names() []string {
	var n []string
	for k := range s.recs {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func (s *memStore) Summaries() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b bytes.Buffer
	for _, n := range s.names() {
		fmt.Fprintf(&b, "%s:%d\n", n, s.recs[n].ver)
	}
	return b.Bytes()
}

func (s *memStore) Digest() [32]byte { return sha256.Sum256(s.Summaries()) }

func (s *memStore) Newer(peer []byte) ([][]byte, error) {
	pv := map[string]uint64{}
	for _, l := range strings.Split(string(peer), "\n") {
		if l == "" {
			continue
		}
		name, v, ok := strings.Cut(l, ":")
		ver, err := strconv.ParseUint(v, 10, 64)
		if !ok || err != nil || !validName(name) {
			return nil, fmt.Errorf("memstore: bad summary %q", l)
		}
		pv[name] = ver
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	for _, n := range s.names() {
		r := s.recs[n]
		if v, ok := pv[n]; !ok || r.ver > v {
			out = append(out, []byte(fmt.Sprintf("%s:%d:%s", n, r.ver, r.body)))
		}
	}
	return out, nil
}

func (s *memStore) Install(ctx context.Context, records [][]byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	parsed := map[string]memRec{}
	for _, r := range records {
		n, rec, err := parseMemRecord(r)
		if err != nil {
			return 0, err
		}
		parsed[n] = rec
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for name, rec := range parsed {
		if cur, ok := s.recs[name]; !ok || rec.ver > cur.ver {
			s.recs[name] = rec
			n++
		}
	}
	if n > 0 {
		s.installs++
	}
	return n, nil
}

func (s *memStore) installCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.installs
}

// backend is a trivial go-smtp backend recording delivered messages.
type backend struct {
	mu   sync.Mutex
	msgs []delivered
}

type delivered struct {
	from string
	to   []string
	body string
	tls  bool
}

func (b *backend) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	return &session{be: b, conn: c}, nil
}

func (b *backend) messages() []delivered {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]delivered(nil), b.msgs...)
}

type session struct {
	be   *backend
	conn *gosmtp.Conn
	cur  delivered
}

// tlsConn is what the smtp package would assert on go-smtp's Conn.Conn().
type tlsConn interface {
	TLSConnectionState() (tls.ConnectionState, bool)
}

func (s *session) Reset()        { s.cur = delivered{} }
func (s *session) Logout() error { return nil }
func (s *session) Mail(from string, _ *gosmtp.MailOptions) error {
	s.cur.from = from
	if tc, ok := s.conn.Conn().(tlsConn); ok {
		_, s.cur.tls = tc.TLSConnectionState()
	}
	return nil
}
func (s *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.body = string(b)
	s.be.mu.Lock()
	s.be.msgs = append(s.be.msgs, s.cur)
	s.be.mu.Unlock()
	return nil
}

type testServer struct {
	addr  string
	be    *backend
	store *memStore
}

func allowAll(net.Addr, *tls.ConnectionState) bool { return true }

// startServer runs a real go-smtp server behind the interposer on
// loopback. cfg.Store defaults to an empty memStore; inner == true
// serves go-smtp without the interposer.
func startServer(t testing.TB, cfg Config, plain bool) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store == nil {
		cfg.Store = newMemStore()
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "mesh.test"
	}
	var l net.Listener = ln
	if !plain {
		l = Listen(ln, cfg)
	}
	be := &backend{}
	s := gosmtp.NewServer(be)
	s.Domain = "mesh.test"
	s.MaxMessageBytes = 1 << 20
	s.MaxRecipients = 10
	s.ReadTimeout = 20 * time.Second
	s.WriteTimeout = 20 * time.Second
	s.ErrorLog = log.New(io.Discard, "", 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(l)
	}()
	t.Cleanup(func() {
		_ = s.Close()
		<-done
	})
	ms, _ := cfg.Store.(*memStore)
	return &testServer{addr: ln.Addr().String(), be: be, store: ms}
}

// rawClient speaks SMTP byte by byte and keeps a transcript.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
	log  strings.Builder
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	r := &rawClient{t: t, conn: c, br: bufio.NewReader(c)}
	r.expect("220")
	return r
}

// send writes s (one or more lines, pipelined in one write).
func (r *rawClient) send(s string) {
	r.t.Helper()
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			r.log.WriteString("C: " + printable(l) + "\n")
		}
	}
	if _, err := io.WriteString(r.conn, s); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// sendRaw writes message content; the transcript marks its lines "C|".
func (r *rawClient) sendRaw(label, s string) {
	r.t.Helper()
	r.log.WriteString("C: <" + label + ", " + strconv.Itoa(len(s)) + " bytes, shown with C|>\n")
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			r.log.WriteString("C| " + printable(l) + "\n")
		}
	}
	if _, err := io.WriteString(r.conn, s); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// reply reads one complete reply and returns its lines.
func (r *rawClient) reply() ([]string, error) {
	var lines []string
	for {
		l, err := r.br.ReadString('\n')
		if err != nil {
			return lines, err
		}
		r.log.WriteString("S: " + printable(l) + "\n")
		lines = append(lines, strings.TrimRight(l, "\r\n"))
		if len(l) < 4 || l[3] != '-' {
			return lines, nil
		}
	}
}

// expect reads one reply whose last line starts with prefix.
func (r *rawClient) expect(prefix string) []string {
	r.t.Helper()
	lines, err := r.reply()
	if err != nil {
		r.t.Fatalf("reading reply (want %s): %v\ntranscript:\n%s", prefix, err, r.log.String())
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, prefix) {
		r.t.Fatalf("reply %q, want prefix %q\ntranscript:\n%s", last, prefix, r.log.String())
	}
	return lines
}

// expectClosed reads until the server closes the connection.
func (r *rawClient) expectClosed() {
	r.t.Helper()
	for {
		_, err := r.reply()
		if errors.Is(err, io.EOF) {
			r.log.WriteString("S: <closed>\n")
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				r.t.Fatalf("server did not close\ntranscript:\n%s", r.log.String())
			}
			r.log.WriteString("S: <closed>\n")
			return
		}
	}
}

func printable(s string) string {
	s = strings.TrimRight(s, "\r\n")
	var b strings.Builder
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7e {
			fmt.Fprintf(&b, "\\x%02x", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// golden compares got with testdata/name.golden (rewritten with -update).
func golden(t testing.TB, name, got string) {
	t.Helper()
	testkit.Golden(t, filepath.Join("testdata", name+".golden"), []byte(got))
}

// testPKI is a test organisation with a server node and a client node.
type testPKI struct {
	ca             *testkit.CA
	server, client *testkit.Node
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	ca := testkit.NewCA(t)
	return &testPKI{ca: ca, server: ca.Node(t, "mx", "rgs"), client: ca.Node(t, "peer", "rgp")}
}

// serverTLS verifies a client certificate if there is one: whether a peer
// without one may sync is for Allow to say.
func (p *testPKI) serverTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.server.Cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    p.ca.Pool,
		MinVersion:   tls.VersionTLS12,
	}
}

// clientTLS is the client node's own configuration (pki's).
func (p *testPKI) clientTLS() *tls.Config { return p.client.ClientTLS() }

// waitFor polls cond until it holds or 10s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testkit.Until(t, 10*time.Second, what, cond)
}

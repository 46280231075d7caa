package xlink

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

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
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if string(want) != got {
		t.Errorf("transcript differs from %s:\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// testPKI is a CA with a server and a client certificate.
type testPKI struct {
	pool   *x509.CertPool
	server tls.Certificate
	client tls.Certificate
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			DNSNames: []string{cn},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{
		pool:   pool,
		server: issue(2, "mesh.test", x509.ExtKeyUsageServerAuth),
		client: issue(3, "peer.mesh.test", x509.ExtKeyUsageClientAuth),
	}
}

func (p *testPKI) serverTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    p.pool,
		MinVersion:   tls.VersionTLS12,
	}
}

func (p *testPKI) clientTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.client},
		RootCAs:      p.pool,
		ServerName:   "mesh.test",
		MinVersion:   tls.VersionTLS12,
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

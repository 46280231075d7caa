package xlink

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

func hexDigest(s Store) string {
	d := s.Digest()
	return hex.EncodeToString(d[:])
}

// recorder logs the bytes of a client connection as a C:/S: transcript.
type recorder struct {
	net.Conn
	mu   sync.Mutex
	log  strings.Builder
	rbuf []byte
	wbuf []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.mu.Lock()
	r.rbuf = r.flush("S: ", append(r.rbuf, p[:n]...))
	r.mu.Unlock()
	return n, err
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.wbuf = r.flush("C: ", append(r.wbuf, p...))
	r.mu.Unlock()
	return r.Conn.Write(p)
}

func (r *recorder) flush(prefix string, b []byte) []byte {
	for {
		i := strings.IndexByte(string(b), '\n')
		if i < 0 {
			return b
		}
		r.log.WriteString(prefix + printable(string(b[:i+1])) + "\n")
		b = b[i+1:]
	}
}

func (r *recorder) transcript() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}

func TestFullSyncTranscript(t *testing.T) {
	srvStore := newMemStore("rg1:1:one", "rg2:7:two-new", "rg4:1:"+strings.Repeat("four ", 200))
	ts := startServer(t, Config{Store: srvStore, Allow: allowAll}, false)
	// rg3 is long enough to need NEXT chunks (> 732 bytes).
	cliStore := newMemStore("rg1:3:one-new", "rg2:2:two", "rg3:1:"+strings.Repeat("three ", 150))

	raw, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Conn: raw}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := SyncConn(ctx, rec, ClientConfig{HeloName: "peer.test"}, cliStore)
	if err != nil {
		t.Fatalf("sync: %v\n%s", err, rec.transcript())
	}
	want := Result{Converged: true, LocalDigest: cliStore.Digest(), PeerDigest: srvStore.Digest(),
		Sent: 2, PeerInstalled: 2, Received: 2, Installed: 2}
	if res != want {
		t.Errorf("result %+v, want %+v", res, want)
	}
	if hexDigest(srvStore) != hexDigest(cliStore) {
		t.Errorf("digests differ after sync")
	}
	if got := string(cliStore.Summaries()); got != "rg1:3\nrg2:7\nrg3:1\nrg4:1\n" {
		t.Errorf("client summaries %q", got)
	}
	golden(t, "full_sync", rec.transcript())

	// A second session finds the stores in sync after one DIGEST.
	res, err = Sync(ctx, ts.addr, ClientConfig{}, cliStore)
	if err != nil || !res.InSync {
		t.Fatalf("second sync: %+v, %v", res, err)
	}
}

func TestConvergeLarge(t *testing.T) {
	// Enough records for many chunks and several pipelining windows.
	var a, b []string
	for i := 0; i < 400; i++ {
		body := strings.Repeat(fmt.Sprintf("%03d", i), 200)
		switch i % 3 {
		case 0:
			a = append(a, fmt.Sprintf("rg%d:%d:%s", i, 2, body))
			b = append(b, fmt.Sprintf("rg%d:%d:%s", i, 1, body))
		case 1:
			a = append(a, fmt.Sprintf("rg%d:%d:%s", i, 1, body))
			b = append(b, fmt.Sprintf("rg%d:%d:%s", i, 5, body))
		default:
			b = append(b, fmt.Sprintf("rg%d:%d:%s", i, 1, body))
		}
	}
	srv, cli := newMemStore(a...), newMemStore(b...)
	ts := startServer(t, Config{Store: srv, Allow: allowAll}, false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Conn: raw}
	res, err := SyncConn(ctx, rec, ClientConfig{}, cli)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Converged || srv.Digest() != cli.Digest() {
		t.Fatalf("not converged: %+v", res)
	}
	// Every command and reply line fits in 1,000 bytes with its CRLF.
	lines := strings.Split(rec.transcript(), "\n")
	longest := 0
	for _, l := range lines {
		longest = max(longest, len(l)-len("C: ")+2)
	}
	if longest > MaxLineBytes || len(lines) < 400 {
		t.Errorf("longest line %d bytes over %d lines", longest, len(lines))
	}
	t.Logf("%d transcript lines, longest %d bytes with CRLF", len(lines), longest)
	if res.Received != 134 || res.Sent != 266 {
		t.Errorf("received %d sent %d, want 134 and 266", res.Received, res.Sent)
	}
}

func TestSyncTruncatedByLimits(t *testing.T) {
	srv := newMemStore()
	var recs []string
	for i := 0; i < 50; i++ {
		recs = append(recs, fmt.Sprintf("rg%d:1:x", i))
	}
	cli := newMemStore(recs...)
	ts := startServer(t, Config{Store: srv, Allow: allowAll, Limits: Limits{MaxRecords: 20}}, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := ClientConfig{Limits: Limits{MaxRecords: 20}}
	for i := 0; i < 3; i++ {
		res, err := Sync(ctx, ts.addr, cfg, cli)
		if err != nil {
			t.Fatal(err)
		}
		if last := i == 2; res.Converged != last || res.Truncated == last {
			t.Fatalf("round %d: %+v", i, res)
		}
	}
}

func TestNotSupported(t *testing.T) {
	ts := startServer(t, Config{}, true) // go-smtp without the interposer
	_, err := Sync(context.Background(), ts.addr, ClientConfig{}, newMemStore())
	if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("err = %v, want ErrNotSupported", err)
	}
	_, err = Sync(context.Background(), ts.addr, ClientConfig{TLS: &tls.Config{}}, newMemStore())
	if !errors.Is(err, ErrTLSUnavailable) {
		t.Fatalf("err = %v, want ErrTLSUnavailable", err)
	}
}

func TestSyncRefusedByNonPeer(t *testing.T) {
	srv := newMemStore("rg1:1:a")
	ts := startServer(t, Config{Store: srv}, false) // Allow nil: nobody is a peer
	cli := newMemStore("rg1:2:b")
	// The extension is not even offered to a non-peer.
	_, err := Sync(context.Background(), ts.addr, ClientConfig{}, cli)
	if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("err = %v, want ErrNotSupported", err)
	}
	if srv.installCount() != 0 {
		t.Fatal("store changed")
	}
}

func TestEHLOKeywords(t *testing.T) {
	pki := newPKI(t)
	cases := []struct {
		name string
		tls  *tls.Config
		want []string
	}{
		{"plain", nil, []string{"250-CHUNKING", "250-X-LINK2STATE", "250 LIMITS RCPTMAX=10"}},
		// Before STARTTLS the peer is not known yet: the extension is offered after it.
		{"tls", pki.serverTLS(), []string{"250-STARTTLS", "250 LIMITS RCPTMAX=10"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, Config{Allow: allowAll, TLS: tc.tls}, false)
			c := dialRaw(t, ts.addr)
			c.send("EHLO peer.test\r\n")
			lines := c.expect("250 ")
			got := strings.Join(lines, "\n")
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("EHLO reply lacks %q:\n%s", w, got)
				}
			}
			if !strings.HasPrefix(lines[0], "250-mesh.test") && !strings.HasPrefix(lines[0], "250-Hello") {
				t.Errorf("first line %q", lines[0])
			}
			golden(t, "ehlo_"+tc.name, c.log.String())
		})
	}
}

func TestSwaksSeesKeyword(t *testing.T) {
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		t.Skip("swaks not installed")
	}
	mesh := startServer(t, Config{Allow: allowAll}, false)
	public := startServer(t, Config{}, true)
	for _, tc := range []struct {
		addr string
		want bool
	}{{mesh.addr, true}, {public.addr, false}} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, swaks, "--server", tc.addr, "--quit-after", "EHLO",
			"--ehlo", "peer.test").CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("swaks: %v\n%s", err, out)
		}
		if got := strings.Contains(string(out), "<-  250-X-LINK2STATE"); got != tc.want {
			t.Errorf("%s: keyword seen = %v, want %v\n%s", tc.addr, got, tc.want, out)
		}
		t.Logf("swaks against %s (interposer %v):\n%s", tc.addr, tc.want, out)
	}
}

const testMessage = "Subject: looks like link state\r\n" +
	"\r\n" +
	"X-LINK2STATE FIRST RECORDS 12 " + "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" + "\r\n" +
	"X-LINK2STATE NEXT AAAAAQAAAAN4eXo=\r\n" +
	"X-LINK2STATE LAST\r\n" +
	"..leading dot\r\n" +
	"X-LINK2STATE DIGEST 0000000000000000000000000000000000000000000000000000000000000000\r\n"

func TestMailThroughInterposer(t *testing.T) {
	store := newMemStore("rg1:1:a")
	before := store.Digest()
	ts := startServer(t, Config{Store: store, Allow: allowAll}, false)
	c := dialRaw(t, ts.addr)
	c.send("EHLO peer.test\r\n")
	c.expect("250 ")

	// PIPELINING with an X-LINK2STATE command in the middle: its reply
	// must come after the RCPT reply and before the next RCPT reply.
	c.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nX-LINK2STATE DIGEST " + hexDigest(store) +
		"\r\nRCPT TO:<c@y.test>\r\nDATA\r\n")
	c.expect("250 2.0.0 Roger")
	c.expect("250 2.0.0 I'll make sure")
	c.expect("250 2.0.0 DIGEST " + hexDigest(store))
	c.expect("250 2.0.0 I'll make sure")
	c.expect("354 ")
	// Content that looks like X-LINK2STATE, then pipelined after the dot.
	c.sendRaw("message content, end of data, then a pipelined command", testMessage+".\r\nX-LINK2STATE DIGEST "+hexDigest(store)+"\r\n")
	c.expect("250 2.0.0 OK")
	c.expect("250 2.0.0 DIGEST")

	// BDAT: chunks whose bytes look like commands (and cut lines in two).
	chunk1 := "Subject: bdat\r\n\r\nX-LINK2STATE FIRST RECORDS 1 00\r\nX-LINK2"
	chunk2 := "STATE NEXT AA==\r\nQUIT\r\n"
	c.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n")
	c.expect("250 ")
	c.expect("250 ")
	c.send(fmt.Sprintf("BDAT %d\r\n", len(chunk1)))
	c.sendRaw("chunk 1", chunk1)
	c.send(fmt.Sprintf("BDAT %d LAST\r\n", len(chunk2)))
	c.sendRaw("chunk 2, then a pipelined NOOP", chunk2+"NOOP\r\n")
	c.expect("250 2.0.0 Continue")
	c.expect("250 2.0.0 OK")
	c.expect("250 2.0.0 I have successfully done nothing")
	// BDAT refused by go-smtp (no MAIL): the chunk is still skipped.
	refused := "X-LINK2STATE LAST\r\n"
	c.send(fmt.Sprintf("BDAT %d LAST\r\n", len(refused)))
	c.sendRaw("refused chunk", refused)
	c.expect("502 ")
	c.send("QUIT\r\n")
	c.expect("221 ")
	c.expectClosed()
	golden(t, "mail_pipelining_bdat", c.log.String())

	msgs := ts.be.messages()
	if len(msgs) != 2 {
		t.Fatalf("%d messages delivered, want 2", len(msgs))
	}
	wantBody := strings.Replace(testMessage, "..leading", ".leading", 1)
	if msgs[0].body != wantBody || strings.Join(msgs[0].to, ",") != "b@y.test,c@y.test" {
		t.Errorf("DATA message altered: %q to %v", msgs[0].body, msgs[0].to)
	}
	if msgs[1].body != chunk1+chunk2 {
		t.Errorf("BDAT message altered: %q", msgs[1].body)
	}
	if store.Digest() != before || store.installCount() != 0 {
		t.Error("store changed by mail content")
	}
}

// xfer renders a client-side transfer of payload as command lines.
func xfer(kind string, payload []byte) string {
	var b strings.Builder
	for _, l := range frameLines(kind, payload) {
		b.WriteString("X-LINK2STATE " + l + "\r\n")
	}
	return b.String()
}

func sum(p []byte) string {
	s := sha256.Sum256(p)
	return hex.EncodeToString(s[:])
}

func TestMalformedSequences(t *testing.T) {
	const dig = "X-LINK2STATE DIGEST 0000000000000000000000000000000000000000000000000000000000000000\r\n"
	sums := xfer(KindSummaries, []byte("rg1:0\n"))
	recs, _ := encodeRecords([][]byte{[]byte("rg1:9:evil")}, 1<<20, 10)
	okFirst := fmt.Sprintf("X-LINK2STATE FIRST RECORDS %d %s\r\n", len(recs), sum(recs))
	b64recs := b64.EncodeToString(recs)
	tooMany := []byte{0, 1, 0, 1, 0, 0, 0, 0}
	badFrame := []byte{0, 0, 0, 1, 0, 0, 0, 9, 'x'}
	cases := []struct {
		name     string
		setup    []string // each element is one write whose replies are all 250
		bad      string   // the offending write
		want     string   // its reply code prefix
		installs bool     // the setup holds a well-formed transfer
	}{
		{"next_without_first", nil, "X-LINK2STATE NEXT AAAA\r\n", "503 5.5.1", false},
		{"last_without_first", nil, "X-LINK2STATE LAST\r\n", "503 5.5.1", false},
		{"summaries_before_digest", nil, "X-LINK2STATE FIRST SUMMARIES 6 " + sum([]byte("rg1:0\n")) + "\r\n", "503 5.5.1", false},
		{"records_before_summaries", []string{dig}, okFirst, "503 5.5.1", false},
		{"first_twice", []string{dig, sums, okFirst}, okFirst, "503 5.5.1", false},
		{"digest_inside_transfer", []string{dig, sums, okFirst}, dig, "503 5.5.1", false},
		{"mail_inside_transfer", []string{dig, sums, okFirst}, "MAIL FROM:<a@x.test>\r\n", "503 5.5.1", false},
		{"next_after_last", []string{dig, sums, okFirst, "X-LINK2STATE LAST " + b64recs + "\r\n"}, "X-LINK2STATE NEXT " + b64recs + "\r\n", "503 5.5.1", true},
		{"wrong_length_short", []string{dig, sums, fmt.Sprintf("X-LINK2STATE FIRST RECORDS %d %s\r\n", len(recs)+5, sum(recs))}, "X-LINK2STATE LAST " + b64recs + "\r\n", "554 5.6.0", false},
		{"wrong_length_long", []string{dig, sums, fmt.Sprintf("X-LINK2STATE FIRST RECORDS %d %s\r\n", len(recs)-1, sum(recs))}, "X-LINK2STATE NEXT " + b64recs + "\r\n", "554 5.6.0", false},
		{"wrong_hash", []string{dig, sums, fmt.Sprintf("X-LINK2STATE FIRST RECORDS %d %s\r\n", len(recs), sum([]byte("other")))}, "X-LINK2STATE LAST " + b64recs + "\r\n", "554 5.6.0", false},
		{"oversize", []string{dig, sums}, "X-LINK2STATE FIRST RECORDS 16777217 " + sum(nil) + "\r\n", "552 5.3.4", false},
		{"oversize_huge", []string{dig, sums}, "X-LINK2STATE FIRST RECORDS 99999999999999 " + sum(nil) + "\r\n", "552 5.3.4", false},
		{"too_many_records", []string{dig, sums, fmt.Sprintf("X-LINK2STATE FIRST RECORDS %d %s\r\n", len(tooMany), sum(tooMany))}, "X-LINK2STATE LAST " + b64.EncodeToString(tooMany) + "\r\n", "552 5.3.4", false},
		{"bad_record_framing", []string{dig, sums, fmt.Sprintf("X-LINK2STATE FIRST RECORDS %d %s\r\n", len(badFrame), sum(badFrame))}, "X-LINK2STATE LAST " + b64.EncodeToString(badFrame) + "\r\n", "554 5.6.0", false},
		{"binary_junk_chunk", []string{dig, sums, okFirst}, "X-LINK2STATE NEXT \x00\xff\xfe\x01garbage\r\n", "501 5.5.4", false},
		{"binary_junk_command", nil, "X-LINK2STATE \x00\xff\x80\r\n", "501 5.5.4", false},
		{"bad_base64_padding", []string{dig, sums, okFirst}, "X-LINK2STATE NEXT AAA\r\n", "501 5.5.4", false},
		{"uppercase_hash", nil, "X-LINK2STATE DIGEST " + strings.Repeat("A", 64) + "\r\n", "501 5.5.4", false},
		{"unknown_subcommand", nil, "X-LINK2STATE PUSH all\r\n", "501 5.5.4", false},
		{"bare_lf", nil, "X-LINK2STATE DIGEST " + strings.Repeat("0", 64) + "\n", "501 5.5.4", false},
		{"line_too_long", nil, "X-LINK2STATE NEXT " + strings.Repeat("A", 1200) + "\r\n", "500 5.5.2", false},
		{"malformed_summaries", []string{dig}, xfer(KindSummaries, []byte("NOT A SUMMARY\n")), "554 5.6.0", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := newMemStore("rg1:1:a")
			before := store.Digest()
			ts := startServer(t, Config{Store: store, Allow: allowAll}, false)
			c := dialRaw(t, ts.addr)
			c.send("EHLO peer.test\r\n")
			c.expect("250 ")
			for _, s := range tc.setup {
				c.send(s)
				for range strings.Count(s, "\n") {
					c.expect("250")
				}
			}
			c.send(tc.bad)
			for {
				lines, err := c.reply()
				if err != nil {
					t.Fatalf("reading reply: %v\n%s", err, c.log.String())
				}
				if last := lines[len(lines)-1]; strings.HasPrefix(last, tc.want) {
					break
				} else if !strings.HasPrefix(last, "250 ") {
					t.Fatalf("reply %q, want %s\n%s", last, tc.want, c.log.String())
				}
			}
			c.expect("421 4.7.0")
			c.expectClosed()
			golden(t, "malformed_"+tc.name, c.log.String())
			if changed := store.Digest() != before || store.installCount() != 0; changed != tc.installs {
				t.Errorf("store changed = %v, want %v", changed, tc.installs)
			}
		})
	}
}

// TestRefusedWithoutHarm: refusals that keep the session (and mail) alive.
func TestRefusedWithoutHarm(t *testing.T) {
	pki := newPKI(t)
	dig := "X-LINK2STATE DIGEST " + strings.Repeat("0", 64) + "\r\n"
	cases := []struct {
		name string
		cfg  Config
		ehlo bool
		want string
	}{
		{"before_ehlo", Config{Allow: allowAll}, false, "503 5.5.1"},
		{"after_helo", Config{Allow: allowAll}, false, "503 5.5.1"},
		{"before_starttls", Config{Allow: allowAll, TLS: pki.serverTLS()}, true, "530 5.7.0"},
		{"non_peer", Config{Allow: func(net.Addr, *tls.ConnectionState) bool { return false }}, true, "550 5.7.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := newMemStore("rg1:1:a")
			tc.cfg.Store = store
			ts := startServer(t, tc.cfg, false)
			c := dialRaw(t, ts.addr)
			if tc.name == "after_helo" {
				c.send("HELO peer.test\r\n")
				c.expect("250 ")
			}
			if tc.ehlo {
				c.send("EHLO peer.test\r\n")
				c.expect("250 ")
			}
			c.send(dig)
			c.expect(tc.want)
			junk := xfer(KindRecords, []byte("junk"))
			c.send(junk)
			for range strings.Count(junk, "\n") {
				c.expect(tc.want)
			}
			if !tc.ehlo && tc.name != "after_helo" {
				c.send("EHLO peer.test\r\n")
				c.expect("250 ")
			}
			c.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n")
			c.expect("250 ")
			c.expect("250 ")
			c.expect("354 ")
			c.sendRaw("message", "Subject: t\r\n\r\nhi\r\n.\r\n")
			c.expect("250 ")
			c.send("QUIT\r\n")
			c.expect("221 ")
			golden(t, "refused_"+tc.name, c.log.String())
			if len(ts.be.messages()) != 1 {
				t.Error("mail not delivered")
			}
			if store.installCount() != 0 {
				t.Error("store changed")
			}
		})
	}
}

func TestSTARTTLSSync(t *testing.T) {
	pki := newPKI(t)
	var mu sync.Mutex
	var seenCN []string
	allow := func(_ net.Addr, st *tls.ConnectionState) bool {
		if st == nil || len(st.VerifiedChains) == 0 {
			return false
		}
		mu.Lock()
		seenCN = append(seenCN, st.VerifiedChains[0][0].Subject.CommonName)
		mu.Unlock()
		return st.VerifiedChains[0][0].Subject.CommonName == "peer@rgp"
	}
	srv := newMemStore("rg1:2:a", "rg2:1:b")
	ts := startServer(t, Config{Store: srv, Allow: allow, TLS: pki.serverTLS()}, false)
	cli := newMemStore("rg1:1:a", "rg3:1:c")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := Sync(ctx, ts.addr, ClientConfig{TLS: pki.clientTLS()}, cli)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Converged || srv.Digest() != cli.Digest() {
		t.Fatalf("not converged: %+v", res)
	}
	mu.Lock()
	if len(seenCN) == 0 || seenCN[0] != "peer@rgp" {
		t.Errorf("Allow saw %v", seenCN)
	}
	mu.Unlock()

	// Without a client certificate the peer is refused, TLS or not.
	nocert := pki.clientTLS()
	nocert.Certificates, nocert.GetClientCertificate = nil, nil
	_, err = Sync(ctx, ts.addr, ClientConfig{TLS: nocert}, newMemStore())
	if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("err = %v, want ErrNotSupported (not offered without a peer certificate)", err)
	}
}

// TestSTARTTLSRaw: STARTTLS handled by the interposer, plaintext pipelined
// after it discarded, EHLO required again, TLS visible to the backend.
func TestSTARTTLSRaw(t *testing.T) {
	pki := newPKI(t)
	store := newMemStore("rg1:1:a")
	ts := startServer(t, Config{Store: store, Allow: allowAll, TLS: pki.serverTLS()}, false)
	c := dialRaw(t, ts.addr)
	c.send("STARTTLS\r\n")
	c.expect("503 5.5.1")
	c.send("EHLO peer.test\r\n")
	c.expect("250 ")
	// An injected command after STARTTLS in the same packet must vanish.
	c.send("STARTTLS\r\nX-LINK2STATE DIGEST " + strings.Repeat("0", 64) + "\r\n")
	c.expect("220 2.0.0")
	tc := tls.Client(c.conn, pki.clientTLS())
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn, c.br = tc, bufioReader(tc)
	c.log.WriteString("-- TLS established --\n")
	c.send("MAIL FROM:<a@x.test>\r\n")
	c.expect("503 5.5.1")
	c.send("EHLO peer.test\r\n")
	lines := c.expect("250 ")
	if strings.Contains(strings.Join(lines, "\n"), "STARTTLS") {
		t.Error("STARTTLS offered again after TLS")
	}
	c.send("STARTTLS\r\n")
	c.expect("503 5.5.1")
	c.send("X-LINK2STATE DIGEST " + hexDigest(store) + "\r\n")
	c.expect("250 2.0.0 DIGEST " + hexDigest(store))
	c.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("354 ")
	c.sendRaw("message", "Subject: tls\r\n\r\nX-LINK2STATE LAST\r\n.\r\n")
	c.expect("250 ")
	c.send("QUIT\r\n")
	c.expect("221 ")
	golden(t, "starttls", c.log.String())
	msgs := ts.be.messages()
	if len(msgs) != 1 || !msgs[0].tls {
		t.Fatalf("backend saw %+v, want one message over TLS", msgs)
	}
}

func TestSyncContextCancel(t *testing.T) {
	// A server that greets and then says nothing: Sync must return when
	// the context ends.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("220 silent\r\n"))
		buf := make([]byte, 1024)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Sync(ctx, ln.Addr().String(), ClientConfig{}, newMemStore())
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

func TestRSETAbortsTransfer(t *testing.T) {
	store := newMemStore("rg1:1:a")
	ts := startServer(t, Config{Store: store, Allow: allowAll}, false)
	c := dialRaw(t, ts.addr)
	c.send("EHLO peer.test\r\n")
	c.expect("250 ")
	recs, _ := encodeRecords([][]byte{[]byte("rg1:9:x")}, 1<<20, 10)
	lines := strings.SplitAfter(xfer(KindRecords, recs), "\n")
	c.send("X-LINK2STATE DIGEST " + strings.Repeat("0", 64) + "\r\n" + xfer(KindSummaries, []byte("rg1:0\n")) + lines[0])
	for range 4 {
		c.expect("250 ")
	}
	c.send("RSET\r\n")
	c.expect("250 2.0.0 Session reset")
	c.send(lines[1]) // LAST of the aborted transfer
	c.expect("503 5.5.1")
	c.expect("421 ")
	c.expectClosed()
	golden(t, "rset_aborts_transfer", c.log.String())
	if store.installCount() != 0 {
		t.Fatal("store changed")
	}
}

// TestSlowTransferOutlivesGoSMTPDeadline: go-smtp sets its read deadline
// once per Read; the interposer gives each X-LINK2STATE line its own
// CommandTimeout, and go-smtp's own deadline applies again to lines that
// go to go-smtp.
func TestSlowTransferOutlivesGoSMTPDeadline(t *testing.T) {
	store := newMemStore("rg1:1:a")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	newFuzzEnvServer(t, Listen(ln, Config{Store: store, Allow: allowAll, Hostname: "mesh.test",
		CommandTimeout: time.Second}), 300*time.Millisecond)
	c := dialRaw(t, ln.Addr().String())
	c.send("EHLO peer.test\r\n")
	c.expect("250 ")
	recs, _ := encodeRecords([][]byte{[]byte("rg1:9:" + strings.Repeat("x", 2000))}, 1<<20, 10)
	cmds := strings.SplitAfter("X-LINK2STATE DIGEST "+strings.Repeat("0", 64)+"\r\n"+
		xfer(KindSummaries, []byte("rg1:0\n"))+xfer(KindRecords, recs), "\n")
	start := time.Now()
	for _, cmd := range cmds {
		if cmd == "" {
			continue
		}
		time.Sleep(100 * time.Millisecond) // a slow peer, not a wait for a condition
		c.send(cmd)
		c.expect("250")
	}
	if time.Since(start) < 600*time.Millisecond {
		t.Fatal("test too fast to exercise the deadline")
	}
	if store.installCount() != 1 {
		t.Fatal("records not installed")
	}
	// An idle client after an interposer reply is timed out after
	// CommandTimeout, and go-smtp says so.
	if lines, err := c.reply(); err != nil || !strings.HasPrefix(lines[len(lines)-1], "421 4.4.2") {
		t.Fatalf("idle timeout reply %q, %v", lines, err)
	}
}

// newFuzzEnvServer serves go-smtp on l with the given read timeout.
func newFuzzEnvServer(t *testing.T, l net.Listener, readTimeout time.Duration) *gosmtp.Server {
	s := gosmtp.NewServer(&backend{})
	s.Domain = "mesh.test"
	s.ReadTimeout = readTimeout
	s.WriteTimeout = 5 * time.Second
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
	return s
}

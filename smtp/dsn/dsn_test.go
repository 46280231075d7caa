package dsn

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
)

var (
	arrival = time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	now     = time.Date(2026, 11, 25, 13, 45, 10, 0, time.FixedZone("CET", 3600))
)

const smallMsg = "Received: from client.example.org by n1.rg1.meshd.test; Wed, 25 Nov 2026 09:30:00 +0000\r\n" +
	"From: Alice <alice@example.org>\r\nTo: bob@example.test, carol@example.test\r\n" +
	"Subject: Quarterly figures\r\nMessage-ID: <q3.figures@example.org>\r\nDate: Wed, 25 Nov 2026 09:29:58 +0000\r\n" +
	"\r\nHello Bob,\r\n\r\nthe figures are attached.\r\n"

func goldenCases() []struct {
	name string
	r    Report
} {
	base := func() Report {
		return Report{Hostname: "n1.rg1.meshd.test", From: "alice@example.org", ArrivalDate: arrival, Now: now,
			MessageID: "fixed.dsn@n1.rg1.meshd.test", Original: []byte(smallMsg)}
	}
	failedFull := base()
	failedFull.Ret = RetFull
	failedFull.Postmaster = "postmaster@n1.rg1.meshd.test"
	failedFull.Rcpts = []RcptStatus{
		{Final: "bob@example.test", Original: "rfc822;Bob@Example.Test", Action: ActionFailed,
			Diagnostic: "550 5.1.1 <bob@example.test>: Recipient address rejected: no such user",
			RemoteMTA:  "mx1.example.test:25", LastAttempt: now.Add(-time.Minute)},
		{Final: "carol@example.test", Action: ActionFailed, Status: "4.4.7",
			Diagnostic: "x-meshd; delivery time expired after 48h0m0s", LastAttempt: now.Add(-2 * time.Minute)},
	}

	delayed := base()
	delayed.Ret = RetHdrs
	delayed.EnvID = "QQ314159"
	delayed.Rcpts = []RcptStatus{{Final: "bob@example.test", Action: ActionDelayed,
		Diagnostic: "smtp; 451 4.3.0 mailbox temporarily unavailable", RemoteMTA: "127.0.0.1:2525",
		LastAttempt: now.Add(-30 * time.Second), WillRetryUntil: arrival.Add(48 * time.Hour)}}

	mixed := base()
	mixed.MaxFullBytes = 100 // smaller than smallMsg: headers only by default
	mixed.ReceivedFromMTA = "client.example.org"
	mixed.Rcpts = []RcptStatus{
		{Final: "bob@example.test", Action: ActionFailed, Diagnostic: "554 5.7.1 rejected by policy", RemoteMTA: "[::1]:25"},
		{Final: "carol@example.test", Action: ActionDelayed, Diagnostic: "connect to mx2.example.test: connection refused"},
		{Final: "dave@example.test", Action: ActionDelivered, Diagnostic: "250 2.0.0 ok queued as 1234"},
	}

	success := base()
	success.Original = nil
	success.Rcpts = []RcptStatus{
		{Final: "bob@example.test", Action: ActionDelivered},
		{Final: "list@example.test", Action: ActionExpanded},
		{Final: "old@legacy.test", Action: ActionRelayed, RemoteMTA: "legacy-gw.test"},
	}

	utf8 := base()
	utf8.From = "jörg@example.org"
	utf8.Original = []byte("Subject: Grüße aus München\r\nMessage-ID: <u@example.org>\r\n\r\nHallo Müller\r\n")
	utf8.Rcpts = []RcptStatus{{Final: "müller@bücher.test", Original: "utf-8;müller@bücher.test",
		Action: ActionFailed, Diagnostic: "550 5.1.1 unbekannter Empfänger"}}

	long := base()
	long.Ret = RetFull
	long.Original = []byte("Subject: long line\r\nX-Long: " + strings.Repeat("h", 1200) + "\r\n\r\n" +
		strings.Repeat("b", 1500) + "\r\n")
	long.Rcpts = []RcptStatus{{Final: "bob@example.test", Action: ActionFailed,
		Diagnostic: "550 5.0.0 " + strings.Repeat("x", 1200) + " " + strings.Repeat("word ", 60)}}

	lf := base()
	lf.Ret = RetFull
	lf.Original = []byte("Subject: bare LF\nMessage-ID: <lf@example.org>\n\nline one\nline two\n")
	lf.Rcpts = []RcptStatus{{Final: "bob@example.test", Action: ActionFailed, Status: "5.1.2"}}

	return []struct {
		name string
		r    Report
	}{
		{"failed_full", failedFull},
		{"delayed_hdrs", delayed},
		{"mixed_default_large", mixed},
		{"success_no_original", success},
		{"utf8_global", utf8},
		{"long_lines", long},
		{"bare_lf_original", lf},
	}
}

func TestBuildGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			from, got, err := Build(tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if from != "" {
				t.Errorf("envelope sender %q, want the null sender", from)
			}
			testkit.Golden(t, filepath.Join("testdata", tc.name+".golden"), got)
			// The same report gives the same bytes.
			if _, again, _ := Build(tc.r); !bytes.Equal(again, got) {
				t.Error("Build is not deterministic")
			}
		})
	}
}

// TestBuildParses reads every golden report back with net/mail and mime/multipart and checks
// its structure against the Report it came from.
func TestBuildParses(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			_, raw, err := Build(tc.r)
			if err != nil {
				t.Fatal(err)
			}
			checkLines(t, raw)
			checkReport(t, tc.r, raw)
		})
	}
}

func checkLines(t *testing.T, raw []byte) {
	t.Helper()
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Error("message does not end with CRLF")
	}
	for i, line := range bytes.Split(raw, []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Errorf("line %d has a bare CR or LF: %q", i+1, line)
		}
		if len(line) > 998 {
			t.Errorf("line %d is %d octets long", i+1, len(line))
		}
	}
}

func checkReport(t *testing.T, r Report, raw []byte) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("ReadMessage: %v", err)
	}
	h := msg.Header
	if from, err := mail.ParseAddress(h.Get("From")); err != nil || from.Address != "MAILER-DAEMON@"+r.Hostname ||
		from.Name != "Mail Delivery System" {
		t.Errorf("From %q (%v)", h.Get("From"), err)
	}
	if h.Get("To") != "<"+r.From+">" {
		t.Errorf("To %q", h.Get("To"))
	}
	if h.Get("Auto-Submitted") != "auto-replied" {
		t.Errorf("Auto-Submitted %q", h.Get("Auto-Submitted"))
	}
	if d, err := h.Date(); err != nil || !d.Equal(r.Now.Truncate(time.Second)) {
		t.Errorf("Date %q (%v)", h.Get("Date"), err)
	}
	if h.Get("Message-ID") != "<"+r.MessageID+">" {
		t.Errorf("Message-ID %q", h.Get("Message-ID"))
	}
	if h.Get("Subject") == "" {
		t.Error("no Subject")
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type %q (%v)", h.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var parts []*multipart.Part
	var bodies [][]byte
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("NextPart: %v", err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		parts, bodies = append(parts, p), append(bodies, b)
	}
	wantParts := 3
	if len(r.Original) == 0 {
		wantParts = 2
	}
	if len(parts) != wantParts {
		t.Fatalf("%d parts, want %d", len(parts), wantParts)
	}
	if mt, _, _ := mime.ParseMediaType(parts[0].Header.Get("Content-Type")); mt != "text/plain" {
		t.Errorf("part 1 is %q", mt)
	}
	for _, rc := range r.Rcpts {
		if !bytes.Contains(bodies[0], []byte("<"+rc.Final+">")) {
			t.Errorf("text part does not name %s", rc.Final)
		}
	}
	statusType := parts[1].Header.Get("Content-Type")
	if statusType != "message/delivery-status" && statusType != "message/global-delivery-status" {
		t.Errorf("part 2 is %q", statusType)
	}
	checkStatus(t, r, bodies[1])
	if wantParts == 3 {
		checkOriginal(t, r, parts[2].Header.Get("Content-Type"), bodies[2])
	}
}

// checkStatus parses the message/delivery-status body: one per-message block, then one block
// per recipient (RFC 3464 §2.1).
func checkStatus(t *testing.T, r Report, body []byte) {
	t.Helper()
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(body)))
	var blocks []textproto.MIMEHeader
	for {
		h, err := tr.ReadMIMEHeader()
		if len(h) > 0 {
			blocks = append(blocks, h)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("delivery-status block %d: %v", len(blocks), err)
		}
	}
	if len(blocks) != 1+len(r.Rcpts) {
		t.Fatalf("%d blocks, want %d", len(blocks), 1+len(r.Rcpts))
	}
	msgFields := blocks[0]
	if msgFields.Get("Reporting-Mta") != "dns; "+r.Hostname {
		t.Errorf("Reporting-MTA %q", msgFields.Get("Reporting-Mta"))
	}
	if r.EnvID != "" && msgFields.Get("Original-Envelope-Id") != r.EnvID {
		t.Errorf("Original-Envelope-Id %q", msgFields.Get("Original-Envelope-Id"))
	}
	if got, err := mail.ParseDate(msgFields.Get("Arrival-Date")); err != nil || !got.Equal(r.ArrivalDate) {
		t.Errorf("Arrival-Date %q", msgFields.Get("Arrival-Date"))
	}
	for i, rc := range r.Rcpts {
		b := blocks[i+1]
		if fr := b.Get("Final-Recipient"); !strings.HasSuffix(fr, "; "+rc.Final) {
			t.Errorf("Final-Recipient %q, want %s", fr, rc.Final)
		}
		if (rc.Original != "") != (b.Get("Original-Recipient") != "") {
			t.Errorf("Original-Recipient %q for ORCPT %q", b.Get("Original-Recipient"), rc.Original)
		}
		if b.Get("Action") != rc.Action {
			t.Errorf("Action %q, want %q", b.Get("Action"), rc.Action)
		}
		if !statusRE.MatchString(b.Get("Status")) || (rc.Status != "" && b.Get("Status") != rc.Status) {
			t.Errorf("Status %q", b.Get("Status"))
		}
		if rc.Diagnostic != "" && !diagTypeRE.MatchString(b.Get("Diagnostic-Code")) {
			t.Errorf("Diagnostic-Code %q has no type", b.Get("Diagnostic-Code"))
		}
		if (rc.RemoteMTA != "") != strings.HasPrefix(b.Get("Remote-Mta"), "dns; ") {
			t.Errorf("Remote-MTA %q", b.Get("Remote-Mta"))
		}
		if (rc.Action == ActionDelayed && !rc.WillRetryUntil.IsZero()) != (b.Get("Will-Retry-Until") != "") {
			t.Errorf("Will-Retry-Until %q for action %s", b.Get("Will-Retry-Until"), rc.Action)
		}
	}
}

func checkOriginal(t *testing.T, r Report, ctype string, body []byte) {
	t.Helper()
	orig := parseOriginal(r.Original)
	full := strings.EqualFold(r.Ret, RetFull) || (r.Ret == "" && len(r.Original) <= r.maxFull())
	if full && longestLine(orig.raw) <= 998 {
		if ctype != "message/rfc822" {
			t.Fatalf("original as %q, want message/rfc822", ctype)
		}
		if !bytes.Equal(body, orig.raw) {
			t.Errorf("returned message differs:\n%q\n%q", body, orig.raw)
		}
		if _, err := mail.ReadMessage(bytes.NewReader(body)); err != nil {
			t.Errorf("returned message does not parse: %v", err)
		}
		return
	}
	if ctype != "text/rfc822-headers" {
		t.Fatalf("original as %q, want text/rfc822-headers", ctype)
	}
	if bytes.Contains(body, []byte("\r\n\r\n")) {
		t.Error("headers part contains a body")
	}
	if !bytes.Contains(body, []byte("Subject:")) {
		t.Errorf("headers part lacks the Subject: %q", body)
	}
}

func TestBuildRejects(t *testing.T) {
	ok := func() Report {
		return Report{Hostname: "h.test", From: "a@x.test", Rcpts: []RcptStatus{{Final: "b@y.test", Action: ActionFailed}}}
	}
	tests := []struct {
		name   string
		modify func(r *Report)
	}{
		{"no hostname", func(r *Report) { r.Hostname = "" }},
		{"null sender", func(r *Report) { r.From = "" }},
		{"no recipients", func(r *Report) { r.Rcpts = nil }},
		{"bad action", func(r *Report) { r.Rcpts[0].Action = "bounced" }},
		{"bad status", func(r *Report) { r.Rcpts[0].Status = "550" }},
		{"bad RET", func(r *Report) { r.Ret = "ALL" }},
		{"header injection in From", func(r *Report) { r.From = "a@x.test>\r\nBcc: victim@z.test" }},
		{"header injection in EnvID", func(r *Report) { r.EnvID = "id\r\nX-Evil: 1" }},
		{"CRLF in final recipient", func(r *Report) { r.Rcpts[0].Final = "b@y.test\r\nAction: delivered" }},
		{"empty final recipient", func(r *Report) { r.Rcpts[0].Final = "" }},
	}
	if _, _, err := Build(ok()); err != nil {
		t.Fatalf("the valid base report fails: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ok()
			tc.modify(&r)
			if _, body, err := Build(r); err == nil {
				t.Errorf("Build accepted it:\n%s", body)
			}
		})
	}
}

func TestDiagnosticControlCharactersFlattened(t *testing.T) {
	r := Report{Hostname: "h.test", From: "a@x.test", Now: now, MessageID: "m@h.test",
		Rcpts: []RcptStatus{{Final: "b@y.test", Action: ActionFailed, Diagnostic: "550-5.1.1 first\r\n550 5.1.1 second\x00"}}}
	_, raw, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, raw)
	if !bytes.Contains(raw, []byte("Diagnostic-Code: smtp; 550-5.1.1 first 550 5.1.1 second\r\n")) {
		t.Errorf("diagnostic not flattened:\n%s", raw)
	}
	if !bytes.Contains(raw, []byte("Status: 5.1.1\r\n")) {
		t.Error("status not taken from the enhanced code in the diagnostic")
	}
}

func TestDefaultsAreFilled(t *testing.T) {
	r := Report{Hostname: "h.test", From: "a@x.test",
		Rcpts: []RcptStatus{{Final: "b@y.test", Action: ActionDelayed, WillRetryUntil: arrival},
			{Final: "c@y.test", Action: ActionFailed, WillRetryUntil: arrival}}}
	before := time.Now().Add(-time.Second)
	_, raw, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := msg.Header.Date(); err != nil || d.Before(before) {
		t.Errorf("Date %q not now", msg.Header.Get("Date"))
	}
	if id := msg.Header.Get("Message-ID"); !strings.HasSuffix(id, "@h.test>") || len(id) < 20 {
		t.Errorf("generated Message-ID %q", id)
	}
	if n := bytes.Count(raw, []byte("Will-Retry-Until:")); n != 1 {
		t.Errorf("Will-Retry-Until appears %d times, want once (delayed only)", n)
	}
	for _, want := range []string{"Status: 4.0.0\r\n", "Status: 5.0.0\r\n"} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("missing default %q", want)
		}
	}
	if _, raw2, _ := Build(r); bytes.Equal(raw, raw2) {
		t.Error("two reports without MessageID got the same Message-ID")
	}
}

func TestWriteHeaderFolding(t *testing.T) {
	var b bytes.Buffer
	writeHeader(&b, "Diagnostic-Code", "smtp; "+strings.Repeat("word ", 40)+strings.Repeat("z", 2500))
	out := b.String()
	checkLines(t, b.Bytes())
	h, err := textproto.NewReader(bufio.NewReader(strings.NewReader(out + "\r\n"))).ReadMIMEHeader()
	if err != nil {
		t.Fatalf("folded header does not parse: %v\n%s", err, out)
	}
	v := strings.ReplaceAll(h.Get("Diagnostic-Code"), " ", "")
	if want := "smtp;" + strings.Repeat("word", 40) + strings.Repeat("z", 2500); v != want {
		t.Errorf("unfolded value lost content: %d vs %d octets", len(v), len(want))
	}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n") {
		if strings.TrimSpace(l) == "" {
			t.Errorf("whitespace-only line in %q", out)
		}
	}
}

// FuzzBuild checks that any accepted report renders as a parseable message whose lines keep
// the RFC 5322 limits.
func FuzzBuild(f *testing.F) {
	f.Add("550 5.1.1 no such user", "bob@example.test", []byte(smallMsg), uint8(0), "mx.example.test:25")
	f.Add(strings.Repeat("y", 3000), "müller@bücher.test", []byte("no header separator"), uint8(1), "[::1]:25")
	f.Add("451-4.3.0 a\r\n451 4.3.0 b", "x@y", []byte("\n\n\r\r"+strings.Repeat("z", 1200)), uint8(2), "")
	f.Fuzz(func(t *testing.T, diag, final string, orig []byte, ret uint8, remote string) {
		r := Report{Hostname: "h.test", From: "a@x.test", Now: now, MessageID: "m@h.test", Original: orig,
			Ret:   []string{"", RetFull, RetHdrs}[ret%3],
			Rcpts: []RcptStatus{{Final: final, Action: ActionFailed, Diagnostic: diag, RemoteMTA: remote}}}
		_, raw, err := Build(r)
		if err != nil {
			return
		}
		checkLines(t, raw)
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("ReadMessage: %v", err)
		}
		_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		if err != nil {
			t.Fatal(err)
		}
		mr := multipart.NewReader(msg.Body, params["boundary"])
		n := 0
		for {
			_, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("part %d: %v", n, err)
			}
			n++
		}
		if n < 2 {
			t.Fatalf("%d parts", n)
		}
	})
}

package harness

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCountMaildir(t *testing.T) {
	root := t.TempDir()
	write := func(rel, body string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("rgb.test/u/new/1", "Received: x\r\n\tby y\r\nMessage-ID: <m1@h>\r\n\r\nMessage-ID: <body@h>\r\n")
	write("rgb.test/u/cur/2:2,S", "message-id:<m1@h>\r\n\r\n")
	write("rgb.test/v/new/3", "Message-ID: <m2@h>\r\n\r\n")
	write("rgb.test/v/tmp/4", "Message-ID: <m3@h>\r\n\r\n") // not delivered yet
	write("rga.test/sim/new/5", "Message-ID: <dsn1@b2>\r\nIn-Reply-To: <m4@h>\r\n"+
		"Content-Type: multipart/report; report-type=delivery-status;\r\n boundary=\"b\"\r\n\r\n"+
		"--b\r\n\r\ntext\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"+
		"Final-Recipient: rfc822; u@rgb.test\r\nDiagnostic-Code: smtp; 554 5.4.6 Routing loop\r\n detected\r\n\r\n--b--\r\n")
	d := Deliveries{Copies: map[string]int{}, Bounced: map[string]string{}, At: map[string]time.Time{}}
	if err := countMaildir(root, d); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"m1@h": 2, "m2@h": 1, "dsn1@b2": 1}
	if len(d.Copies) != len(want) {
		t.Errorf("copies %v, want %v", d.Copies, want)
	}
	for id, n := range want {
		if d.Copies[id] != n {
			t.Errorf("%s: %d copies, want %d", id, d.Copies[id], n)
		}
	}
	if got := d.Bounced["m4@h"]; got != "smtp; 554 5.4.6 Routing loop detected" {
		t.Errorf("bounce diagnostic %q", got)
	}
	if _, ok := d.At["m2@h"]; !ok {
		t.Errorf("no delivery time for m2")
	}
	if err := countMaildir(filepath.Join(root, "missing"), d); err != nil {
		t.Errorf("missing maildir: %v", err)
	}
}

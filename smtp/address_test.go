package smtp

import (
	"fmt"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
)

func TestCheckAddress(t *testing.T) {
	for _, tc := range []struct {
		addr     string
		sender   bool
		smtputf8 bool
		code     int    // 0: accepted
		ec       string // enhanced code of the refusal
	}{
		{addr: "bob@example.test"},
		{addr: "first.last+tag@sub.example.test"},
		{addr: "o'brien@example.test"},
		{addr: "a!#$%&'*+-/=?^_`{|}~z@example.test"},
		{addr: "bob@example.test."},
		{addr: "bob@[192.0.2.1]"},
		{addr: "bob@[IPv6:2001:db8::1]"},
		{addr: "user@foreign.example\x00@local.test", code: 501, ec: "5.5.2"},
		{addr: "bob\x01@example.test", code: 501, ec: "5.5.2"},
		{addr: "bob@exa\x7fmple.test", code: 501, ec: "5.5.2"},
		{addr: "bob\t@example.test", code: 501, ec: "5.5.2"},
		{addr: ".bob@example.test", code: 553, ec: "5.1.3"},
		{addr: "bob.@example.test", code: 553, ec: "5.1.3"},
		{addr: "bo..b@example.test", code: 553, ec: "5.1.3"},
		{addr: ".bob@example.test", sender: true, code: 553, ec: "5.1.7"},
		{addr: "two words@example.test", code: 553, ec: "5.1.3"},
		{addr: "a@b@example.test", code: 553, ec: "5.1.3"},
		{addr: "bob@-example.test", code: 553, ec: "5.1.3"},
		{addr: "bob@example..test", code: 553, ec: "5.1.3"},
		{addr: "bob@exa_mple.test", code: 553, ec: "5.1.3"},
		{addr: "bob@[300.1.1.1]", code: 553, ec: "5.1.3"},
		{addr: "bob@[postmaster]", code: 553, ec: "5.1.3"},
		{addr: "x1234567890123456789012345678901234567890123456789012345678901234@example.test", code: 553, ec: "5.1.3"},
		{addr: "jöran@exämple.test", code: 553, ec: "5.6.7"},
		{addr: "jöran@exämple.test", smtputf8: true},
		{addr: "j\xffran@example.test", smtputf8: true, code: 501, ec: "5.5.2"},
	} {
		e := checkAddress(tc.addr, tc.sender, tc.smtputf8)
		switch {
		case tc.code == 0 && e != nil:
			t.Errorf("%q: refused %d %v %s, want accepted", tc.addr, e.Code, e.EnhancedCode, e.Message)
		case tc.code != 0 && e == nil:
			t.Errorf("%q: accepted, want %d %s", tc.addr, tc.code, tc.ec)
		case e != nil:
			ec := e.EnhancedCode
			if got := [2]any{e.Code, ec}; e.Code != tc.code || ecString(ec) != tc.ec {
				t.Errorf("%q: %v, want %d %s", tc.addr, got, tc.code, tc.ec)
			}
		}
	}
}

func ecString(ec gosmtp.EnhancedCode) string { return fmt.Sprintf("%d.%d.%d", ec[0], ec[1], ec[2]) }

func TestRewritePostmaster(t *testing.T) {
	for in, want := range map[string]string{
		"RCPT TO:<postmaster>\r\n":              "RCPT TO:<" + postmasterPath + ">\r\n",
		"rcpt to:<PostMaster> NOTIFY=NEVER\r\n": "RCPT TO:<" + postmasterPath + "> NOTIFY=NEVER\r\n",
		"RCPT TO:<postmaster@example.test>\r\n": "RCPT TO:<postmaster@example.test>\r\n",
		"RCPT TO:<poſtmaster>\r\n":              "RCPT TO:<poſtmaster>\r\n",
		"RCPT TO:<postmasterx>\r\n":             "RCPT TO:<postmasterx>\r\n",
	} {
		if got := string(rewritePostmaster([]byte(in))); got != want {
			t.Errorf("%q -> %q, want %q", in, got, want)
		}
	}
}

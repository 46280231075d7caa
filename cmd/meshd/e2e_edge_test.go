package main_test

import (
	"bytes"
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/meshd/meshd/harness/extern"
)

// pySMTPSSL submits one message with smtplib.SMTP_SSL (TLS at connect, RFC
// 8314) and prints the EHLO features, then "sent" once send_message returned.
const pySMTPSSL = `
import smtplib, ssl, sys
from email.message import EmailMessage
host, port, user, pw, subject = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP_SSL(host, port, context=ctx, timeout=30) as s:
    s.ehlo("client.e2e.test")
    print("features", " ".join(sorted(s.esmtp_features)))
    print("cipher", s.sock.version())
    s.login(user, pw)
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "alice@example.test", "bob@example.test", subject
    m.set_content("sent over implicit TLS\n")
    s.send_message(m)
    print("sent")
`

// TestE2ESubmissionsImplicitTLS: python's smtplib.SMTP_SSL submits on
// listen.submissions: TLS from the first byte, AUTH offered, STARTTLS not,
// and the message reaches the mailbox.
func TestE2ESubmissionsImplicitTLS(t *testing.T) {
	bin := extern.Require(t, extern.FindPython3)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	subs := freeAddrs(t, 1, nil)[0]
	n := startNode(t, nodeOptions{Users: map[string]string{"alice": string(hash)},
		Extra: map[string]any{"listen": map[string]any{"submissions": subs}}})
	host, port := splitHostPort(t, subs)
	subject := uniq(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-c", pySMTPSSL, host, strconv.Itoa(port), "alice", "s3cret-pw", subject)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("smtplib SMTP_SSL: %v\n%s%s", err, out, stderr.String())
	}
	text := string(out)
	if !strings.Contains(text, "auth") || strings.Contains(text, "starttls") || !strings.Contains(text, "\nsent") {
		t.Fatalf("smtplib SMTP_SSL session:\n%s", text)
	}
	if !strings.Contains(text, "cipher TLSv1.") {
		t.Fatalf("no TLS version reported:\n%s", text)
	}
	waitMailbox(t, n.Maildir, "bob@example.test", 20*time.Second, "Subject: "+subject, " with ESMTPSA id ")
}

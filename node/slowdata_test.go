package node

import (
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// slowDataScript is a raw-socket SMTP client that, once in DATA, sends one
// byte every 200 ms and prints the first reply the server sends then.
const slowDataScript = `import socket, sys, select
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)
f = s.makefile("rb")
def reply():
    while True:
        l = f.readline().decode()
        if l[3:4] != "-":
            return l.strip()
reply()
for c in ["EHLO slow.test", "MAIL FROM:<eve@slow.test>", "RCPT TO:<bob@example.test>", "DATA"]:
    s.sendall((c + "\r\n").encode()); r = reply()
body = b"Subject: slow\r\n\r\n" + b"x" * 25
for i in range(len(body)):
    s.sendall(body[i:i+1])
    if select.select([s], [], [], 0.2)[0]:
        print("after %d bytes: %s" % (i + 1, reply()))
        sys.exit(0)
print("no reply after %d bytes" % len(body))`

// TestSlowDataCut is issue 18 finding 7: a client trickling DATA one byte
// every 200 ms is cut with 421 4.4.2 once limits.data_total_timeout (2s
// here) has passed, counted in meshd_smtp_data_too_slow_total; mail sent
// before and after is delivered once.
func TestSlowDataCut(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 not found (Debian package python3): run scripts/install-deps")
	}
	cfg := testConfig(t)
	cfg.Limits.DataTotalTimeout = 2 * time.Second
	n := startNode(t, cfg, Options{})
	mustSend(t, n.SMTPAddr(), "alice@example.test", []string{"bob@example.test"}, message("before-slow"))
	host, port, _ := strings.Cut(n.SMTPAddr().String(), ":")
	start := time.Now()
	out, err := exec.Command("python3", "-c", slowDataScript, host, port).CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	took := time.Since(start)
	t.Logf("slow client: %s (after %v)", strings.TrimSpace(string(out)), took.Round(100*time.Millisecond))
	if !strings.Contains(string(out), "421 4.4.2") {
		t.Errorf("slow DATA: got %q, want 421 4.4.2", out)
	}
	mustSend(t, n.SMTPAddr(), "alice@example.test", []string{"bob@example.test"}, message("after-slow"))
	waitFor(t, 5*time.Second, "both delivered", func() bool { return len(mailbox(t, n.cfg, "bob@example.test")) == 2 })
	var subjects []string
	for _, m := range mailbox(t, n.cfg, "bob@example.test") {
		if strings.Contains(m, "Subject: slow") {
			t.Error("the slow message was delivered")
		}
		for _, s := range []string{"before-slow", "after-slow"} {
			if strings.Contains(m, "Subject: "+s) {
				subjects = append(subjects, s)
			}
		}
	}
	if len(subjects) != 2 || subjects[0] == subjects[1] {
		t.Errorf("delivered %v, want before-slow and after-slow once each", subjects)
	}
	resp, err := http.Get("http://" + n.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), `meshd_smtp_data_too_slow_total{listener="smtp"} 1`) {
		t.Errorf("metrics lack meshd_smtp_data_too_slow_total{listener=\"smtp\"} 1")
	}
}

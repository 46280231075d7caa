package extern

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Record is one piece of dnsmasq configuration, passed as a command-line option.
type Record struct {
	opt string
}

// String is the dnsmasq option, e.g. "--mx-host=example.test,mx1.example.test,10".
func (r Record) String() string { return r.opt }

// MX publishes "domain MX pref host". Several MX records for one domain may be given.
func MX(domain, host string, pref uint16) Record {
	return Record{fmt.Sprintf("--mx-host=%s,%s,%d", domain, host, pref)}
}

// NullMX publishes the RFC 7505 null MX "domain MX 0 .".
func NullMX(domain string) Record { return Record{"--mx-host=" + domain + ",.,0"} }

// Host publishes A and AAAA records (addresses of either family) for name.
func Host(name string, addrs ...string) Record {
	return Record{"--host-record=" + name + "," + strings.Join(addrs, ",")}
}

// CNAME publishes "alias CNAME target"; dnsmasq answers it only when target is known locally.
func CNAME(alias, target string) Record { return Record{"--cname=" + alias + "," + target} }

// TXT publishes a TXT record.
func TXT(name, text string) Record { return Record{"--txt-record=" + name + "," + text} }

// Local makes dnsmasq authoritative-like for domain: names under it that no record names are
// answered NXDOMAIN (without it dnsmasq, having no upstream, answers REFUSED).
func Local(domain string) Record { return Record{"--local=/" + domain + "/"} }

// Option passes any other dnsmasq option verbatim, e.g. "--srv-host=...".
func Option(opt string) Record { return Record{opt} }

func (r Record) validate() error {
	if !strings.HasPrefix(r.opt, "--") {
		return fmt.Errorf("extern: dnsmasq option %q does not start with --", r.opt)
	}
	if strings.ContainsAny(r.opt, "\n\x00") || strings.Contains(r.opt, ",,") {
		return fmt.Errorf("extern: dnsmasq option %q is malformed", r.opt)
	}
	return nil
}

// DNSMasq is a running dnsmasq serving only the records it was started with, on 127.0.0.1.
type DNSMasq struct {
	Addr string // "127.0.0.1:PORT", UDP and TCP
	Port int
	proc *process
}

// Output returns what dnsmasq logged so far (queries included).
func (d *DNSMasq) Output() string { return d.proc.out.String() }

// Stop kills dnsmasq before the test ends (t.Cleanup does it otherwise).
func (d *DNSMasq) Stop() { d.proc.stop() }

// StartDNSMasq runs dnsmasq (no upstream servers, no /etc/hosts, no config file, no pid file) on
// 127.0.0.1 at a free high port with the given records, waits until it answers, and kills it in
// t.Cleanup. A missing dnsmasq fails the test with a pointer to scripts/install-deps.
func StartDNSMasq(t testing.TB, records ...Record) *DNSMasq {
	t.Helper()
	bin := Require(t, FindDNSMasq)
	for _, r := range records {
		if err := r.validate(); err != nil {
			t.Fatal(err)
		}
	}
	var lastOut string
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort(true)
		if err != nil {
			t.Fatalf("extern: dnsmasq: %v", err)
		}
		args := []string{
			"--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=",
			"--no-resolv", "--no-hosts", "--no-poll", "--bind-interfaces",
			"--listen-address=127.0.0.1", "--port=" + strconv.Itoa(port),
			"--log-facility=-", "--log-queries",
		}
		for _, r := range records {
			args = append(args, r.opt)
		}
		proc, err := startProcess(exec.Command(bin, args...))
		if err != nil {
			t.Fatalf("extern: start %s: %v", bin, err)
		}
		d := &DNSMasq{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Port: port, proc: proc}
		if err := waitDNS(d, 10*time.Second); err == nil {
			proc.cleanup(t, "dnsmasq")
			return d
		} else if !proc.exited() {
			proc.stop()
			t.Fatalf("extern: dnsmasq on %s: %v\n%s", d.Addr, err, proc.out.String())
		}
		// It exited, most likely because a racing process took the port: try another one.
		lastOut = proc.out.String()
	}
	t.Fatalf("extern: dnsmasq did not start:\n%s", lastOut)
	return nil
}

// waitDNS polls until dnsmasq answers a query over UDP or the deadline passes.
func waitDNS(d *DNSMasq, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	query := probeQuery()
	var lastErr error
	for time.Now().Before(deadline) {
		if d.proc.exited() {
			return fmt.Errorf("exited: %v", d.proc.err)
		}
		lastErr = probeDNS(d.Addr, query)
		if lastErr == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	return fmt.Errorf("no answer within %v: %w", timeout, lastErr)
}

// probeQuery is a minimal DNS query "version.bind. CH TXT" (any reply proves the server is up).
func probeQuery() []byte {
	q := []byte{0x4d, 0x53, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, label := range []string{"version", "bind"} {
		q = append(q, byte(len(label)))
		q = append(q, label...)
	}
	return append(q, 0, 0, 16, 0, 3) // root, TYPE TXT, CLASS CH
}

func probeDNS(addr string, query []byte) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Write(query); err != nil {
		return err
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if n < 12 || buf[0] != query[0] || buf[1] != query[1] {
		return fmt.Errorf("malformed reply")
	}
	return nil
}

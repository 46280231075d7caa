package mx

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// zone is an in-process DNS server that answers from a fixed set of records the way a recursive
// resolver would: CNAMEs chased inside one answer, NXDOMAIN for unknown names, NODATA for known
// names without records of the asked type.
type zone struct {
	mu      sync.Mutex
	rrs     map[zkey][]dns.RR
	names   map[string]bool
	rcode   map[string]int  // forced response code per name
	drop    map[string]bool // never answered (timeout)
	noChase bool            // answer a CNAME without the target's records
	truncN  int             // UDP answers with more than truncN records get TC and no records
	queries []string        // "name TYPE udp|tcp"
}

type zkey struct {
	name  string
	qtype uint16
}

func newZone(t *testing.T, records ...string) *zone {
	t.Helper()
	z := &zone{rrs: map[zkey][]dns.RR{}, names: map[string]bool{}, rcode: map[string]int{}, drop: map[string]bool{}}
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("record %q: %v", s, err)
		}
		h := rr.Header()
		k := zkey{strings.ToLower(h.Name), h.Rrtype}
		z.rrs[k] = append(z.rrs[k], rr)
		z.names[k.name] = true
	}
	return z
}

func (z *zone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	z.mu.Lock()
	defer z.mu.Unlock()
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	proto := "tcp"
	if udp {
		proto = "udp"
	}
	z.queries = append(z.queries, name+" "+dns.TypeToString[q.Qtype]+" "+proto)
	if z.drop[name] {
		return
	}
	m := new(dns.Msg)
	m.SetReply(req)
	if rc, ok := z.rcode[name]; ok {
		m.Rcode = rc
		_ = w.WriteMsg(m)
		return
	}
	for hops := 0; hops < 12; hops++ {
		if rrs := z.rrs[zkey{name, q.Qtype}]; len(rrs) > 0 {
			m.Answer = append(m.Answer, rrs...)
			break
		}
		if cn := z.rrs[zkey{name, dns.TypeCNAME}]; len(cn) > 0 && q.Qtype != dns.TypeCNAME {
			m.Answer = append(m.Answer, cn[0])
			if z.noChase {
				break
			}
			name = strings.ToLower(cn[0].(*dns.CNAME).Target)
			continue
		}
		if !z.names[name] {
			m.Rcode = dns.RcodeNameError
		}
		break
	}
	if udp && z.truncN > 0 && len(m.Answer) > z.truncN {
		m.Answer = nil
		m.Truncated = true
	}
	_ = w.WriteMsg(m)
}

func (z *zone) queried(entry string) bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, q := range z.queries {
		if q == entry {
			return true
		}
	}
	return false
}

// serve runs z on 127.0.0.1 (UDP and TCP on one random port) until the test ends.
func serve(t *testing.T, z *zone) string {
	t.Helper()
	var l net.Listener
	var pc net.PacketConn
	for attempt := 0; ; attempt++ {
		var err error
		l, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc, err = net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			break
		}
		l.Close()
		if attempt == 10 {
			t.Fatalf("no port free for UDP and TCP: %v", err)
		}
	}
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	servers := []*dns.Server{
		{PacketConn: pc, Handler: z, NotifyStartedFunc: notify},
		{Listener: l, Handler: z, NotifyStartedFunc: notify},
	}
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(func() { _ = s.ActivateAndServe() })
	}
	t.Cleanup(func() {
		for _, s := range servers {
			_ = s.Shutdown()
		}
		wg.Wait()
	})
	timeout := time.After(5 * time.Second)
	for range servers {
		select {
		case <-started:
		case <-timeout:
			t.Fatal("DNS server did not start")
		}
	}
	return l.Addr().String()
}

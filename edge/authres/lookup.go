package authres

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// NewLookup returns a TXT lookup that asks server (host:port), or the
// servers of /etc/resolv.conf when it is empty. Its errors are
// *net.DNSError, as go-msgauth expects: IsNotFound for NXDOMAIN and an
// empty answer, IsTemporary for a failed or timed-out exchange.
func NewLookup(server string, timeout time.Duration) LookupTXT {
	return func(ctx context.Context, name string) ([]string, error) {
		servers := []string{server}
		if server == "" {
			cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
			if err != nil {
				return nil, &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
			}
			servers = servers[:0]
			for _, s := range cc.Servers {
				servers = append(servers, net.JoinHostPort(s, cc.Port))
			}
		}
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
		m.SetEdns0(4096, false)
		c := &dns.Client{Timeout: timeout}
		var last error = fmt.Errorf("no DNS server")
		for _, s := range servers {
			r, _, err := c.ExchangeContext(ctx, m, s)
			if err != nil {
				last = err
				continue
			}
			switch r.Rcode {
			case dns.RcodeNameError:
				return nil, &net.DNSError{Err: "no such host", Name: name, Server: s, IsNotFound: true}
			case dns.RcodeSuccess:
			default:
				last = fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
				continue
			}
			var out []string
			for _, rr := range r.Answer {
				if t, ok := rr.(*dns.TXT); ok {
					out = append(out, strings.Join(t.Txt, ""))
				}
			}
			if len(out) == 0 {
				return nil, &net.DNSError{Err: "no TXT record", Name: name, Server: s, IsNotFound: true}
			}
			return out, nil
		}
		return nil, &net.DNSError{Err: last.Error(), Name: name, IsTemporary: true, IsTimeout: true}
	}
}

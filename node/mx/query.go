package mx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/miekg/dns"
)

// maxCNAME bounds how many CNAME links are followed for one name.
const maxCNAME = 8

// ednsSize is the UDP payload size we advertise (the DNS flag day 2020 value).
const ednsSize = 1232

// servers returns the resolvers to ask, in order.
func (r *Resolver) servers() ([]string, error) {
	if r.Server != "" {
		return []string{r.Server}, nil
	}
	path := r.ResolvConf
	if path == "" {
		path = "/etc/resolv.conf"
	}
	cfg, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("mx: read %s: %w", path, err)
	}
	if len(cfg.Servers) == 0 {
		return nil, fmt.Errorf("mx: read %s: no nameserver", path)
	}
	out := make([]string, 0, len(cfg.Servers))
	for _, s := range cfg.Servers {
		out = append(out, net.JoinHostPort(s, cfg.Port))
	}
	return out, nil
}

// exchange sends one query to each server in turn until one gives a usable answer (NOERROR or
// NXDOMAIN). Everything else ends as a *TempError.
func (r *Resolver) exchange(ctx context.Context, servers []string, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	m.SetEdns0(ednsSize, false)

	last := &TempError{Name: name, Type: qtype, Rcode: -1, Err: errors.New("no server answered")}
	for _, srv := range servers {
		resp, err := r.exchangeOne(ctx, m, srv)
		if err != nil {
			last = &TempError{Name: name, Type: qtype, Rcode: -1, Err: err}
			if ctx.Err() != nil {
				return nil, last
			}
			continue
		}
		switch resp.Rcode {
		case dns.RcodeSuccess, dns.RcodeNameError:
			return resp, nil
		default: // SERVFAIL, REFUSED, FORMERR, NOTIMP, ...: ask the next server
			last = &TempError{Name: name, Type: qtype, Rcode: resp.Rcode}
		}
	}
	return nil, last
}

// exchangeOne asks one server, retrying over TCP when a UDP answer was truncated.
func (r *Resolver) exchangeOne(ctx context.Context, m *dns.Msg, server string) (*dns.Msg, error) {
	network := r.Net
	if network == "" {
		network = "udp"
	}
	c := &dns.Client{Net: network, Timeout: r.timeout(), UDPSize: ednsSize}
	resp, _, err := c.ExchangeContext(ctx, m, server)
	if err == nil && resp.Truncated && network == "udp" {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, fmt.Errorf("%s via %s: %w", dns.TypeToString[m.Question[0].Qtype], server, err)
	}
	if resp.Truncated {
		return nil, fmt.Errorf("%s via %s: answer truncated", dns.TypeToString[m.Question[0].Qtype], server)
	}
	return resp, nil
}

// answer is the outcome of resolving one (name, type) with CNAMEs followed.
type answer struct {
	name     string   // canonical name (end of the CNAME chain)
	rrs      []dns.RR // records of the asked type owned by name; empty = NODATA
	nxdomain bool     // the (canonical) name does not exist
}

// resolve queries name/qtype and follows CNAMEs, inside one answer or with new queries.
func (r *Resolver) resolve(ctx context.Context, servers []string, name string, qtype uint16) (answer, error) {
	seen := map[string]bool{}
	for hops := 0; hops <= maxCNAME; hops++ {
		resp, err := r.exchange(ctx, servers, name, qtype)
		if err != nil {
			return answer{}, err
		}
		final, rrs, err := chase(resp, name, qtype, seen)
		if err != nil {
			return answer{}, &TempError{Name: name, Type: qtype, Rcode: -1, Err: err}
		}
		if resp.Rcode == dns.RcodeNameError {
			return answer{name: final, nxdomain: true}, nil
		}
		if len(rrs) > 0 || final == name {
			return answer{name: final, rrs: rrs}, nil
		}
		// The answer ended in a CNAME whose target's records it did not carry: ask for the target.
		name = final
	}
	return answer{}, &TempError{Name: name, Type: qtype, Rcode: -1, Err: errCNAMELoop}
}

// chase walks the CNAME chain from name through resp's answer section and returns the last name
// and its records of qtype. seen carries the names visited across queries to catch loops.
func chase(resp *dns.Msg, name string, qtype uint16, seen map[string]bool) (string, []dns.RR, error) {
	seen[strings.ToLower(name)] = true
	for {
		var rrs []dns.RR
		next := ""
		for _, rr := range resp.Answer {
			h := rr.Header()
			if !strings.EqualFold(h.Name, name) || h.Class != dns.ClassINET {
				continue
			}
			if h.Rrtype == qtype {
				rrs = append(rrs, rr)
			} else if cn, ok := rr.(*dns.CNAME); ok && qtype != dns.TypeCNAME {
				next = cn.Target
			}
		}
		if len(rrs) > 0 || next == "" {
			return name, rrs, nil
		}
		key := strings.ToLower(next)
		if seen[key] || len(seen) > maxCNAME {
			return "", nil, errCNAMELoop
		}
		seen[key] = true
		name = next
	}
}

// addrs resolves A then AAAA for host. A name without addresses gives an empty list; a
// temporary failure of one family is ignored when the other family has addresses.
func (r *Resolver) addrs(ctx context.Context, servers []string, host string) ([]string, error) {
	var out []string
	var tempErr error
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		ans, err := r.resolve(ctx, servers, host, qtype)
		if err != nil {
			tempErr = err
			continue
		}
		if ans.nxdomain {
			return nil, nil // neither family can exist
		}
		for _, rr := range ans.rrs {
			switch v := rr.(type) {
			case *dns.A:
				out = append(out, v.A.String())
			case *dns.AAAA:
				out = append(out, v.AAAA.String())
			}
		}
	}
	if len(out) == 0 && tempErr != nil {
		return nil, tempErr
	}
	return out, nil
}

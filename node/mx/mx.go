package mx

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// DefaultMaxHosts is how many hosts Lookup returns at most when Resolver.MaxHosts is 0.
const DefaultMaxHosts = 5

// DefaultTimeout is the per-query timeout when Resolver.Timeout is 0.
const DefaultTimeout = 5 * time.Second

// Resolver looks up mail hosts. The zero value uses /etc/resolv.conf over UDP. It holds no
// state between lookups and is safe for concurrent use.
type Resolver struct {
	// Server is the resolver to ask, host:port. Empty: the nameservers of ResolvConf, in order.
	Server string
	// Timeout bounds each query (default 5s); ctx bounds the whole lookup.
	Timeout time.Duration
	// Net is "udp" (default; truncated answers are retried over TCP) or "tcp".
	Net string
	// MaxHosts bounds the hosts returned (default 5, as max_mx_hosts in the node config).
	MaxHosts int
	// Rand returns a number in [0, n); it shuffles hosts of equal preference. Default math/rand/v2.IntN.
	Rand func(n int) int
	// ResolvConf is read when Server is empty (default /etc/resolv.conf).
	ResolvConf string
}

// Host is one mail host to try: its name, MX preference (0 for an implicit MX or an address
// literal) and addresses, IPv4 before IPv6.
type Host struct {
	Name  string
	Pref  uint16
	Addrs []string
}

func (r *Resolver) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultTimeout
}

func (r *Resolver) maxHosts() int {
	if r.MaxHosts > 0 {
		return r.MaxHosts
	}
	return DefaultMaxHosts
}

func (r *Resolver) intn(n int) int {
	if r.Rand != nil {
		return r.Rand(n)
	}
	return rand.IntN(n)
}

// Lookup returns the hosts to try for mail to domain, best first (RFC 5321 §5.1; see the package
// comment). Errors: wrapping ErrNoHost or ErrNullMX (permanent), or *TempError.
func (r *Resolver) Lookup(ctx context.Context, domain string) ([]Host, error) {
	if h, ok, err := addressLiteral(domain); ok || err != nil {
		if err != nil {
			return nil, fmt.Errorf("mx: lookup %q: %w: %w", domain, err, ErrNoHost)
		}
		return []Host{h}, nil
	}
	name, err := canonicalDomain(domain)
	if err != nil {
		return nil, fmt.Errorf("mx: lookup %q: %w: %w", domain, err, ErrNoHost)
	}
	servers, err := r.servers()
	if err != nil {
		return nil, err
	}
	ans, err := r.resolve(ctx, servers, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	if ans.nxdomain {
		return nil, fmt.Errorf("mx: lookup %s: domain does not exist: %w", trimDot(name), ErrNoHost)
	}
	if len(ans.rrs) == 0 {
		return r.implicitMX(ctx, servers, name, ans.name)
	}
	cands, err := candidates(ans.rrs)
	if err != nil {
		return nil, fmt.Errorf("mx: lookup %s: %w", trimDot(name), err)
	}
	r.shuffleEqual(cands)
	return r.resolveHosts(ctx, servers, trimDot(name), cands)
}

// implicitMX treats a domain without MX records as its own mail host (RFC 5321 §5.1).
func (r *Resolver) implicitMX(ctx context.Context, servers []string, name, canonical string) ([]Host, error) {
	addrs, err := r.addrs(ctx, servers, canonical)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("mx: lookup %s: no MX and no address records: %w", trimDot(name), ErrNoHost)
	}
	return []Host{{Name: trimDot(name), Pref: 0, Addrs: addrs}}, nil
}

// candidates turns MX records into hosts sorted by preference, without duplicates and without
// "." targets; only "." targets (RFC 7505 null MX) is ErrNullMX.
func candidates(rrs []dns.RR) ([]Host, error) {
	best := map[string]uint16{}
	for _, rr := range rrs {
		mx, ok := rr.(*dns.MX)
		if !ok {
			continue
		}
		target := strings.ToLower(mx.Mx)
		if target == "." {
			continue
		}
		if p, dup := best[target]; !dup || mx.Preference < p {
			best[target] = mx.Preference
		}
	}
	if len(best) == 0 {
		return nil, ErrNullMX
	}
	hosts := make([]Host, 0, len(best))
	for name, pref := range best {
		hosts = append(hosts, Host{Name: name, Pref: pref})
	}
	// Name order first makes the shuffle below depend on Rand only, not on map order.
	sort.Slice(hosts, func(i, j int) bool {
		if hosts[i].Pref != hosts[j].Pref {
			return hosts[i].Pref < hosts[j].Pref
		}
		return hosts[i].Name < hosts[j].Name
	})
	return hosts, nil
}

// shuffleEqual randomises the order inside each run of equal preference (Fisher-Yates).
func (r *Resolver) shuffleEqual(hosts []Host) {
	for start := 0; start < len(hosts); {
		end := start + 1
		for end < len(hosts) && hosts[end].Pref == hosts[start].Pref {
			end++
		}
		run := hosts[start:end]
		for i := len(run) - 1; i > 0; i-- {
			j := r.intn(i + 1)
			run[i], run[j] = run[j], run[i]
		}
		start = end
	}
}

// resolveHosts fills in addresses, in order, until MaxHosts hosts have some. Hosts without an
// address are skipped. Each batch is resolved concurrently.
func (r *Resolver) resolveHosts(ctx context.Context, servers []string, domain string, cands []Host) ([]Host, error) {
	max := r.maxHosts()
	var out []Host
	var tempErr error
	for next := 0; next < len(cands) && len(out) < max; {
		batch := cands[next:min(next+max-len(out), len(cands))]
		next += len(batch)
		errs := make([]error, len(batch))
		var wg sync.WaitGroup
		for i := range batch {
			wg.Go(func() {
				batch[i].Addrs, errs[i] = r.addrs(ctx, servers, dns.Fqdn(batch[i].Name))
			})
		}
		wg.Wait()
		for i, h := range batch {
			if errs[i] != nil {
				if tempErr == nil {
					tempErr = errs[i]
				}
				continue
			}
			if len(h.Addrs) > 0 {
				h.Name = trimDot(h.Name)
				out = append(out, h)
			}
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	if tempErr != nil {
		return nil, tempErr
	}
	return nil, fmt.Errorf("mx: lookup %s: no MX host has an address: %w", domain, ErrNoHost)
}

// canonicalDomain lowercases, checks and returns the FQDN of an ASCII domain.
func canonicalDomain(domain string) (string, error) {
	d := strings.TrimSuffix(strings.TrimSpace(domain), ".")
	if d == "" {
		return "", fmt.Errorf("empty domain")
	}
	for i := 0; i < len(d); i++ {
		if d[i] >= 0x80 {
			// Converting U-labels needs golang.org/x/text (not a dependency yet): callers pass A-labels.
			return "", fmt.Errorf("non-ASCII domain: convert it to A-labels (punycode) first")
		}
	}
	ascii := strings.ToLower(d)
	if _, ok := dns.IsDomainName(ascii); !ok {
		return "", fmt.Errorf("invalid domain")
	}
	return dns.Fqdn(ascii), nil
}

// addressLiteral parses "[192.0.2.1]" and "[IPv6:2001:db8::1]" (RFC 5321 §4.1.3).
func addressLiteral(domain string) (Host, bool, error) {
	d := strings.TrimSpace(domain)
	if !strings.HasPrefix(d, "[") {
		return Host{}, false, nil
	}
	if !strings.HasSuffix(d, "]") {
		return Host{}, true, fmt.Errorf("malformed address literal")
	}
	inner := d[1 : len(d)-1]
	v6, isV6 := cutPrefixFold(inner, "IPv6:")
	if isV6 {
		inner = v6
	}
	ip, err := netip.ParseAddr(inner)
	if err != nil || ip.Zone() != "" || ip.Is6() != isV6 || ip.Is4In6() {
		return Host{}, true, fmt.Errorf("malformed address literal")
	}
	return Host{Name: d, Addrs: []string{ip.String()}}, true, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

func trimDot(name string) string { return strings.TrimSuffix(name, ".") }

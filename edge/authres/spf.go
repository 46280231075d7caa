package authres

import (
	"context"
	"net"
	"strings"
	"time"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
)

// Client is the SMTP client a message came from: what SPF checks
// (RFC 7208 §2.3, §2.4).
type Client struct {
	// IP is the client's address (the real one behind a PROXY header);
	// nil checks no SPF.
	IP net.IP
	// Helo is the EHLO/HELO name.
	Helo string
	// MailFrom is the reverse-path; "" for the null one, <>.
	MailFrom string
}

// NewResolver returns a resolver that asks server (host:port) for every
// query, or the system's resolver when server is empty: SPF needs TXT,
// A, AAAA, MX and PTR lookups (blitiri.com.ar/go/spf's DNSResolver).
func NewResolver(server string, timeout time.Duration) spf.DNSResolver {
	if server == "" {
		return net.DefaultResolver
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		d := net.Dialer{Timeout: timeout}
		return d.DialContext(ctx, network, server)
	}}
}

// spfIdentity is one identity checked: its result in the field, and
// the domain SPF authenticated when it passed (for DMARC).
type spfIdentity struct {
	result *authres.SPFResult
	domain string // the checked domain; DMARC aligns it when the result is pass
}

// checkSPF evaluates the HELO identity and the MAIL FROM identity
// (RFC 7208 §2.3, §2.4; a null reverse-path is postmaster@HELO, whose
// check is the HELO one). It returns the results for the field and the
// MAIL FROM identity's (the one DMARC uses, RFC 7489 §4.1).
func (c *Checker) checkSPF(ctx context.Context, cl Client) (results []authres.Result, mailFrom *spfIdentity) {
	if cl.IP == nil || c.Resolver == nil {
		return nil, nil
	}
	helo := strings.TrimSuffix(strings.ToLower(cl.Helo), ".")
	heloOK := strings.Contains(helo, ".") && !strings.HasPrefix(helo, "[") && net.ParseIP(helo) == nil
	check := func(sender, domain string) *authres.SPFResult {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		res, err := spf.CheckHostWithSender(cl.IP, helo, sender, spf.WithContext(ctx), spf.WithResolver(c.Resolver))
		r := &authres.SPFResult{Value: authres.ResultValue(res)}
		if err != nil && (res == spf.TempError || res == spf.PermError) {
			r.Reason = reason(err)
		}
		return r
	}
	var heloID *spfIdentity
	if heloOK {
		r := check("postmaster@"+helo, helo)
		r.Helo = helo
		heloID = &spfIdentity{result: r, domain: helo}
		results = append(results, r)
	}
	_, domain, ok := strings.Cut(cl.MailFrom, "@")
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	switch {
	case cl.MailFrom == "":
		return results, heloID
	case !ok || domain == "":
		return results, nil
	}
	r := check(cl.MailFrom, domain)
	r.From = cl.MailFrom
	return append(results, r), &spfIdentity{result: r, domain: domain}
}

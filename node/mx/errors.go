package mx

import (
	"errors"
	"fmt"

	"github.com/miekg/dns"
)

// ErrNullMX means the domain publishes a null MX (RFC 7505): it accepts no mail. Permanent.
var ErrNullMX = errors.New("domain accepts no mail (null MX, RFC 7505)")

// ErrNoHost means the domain does not exist, or has neither MX records nor addresses, or none of
// its MX hosts has an address. Permanent.
var ErrNoHost = errors.New("no mail host for domain")

// errCNAMELoop is wrapped in a *TempError when a CNAME chain is too long or loops.
var errCNAMELoop = errors.New("CNAME chain too long or looping")

// TempError is a DNS failure that may go away: SERVFAIL, REFUSED, timeout, network error.
type TempError struct {
	Name  string // name queried
	Type  uint16 // query type (dns.TypeMX, ...)
	Rcode int    // DNS response code, or -1 when no response arrived
	Err   error  // underlying error when no response arrived
}

func (e *TempError) Error() string {
	q := e.Name + " " + dns.TypeToString[e.Type]
	if e.Rcode >= 0 {
		return fmt.Sprintf("mx: query %s: %s (temporary)", q, dns.RcodeToString[e.Rcode])
	}
	return fmt.Sprintf("mx: query %s: %v (temporary)", q, e.Err)
}

func (e *TempError) Unwrap() error { return e.Err }

// Temporary reports true: the failure may go away on a later attempt.
func (e *TempError) Temporary() bool { return true }

// IsTemporary reports whether err is (or wraps) a *TempError.
func IsTemporary(err error) bool {
	var te *TempError
	return errors.As(err, &te)
}

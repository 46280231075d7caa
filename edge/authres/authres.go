// Package authres adds an Authentication-Results header field (RFC 8601)
// to mail entering the organisation, so that content filters and mailbox
// rules can use what was verified at the edge: SPF of the HELO and MAIL
// FROM identities (RFC 7208, evaluated by blitiri.com.ar/go/spf through
// the node's own resolver; spf.go), every DKIM signature (RFC 6376,
// github.com/emersion/go-msgauth/dkim), and DMARC of the From: domain
// (RFC 7489: its policy record looked up with go-msgauth/dmarc, passed by
// a DKIM pass or an SPF pass of MAIL FROM aligned with it under adkim and
// aspf, failed when neither aligns).
//
// Strip removes the Authentication-Results fields that claim the node's
// authserv-id (RFC 8601 §5: a receiver must not believe such a field from
// outside), so only the node's own one remains.
package authres

import (
	"bytes"
	"context"
	"errors"
	"net/mail"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
)

// LookupTXT answers a TXT query (the node's resolver).
type LookupTXT func(ctx context.Context, name string) ([]string, error)

// Checker verifies messages and formats the results.
type Checker struct {
	// AuthServID names the node in the field (its hostname).
	AuthServID string
	Lookup     LookupTXT
	// Resolver answers SPF's lookups; nil checks no SPF.
	Resolver spf.DNSResolver
	// MaxSignatures bounds the signatures verified per message (each one
	// costs a DNS lookup); 0 is 5.
	MaxSignatures int
}

// Field returns the Authentication-Results field for msg from cl,
// CRLF-terminated.
func (c *Checker) Field(ctx context.Context, msg []byte, cl Client) string {
	lookup := func(name string) ([]string, error) { return c.Lookup(ctx, name) }
	max := c.MaxSignatures
	if max <= 0 {
		max = 5
	}
	results, spfMailFrom := c.checkSPF(ctx, cl)
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: lookup, MaxVerifications: max})
	var passed []string
	switch {
	case err != nil:
		results = append(results, &authres.DKIMResult{Value: authres.ResultPermError, Reason: "message unreadable"})
	case len(vs) == 0:
		results = append(results, &authres.DKIMResult{Value: authres.ResultNone})
	}
	for _, v := range vs {
		r := &authres.DKIMResult{Value: authres.ResultPass, Domain: v.Domain, Identifier: v.Identifier}
		switch {
		case v.Err == nil:
			passed = append(passed, strings.ToLower(v.Domain))
		case dkim.IsTempFail(v.Err):
			r.Value, r.Reason = authres.ResultTempError, reason(v.Err)
		case dkim.IsPermFail(v.Err):
			r.Value, r.Reason = authres.ResultPermError, reason(v.Err)
		default:
			r.Value, r.Reason = authres.ResultFail, reason(v.Err)
		}
		results = append(results, r)
	}
	if from := fromDomain(msg); from != "" {
		if r := c.dmarc(lookup, from, passed, spfMailFrom); r != nil {
			results = append(results, r)
		}
	}
	return "Authentication-Results: " + fold(authres.Format(c.AuthServID, results)) + "\r\n"
}

// dmarc is the DMARC result of the From: domain (RFC 7489 §4.2): pass
// for a DKIM pass or an SPF pass (of mf, the MAIL FROM identity) whose
// domain aligns with it, under the policy's adkim and aspf; fail when
// neither does. Without SPF evaluated (mf nil) a fail cannot be claimed:
// nil then.
func (c *Checker) dmarc(lookup func(string) ([]string, error), from string, passed []string, mf *spfIdentity) authres.Result {
	rec, err := dmarc.LookupWithOptions(from, &dmarc.LookupOptions{LookupTXT: lookup})
	org := orgDomain(from)
	if errors.Is(err, dmarc.ErrNoPolicy) && org != from {
		rec, err = dmarc.LookupWithOptions(org, &dmarc.LookupOptions{LookupTXT: lookup})
	}
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		return &authres.DMARCResult{Value: authres.ResultNone, From: from}
	case err != nil && dmarc.IsTempFail(err):
		return &authres.DMARCResult{Value: authres.ResultTempError, From: from}
	case err != nil:
		return &authres.DMARCResult{Value: authres.ResultPermError, From: from}
	}
	for _, d := range passed {
		if aligned(d, from, rec.DKIMAlignment) {
			return &authres.DMARCResult{Value: authres.ResultPass, From: from}
		}
	}
	if mf == nil {
		return nil
	}
	if mf.result.Value == authres.ResultPass && aligned(mf.domain, from, rec.SPFAlignment) {
		return &authres.DMARCResult{Value: authres.ResultPass, From: from}
	}
	return &authres.DMARCResult{Value: authres.ResultFail, From: from}
}

// aligned reports whether the authenticated domain d aligns with the
// From: domain (RFC 7489 §3.1): the same name under strict alignment,
// the same organisational domain under relaxed.
func aligned(d, from string, mode dmarc.AlignmentMode) bool {
	d = strings.ToLower(d)
	if d == from {
		return true
	}
	return mode != dmarc.AlignmentStrict && orgDomain(d) == orgDomain(from)
}

// orgDomain approximates the organisational domain by the last two
// labels (no public suffix list in reach).
func orgDomain(d string) string {
	if labels := strings.Split(d, "."); len(labels) > 2 {
		return strings.Join(labels[len(labels)-2:], ".")
	}
	return d
}

// Strip removes the Authentication-Results fields of msg's header that
// name authServID (case-insensitively), or cannot be parsed but begin
// with it.
func Strip(msg []byte, authServID string) []byte {
	var out bytes.Buffer
	rest := msg
	for len(rest) > 0 {
		end := fieldEnd(rest)
		f := rest[:end]
		if len(bytes.TrimRight(f, "\r\n")) == 0 {
			break // end of the header section
		}
		if name, value, ok := bytes.Cut(f, []byte(":")); ok && strings.EqualFold(strings.TrimSpace(string(name)), "Authentication-Results") && claims(string(value), authServID) {
			rest = rest[end:]
			continue
		}
		out.Write(f)
		rest = rest[end:]
	}
	out.Write(rest)
	return out.Bytes()
}

func claims(value, id string) bool {
	v := strings.Join(strings.Fields(value), " ")
	got, _, err := authres.Parse(v)
	if err != nil {
		got, _, _ = strings.Cut(v, ";")
		got = strings.TrimSpace(got)
		if i := strings.IndexAny(got, " \t("); i >= 0 {
			got = got[:i]
		}
	}
	return strings.EqualFold(strings.TrimSpace(got), id)
}

// fieldEnd is the length of the first header field of b with its
// continuation lines (of the empty line, when b starts with it).
func fieldEnd(b []byte) int {
	j := bytes.IndexByte(b, '\n')
	if j < 0 {
		return len(b)
	}
	i := j + 1
	if len(bytes.TrimRight(b[:i], "\r\n")) == 0 {
		return i
	}
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		k := bytes.IndexByte(b[i:], '\n')
		if k < 0 {
			return len(b)
		}
		i += k + 1
	}
	return i
}

func fromDomain(msg []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return ""
	}
	addrs, err := m.Header.AddressList("From")
	if err != nil || len(addrs) != 1 {
		return ""
	}
	_, d, _ := strings.Cut(addrs[0].Address, "@")
	return strings.ToLower(strings.TrimSuffix(d, "."))
}

func reason(err error) string {
	s := err.Error()
	if len(s) > 100 {
		s = s[:100]
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' || r == '"' || r == '\\' {
			return ' '
		}
		return r
	}, s)
}

// fold breaks authres.Format's "id; a; b" at the semicolons, one result a
// line, so the field stays within the 78-character line advice.
func fold(v string) string { return strings.ReplaceAll(v, "; ", ";\r\n\t") }

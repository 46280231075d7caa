// Package mx finds the mail hosts of a domain the way RFC 5321 §5.1 says an SMTP client must,
// using github.com/miekg/dns against one configured resolver (host:port) or the nameservers of
// /etc/resolv.conf.
//
// Resolver.Lookup(ctx, domain) returns at most MaxHosts (default 5) Hosts, each with the
// addresses to try (IPv4 first, then IPv6), in the order a sender should try them:
//
//   - MX records sorted by preference, lowest first; hosts of equal preference are shuffled with
//     Resolver.Rand so that load spreads over them (RFC 5321 §5.1).
//   - A domain that exists but has no MX records (NODATA) has an implicit MX: the domain itself
//     with preference 0, if it has A or AAAA records. Only then: a domain that does not exist
//     (NXDOMAIN) is ErrNoHost, never a fall-back to A records.
//   - A null MX (RFC 7505: the single record "MX 0 .") is ErrNullMX: the domain accepts no mail.
//     A "." target listed beside real MX records is ignored.
//   - CNAMEs are followed (RFC 5321 §5.1: "the resulting name is processed as if it were the
//     initial name"), for the domain and for MX targets, up to 8 links.
//   - MX hosts whose names have no address are skipped; the next host takes their slot.
//   - SERVFAIL, REFUSED, timeouts and network errors are *TempError (IsTemporary reports it):
//     the caller should retry later. ErrNoHost and ErrNullMX are permanent: bounce.
//
// UDP answers with the TC bit are retried over TCP. Domains are ASCII (internationalised names as
// A-labels: "xn--..."), in any case, with an optional trailing dot. An address literal ("[192.0.2.1]",
// "[IPv6:2001:db8::1]", RFC 5321 §4.1.3) yields one Host without any DNS query.
//
// Checking whether this node itself is among the MX hosts (RFC 5321 §5.1, last paragraph) is the
// caller's job: it knows its own names and addresses.
package mx

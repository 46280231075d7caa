package smtp

import "strings"

// SplitAddr splits a mailbox local@domain at the last '@' (a quoted local
// part may hold one). ok is false when either side is empty.
func SplitAddr(addr string) (local, domain string, ok bool) {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 {
		return addr, "", false
	}
	return addr[:i], addr[i+1:], true
}

// AddrDomain returns the domain of addr lower-cased and without a trailing
// dot, the form domains compare in ("" when addr has none).
func AddrDomain(addr string) string {
	_, d, _ := SplitAddr(addr)
	return strings.ToLower(strings.TrimSuffix(d, "."))
}

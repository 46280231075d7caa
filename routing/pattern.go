package routing

import "strings"

// Specificity ranks: an exact domain beats every wildcard, a wildcard with
// more labels beats one with fewer, and "*" ranks last.
const (
	specStar  = 0
	specExact = 1 << 10 // above any possible label count (a domain has at most 127 labels)
)

type patternKind uint8

const (
	patInvalid patternKind = iota
	patExact               // "example.com": that domain only
	patWild                // "*.example.com": strict subdomains of example.com
	patStar                // "*": every domain
)

// parsePattern normalises an address-space pattern and returns its kind,
// its lookup key (the domain, or the suffix after "*.") and its
// specificity.
func parsePattern(p string) (kind patternKind, key string, spec int) {
	p = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(p), "."))
	switch {
	case p == "*":
		return patStar, "*", specStar
	case strings.HasPrefix(p, "*."):
		suffix := p[2:]
		if !validDomain(suffix) {
			return patInvalid, "", 0
		}
		return patWild, suffix, strings.Count(suffix, ".") + 1
	case validDomain(p):
		return patExact, p, specExact
	}
	return patInvalid, "", 0
}

// normalizeDomain lowercases a recipient domain and strips one trailing
// dot; ok is false when it is not a plausible domain.
func normalizeDomain(d string) (string, bool) {
	d = strings.TrimSuffix(strings.TrimSpace(d), ".")
	if !validDomain(d) {
		return "", false
	}
	return strings.ToLower(d), true
}

// validDomain is a loose syntax check: 1..255 bytes, no empty labels, no
// wildcard, whitespace or '@'. Address literals ("[192.0.2.1]") pass and
// only ever match "*".
func validDomain(d string) bool {
	if d == "" || len(d) > 255 {
		return false
	}
	if strings.ContainsAny(d, "*@ \t\r\n") {
		return false
	}
	if d[0] == '.' || d[len(d)-1] == '.' || strings.Contains(d, "..") {
		return false
	}
	return true
}

// patternString renders a normalised pattern from its kind and key.
func patternString(kind patternKind, key string) string {
	if kind == patWild {
		return "*." + key
	}
	return key
}

package meshid

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"regexp"
	"slices"
	"strings"
)

// Header fields that carry mesh identity and trace between nodes. Only a
// mesh peer's are believed; a node strips them from anyone else.
const (
	HeaderID    = "X-Meshd-ID"
	HeaderTrace = "X-Meshd-Trace"
	// HeaderOrigin names the message as it entered the mesh; every copy's
	// ID derives from it, so a copy keeps its ID across hops and reroutes.
	HeaderOrigin = "X-Meshd-Origin"
	// HeaderAge is how long the copy has been in the mesh, in whole
	// seconds, with "suspect" after it when a twin of the copy may exist
	// (a shadow was resubmitted): docs/shadow.md.
	HeaderAge = "X-Meshd-Age"
	// FieldPrefix starts every header field the mesh sets between nodes
	// (lower case; field names compare case-insensitively in ASCII).
	FieldPrefix = "x-meshd-"
)

// Pattern is the syntax of a mesh ID: what New and the derivations produce
// (26 base32 characters) and what a peer's or a client's ID must match to
// be used as one.
const Pattern = `^[a-z0-9.-]{8,80}$`

var (
	idRE     = regexp.MustCompile(Pattern)
	encoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
)

// Valid reports whether s can be used as a mesh message ID.
func Valid(s string) bool { return idRE.MatchString(s) }

// New returns a fresh mesh ID: 26 lowercase base32 characters of 16 random bytes.
func New() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return encoding.EncodeToString(b[:])
}

// FromSum turns the first 16 bytes of a hash into a mesh ID, for IDs
// derived from content (a DSN's, a collision's, a copy's).
func FromSum(sum []byte) string { return encoding.EncodeToString(sum[:16]) }

// Copy derives the mesh ID of one copy: HMAC-SHA-256, keyed with a key
// every node of the organisation holds (derived from mesh.org_key), over
// the message's origin ID and the sorted, lower-cased recipients. The
// same recipients of the same message get the same ID at every hop and
// over every route, so a resend is a duplicate at the next hop; without
// the key nobody outside can compute the copies' IDs from the origin ID
// the sender saw. (No org key: plain SHA-256, and dedup's content digest
// still keeps a forged ID from costing mail.)
func Copy(key []byte, origin string, rcpts []string) string {
	addrs := make([]string, len(rcpts))
	for i, r := range rcpts {
		addrs[i] = strings.ToLower(r)
	}
	slices.Sort(addrs)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(origin + "\n" + strings.Join(addrs, "\n")))
	return FromSum(mac.Sum(nil))
}

// Collision is the ID of a message that arrived under an ID already taken
// by other content (digest is that message's content digest).
func Collision(id, digest string) string {
	sum := sha256.Sum256([]byte("collision\n" + id + "\n" + digest))
	return FromSum(sum[:])
}

// Package dkim signs mail leaving the organisation (RFC 6376, with
// Ed25519-SHA256 of RFC 8463 beside RSA-SHA256), using
// github.com/emersion/go-msgauth/dkim.
//
// A Signer holds the keys of dkim.keys: per domain one or more selectors,
// each with a private key file (PKCS#8 or PKCS#1 PEM, mode 0600). The node
// calls Sign when a message is handed to an external connector (MX or
// smarthost), never on a mesh hop: Sign picks the keys whose domain is the
// domain of the message's From: address or a parent of it, and prepends
// one DKIM-Signature per key, each computed over the message as it was
// (relaxed/relaxed canonicalisation, the header fields RFC 6376 §5.4.1
// recommends, From signed twice so that a second one cannot be added).
//
// Keygen makes a key and the DNS TXT record that publishes it
// (meshctl dkim keygen).
package dkim

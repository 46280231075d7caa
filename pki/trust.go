package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Node is a node's side of the PKI: the CAs it trusts and its own
// certificate, re-read from disk when the certificate file changes (a
// renewal by `meshd org issue` needs no restart).
type Node struct {
	trust    atomic.Pointer[Trust] // the CAs in force; SetTrust replaces them
	certFile string
	keyFile  string
	now      func() time.Time

	mu    sync.Mutex
	mtime time.Time
	cert  *tls.Certificate
	id    Identity
}

// ErrExpired is returned for a node certificate past its NotAfter.
var ErrExpired = errors.New("pki: node certificate expired")

// Load reads the CA files (all trusted at once: a CA rollover lists the
// old and the new) and the node's certificate and key, and checks that the
// certificate names want (any node for a zero want: an operator's tool
// borrowing its node's certificate) and chains to one of the CAs.
func Load(caFiles []string, certFile, keyFile string, want Identity, now func() time.Time) (*Node, error) {
	if now == nil {
		now = time.Now
	}
	cas, err := ReadCACerts(caFiles)
	if err != nil {
		return nil, err
	}
	if len(cas) == 0 {
		return nil, errors.New("pki: no CA certificate")
	}
	n := &Node{certFile: certFile, keyFile: keyFile, now: now}
	n.trust.Store(newTrust(cas))
	if err := n.reload(); err != nil {
		return nil, err
	}
	if want != (Identity{}) && n.id != want {
		return nil, fmt.Errorf("pki: %s names %s, this node is %s", certFile, n.id, want)
	}
	return n, nil
}

// Identity is the node's own identity.
func (n *Node) Identity() Identity {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.id
}

// NotAfter is when the node's current certificate expires.
func (n *Node) NotAfter() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cert.Leaf.NotAfter
}

// reload re-reads the certificate when its file changed; a bad new file
// keeps the old certificate (the error says why).
func (n *Node) reload() error {
	st, err := os.Stat(n.certFile)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cert != nil && st.ModTime().Equal(n.mtime) {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(n.certFile, n.keyFile)
	if err != nil {
		return fmt.Errorf("pki: load %s: %w", n.certFile, err)
	}
	leaf := cert.Leaf
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: n.trust.Load().pool, CurrentTime: n.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("pki: %s does not chain to a trusted CA: %w", n.certFile, err)
	}
	id, err := ParseIdentity(leaf)
	if err != nil {
		return fmt.Errorf("pki: %s: %w", n.certFile, err)
	}
	if n.cert != nil && id != n.id {
		return fmt.Errorf("pki: %s now names %s, not %s: kept the old certificate", n.certFile, id, n.id)
	}
	n.cert, n.id, n.mtime = &cert, id, st.ModTime()
	return nil
}

// Certificate is the node's current certificate (re-read if renewed).
func (n *Node) Certificate() (*tls.Certificate, error) {
	_ = n.reload() // a broken renewal keeps serving the old certificate
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.now().Before(n.cert.Leaf.NotAfter) {
		return nil, ErrExpired
	}
	return n.cert, nil
}

// Verify checks a peer's certificate chain (leaf first, as on the wire)
// against the trusted CAs and returns the identity it names.
func (n *Node) Verify(rawCerts [][]byte) (Identity, error) {
	if len(rawCerts) == 0 {
		return Identity{}, errors.New("pki: peer presented no certificate")
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return Identity{}, fmt.Errorf("pki: peer certificate: %w", err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: n.trust.Load().pool, Intermediates: inter, CurrentTime: n.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return Identity{}, fmt.Errorf("pki: peer certificate: %w", err)
	}
	return ParseIdentity(certs[0])
}

// ServerConfig is the TLS configuration of a listener that only the
// organisation's nodes may use: a client certificate is required and
// verified against the CAs (its identity is then pki.PeerIdentity of the
// connection state; what it may do is for the listener to decide).
//
// Each handshake verifies against the CAs in force then (SetTrust): the
// config hands crypto/tls a copy of itself with those CAs, taken when the
// handshake starts, so whatever the caller set on the config before its
// first handshake (VerifyConnection) holds. A copy the caller makes with
// Clone still verifies against the CAs in force, with the original's
// settings.
func (n *Node) ServerConfig() *tls.Config {
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  n.trust.Load().pool,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return n.Certificate()
		},
	}
	c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cc := c.Clone()
		cc.GetConfigForClient = nil
		cc.ClientCAs = n.trust.Load().pool
		return cc, nil
	}
	return c
}

// Trust is a set of trusted CAs (mesh.identity.ca_files), read and
// checked by CheckTrust before SetTrust puts it in force.
type Trust struct {
	pool *x509.CertPool
	cas  []*x509.Certificate
}

func newTrust(cas []*x509.Certificate) *Trust {
	t := &Trust{pool: x509.NewCertPool(), cas: cas}
	for _, c := range cas {
		t.pool.AddCert(c)
	}
	return t
}

// same reports whether t and o trust the same certificates.
func (t *Trust) same(o *Trust) bool {
	if len(t.cas) != len(o.cas) {
		return false
	}
	for i := range t.cas {
		if !t.cas[i].Equal(o.cas[i]) {
			return false
		}
	}
	return true
}

// CheckTrust reads the CA files again (a reload: the files may have been
// replaced under the same names) and checks that this node's own
// certificate chains to one of them: a node would shut itself out of the
// mesh with a bundle that does not trust its own certificate.
func (n *Node) CheckTrust(caFiles []string) (*Trust, error) {
	cas, err := ReadCACerts(caFiles)
	if err != nil {
		return nil, err
	}
	if len(cas) == 0 {
		return nil, errors.New("pki: no CA certificate")
	}
	t := newTrust(cas)
	n.mu.Lock()
	leaf := n.cert.Leaf
	n.mu.Unlock()
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: t.pool, CurrentTime: n.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("pki: this node's certificate %s does not chain to these CAs: %w", n.certFile, err)
	}
	return t, nil
}

// SetTrust puts t in force for every handshake and verification that
// starts after it; changed reports whether it trusts other CAs than the
// set it replaces.
func (n *Node) SetTrust(t *Trust) (changed bool) {
	return !n.trust.Swap(t).same(t)
}

// ClientConfig is the TLS configuration for dialling another node. The
// server's chain is verified against the organisation's CAs (not against a
// host name: a node is named by its identity, not its address), and check
// decides whether the identity it names is the peer wanted (nil accepts
// any node of the organisation). A failed check fails the handshake.
func (n *Node) ClientConfig(check func(Identity) error) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is verified in VerifyConnection, against our CAs and
		// the identity SAN: the standard check would want a DNS name or IP
		// SAN equal to the dialled address.
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			raw := make([][]byte, len(cs.PeerCertificates))
			for i, c := range cs.PeerCertificates {
				raw[i] = c.Raw
			}
			id, err := n.Verify(raw)
			if err != nil {
				return err
			}
			if check != nil {
				return check(id)
			}
			return nil
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return n.Certificate()
		},
	}
}

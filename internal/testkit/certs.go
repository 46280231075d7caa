package testkit

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/meshd/meshd/pki"
)

// CA is a test organisation made by the pki package itself (pki.Init in a
// temporary directory), so that the certificates tests use have the
// identity format meshd nodes really use.
type CA struct {
	Dir  string         // organisation directory (CA, org and gossip keys)
	File string         // the CA certificate (PEM)
	Pool *x509.CertPool // a pool trusting only this CA

	mu    sync.Mutex
	hosts int
}

// NewCA makes a test organisation whose CA signs with ECDSA P-256 (what
// every TLS client we drive, Go's or an external tool's, accepts).
func NewCA(t testing.TB) *CA {
	t.Helper()
	dir := t.TempDir()
	file, err := pki.Init(pki.InitOptions{Dir: dir, Name: "meshd test", Algorithm: pki.ECDSAP256})
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("testkit: %s: no certificate", file)
	}
	return &CA{Dir: dir, File: file, Pool: pool}
}

// Node is a node certificate issued by pki.Issue and loaded with pki.Load.
type Node struct {
	ID       pki.Identity
	CertFile string
	KeyFile  string
	PKI      *pki.Node       // trusts the CA; what the node's listeners and dialers use
	Cert     tls.Certificate // the certificate and key
}

// Node issues a certificate naming node of rg (meshd://rg/node).
func (ca *CA) Node(t testing.TB, node, rg string) *Node {
	t.Helper()
	id := pki.Identity{Node: node, RG: rg}
	certFile, keyFile, err := pki.Issue(pki.IssueOptions{Dir: ca.Dir, Node: node, RG: rg})
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	n, err := pki.Load([]string{ca.File}, certFile, keyFile, id, nil)
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	cert, err := n.Certificate()
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	return &Node{ID: id, CertFile: certFile, KeyFile: keyFile, PKI: n, Cert: *cert}
}

// ServerTLS is the node's listener configuration: it requires and
// verifies a client certificate of the organisation.
func (n *Node) ServerTLS() *tls.Config { return n.PKI.ServerConfig() }

// ClientTLS is the node's dialer configuration (any node of the
// organisation is accepted as the server).
func (n *Node) ClientTLS() *tls.Config { return n.PKI.ClientConfig(nil) }

// Host is a certificate for host names and addresses (an SMTP server's
// STARTTLS certificate, say), signed by the CA.
type Host struct {
	Names    []string // DNS names and IP addresses in the certificate
	CertFile string
	KeyFile  string
	Cert     tls.Certificate
	Leaf     *x509.Certificate
	ca       *CA
}

// Host issues a certificate for names (DNS names or IP addresses; none:
// localhost and 127.0.0.1).
func (ca *CA) Host(t testing.TB, names ...string) *Host {
	t.Helper()
	if len(names) == 0 {
		names = []string{"localhost", "127.0.0.1"}
	}
	ca.mu.Lock()
	ca.hosts++
	node := fmt.Sprintf("host%d", ca.hosts)
	ca.mu.Unlock()
	certFile, keyFile, err := pki.Issue(pki.IssueOptions{Dir: ca.Dir, Node: node, RG: "hosts", Hosts: names, Algorithm: pki.ECDSAP256})
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	return &Host{Names: names, CertFile: certFile, KeyFile: keyFile, Cert: cert, Leaf: cert.Leaf, ca: ca}
}

// ServerTLS serves the host certificate (no client certificate asked).
func (h *Host) ServerTLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{h.Cert}, MinVersion: tls.VersionTLS12}
}

// ClientTLS trusts the CA and verifies the server as the host's first name.
func (h *Host) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: h.ca.Pool, ServerName: h.Names[0], MinVersion: tls.VersionTLS12}
}

// Localhost is a host certificate for localhost and 127.0.0.1 from a CA of
// its own: the one-line setup of a test that only needs STARTTLS to work.
func Localhost(t testing.TB) *Host {
	t.Helper()
	return NewCA(t).Host(t)
}

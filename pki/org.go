package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/meshd/meshd/internal/atomicfile"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Files of an organisation directory. The keys are 0600, the certificates 0644.
const (
	CAFile        = "ca.pem"
	CAKeyFile     = "ca-key.pem"
	OrgKeyFile    = "org.key"    // base64 of 32 random bytes (mesh.org_key)
	GossipKeyFile = "gossip.key" // base64 of 32 random bytes (mesh.gossip_key)
)

// Algorithms for the CA and node keys.
const (
	Ed25519   = "ed25519"
	ECDSAP256 = "ecdsa"
)

// Validity defaults.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultNodeValidity = 365 * 24 * time.Hour
)

// InitOptions configures Init.
type InitOptions struct {
	Dir       string
	Name      string // organisation name in the CA subject
	Algorithm string // Ed25519 (default) or ECDSAP256
	Validity  time.Duration
	// Next makes a rollover CA: ca-N.pem/ca-N-key.pem beside the current
	// one, which the nodes then trust together with the old one while
	// certificates are reissued; the org and gossip keys are kept.
	Next bool
	Now  time.Time
}

// Init creates an organisation directory: CA certificate and key, org key
// and gossip key. It refuses to overwrite an existing CA. It returns the
// path of the CA certificate written.
func Init(o InitOptions) (string, error) {
	if o.Algorithm == "" {
		o.Algorithm = Ed25519
	}
	if o.Validity == 0 {
		o.Validity = DefaultCAValidity
	}
	if o.Name == "" {
		o.Name = "meshd organisation"
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return "", fmt.Errorf("pki: create %s: %w", o.Dir, err)
	}
	certPath, keyPath := filepath.Join(o.Dir, CAFile), filepath.Join(o.Dir, CAKeyFile)
	if o.Next {
		if _, err := os.Stat(certPath); err != nil {
			return "", fmt.Errorf("pki: rollover needs an existing CA: %w", err)
		}
		for i := 2; ; i++ {
			certPath = filepath.Join(o.Dir, fmt.Sprintf("ca-%d.pem", i))
			keyPath = filepath.Join(o.Dir, fmt.Sprintf("ca-%d-key.pem", i))
			if _, err := os.Stat(certPath); errors.Is(err, fs.ErrNotExist) {
				break
			}
		}
	} else if _, err := os.Stat(certPath); err == nil {
		return "", fmt.Errorf("pki: %s exists: an organisation is already initialised there", certPath)
	}
	key, err := newKey(o.Algorithm)
	if err != nil {
		return "", err
	}
	serial, err := newSerial()
	if err != nil {
		return "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: o.Name + " CA " + o.Now.UTC().Format("2006-01-02"), Organization: []string{o.Name}},
		NotBefore:             o.Now.Add(-time.Hour),
		NotAfter:              o.Now.Add(o.Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return "", fmt.Errorf("pki: create CA certificate: %w", err)
	}
	if err := writeKey(keyPath, key); err != nil {
		return "", err
	}
	if err := writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", err
	}
	if !o.Next {
		for _, f := range []string{OrgKeyFile, GossipKeyFile} {
			if err := writeFile(filepath.Join(o.Dir, f), []byte(randomKey()+"\n"), 0o600); err != nil {
				return "", err
			}
		}
	}
	return certPath, nil
}

// IssueOptions configures Issue.
type IssueOptions struct {
	Dir       string // organisation directory (the CA signing is the newest one)
	Node, RG  string
	Hosts     []string // extra DNS names or IP addresses (for operators' own tools); optional
	Algorithm string
	Validity  time.Duration
	// Out is the directory for NODE.pem and NODE-key.pem; default Dir/nodes.
	Out string
	Now time.Time
}

// Issue signs a certificate for node of rg with the organisation's newest
// CA and writes it with its key. Issuing again for the same node renews
// it (a new key and certificate; a running node picks the files up).
func Issue(o IssueOptions) (certPath, keyPath string, err error) {
	if err := CheckName("node", o.Node); err != nil {
		return "", "", err
	}
	if err := CheckName("routing group", o.RG); err != nil {
		return "", "", err
	}
	if o.Algorithm == "" {
		o.Algorithm = Ed25519
	}
	if o.Validity == 0 {
		o.Validity = DefaultNodeValidity
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Out == "" {
		o.Out = filepath.Join(o.Dir, "nodes")
	}
	caCert, caKey, err := loadSigningCA(o.Dir)
	if err != nil {
		return "", "", err
	}
	key, err := newKey(o.Algorithm)
	if err != nil {
		return "", "", err
	}
	serial, err := newSerial()
	if err != nil {
		return "", "", err
	}
	id := Identity{Node: o.Node, RG: o.RG}
	notAfter := o.Now.Add(o.Validity)
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: id.String(), Organization: caCert.Subject.Organization},
		NotBefore:    o.Now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{id.URI()},
	}
	for _, h := range o.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return "", "", fmt.Errorf("pki: issue %s: %w", id, err)
	}
	if err := os.MkdirAll(o.Out, 0o700); err != nil {
		return "", "", fmt.Errorf("pki: create %s: %w", o.Out, err)
	}
	certPath, keyPath = filepath.Join(o.Out, o.Node+".pem"), filepath.Join(o.Out, o.Node+"-key.pem")
	// Key first, then the certificate: a reader that sees the new
	// certificate finds its key (Loader re-reads both on a change).
	if err := writeKey(keyPath, key); err != nil {
		return "", "", err
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writeFile(certPath, chain, 0o644); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// CAFiles lists the CA certificates of an organisation directory, oldest first.
func CAFiles(dir string) ([]string, error) {
	out := []string{filepath.Join(dir, CAFile)}
	if _, err := os.Stat(out[0]); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	for i := 2; ; i++ {
		p := filepath.Join(dir, fmt.Sprintf("ca-%d.pem", i))
		if _, err := os.Stat(p); err != nil {
			return out, nil
		}
		out = append(out, p)
	}
}

// loadSigningCA loads the newest CA of dir and its key.
func loadSigningCA(dir string) (*x509.Certificate, crypto.Signer, error) {
	files, err := CAFiles(dir)
	if err != nil {
		return nil, nil, err
	}
	certPath := files[len(files)-1]
	keyPath := certPath[:len(certPath)-len(".pem")] + "-key.pem"
	certs, err := readCerts(certPath)
	if err != nil {
		return nil, nil, err
	}
	key, err := readKey(keyPath)
	if err != nil {
		return nil, nil, err
	}
	return certs[0], key, nil
}

func newKey(alg string) (crypto.Signer, error) {
	switch alg {
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	return nil, fmt.Errorf("pki: algorithm %q: want %s or %s", alg, Ed25519, ECDSAP256)
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial: %w", err)
	}
	return s, nil
}

func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func writeKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("pki: encode key: %w", err)
	}
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

func readKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("pki: %s: no PKCS#8 private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: %s: not a signing key", path)
	}
	return s, nil
}

func readCerts(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: %s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("pki: %s: no certificate", path)
	}
	return out, nil
}

// writeFile writes data through a synced temporary file and a rename, so
// a reader sees the old file or the new one, and the mode is set before
// any byte of a key is written.
func writeFile(path string, data []byte, perm os.FileMode) error {
	if err := atomicfile.Write(path, data, perm); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	return nil
}

// ExpiresIn is how long the certificate Issue(o) would replace is still valid.
func ExpiresIn(o IssueOptions) (time.Duration, error) {
	if o.Out == "" {
		o.Out = filepath.Join(o.Dir, "nodes")
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	certs, err := readCerts(filepath.Join(o.Out, o.Node+".pem"))
	if err != nil {
		return 0, err
	}
	return certs[0].NotAfter.Sub(o.Now), nil
}

// Lab is an organisation for tests and demos: a CA in dir and one
// certificate per identity. It returns the CA file and, per node name, its
// certificate and key files.
func Lab(dir string, ids ...Identity) (caFile string, files map[string][2]string, err error) {
	if _, err := os.Stat(filepath.Join(dir, CAFile)); err != nil {
		if _, err := Init(InitOptions{Dir: dir, Name: "meshd lab"}); err != nil {
			return "", nil, err
		}
	}
	files = map[string][2]string{}
	for _, id := range ids {
		c, k, err := Issue(IssueOptions{Dir: dir, Node: id.Node, RG: id.RG})
		if err != nil {
			return "", nil, err
		}
		files[id.Node] = [2]string{c, k}
	}
	return filepath.Join(dir, CAFile), files, nil
}

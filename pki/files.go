package pki

import (
	"crypto"
	"crypto/x509"
	"fmt"
)

// ReadCACerts reads the CA certificates of the files (a node's
// mesh.identity.ca_files): what verifies an organisation document's
// signature (package orgdoc).
func ReadCACerts(files []string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, f := range files {
		certs, err := readCerts(f)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			if !c.IsCA {
				return nil, fmt.Errorf("pki: %s: not a CA certificate", f)
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// ReadCA reads a CA certificate and its private key (ca.pem and
// ca-key.pem of `meshd org init`), for signing on the operator's machine.
func ReadCA(certFile, keyFile string) (*x509.Certificate, crypto.Signer, error) {
	certs, err := ReadCACerts([]string{certFile})
	if err != nil {
		return nil, nil, err
	}
	key, err := readKey(keyFile)
	if err != nil {
		return nil, nil, err
	}
	return certs[0], key, nil
}

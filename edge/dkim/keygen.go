package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
)

// Keygen makes a private key (alg ed25519, or rsa: 2048 bits) and
// returns it as PKCS#8 PEM.
func Keygen(alg string) ([]byte, crypto.Signer, error) {
	var key crypto.Signer
	switch alg {
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		key = k
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, nil, err
		}
		key = k
	default:
		return nil, nil, fmt.Errorf("dkim: algorithm %q: want ed25519 or rsa", alg)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), key, nil
}

// WriteKey writes a new key file (mode 0600; an existing file is never
// overwritten).
func WriteKey(path string, pemData []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(pemData); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// TXTValue is the DNS TXT value publishing key's public key (RFC 6376
// §3.6.1; k=ed25519 from RFC 8463).
func TXTValue(key crypto.Signer) (string, error) {
	switch pub := key.Public().(type) {
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub), nil
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", err
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	}
	return "", fmt.Errorf("dkim: %T keys cannot sign DKIM", key.Public())
}

// TXTRecord is the zone-file line of the key's record: the value split
// into quoted strings of at most 255 bytes (a TXT record's string limit;
// an RSA 2048 key needs two).
func TXTRecord(domain, selector string, key crypto.Signer) (string, error) {
	v, err := TXTValue(key)
	if err != nil {
		return "", err
	}
	var parts []string
	for len(v) > 255 {
		parts, v = append(parts, `"`+v[:255]+`"`), v[255:]
	}
	parts = append(parts, `"`+v+`"`)
	return fmt.Sprintf("%s._domainkey.%s. IN TXT %s", selector, strings.TrimSuffix(domain, "."), strings.Join(parts, " ")), nil
}

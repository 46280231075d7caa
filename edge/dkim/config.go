package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// Config is the dkim section of a node's configuration.
type Config struct {
	// Keys sign mail whose From: domain is their Domain or below it.
	Keys []Key `yaml:"keys"`
}

// Key is one signing key.
type Key struct {
	// Domain is the signing domain (d=).
	Domain string `yaml:"domain"`
	// Selector names the key under Domain (s=): its public key is the TXT
	// record of SELECTOR._domainkey.DOMAIN.
	Selector string `yaml:"selector"`
	// KeyFile is the private key (PEM: PKCS#8 "PRIVATE KEY" with an
	// Ed25519 or RSA key, or PKCS#1 "RSA PRIVATE KEY"), mode 0600 or
	// stricter.
	KeyFile string `yaml:"key_file"`
}

// DefaultConfig signs nothing.
func DefaultConfig() Config { return Config{} }

var (
	labelRe    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	selectorRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)
)

// Validate checks c and reads every key file; key is the config key of c
// ("dkim") and errors name the key at fault.
func (c *Config) Validate(key string) error {
	seen := map[string]bool{}
	for i := range c.Keys {
		k := &c.Keys[i]
		p := fmt.Sprintf("%s.keys[%d]", key, i)
		k.Domain = strings.ToLower(strings.TrimSuffix(k.Domain, "."))
		if !validDomain(k.Domain) {
			return fmt.Errorf("config: %s.domain: %q is not a domain name", p, k.Domain)
		}
		k.Selector = strings.ToLower(k.Selector)
		if !selectorRe.MatchString(k.Selector) {
			return fmt.Errorf("config: %s.selector: %q: want DNS labels (letters, digits, -)", p, k.Selector)
		}
		if seen[k.Selector+"._domainkey."+k.Domain] {
			return fmt.Errorf("config: %s.selector: %s for %s is listed twice", p, k.Selector, k.Domain)
		}
		seen[k.Selector+"._domainkey."+k.Domain] = true
		if k.KeyFile == "" {
			return fmt.Errorf("config: %s.key_file: required", p)
		}
		if _, err := LoadKey(k.KeyFile); err != nil {
			return fmt.Errorf("config: %s.key_file: %w", p, err)
		}
	}
	return nil
}

func validDomain(d string) bool {
	labels := strings.Split(d, ".")
	if len(labels) < 2 || len(d) > 253 {
		return false
	}
	for _, l := range labels {
		if !labelRe.MatchString(l) {
			return false
		}
	}
	return true
}

// LoadKey reads a private key file, refusing one that group or others
// may read (a signing key lets anyone sign as the domain).
func LoadKey(path string) (crypto.Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %04o: a signing key must not be readable by group or others (chmod 600)", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseKey(data)
}

// ParseKey decodes a PEM private key: Ed25519 or RSA (2048 bits or more).
func ParseKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q: want PRIVATE KEY or RSA PRIVATE KEY", block.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case ed25519.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits: at least 2048 (RFC 8301)", k.N.BitLen())
		}
		return k, nil
	}
	return nil, fmt.Errorf("%T keys cannot sign DKIM (Ed25519 or RSA)", key)
}

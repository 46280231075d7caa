package orgdoc

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// MaxEncoded bounds a signed document on the wire and on disk.
const MaxEncoded = 256 << 10

// signLabel starts the signed bytes, so a signature over a document can
// never be taken for one over anything else the CA key signs.
const signLabel = "meshd org document v1\n"

// Signed is a document with the organisation's signature: what nodes
// flood, verify and store.
type Signed struct {
	Doc Document `json:"document"`
	// Signer names the CA whose key signed: "sha256:" and the hex SHA-256
	// of its SubjectPublicKeyInfo.
	Signer    string `json:"signer"`
	Signature []byte `json:"signature"`
}

// Errors of Verify and Decode that callers count apart.
var (
	ErrUnsigned     = errors.New("org: document is not signed")
	ErrBadSignature = errors.New("org: signature does not verify with any trusted CA")
	ErrNotCanonical = errors.New("org: not the canonical encoding")
)

// Fingerprint names a CA certificate's key as Signed.Signer does.
func Fingerprint(ca *x509.Certificate) string {
	sum := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// CanonicalDoc is the canonical encoding of the document, the bytes the
// signature covers (after signLabel).
func (d *Document) CanonicalDoc() ([]byte, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("org: encode: %w", err)
	}
	return b, nil
}

// Sign validates d, stamps it with now and signs it with the CA's key
// (Ed25519 or ECDSA P-256; the CA certificate of `meshd org init` and
// its key ca-key.pem). d.Version must be set.
func Sign(d Document, ca *x509.Certificate, key crypto.Signer, now time.Time) (*Signed, error) {
	if d.Version == 0 {
		return nil, keyError("version", "must be set (1 or more) before signing")
	}
	if err := d.validate(); err != nil {
		return nil, err
	}
	d.normalize()
	d.IssuedAt = now.Unix()
	if !publicKeyEqual(ca.PublicKey, key.Public()) {
		return nil, errors.New("org: sign: the key is not the CA certificate's key")
	}
	msg, err := signedBytes(&d)
	if err != nil {
		return nil, err
	}
	var sig []byte
	switch key.Public().(type) {
	case ed25519.PublicKey:
		sig, err = key.Sign(rand.Reader, msg, crypto.Hash(0))
	case *ecdsa.PublicKey:
		h := sha256.Sum256(msg)
		sig, err = key.Sign(rand.Reader, h[:], crypto.SHA256)
	default:
		return nil, fmt.Errorf("org: sign: CA key type %T: want Ed25519 or ECDSA", key.Public())
	}
	if err != nil {
		return nil, fmt.Errorf("org: sign: %w", err)
	}
	return &Signed{Doc: d, Signer: Fingerprint(ca), Signature: sig}, nil
}

func signedBytes(d *Document) ([]byte, error) {
	b, err := d.CanonicalDoc()
	if err != nil {
		return nil, err
	}
	return append([]byte(signLabel), b...), nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// Verify checks the signature against the trusted CA certificates (during
// a rollover both the old and the new CA): the CA named by Signer must be
// among them and valid at now, and its key must verify the signature.
func (s *Signed) Verify(cas []*x509.Certificate, now time.Time) error {
	if s.Signer == "" || len(s.Signature) == 0 {
		return ErrUnsigned
	}
	msg, err := signedBytes(&s.Doc)
	if err != nil {
		return err
	}
	for _, ca := range cas {
		if Fingerprint(ca) != s.Signer {
			continue
		}
		if now.Before(ca.NotBefore) || now.After(ca.NotAfter) {
			return fmt.Errorf("org: signing CA %s is not valid at %s", s.Signer, now.UTC().Format(time.RFC3339))
		}
		switch pub := ca.PublicKey.(type) {
		case ed25519.PublicKey:
			if ed25519.Verify(pub, msg, s.Signature) {
				return nil
			}
		case *ecdsa.PublicKey:
			h := sha256.Sum256(msg)
			if ecdsa.VerifyASN1(pub, h[:], s.Signature) {
				return nil
			}
		}
		return ErrBadSignature
	}
	return fmt.Errorf("%w (signer %s is not trusted)", ErrBadSignature, s.Signer)
}

// Encode is the canonical encoding of a signed document.
func (s *Signed) Encode() ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("org: encode: %w", err)
	}
	return b, nil
}

// Decode reads a signed document from untrusted bytes: at most MaxEncoded
// bytes, no unknown fields, a valid document, and exactly the canonical
// encoding. It does not verify the signature (Verify).
func Decode(b []byte) (*Signed, error) {
	if len(b) > MaxEncoded {
		return nil, fmt.Errorf("org: decode: %d bytes, at most %d", len(b), MaxEncoded)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s Signed
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("org: decode: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("org: decode: %w: data after the document", ErrNotCanonical)
	}
	if err := s.Doc.validate(); err != nil {
		return nil, err
	}
	if s.Doc.Version == 0 {
		return nil, keyError("version", "must be 1 or more")
	}
	s.Doc.normalize()
	again, err := s.Encode()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, b) {
		return nil, ErrNotCanonical
	}
	return &s, nil
}

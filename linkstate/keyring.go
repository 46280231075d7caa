package linkstate

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
)

// Errors of signing and installing records. Install and Verify wrap them,
// so callers branch with errors.Is.
var (
	ErrUnsigned     = errors.New("linkstate: record is unsigned")
	ErrBadSignature = errors.New("linkstate: bad signature")
	ErrUnknownRG    = errors.New("linkstate: unknown routing group")
	ErrUnknownKey   = errors.New("linkstate: unknown key")
	ErrNoSigningKey = errors.New("linkstate: no signing key")
	ErrStale        = errors.New("linkstate: version not newer than the installed one")
	ErrExpired      = errors.New("linkstate: record expired")
	ErrFuture       = errors.New("linkstate: record issued in the future")
)

// MinOrgKeyLen is the shortest org-wide HMAC key accepted.
const MinOrgKeyLen = 32

// Keyring holds the keys records are signed and verified with, as bound
// in configuration:
//
//   - Ed25519 public keys per RG, each under a key ID (several at once
//     while a key is rolled over). A record of an RG that has Ed25519 keys
//     must carry an Ed25519 signature by one of them; the org HMAC key is
//     not accepted for it, so a holder of the shared key cannot forge it.
//   - The org-wide HMAC-SHA256 key (the simple mode): records of RGs
//     without Ed25519 keys are signed with it, with an empty key ID.
//   - Our own RG's Ed25519 private key, if we have one, to sign with.
//
// An RG is known if it has a key or was added with AddRG. A Keyring is
// safe for concurrent use; it can be changed while in use (config reload).
type Keyring struct {
	mu      sync.RWMutex
	org     []byte
	rgs     map[string]map[string]ed25519.PublicKey // RG -> key ID -> key; empty map = HMAC only
	selfRG  string
	selfKey string
	priv    ed25519.PrivateKey
}

// NewKeyring returns an empty keyring: it knows no RG and verifies nothing.
func NewKeyring() *Keyring {
	return &Keyring{rgs: map[string]map[string]ed25519.PublicKey{}}
}

// SetOrgKey sets the org-wide HMAC-SHA256 key (at least MinOrgKeyLen bytes).
func (k *Keyring) SetOrgKey(key []byte) error {
	if len(key) < MinOrgKeyLen {
		return fmt.Errorf("linkstate: org key of %d bytes, want at least %d", len(key), MinOrgKeyLen)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.org = append([]byte(nil), key...)
	return nil
}

// AddRG makes rg known. Without Ed25519 keys its records are verified
// with the org HMAC key.
func (k *Keyring) AddRG(rg string) error {
	if !validName(rg) {
		return fmt.Errorf("linkstate: add RG %q: %w", rg, invalid("bad name"))
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.rgs[rg] == nil {
		k.rgs[rg] = map[string]ed25519.PublicKey{}
	}
	return nil
}

// AddPublicKey binds an Ed25519 public key under keyID to rg (and makes
// rg known).
func (k *Keyring) AddPublicKey(rg, keyID string, pub ed25519.PublicKey) error {
	if !validName(rg) || !validName(keyID) {
		return fmt.Errorf("linkstate: add key %q of RG %q: %w", keyID, rg, invalid("bad name"))
	}
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("linkstate: add key %s of RG %s: public key of %d bytes", keyID, rg, len(pub))
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.rgs[rg] == nil {
		k.rgs[rg] = map[string]ed25519.PublicKey{}
	}
	k.rgs[rg][keyID] = append(ed25519.PublicKey(nil), pub...)
	return nil
}

// RemovePublicKey unbinds a key (end of a rollover). rg stays known.
func (k *Keyring) RemovePublicKey(rg, keyID string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.rgs[rg], keyID)
}

// Replace makes k hold what from holds: its org key, routing groups,
// public keys and signing key. A group or key that from does not hold is
// forgotten (a new organisation document no longer names it).
func (k *Keyring) Replace(from *Keyring) {
	if k == from {
		return
	}
	from.mu.RLock()
	rgs := make(map[string]map[string]ed25519.PublicKey, len(from.rgs))
	for rg, keys := range from.rgs {
		m := make(map[string]ed25519.PublicKey, len(keys))
		for id, pub := range keys {
			m[id] = append(ed25519.PublicKey(nil), pub...)
		}
		rgs[rg] = m
	}
	org := append([]byte(nil), from.org...)
	if from.org == nil {
		org = nil
	}
	selfRG, selfKey, priv := from.selfRG, from.selfKey, append(ed25519.PrivateKey(nil), from.priv...)
	if from.priv == nil {
		priv = nil
	}
	from.mu.RUnlock()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.org, k.rgs, k.selfRG, k.selfKey, k.priv = org, rgs, selfRG, selfKey, priv
}

// SetSigningKey sets our own RG's private key; its public half is bound
// to rg under keyID as well.
func (k *Keyring) SetSigningKey(rg, keyID string, priv ed25519.PrivateKey) error {
	if len(priv) != ed25519.PrivateKeySize {
		return fmt.Errorf("linkstate: signing key %s of RG %s: private key of %d bytes", keyID, rg, len(priv))
	}
	if err := k.AddPublicKey(rg, keyID, priv.Public().(ed25519.PublicKey)); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.selfRG, k.selfKey, k.priv = rg, keyID, append(ed25519.PrivateKey(nil), priv...)
	return nil
}

// Known reports whether rg is a routing group of the configuration.
func (k *Keyring) Known(rg string) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.rgs[rg] != nil
}

// Sign sets r.KeyID and r.Signature: with our Ed25519 key when r is our
// RG's record and we hold one, else with the org HMAC key when r's RG has
// no Ed25519 keys. Anything else is ErrNoSigningKey (a node does not sign
// other RGs' records).
func (k *Keyring) Sign(r *Record) error {
	k.mu.RLock()
	priv, keyID := k.priv, k.selfKey
	ed := r.RG == k.selfRG && priv != nil
	hmacOK := k.org != nil && len(k.rgs[r.RG]) == 0
	org := k.org
	k.mu.RUnlock()
	switch {
	case ed:
		r.KeyID = keyID
	case hmacOK:
		r.KeyID = ""
	default:
		return fmt.Errorf("linkstate: sign record %s: %w", r.RG, ErrNoSigningKey)
	}
	r.Signature = nil
	body, err := SigningBytes(r)
	if err != nil {
		return fmt.Errorf("linkstate: sign record %s: %w", r.RG, err)
	}
	if ed {
		r.Signature = ed25519.Sign(priv, body)
	} else {
		r.Signature = macOf(org, body)
	}
	return nil
}

// Verify checks r's signature against the keys bound to its RG.
func (k *Keyring) Verify(r *Record) error {
	body, err := SigningBytes(r)
	if err != nil {
		return fmt.Errorf("linkstate: verify record %s: %w", r.RG, err)
	}
	return k.verify(r, body)
}

func (k *Keyring) verify(r *Record, body []byte) error {
	k.mu.RLock()
	keys, known := k.rgs[r.RG]
	pub := keys[r.KeyID]
	org := k.org
	k.mu.RUnlock()
	switch {
	case !known:
		return fmt.Errorf("linkstate: verify record %s: %w", r.RG, ErrUnknownRG)
	case len(r.Signature) == 0:
		return fmt.Errorf("linkstate: verify record %s: %w", r.RG, ErrUnsigned)
	case r.KeyID == "" && len(keys) > 0:
		return fmt.Errorf("linkstate: verify record %s: %w: RG has Ed25519 keys, HMAC refused", r.RG, ErrBadSignature)
	case r.KeyID == "" && org == nil:
		return fmt.Errorf("linkstate: verify record %s: %w: no org key", r.RG, ErrUnknownKey)
	case r.KeyID == "":
		if !hmac.Equal(r.Signature, macOf(org, body)) {
			return fmt.Errorf("linkstate: verify record %s: %w", r.RG, ErrBadSignature)
		}
	case pub == nil:
		return fmt.Errorf("linkstate: verify record %s: key %q: %w", r.RG, r.KeyID, ErrUnknownKey)
	default:
		if !ed25519.Verify(pub, body, r.Signature) {
			return fmt.Errorf("linkstate: verify record %s: %w", r.RG, ErrBadSignature)
		}
	}
	return nil
}

func macOf(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(nil)
}

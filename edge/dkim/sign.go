package dkim

import (
	"bytes"
	"crypto"
	"fmt"
	"net/mail"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// headerKeys are the fields signed (RFC 6376 §5.4.1), From twice: a
// signature then also fails if a second From: is added.
var headerKeys = []string{
	"From", "From", "Reply-To", "Subject", "Date", "To", "Cc", "Resent-Date", "Resent-From",
	"Resent-To", "Resent-Cc", "In-Reply-To", "References", "List-Id", "List-Help",
	"List-Unsubscribe", "List-Subscribe", "List-Post", "List-Owner", "List-Archive",
	"Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
}

// Signer signs messages with the keys of a Config.
type Signer struct {
	keys []signingKey
}

type signingKey struct {
	domain, selector string
	key              crypto.Signer
}

// New loads the keys of a validated config; nil when it has none.
func New(c Config) (*Signer, error) {
	if len(c.Keys) == 0 {
		return nil, nil
	}
	s := &Signer{}
	for _, k := range c.Keys {
		key, err := LoadKey(k.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("dkim: %s/%s: %w", k.Domain, k.Selector, err)
		}
		s.keys = append(s.keys, signingKey{domain: k.Domain, selector: k.Selector, key: key})
	}
	return s, nil
}

// Sign returns msg with one DKIM-Signature per key of its From: domain
// (or a parent domain) prepended, and the d=/s= pairs used; msg itself
// when no key applies.
func (s *Signer) Sign(msg []byte) ([]byte, []string, error) {
	if s == nil {
		return msg, nil, nil
	}
	domain := fromDomain(msg)
	if domain == "" {
		return msg, nil, nil
	}
	var sigs []string
	var used []string
	for _, k := range s.keys {
		if domain != k.domain && !strings.HasSuffix(domain, "."+k.domain) {
			continue
		}
		signer, err := dkim.NewSigner(&dkim.SignOptions{
			Domain: k.domain, Selector: k.selector, Signer: k.key, Hash: crypto.SHA256,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             headerKeys,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("dkim: sign as %s/%s: %w", k.domain, k.selector, err)
		}
		if _, err := signer.Write(msg); err != nil {
			_ = signer.Close()
			return nil, nil, fmt.Errorf("dkim: sign as %s/%s: %w", k.domain, k.selector, err)
		}
		if err := signer.Close(); err != nil {
			return nil, nil, fmt.Errorf("dkim: sign as %s/%s: %w", k.domain, k.selector, err)
		}
		sigs = append(sigs, signer.Signature())
		used = append(used, "d="+k.domain+" s="+k.selector)
	}
	if len(sigs) == 0 {
		return msg, nil, nil
	}
	var out bytes.Buffer
	for _, sig := range sigs {
		out.WriteString(sig)
	}
	out.Write(msg)
	return out.Bytes(), used, nil
}

// fromDomain is the lower-case domain of the message's (first) From:
// address, "" when there is none that parses.
func fromDomain(msg []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return ""
	}
	addrs, err := m.Header.AddressList("From")
	if err != nil || len(addrs) == 0 {
		return ""
	}
	_, d, ok := strings.Cut(addrs[0].Address, "@")
	if !ok {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(d, "."))
}

package config

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/node/mesh"
	"github.com/meshd/meshd/pki"
)

// Mesh configures the node's part in the mesh: gossip, link state
// and its keys. It is used only when listen.mesh is set.
type Mesh struct {
	// Priority ranks this node in master election: higher wins, then name.
	Priority uint32 `yaml:"priority"`
	// Seeds are gossip addresses of other members of this routing group.
	Seeds []string `yaml:"seeds"`
	// GossipKey (base64 of 16, 24 or 32 bytes) encrypts the group's gossip.
	GossipKey string `yaml:"gossip_key"`
	// OrgKey (base64, at least 32 bytes) signs link-state records with
	// HMAC-SHA256 for routing groups without Ed25519 keys.
	OrgKey string `yaml:"org_key"`
	// RoutingGroups lists every routing group of the organisation; records
	// of groups not listed are refused.
	RoutingGroups []RoutingGroup `yaml:"routing_groups"`
	// SigningKey is "keyid:base64" of this group's Ed25519 private key
	// (seed or full key), used when the group has public keys.
	SigningKey string `yaml:"signing_key"`

	// Timers (ttl, refresh, sync_interval, collect_window) are the
	// link-state periods.
	mesh.Timers `yaml:",inline"`
	// FastGossip tightens memberlist's timers (tests, one-host demos).
	FastGossip bool                    `yaml:"fast_gossip"`
	Probe      mesh.ProbeConfig        `yaml:"probe"`
	Damping    linkstate.DampingConfig `yaml:"damping"`
	// RequireTLS makes mesh hops and link-state sessions use TLS (always
	// so with an identity: mutual TLS is then the only way in).
	RequireTLS bool `yaml:"require_tls"`
	// Identity is this node's certificate from the organisation's CA
	// (meshd org): every node-to-node channel is mutual TLS with it.
	Identity Identity `yaml:"identity"`
	// InsecurePlaintext runs the mesh without identities: peers are
	// believed by address, as in a lab. Never in production.
	InsecurePlaintext bool `yaml:"insecure_plaintext"`
	// MaxPerPeer caps concurrent hops to one mesh node (our own nodes
	// take more parallel sessions than an outside MX is offered).
	MaxPerPeer int `yaml:"max_per_peer"`
	// ShadowCheck is how often a node asks the peers it handed copies to
	// what became of them (docs/shadow.md).
	ShadowCheck time.Duration `yaml:"shadow_check"`
	// ShadowTimeout: a peer unreachable this long is lost and its shadows
	// are resubmitted.
	ShadowTimeout time.Duration `yaml:"shadow_timeout"`
	// InDoubtTimeout bounds how long a copy whose hop is in doubt (sent
	// in full, never answered) waits for the node that may hold it to
	// answer; past it the copy goes elsewhere, a possible duplicate.
	InDoubtTimeout time.Duration `yaml:"in_doubt_timeout"`
}

// Identity names the files of a node's identity (meshd org issue).
type Identity struct {
	// CAFiles are the organisation's CA certificates; during a CA
	// rollover the old and the new are listed together.
	CAFiles []string `yaml:"ca_files"`
	// CertFile and KeyFile are the node certificate (naming
	// meshd://RG/NODE) and its key; a renewed file is picked up live.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// HasIdentity reports whether the node runs its mesh with mutual TLS.
func (c *Config) HasIdentity() bool { return c.MeshEnabled() && !c.Mesh.InsecurePlaintext }

// RoutingGroup names one routing group of the organisation.
type RoutingGroup struct {
	Name string `yaml:"name"`
	// PublicKeys are "keyid:base64" Ed25519 public keys that sign the
	// group's records. Without any, the org key signs them.
	PublicKeys []string `yaml:"public_keys"`
	// Domains are the organisation domains the group owns ("example.com"
	// or "*.example.com"): mail for them never leaves by an external
	// connector, even while the group's record is absent.
	Domains []string `yaml:"domains"`
}

func defaultMeshConfig() Mesh {
	return Mesh{
		MaxPerPeer: 16, ShadowCheck: 10 * time.Second, ShadowTimeout: 10 * time.Minute,
		InDoubtTimeout: 5 * time.Minute,
		Timers:         mesh.DefaultTimers(), Probe: mesh.DefaultProbeConfig(), Damping: linkstate.DefaultDamping(),
	}
}

// MeshEnabled reports whether the node takes part in a mesh.
func (c *Config) MeshEnabled() bool { return c.Listen.Mesh != "" }

func (c *Config) validateMesh() error {
	if !c.MeshEnabled() {
		if len(c.Connectors) > 0 {
			return configError("connectors", "need listen.mesh (connectors belong to a mesh node)")
		}
		return nil
	}
	m := c.Mesh
	if c.Listen.Linkstate == "" {
		return configError("listen.linkstate", "must be set for a mesh node (listen.mesh is set)")
	}
	if c.Listen.Gossip == "" {
		return configError("listen.gossip", "must be set for a mesh node (listen.mesh is set)")
	}
	if err := c.validateIdentity(); err != nil {
		return err
	}
	for i, s := range m.Seeds {
		if err := checkHostPort(s, false); err != nil {
			return configError(fmt.Sprintf("mesh.seeds[%d]", i), "%v", err)
		}
	}
	if m.GossipKey != "" {
		k, err := base64.StdEncoding.DecodeString(m.GossipKey)
		if err != nil || (len(k) != 16 && len(k) != 24 && len(k) != 32) {
			return configError("mesh.gossip_key", "must be base64 of 16, 24 or 32 bytes")
		}
	}
	if _, err := c.Keyring(); err != nil {
		return err
	}
	durs := []struct {
		key string
		d   time.Duration
		min time.Duration
	}{
		{"mesh.ttl", m.TTL, 5 * time.Second}, {"mesh.refresh", m.Refresh, time.Second}, {"mesh.sync_interval", m.SyncInterval, 100 * time.Millisecond},
		{"mesh.collect_window", m.CollectWindow, time.Millisecond}, {"mesh.probe.interval", m.Probe.Interval, 10 * time.Millisecond},
		{"mesh.probe.keepalive", m.Probe.Keepalive, 10 * time.Millisecond}, {"mesh.probe.timeout", m.Probe.Timeout, 10 * time.Millisecond},
		{"mesh.probe.glitch_delay", m.Probe.GlitchDelay, time.Millisecond},
		{"mesh.observation_lease", m.ObservationLease, 100 * time.Millisecond},
	}
	for _, d := range durs {
		if d.d < d.min {
			return configError(d.key, "must be at least %v, got %v", d.min, d.d)
		}
	}
	if m.ObservationLease > time.Hour {
		return configError("mesh.observation_lease", "must be at most 1h, got %v", m.ObservationLease)
	}
	if m.Refresh >= m.TTL {
		return configError("mesh.refresh", "must be shorter than mesh.ttl (%v), got %v", m.TTL, m.Refresh)
	}
	if m.Probe.GlitchRetries < 0 || m.Probe.GlitchRetries > 10 {
		return configError("mesh.probe.glitch_retries", "must be 0..10, got %d", m.Probe.GlitchRetries)
	}
	if m.ShadowCheck < 10*time.Millisecond || m.ShadowCheck > time.Hour {
		return configError("mesh.shadow_check", "must be 10ms..1h, got %v", m.ShadowCheck)
	}
	if m.ShadowTimeout < m.ShadowCheck || m.ShadowTimeout > 30*24*time.Hour {
		return configError("mesh.shadow_timeout", "must be mesh.shadow_check (%v)..720h, got %v", m.ShadowCheck, m.ShadowTimeout)
	}
	if m.InDoubtTimeout < time.Second || m.InDoubtTimeout > 7*24*time.Hour {
		return configError("mesh.in_doubt_timeout", "must be 1s..168h, got %v", m.InDoubtTimeout)
	}
	if m.MaxPerPeer < 1 || m.MaxPerPeer > 1000 {
		return configError("mesh.max_per_peer", "must be 1..1000, got %d", m.MaxPerPeer)
	}
	if m.Probe.UpAfter < 1 || m.Probe.UpAfter > 100 {
		return configError("mesh.probe.up_after", "must be 1..100, got %d", m.Probe.UpAfter)
	}
	if err := m.Damping.Validate(); err != nil {
		return configError("mesh.damping", "%v", err)
	}
	return c.validateConnectors()
}

func (c *Config) validateIdentity() error {
	id := c.Mesh.Identity
	if c.Mesh.InsecurePlaintext {
		if id.CertFile != "" {
			return configError("mesh.insecure_plaintext", "contradicts mesh.identity: choose one")
		}
		return nil
	}
	if id.CertFile == "" {
		return configError("mesh.identity.cert_file", "required for a mesh node (a certificate from `meshd org issue`); a lab without identities sets mesh.insecure_plaintext: true")
	}
	if id.KeyFile == "" {
		return configError("mesh.identity.key_file", "required with mesh.identity.cert_file")
	}
	if len(id.CAFiles) == 0 {
		return configError("mesh.identity.ca_files", "at least one CA certificate (DIR/ca.pem of `meshd org init`)")
	}
	// Gossip is encrypted whenever the mesh has identities: without the
	// key nobody can join a group's pool (or read who is in it).
	if c.Mesh.GossipKey == "" {
		return configError("mesh.gossip_key", "required with mesh.identity (DIR/gossip.key of `meshd org init`); only mesh.insecure_plaintext runs gossip in the clear")
	}
	for _, what := range []struct{ key, v string }{{"node.name", c.Node.Name}, {"node.routing_group", c.Node.RoutingGroup}} {
		if err := pki.CheckName(what.key, what.v); err != nil {
			return configError(what.key, "%v", err)
		}
	}
	return nil
}

func (c *Config) validateConnectors() error {
	seen := map[string]bool{}
	known := map[string]bool{}
	for _, rg := range c.Mesh.RoutingGroups {
		known[rg.Name] = true
	}
	for i, k := range c.Connectors {
		key := fmt.Sprintf("connectors[%d]", i)
		if !validName(k.Name) {
			return configError(key+".name", "must be 1-63 lowercase letters, digits or '-', got %q", k.Name)
		}
		if seen[k.Name] {
			return configError(key+".name", "connector %q is listed twice", k.Name)
		}
		seen[k.Name] = true
		if k.Cost < 1 || k.Cost > 100 {
			return configError(key+".cost", "must be 1..100, got %d", k.Cost)
		}
		if k.To != "" {
			if !known[k.To] {
				return configError(key+".to", "routing group %q is not in mesh.routing_groups", k.To)
			}
			if k.To == c.Node.RoutingGroup {
				return configError(key+".to", "a connector leads to another routing group, not to %q itself", k.To)
			}
			if len(k.Targets) == 0 {
				return configError(key+".targets", "must list at least one target bridgehead of %q", k.To)
			}
			if k.Smarthost != "" || len(k.AddressSpaces) > 0 {
				return configError(key+".to", "smarthost and address_spaces belong to external connectors (no to)")
			}
		} else if len(k.AddressSpaces) == 0 {
			return configError(key+".address_spaces", "an external connector needs at least one address space")
		}
		for j, t := range k.Targets {
			if err := checkHostPort(t, false); err != nil {
				return configError(fmt.Sprintf("%s.targets[%d]", key, j), "%v", err)
			}
		}
		if k.Smarthost != "" {
			if err := checkHostPort(k.Smarthost, false); err != nil {
				return configError(key+".smarthost", "%v", err)
			}
		}
		for j, s := range k.SourceBridgeheads {
			if !validName(s) {
				return configError(fmt.Sprintf("%s.source_bridgeheads[%d]", key, j), "must be a node name, got %q", s)
			}
		}
		for j, as := range k.AddressSpaces {
			if err := checkSpace(as); err != nil {
				return configError(fmt.Sprintf("%s.address_spaces[%d]", key, j), "%v", err)
			}
			c.Connectors[i].AddressSpaces[j].Pattern = strings.ToLower(as.Pattern)
		}
	}
	return nil
}

func checkSpace(as linkstate.AddressSpace) error {
	p := strings.ToLower(as.Pattern)
	if p == "" || strings.Count(p, "*") > 1 || (strings.Contains(p, "*") && p != "*" && !strings.HasPrefix(p, "*.")) {
		return fmt.Errorf("pattern must be a domain, *.domain or *, got %q", as.Pattern)
	}
	if as.Cost < 1 || as.Cost > 100 {
		return fmt.Errorf("cost must be 1..100, got %d", as.Cost)
	}
	return nil
}

// validName is the rule for node, routing group and connector names.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// Keyring builds the link-state keyring from mesh.org_key,
// mesh.routing_groups and mesh.signing_key.
func (c *Config) Keyring() (*linkstate.Keyring, error) {
	m := c.Mesh
	kr := linkstate.NewKeyring()
	if m.OrgKey != "" {
		k, err := base64.StdEncoding.DecodeString(m.OrgKey)
		if err != nil {
			return nil, configError("mesh.org_key", "must be base64: %v", err)
		}
		if err := kr.SetOrgKey(k); err != nil {
			return nil, configError("mesh.org_key", "%v", err)
		}
	}
	self := false
	anyEd := false
	for i, rg := range m.RoutingGroups {
		key := fmt.Sprintf("mesh.routing_groups[%d]", i)
		if !validName(rg.Name) {
			return nil, configError(key+".name", "must be 1-63 lowercase letters, digits or '-', got %q", rg.Name)
		}
		if err := kr.AddRG(rg.Name); err != nil {
			return nil, configError(key+".name", "%v", err)
		}
		self = self || rg.Name == c.Node.RoutingGroup
		for j, d := range rg.Domains {
			if err := checkSpace(linkstate.AddressSpace{Pattern: d, Cost: 1}); err != nil || d == "*" {
				return nil, configError(fmt.Sprintf("%s.domains[%d]", key, j), "must be a domain or *.domain, got %q", d)
			}
		}
		for j, pk := range rg.PublicKeys {
			id, raw, err := splitKey(pk)
			if err != nil || len(raw) != ed25519.PublicKeySize {
				return nil, configError(fmt.Sprintf("%s.public_keys[%d]", key, j), "must be keyid:base64 of a 32-byte Ed25519 public key")
			}
			if err := kr.AddPublicKey(rg.Name, id, ed25519.PublicKey(raw)); err != nil {
				return nil, configError(fmt.Sprintf("%s.public_keys[%d]", key, j), "%v", err)
			}
			anyEd = anyEd || rg.Name == c.Node.RoutingGroup
		}
	}
	switch {
	case len(m.RoutingGroups) == 0:
		// A node started from a short file: the organisation document
		// (docs/org.md) names the other groups; until it comes, the node
		// knows its own.
		if err := kr.AddRG(c.Node.RoutingGroup); err != nil {
			return nil, configError("node.routing_group", "%v", err)
		}
	case !self:
		return nil, configError("mesh.routing_groups", "must list this node's routing group %q", c.Node.RoutingGroup)
	}
	if m.SigningKey != "" {
		id, raw, err := splitKey(m.SigningKey)
		var priv ed25519.PrivateKey
		switch {
		case err != nil:
		case len(raw) == ed25519.SeedSize:
			priv = ed25519.NewKeyFromSeed(raw)
		case len(raw) == ed25519.PrivateKeySize:
			priv = ed25519.PrivateKey(raw)
		}
		if priv == nil {
			return nil, configError("mesh.signing_key", "must be keyid:base64 of an Ed25519 seed (32 bytes) or private key (64 bytes)")
		}
		if err := kr.SetSigningKey(c.Node.RoutingGroup, id, priv); err != nil {
			return nil, configError("mesh.signing_key", "%v", err)
		}
	} else if anyEd {
		return nil, configError("mesh.signing_key", "routing group %q has public keys, so this node needs its signing key", c.Node.RoutingGroup)
	}
	if m.OrgKey == "" && !anyEd {
		return nil, configError("mesh.org_key", "must be set (or Ed25519 keys for routing group %q)", c.Node.RoutingGroup)
	}
	return kr, nil
}

func splitKey(s string) (id string, raw []byte, err error) {
	id, b64, ok := strings.Cut(s, ":")
	if !ok || id == "" {
		return "", nil, fmt.Errorf("want keyid:base64")
	}
	raw, err = base64.StdEncoding.DecodeString(b64)
	return id, raw, err
}

// LocalSpaces are this routing group's address spaces: its local domains.
func (c *Config) LocalSpaces() []linkstate.AddressSpace {
	var out []linkstate.AddressSpace
	for _, d := range c.LocalDomains {
		out = append(out, linkstate.AddressSpace{Pattern: strings.ToLower(d), Cost: 1})
	}
	return out
}

// CopyIDKey keys copy IDs (meshroute.go): HMAC-SHA-256 of mesh.org_key
// with a label, so the org key itself is used for one purpose only. Nil
// without an org key.
func (c *Config) CopyIDKey() []byte {
	k, err := base64.StdEncoding.DecodeString(c.Mesh.OrgKey)
	if err != nil || len(k) == 0 {
		return nil
	}
	mac := hmac.New(sha256.New, k)
	mac.Write([]byte("meshd copy id"))
	return mac.Sum(nil)
}

// DeclaredDomains are the domains each routing group owns by
// configuration (mesh.routing_groups[].domains), lowercased.
func (c *Config) DeclaredDomains() map[string][]string {
	out := map[string][]string{}
	for _, rg := range c.Mesh.RoutingGroups {
		for _, d := range rg.Domains {
			out[rg.Name] = append(out[rg.Name], strings.ToLower(strings.TrimSuffix(d, ".")))
		}
	}
	return out
}

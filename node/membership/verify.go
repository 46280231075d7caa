package membership

import (
	"context"
	"time"
)

// Holding the gossip key makes a process a memberlist member, nothing
// more: the key is shared by the whole group, so it cannot say which node
// a member is. A member therefore counts only once Config.Verify has
// proven its name (the node wires a mutual-TLS handshake with the
// member's advertised port-691 address whose certificate must name
// meshd://RG/NAME). The proof is bound to the addresses it was made
// for: a member that advertises other addresses is verified again, one
// that leaves and returns too. Every member verifies every other itself,
// so the verified set, and with it the master, is the same on every node
// that can reach them all.

// verifyTimeout bounds one verification.
const verifyTimeout = 5 * time.Second

// verification is what the pool knows of one member's proof. Guarded by
// Pool.mu.
type verification struct {
	key     string // the addresses proven (or being proven)
	ok      bool
	reason  string // why not (yet)
	running bool
	next    time.Time // earliest next attempt after a failure
	logged  bool      // the failure was logged once
}

func verifyKey(m Member) string { return m.Addr + "|" + m.SMTP + "|" + m.LinkState }

// verified reports whether m counts as a member, and starts its
// verification when one is due.
func (p *Pool) verified(m Member) (bool, string) {
	if p.cfg.Verify == nil || m.Name == p.cfg.Name {
		return true, ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	key := verifyKey(m)
	v := p.checks[m.Name]
	if v == nil || v.key != key {
		v = &verification{key: key, reason: "verification pending"}
		p.checks[m.Name] = v
	}
	if v.ok {
		return true, ""
	}
	if !v.running && !time.Now().Before(v.next) && p.ctx.Err() == nil {
		v.running = true
		p.vwg.Add(1)
		go p.verify(m, v)
	}
	return false, v.reason
}

func (p *Pool) verify(m Member, v *verification) {
	defer p.vwg.Done()
	ctx, cancel := context.WithTimeout(p.ctx, verifyTimeout)
	err := p.cfg.Verify(ctx, m)
	cancel()
	p.mu.Lock()
	v.running = false
	current := p.checks[m.Name] == v
	if err == nil {
		v.ok, v.reason = true, ""
	} else {
		v.reason = err.Error()
		v.next = time.Now().Add(p.cfg.VerifyRetry)
	}
	first := err != nil && !v.logged
	v.logged = v.logged || err != nil
	p.mu.Unlock()
	switch {
	case !current || p.ctx.Err() != nil:
		return
	case err == nil:
		p.log.Info("gossip member verified", "peer", m.Name, "addr", m.LinkState)
	case first:
		p.log.Warn("gossip member not verified: it is no member until it proves its name", "peer", m.Name,
			"addr", m.LinkState, "err", err)
	}
	p.poke()
}

// forgetChecks drops the proofs of members memberlist no longer lists:
// one that comes back proves itself again. Called with p.mu held.
func (p *Pool) forgetChecks(live map[string]memberCopy) {
	for name := range p.checks {
		if _, ok := live[name]; !ok {
			delete(p.checks, name)
		}
	}
}

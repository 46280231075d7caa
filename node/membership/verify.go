package membership

import (
	"cmp"
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
//
// memberlist declares a loaded member dead and alive again within
// seconds; a proof therefore outlives the member's leaving for
// proofGrace, for the same addresses only (a process that took over a
// dead node's name and all its ports within that time would count; it
// could still not serve the node's certificate on the channel or on SMTP
// hops, which verify it again).

// verifyTimeout bounds one verification.
const verifyTimeout = 5 * time.Second

// proofGrace is how long a proof outlives its member's leaving.
const proofGrace = 10 * time.Second

// verification is what the pool knows of one member's proof. Guarded by
// Pool.mu.
type verification struct {
	key     string // the addresses proven (or being proven)
	ok      bool
	reason  string // why not (yet)
	running bool
	next    time.Time // earliest next attempt after a failure
	logged  bool      // the failure was logged once
	settled bool      // one attempt has finished
	gone    time.Time // when the member left (zero: live)
	proven  time.Time // when the proof in force was made
	until   time.Time // when it ends by itself (zero: never)
	recheck string    // why the next re-check was asked for (Recheck); "" periodic
	asked   time.Time // when Recheck asked for it
}

// Drop reasons passed to Config.OnDropped.
const (
	DroppedExpired  = "expired"  // the certificate of its proof expired
	DroppedReverify = "reverify" // the periodic re-check failed
)

// Recheck makes every counted member prove its name again at once (the
// node's trusted CAs changed, say): one whose proof now fails stops
// counting as soon as its check ends (verifyTimeout at most), and
// Config.OnDropped is told with reason. A member keeps counting while its
// check runs. A first check already under way proves nothing of the new
// trust either: if it succeeds, the member is checked again at once.
func (p *Pool) Recheck(reason string) {
	p.mu.Lock()
	n := 0
	now := time.Now()
	for _, v := range p.checks {
		switch {
		case v.ok:
			v.proven, v.recheck, v.asked = time.Time{}, reason, now
			n++
		case v.running:
			v.asked = now
		}
	}
	p.mu.Unlock()
	p.log.Info("gossip members to prove their names again", "reason", reason, "members", n)
	p.poke()
}

// Pending reports how many live members have not finished their first
// verification (for their current addresses). A newly elected master
// waits a little for them (node/mesh): one of them may outrank it.
func (p *Pool) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	counted := map[string]bool{}
	for _, m := range p.view.Members {
		counted[m.Name] = true
	}
	for name, v := range p.checks {
		_, live := p.nodes[name]
		// Verified but not in the view yet counts too: the view that
		// elects it is on its way.
		if live && (!v.settled || (v.ok && !counted[name])) {
			n++
		}
	}
	return n
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
	if v != nil {
		v.gone = time.Time{}
	}
	if v == nil || v.key != key {
		v = &verification{key: key, reason: "verification pending"}
		p.checks[m.Name] = v
	}
	now := time.Now()
	if v.ok && !v.until.IsZero() && !now.Before(v.until) {
		// The certificate it proved its name with has expired: no
		// member until it proves it with a valid one.
		v.ok, v.reason, v.next, v.logged = false, "its certificate expired at "+v.until.UTC().Format(time.RFC3339), time.Time{}, false
		p.log.Warn("gossip member no longer verified: its certificate expired", "peer", m.Name, "expires", v.until)
		if p.cfg.OnDropped != nil {
			p.cfg.OnDropped(m.Name, DroppedExpired)
		}
	}
	if v.ok {
		// A counted member proves its name again now and then; it keeps
		// counting until a proof fails.
		if !v.running && now.Sub(v.proven) >= p.cfg.Reverify && p.ctx.Err() == nil {
			v.running = true
			p.vwg.Add(1)
			go p.verify(m, v)
		}
		return true, ""
	}
	if !v.running && !now.Before(v.next) && p.ctx.Err() == nil {
		v.running = true
		p.vwg.Add(1)
		go p.verify(m, v)
	}
	return false, v.reason
}

func (p *Pool) verify(m Member, v *verification) {
	defer p.vwg.Done()
	started := time.Now()
	ctx, cancel := context.WithTimeout(p.ctx, verifyTimeout)
	until, err := p.cfg.Verify(ctx, m)
	cancel()
	p.mu.Lock()
	v.running = false
	v.settled = true
	current := p.checks[m.Name] == v
	was := v.ok
	why := cmp.Or(v.recheck, DroppedReverify)
	stale := started.Before(v.asked) // began before Recheck: proves nothing of the new trust
	if !stale {
		v.recheck = ""
	}
	if err == nil {
		v.ok, v.reason, v.proven, v.until = true, "", time.Now(), until
		if stale {
			v.proven = time.Time{} // check again at once
		}
	} else {
		v.ok = false
		v.reason = err.Error()
		v.next = time.Now().Add(p.cfg.VerifyRetry)
	}
	first := err != nil && !v.logged
	v.logged = v.logged || err != nil
	p.mu.Unlock()
	switch {
	case !current || p.ctx.Err() != nil:
		return
	case err == nil && was:
		return // proven again: nothing changed
	case err == nil:
		p.log.Info("gossip member verified", "peer", m.Name, "addr", m.LinkState)
	case was:
		p.log.Warn("gossip member no longer verified: it no longer proves its name", "peer", m.Name,
			"addr", m.LinkState, "reason", why, "err", err)
		if p.cfg.OnDropped != nil {
			p.cfg.OnDropped(m.Name, why)
		}
	case first:
		p.log.Warn("gossip member not verified: it is no member until it proves its name", "peer", m.Name,
			"addr", m.LinkState, "err", err)
	}
	p.poke()
}

// forgetChecks drops the proofs of members memberlist no longer lists,
// proofGrace after they left: one that comes back later proves itself
// again. Called with p.mu held.
func (p *Pool) forgetChecks(live map[string]memberCopy) {
	now := time.Now()
	for name, v := range p.checks {
		if _, ok := live[name]; ok {
			continue
		}
		switch {
		case !v.ok:
			delete(p.checks, name)
		case v.gone.IsZero():
			v.gone = now
		case now.Sub(v.gone) > proofGrace:
			delete(p.checks, name)
		}
	}
}

package mesh

import (
	"bufio"
	"context"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/meshd/meshd/linkstate/channel"
)

// prober watches the bridgehead pairs this node is the source of: every
// target bridgehead of every connector of our group that lists this node
// as a source (or lists none). A failure, seen by a probe or reported by
// forwarding, is confirmed by glitch retries before the pair is marked
// down; a down pair is probed every Interval even with no mail queued and
// is marked up again after UpAfter consecutive successes.
type prober struct {
	m    *Mesh
	cfg  ProbeConfig
	wake chan struct{}
	// observe receives each pair transition (Mesh.observed; a test's
	// recorder).
	observe func(channel.Observation)

	mu    sync.Mutex
	pairs map[pairKey]*pairWatch
}

type pairWatch struct {
	up       bool
	succ     int       // consecutive successes while down
	next     time.Time // next probe
	checking bool      // a glitch check is running
	suspect  bool      // forwarding saw a failure: confirm it now
	known    bool      // a result has been reported at least once
	at       time.Time // last transition
}

func newProber(m *Mesh) *prober {
	p := &prober{m: m, cfg: m.cfg.Probe, wake: make(chan struct{}, 1), observe: m.observed, pairs: map[pairKey]*pairWatch{}}
	p.reconfigure()
	return p
}

// reconfigure aligns the watched pairs with the configured connectors.
func (p *prober) reconfigure() {
	want := map[pairKey]bool{}
	for _, c := range p.m.topology().Connectors {
		if !isSource(c, p.m.cfg.Node) {
			continue
		}
		targets := c.Targets
		if c.To == "" {
			targets = nil
			if c.Smarthost != "" {
				targets = []string{c.Smarthost}
			}
		}
		for _, t := range targets {
			want[pairKey{c.Name, p.m.cfg.Node, t}] = true
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.pairs {
		if !want[k] {
			delete(p.pairs, k)
		}
	}
	now := p.m.cfg.Now()
	for k := range want {
		if _, ok := p.pairs[k]; !ok {
			// Probe a new pair soon, not after a keepalive: its state
			// goes into the master's record only once it is known.
			p.pairs[k] = &pairWatch{up: true, next: now.Add(jitter(p.cfg.Interval))}
		}
	}
}

func isSource(c Connector, node string) bool {
	if len(c.SourceBridgeheads) == 0 {
		return true
	}
	for _, s := range c.SourceBridgeheads {
		if s == node {
			return true
		}
	}
	return false
}

// jitter spreads d over [d/2, d).
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// unknown counts this node's pairs without a first result yet.
func (p *prober) unknown() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, w := range p.pairs {
		if !w.known {
			n++
		}
	}
	return n
}

// observations returns this node's current view of its pairs.
func (p *prober) observations() []channel.Observation {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []channel.Observation
	for k, w := range p.pairs {
		if w.at.IsZero() {
			continue // never changed: nothing to tell
		}
		out = append(out, channel.Observation{Connector: k.Connector, Source: k.Source, Target: k.Target, Up: w.up, At: w.at})
	}
	return out
}

func (p *prober) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-t.C:
		}
		now := p.m.cfg.Now()
		next := now.Add(p.cfg.Interval)
		for _, d := range p.due(now) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.check(ctx, d.key, d.suspect)
			}()
		}
		p.mu.Lock()
		for _, w := range p.pairs {
			if w.next.Before(next) {
				next = w.next
			}
		}
		p.mu.Unlock()
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(max(next.Sub(p.m.cfg.Now()), 10*time.Millisecond))
	}
}

type duePair struct {
	key     pairKey
	suspect bool
}

// due returns the pairs whose probe is due and marks them checking.
func (p *prober) due(now time.Time) []duePair {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ds []duePair
	for k, w := range p.pairs {
		if !w.checking && !w.next.After(now) {
			w.checking = true
			ds = append(ds, duePair{k, w.suspect})
			w.suspect = false
		}
	}
	return ds
}

// Report feeds the result of a real SMTP session over a pair (from
// forwarding) into failure detection. A failure starts a glitch check at
// once; a success counts like a successful probe.
func (p *prober) report(connector, target string, ok bool) {
	k := pairKey{connector, p.m.cfg.Node, target}
	p.mu.Lock()
	w, known := p.pairs[k]
	if !known {
		p.mu.Unlock()
		return
	}
	if ok {
		p.mu.Unlock()
		p.result(k, true)
		return
	}
	if !w.up || w.checking {
		p.mu.Unlock()
		return
	}
	w.suspect = true
	w.next = p.m.cfg.Now()
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// check probes k; after a failure of an up pair (or when failed says the
// caller already saw one) it retries GlitchRetries times before marking
// the pair down.
func (p *prober) check(ctx context.Context, k pairKey, failed bool) {
	defer func() {
		p.mu.Lock()
		if w, ok := p.pairs[k]; ok {
			w.checking = false
		}
		p.mu.Unlock()
	}()
	p.mu.Lock()
	w, ok := p.pairs[k]
	wasUp := ok && w.up
	p.mu.Unlock()
	if !ok {
		return
	}
	tries := 1
	if wasUp {
		tries += p.cfg.GlitchRetries
	}
	if failed {
		tries = p.cfg.GlitchRetries
	}
	good := false
	for i := 0; i < tries && !good; i++ {
		if i > 0 || failed {
			select {
			case <-ctx.Done():
				return
			case <-time.After(p.cfg.GlitchDelay + rand.N(p.cfg.GlitchDelay+1)):
			}
		}
		good = p.probe(ctx, k.Target) == nil
	}
	if ctx.Err() != nil {
		return
	}
	p.result(k, good)
}

// result applies one confirmed outcome to the pair and reports a change.
func (p *prober) result(k pairKey, ok bool) {
	now := p.m.cfg.Now()
	p.mu.Lock()
	w, known := p.pairs[k]
	if !known {
		p.mu.Unlock()
		return
	}
	changed := false
	switch {
	case ok && w.up:
	case ok:
		w.succ++
		if w.succ >= p.cfg.UpAfter {
			w.up, w.succ, changed = true, 0, true
		}
	case w.up:
		w.up, w.succ, changed = false, 0, true
	default:
		w.succ = 0
	}
	if w.up {
		w.next = now.Add(jitter(p.cfg.Keepalive))
	} else {
		w.next = now.Add(p.cfg.Interval)
	}
	// The first confirmed result is reported too, so the record lists
	// every pair with its state, not only the ones that changed.
	if !w.known {
		w.known, changed = true, true
	}
	if changed {
		w.at = now
	}
	obs := channel.Observation{Connector: k.Connector, Source: k.Source, Target: k.Target, Up: w.up, At: now}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	if changed {
		p.observe(obs)
	}
}

// probe opens an SMTP session to addr and waits for its 220 greeting.
func (p *prober) probe(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	conn, err := p.m.cfg.Dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "220") {
		return &net.OpError{Op: "greeting", Net: "tcp", Err: errGreeting(strings.TrimSpace(line))}
	}
	_, _ = conn.Write([]byte("QUIT\r\n"))
	return nil
}

type errGreeting string

func (e errGreeting) Error() string { return "unexpected greeting: " + string(e) }

// observed is called with each pair transition this node makes.
func (m *Mesh) observed(o channel.Observation) {
	m.mu.Lock()
	m.stats.Observations++
	m.mu.Unlock()
	m.log.Info("bridgehead pair state", "connector", o.Connector, "peer", o.Target, "up", o.Up)
	if m.IsMaster() {
		m.foldObservations(ownReporter, []channel.Observation{o})
		return
	}
	m.cli.Load().Observe(o)
}

// ownObservations is what the channel client sends on each new session.
func (m *Mesh) ownObservations() []channel.Observation { return m.probe.observations() }

// ReportAttempt tells failure detection how an SMTP session over a
// connector's pair went (ok: the session reached the MAIL stage).
func (m *Mesh) ReportAttempt(connector, target string, ok bool) {
	if m.probe != nil {
		m.probe.report(connector, target, ok)
	}
}

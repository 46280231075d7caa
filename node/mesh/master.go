package mesh

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/linkstate/channel"
)

// masterState is what a master folds into its group's record. Guarded by
// Mesh.mu.
type masterState struct {
	since  time.Time                            // when this node became master (zero: not master)
	states map[string]*linkstate.ConnectorState // by connector name
	// obs holds the newest observation per pair of each reporter: this
	// node's own prober (ownReporter), the pairs carried over from the
	// group's last record (seedReporter), and each member session
	// (channel.Session.ID). A pair's state is the newest over reporters.
	obs map[uint64]map[pairKey]channel.Observation
	// leases: reporters that ended (a member session closed, the seeds of
	// a new master) and when their observations end (observations.go).
	leases map[uint64]time.Time
	// fed: the pairs fed into states, so that a pair no reporter holds
	// any more is forgotten there.
	fed     map[pairKey]bool
	current *linkstate.Record             // last record we originated
	admin   map[string]channel.AdminState // operator overrides by connector
	// decommissioned: a tombstone for our group is held (logged once).
	decommissioned bool
}

type pairKey struct{ Connector, Source, Target string }

func newMasterState() masterState {
	return masterState{states: map[string]*linkstate.ConnectorState{}, obs: map[uint64]map[pairKey]channel.Observation{},
		leases: map[uint64]time.Time{}, fed: map[pairKey]bool{}, admin: map[string]channel.AdminState{}}
}

// onMemberObservations is the channel server's callback (master only).
// A member probes only the pairs whose source it is: an observation of
// another node's pair is refused, so that one member (holding a valid
// certificate of the group) cannot advertise its peers' links down. What
// it reports is held for its session only (observations.go).
func (m *Mesh) onMemberObservations(from channel.Session, obs []channel.Observation) {
	kept := obs[:0:0]
	for _, o := range obs {
		if o.Source != from.Node || from.Node == m.cfg.Node {
			m.log.Warn("observation refused", "peer", from.Node, "connector", o.Connector, "pair_source", o.Source,
				"pair_target", o.Target, "reason", "source is not the member that sent it")
			m.mu.Lock()
			m.stats.ObservationsRefused++
			m.mu.Unlock()
			continue
		}
		kept = append(kept, o)
	}
	if len(kept) > 0 {
		m.foldObservations(from.ID, kept)
	}
}

// verifyWait bounds how long a new master waits for the first
// verification of members that have just joined.
const verifyWait = 5 * time.Second

// originate builds and installs a new record of our group when this node
// is master and something changed. It returns how long to wait before
// calling again when a new master is still collecting observations.
func (m *Mesh) originate() time.Duration {
	now := m.cfg.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.view.Master != m.cfg.Node {
		m.master.since = time.Time{}
		return 0
	}
	if m.master.since.IsZero() {
		m.master.since = now
		m.seedMasterLocked(now)
		m.log.Info("became routing group master; collecting observations", "window", m.cfg.CollectWindow)
	}
	if wait := m.master.since.Add(m.cfg.CollectWindow).Sub(now); wait > 0 {
		return wait
	}
	// A member that joined a moment ago may outrank us once its
	// certificate is verified (membership: unverified members do not
	// count): wait for first verifications, a bounded time.
	if m.pool != nil && m.pool.Pending() > 0 {
		if wait := m.master.since.Add(m.cfg.CollectWindow + verifyWait).Sub(now); wait > 0 {
			return min(wait, 50*time.Millisecond)
		}
	}
	// Our own pairs not probed yet (a node that just started) would be
	// missing from the first record: give their first probe its timeout.
	if m.probe.unknown() > 0 {
		if wait := m.master.since.Add(m.cfg.CollectWindow + m.cfg.Probe.Interval + m.cfg.Probe.Timeout).Sub(now); wait > 0 {
			return min(wait, 50*time.Millisecond)
		}
	}
	if m.decommissioned() {
		if !m.master.decommissioned {
			m.master.decommissioned = true
			m.log.Warn("this routing group was removed (tombstone held); originating no records")
		}
		return 0
	}
	rec, err := m.buildRecordLocked(now)
	if err != nil {
		m.log.Error("cannot build record", "err", err)
		return 0
	}
	if rec == nil {
		return 0
	}
	if err := m.cfg.Keyring.Sign(rec); err != nil {
		m.log.Error("cannot sign record", "err", err)
		return 0
	}
	if _, err := m.db.Install(rec); err != nil {
		m.log.Error("own record refused by LSDB", "err", err, "version", fmt.Sprint(rec.Version))
		return 0
	}
	m.master.current = rec
	m.stats.Originated++
	m.log.Info("originated record", "version", fmt.Sprintf("%d.%d.%d.%d", rec.Version.Epoch, rec.Version.Major, rec.Version.Minor, rec.Version.User))
	return 0
}

// buildRecordLocked returns the next record, or nil when the installed
// one is still current.
func (m *Mesh) buildRecordLocked(now time.Time) (*linkstate.Record, error) {
	cfg, topo := m.cfg, m.topology()
	rec := &linkstate.Record{
		RG: cfg.RG, Master: cfg.Node, IssuedAt: now.Truncate(time.Second), TTL: topo.TTL,
		AddressSpaces: slices.Clone(topo.LocalSpaces),
	}
	for _, mb := range m.view.Members {
		rec.Members = append(rec.Members, linkstate.Member{Name: mb.Name, SMTP: mb.SMTP, LinkState: mb.LinkState, Priority: mb.Priority})
	}
	live := map[string]bool{}
	for _, mb := range m.view.Members {
		live[mb.Name] = true
	}
	for _, c := range topo.Connectors {
		k := linkstate.Connector{
			ID: c.Name, From: cfg.RG, To: c.To, Cost: c.Cost,
			SourceBridgeheads: slices.Clone(c.SourceBridgeheads), TargetBridgeheads: slices.Clone(c.Targets),
			Smarthost: c.Smarthost, AddressSpaces: slices.Clone(c.AddressSpaces),
		}
		rec.Connectors = append(rec.Connectors, k)
	}
	m.endLeasesLocked(now)
	// Bridges are judged on the graph with this record in it.
	records := replaceRecord(m.db.Snapshot().Records(), rec)
	bridges := linkstate.Bridges(records)
	for i := range rec.Connectors {
		k := &rec.Connectors[i]
		st, err := m.connectorStateLocked(k.ID)
		if err != nil {
			return nil, err
		}
		m.applyObservationsLocked(now, k.ID, st, live)
		st.Apply(now, bridges[linkstate.ConnectorKey{From: cfg.RG, ID: k.ID}], k)
		freezeSuppressed(k, m.master.current)
		applyAdmin(k, m.master.admin[k.ID])
		downWithoutSources(k, live)
	}

	installed, _ := m.db.Snapshot().Lookup(cfg.RG)
	prev := m.master.current
	if installed != nil && (prev == nil || installed.Version.Compare(prev.Version) > 0) {
		prev = installed
	}
	switch {
	case prev == nil:
		rec.Version = linkstate.Version{Epoch: 1}
	case prev.Master != cfg.Node || m.master.current == nil:
		// A new master (or a restarted one) starts a new epoch above
		// everything its group has seen, so its records win.
		rec.Version = linkstate.Version{Epoch: prev.Version.Epoch + 1}
	default:
		rec.Version = prev.Version
		refresh := prev.NeedsRefresh(now, topo.Refresh)
		switch {
		case !sameConfig(prev, rec):
			rec.Version.Major++
			rec.Version.Minor, rec.Version.User = 0, 0
		case !sameState(prev, rec):
			rec.Version.Minor++
		case !sameMembers(prev, rec) || refresh:
			rec.Version.User++
		default:
			return nil, nil
		}
	}
	return rec, nil
}

// seedMasterLocked carries the pair states this node already knows into
// its mastership, so that its first record lists them: its own
// observations (as a member it sent them to the old master only), and the
// pairs of the last record of its group in the LSDB (what the old master
// advertised for the other members). Seeds from the record carry no time,
// so any observation a member sends on its new session replaces them.
//
// The seeds stand for what members told the old master; they end after
// mesh.observation_lease like an ended session's, by when each member
// has told the new master itself.
func (m *Mesh) seedMasterLocked(now time.Time) {
	m.holdLocked(ownReporter, m.probe.observations())
	rec, ok := m.db.Snapshot().Get(m.cfg.RG)
	if !ok {
		return
	}
	var seeds []channel.Observation
	for _, c := range rec.Connectors {
		if c.Suppressed {
			continue // frozen by damping or an override: not observations
		}
		for _, p := range c.Pairs {
			seeds = append(seeds, channel.Observation{Connector: c.ID, Source: p.Source, Target: p.Target, Up: p.Up})
		}
	}
	m.master.obs[seedReporter] = nil
	m.holdLocked(seedReporter, seeds)
	m.master.leases[seedReporter] = now.Add(m.cfg.ObservationLease)
}

// downWithoutSources advertises a connector whose listed source
// bridgeheads have all left the group as down at once: its pairs (those
// of the dead sources) are down, rather than absent, which would read as
// "nothing observed" and so up. Nobody is left to send over it, so the
// bridge rule does not hold it up either.
func downWithoutSources(k *linkstate.Connector, live map[string]bool) {
	if len(k.SourceBridgeheads) == 0 {
		return
	}
	for _, s := range k.SourceBridgeheads {
		if live[s] {
			return
		}
	}
	targets := k.TargetBridgeheads
	if k.To == "" {
		targets = nil
		if k.Smarthost != "" {
			targets = []string{k.Smarthost}
		}
	}
	k.Bridge = false
	k.Pairs = nil
	for _, s := range k.SourceBridgeheads {
		for _, t := range targets {
			k.Pairs = append(k.Pairs, linkstate.PairState{Source: s, Target: t})
		}
	}
	if len(k.Pairs) == 0 {
		k.Suppressed = true // an MX connector: nothing else says down
	}
}

func (m *Mesh) connectorStateLocked(id string) (*linkstate.ConnectorState, error) {
	if st, ok := m.master.states[id]; ok {
		return st, nil
	}
	st, err := linkstate.NewConnectorState(m.cfg.State)
	if err != nil {
		return nil, err
	}
	m.master.states[id] = st
	return st, nil
}

// applyObservationsLocked feeds the newest observation of each pair of
// connector id (over every reporter still held) into its state, and
// forgets the pairs no reporter holds any more: those whose source
// bridgehead has left the group, and those only an ended session (past
// its lease) had reported.
func (m *Mesh) applyObservationsLocked(now time.Time, id string, st *linkstate.ConnectorState, live map[string]bool) {
	cur := m.currentObservationsLocked(id, live)
	for k, o := range cur {
		st.Observe(now, k.Source, k.Target, o.Up)
		m.master.fed[k] = true
	}
	for k := range m.master.fed {
		if k.Connector != id {
			continue
		}
		if _, held := cur[k]; !held {
			st.Forget(now, k.Source, k.Target)
			delete(m.master.fed, k)
		}
	}
}

func replaceRecord(recs []*linkstate.Record, r *linkstate.Record) []*linkstate.Record {
	out := make([]*linkstate.Record, 0, len(recs)+1)
	for _, x := range recs {
		if x.RG != r.RG {
			out = append(out, x)
		}
	}
	return append(out, r)
}

func sameConfig(a, b *linkstate.Record) bool {
	if a.TTL != b.TTL || !slices.Equal(sortedSpaces(a.AddressSpaces), sortedSpaces(b.AddressSpaces)) || len(a.Connectors) != len(b.Connectors) {
		return false
	}
	ac, bc := sortedConnectors(a.Connectors), sortedConnectors(b.Connectors)
	for i := range ac {
		x, y := ac[i], bc[i]
		if x.ID != y.ID || x.To != y.To || x.Cost != y.Cost || x.Smarthost != y.Smarthost ||
			!slices.Equal(sortedStrings(x.SourceBridgeheads), sortedStrings(y.SourceBridgeheads)) ||
			!slices.Equal(sortedStrings(x.TargetBridgeheads), sortedStrings(y.TargetBridgeheads)) ||
			!slices.Equal(sortedSpaces(x.AddressSpaces), sortedSpaces(y.AddressSpaces)) {
			return false
		}
	}
	return true
}

func sameState(a, b *linkstate.Record) bool {
	ac, bc := sortedConnectors(a.Connectors), sortedConnectors(b.Connectors)
	for i := range ac {
		x, y := ac[i], bc[i]
		if x.Suppressed != y.Suppressed || x.Bridge != y.Bridge || !slices.Equal(sortedPairs(x.Pairs), sortedPairs(y.Pairs)) {
			return false
		}
	}
	return true
}

func sameMembers(a, b *linkstate.Record) bool {
	if a.Master != b.Master || len(a.Members) != len(b.Members) {
		return false
	}
	am, bm := slices.Clone(a.Members), slices.Clone(b.Members)
	byName := func(x, y linkstate.Member) int { return cmpString(x.Name, y.Name) }
	slices.SortFunc(am, byName)
	slices.SortFunc(bm, byName)
	return slices.Equal(am, bm)
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func sortedStrings(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func sortedSpaces(s []linkstate.AddressSpace) []linkstate.AddressSpace {
	s = slices.Clone(s)
	slices.SortFunc(s, func(x, y linkstate.AddressSpace) int { return cmpString(x.Pattern, y.Pattern) })
	return s
}

func sortedPairs(s []linkstate.PairState) []linkstate.PairState {
	s = slices.Clone(s)
	slices.SortFunc(s, func(x, y linkstate.PairState) int {
		if c := cmpString(x.Source, y.Source); c != 0 {
			return c
		}
		return cmpString(x.Target, y.Target)
	})
	return s
}

func sortedConnectors(s []linkstate.Connector) []linkstate.Connector {
	s = slices.Clone(s)
	slices.SortFunc(s, func(x, y linkstate.Connector) int { return cmpString(x.ID, y.ID) })
	return s
}

// freezeSuppressed keeps a suppressed connector's pairs as last advertised:
// while flap damping holds it down, its flapping pairs must not cause new
// advertisements — bounding them is what damping is for.
func freezeSuppressed(k *linkstate.Connector, prev *linkstate.Record) {
	if !k.Suppressed || prev == nil {
		return
	}
	for _, pc := range prev.Connectors {
		if pc.ID == k.ID && pc.Suppressed {
			k.Pairs = slices.Clone(pc.Pairs)
			return
		}
	}
}

// applyAdmin writes an operator's override into an advertised connector.
// Down is explicit, so it beats the bridge rule: every pair is advertised
// down (a placeholder pair stands for a connector with none observed).
// Drain advertises the highest cost: the connector carries mail only when
// nothing else can.
func applyAdmin(k *linkstate.Connector, st channel.AdminState) {
	switch st {
	case channel.AdminDown:
		k.Bridge = false
		if len(k.Pairs) == 0 {
			src := "any"
			if len(k.SourceBridgeheads) > 0 {
				src = k.SourceBridgeheads[0]
			}
			for _, t := range k.TargetBridgeheads {
				k.Pairs = append(k.Pairs, linkstate.PairState{Source: src, Target: t})
			}
			if k.To == "" && k.Smarthost != "" {
				k.Pairs = append(k.Pairs, linkstate.PairState{Source: src, Target: k.Smarthost})
			}
		}
		for i := range k.Pairs {
			k.Pairs[i].Up = false
		}
		if len(k.Pairs) == 0 {
			k.Suppressed = true // an MX connector: nothing else says down
		}
	case channel.AdminDrain:
		k.Cost = linkstate.MaxConnectorCost
	}
}

// ErrUnknownConnector: no connector of this routing group has that name.
var ErrUnknownConnector = errors.New("mesh: no such connector in this routing group")

// SetConnectorAdmin sets an operator's override of one of this routing
// group's connectors: AdminDown, AdminDrain, or AdminAuto to follow
// observations again. On a member it is sent to the master.
func (m *Mesh) SetConnectorAdmin(name string, st channel.AdminState) error {
	found := false
	for _, c := range m.topology().Connectors {
		found = found || c.Name == name
	}
	if !found {
		return fmt.Errorf("%w: %q", ErrUnknownConnector, name)
	}
	// Kept here too: should this node become master, the override stays.
	m.setAdmin(name, st)
	if m.IsMaster() {
		return nil
	}
	if err := m.cli.Load().Admin(name, st); err != nil {
		return fmt.Errorf("mesh: connector %s %s: %w", name, st, err)
	}
	return nil
}

func (m *Mesh) setAdmin(name string, st channel.AdminState) {
	m.mu.Lock()
	if st == channel.AdminAuto {
		delete(m.master.admin, name)
	} else {
		m.master.admin[name] = st
	}
	m.mu.Unlock()
	m.log.Info("connector override", "connector", name, "state", st.String())
	m.poke()
}

// AdminStates returns the operator overrides the master holds.
func (m *Mesh) AdminStates() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for k, v := range m.master.admin {
		out[k] = v.String()
	}
	return out
}

// Penalties returns the damping penalty of each connector the master
// tracks (zero elsewhere).
func (m *Mesh) Penalties() map[string]float64 {
	now := m.cfg.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]float64{}
	for id, st := range m.master.states {
		out[id] = st.Damper().Penalty(now)
	}
	return out
}

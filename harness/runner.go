package harness

import (
	"context"

	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options tune a run. The zero value runs the real mesh in a temporary
// directory.
type Options struct {
	Logger *slog.Logger
	// NewCluster starts the mesh; default StartCluster.
	NewCluster func(ctx context.Context, sc *Scenario, opts Options) (Cluster, error)
	// DataDir is where node data directories are made; default a temporary
	// directory removed after the run.
	DataDir string
	// BreakForwarding names nodes whose connections to nodes of other
	// routing groups are refused at their dialer: mail they accept for
	// other groups never leaves them. It exists to show that the harness
	// reports loss.
	BreakForwarding []string
	// Poll is the sampling period of the runner; default 25ms.
	Poll time.Duration
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.NewCluster == nil {
		o.NewCluster = StartCluster
	}
	if o.Poll <= 0 {
		o.Poll = 25 * time.Millisecond
	}
	return o
}

// RunFile loads a scenario file and runs it.
func RunFile(ctx context.Context, path string, opts Options) (Report, error) {
	sc, err := LoadScenario(path)
	if err != nil {
		return Report{}, err
	}
	return Run(ctx, sc, opts)
}

// Run starts the scenario's mesh, waits for it to converge, plays the
// timeline, decides every assertion and stops the mesh. An error means the
// run could not be carried out (the mesh did not start, ctx ended); a mesh
// that misbehaves yields a report with failed assertions.
func Run(ctx context.Context, sc *Scenario, opts Options) (Report, error) {
	opts = opts.withDefaults()
	if opts.DataDir == "" {
		dir, err := os.MkdirTemp("", "meshd-sim-")
		if err != nil {
			return Report{}, fmt.Errorf("harness: data dir: %w", err)
		}
		defer os.RemoveAll(dir)
		opts.DataDir = dir
	}
	cl, err := opts.NewCluster(ctx, sc, opts)
	if err != nil {
		return Report{}, err
	}
	r := &runner{sc: sc, opts: opts, cl: cl, log: opts.Logger.With("scenario", sc.Name)}
	rep, err := r.run(ctx)
	if cerr := cl.Close(); cerr != nil && err == nil {
		r.log.Warn("close cluster", "err", cerr)
	}
	return rep, err
}

type runner struct {
	sc   *Scenario
	opts Options
	cl   Cluster
	log  *slog.Logger

	start time.Time // t=0
	conv  convTracker
	steps []stepRun

	sendWG   sync.WaitGroup
	sending  int // send steps started and not finished; guarded by mu
	mu       sync.Mutex
	sent     []sentMsg
	lastSent time.Duration // when the last message was answered

	checks       []*check
	baseAdv      map[string]uint64 // originated per node at t=0
	allDelivered time.Duration     // every accepted message seen delivered since
	timelineDone bool              // every step has been carried out
}

// locator is implemented by clusters that can say where a message sits.
type locator interface {
	Locate(messageID string) []string
}

type stepRun struct {
	step *Step
	at   time.Duration // actual offset
	err  error
}

type sentMsg struct {
	id, from, to string
	accepted     bool
}

func (r *runner) elapsed() time.Duration { return time.Since(r.start) }

func (r *runner) run(ctx context.Context) (Report, error) {
	rep := Report{Scenario: r.sc.Name}
	settleStart := time.Now()
	if err := r.settle(ctx); err != nil {
		if ctx.Err() != nil {
			return rep, fmt.Errorf("harness: %s: %w", r.sc.Name, ctx.Err())
		}
		rep.Settled = time.Since(settleStart)
		rep.Assertions = []AssertionResult{{Name: "initial convergence", Detail: err.Error()}}
		return rep, nil
	}
	r.start = time.Now()
	if a, ok := r.cl.(interface{ timelineStarted() }); ok {
		a.timelineStarted()
	}
	rep.Settled = r.start.Sub(settleStart)
	r.baseAdv = r.originated()
	for i := range r.sc.Assert {
		r.checks = append(r.checks, newCheck(&r.sc.Assert[i]))
	}
	eventsFrom := len(r.cl.Faults().Events())
	if err := r.loop(ctx); err != nil {
		r.sendWG.Wait()
		return rep, err
	}
	r.sendWG.Wait()
	rep.Elapsed = r.elapsed()
	r.finish(&rep, eventsFrom)
	return rep, nil
}

// settle waits until every node holds a record of every routing group, the
// digests agree and every reachable domain has a route, for 300ms in a row.
func (r *runner) settle(ctx context.Context) error {
	deadline := time.Now().Add(r.sc.Settle)
	var okSince time.Time
	var why error
	tick := time.NewTicker(r.opts.Poll)
	defer tick.Stop()
	for {
		if why = r.settled(); why == nil {
			if okSince.IsZero() {
				okSince = time.Now()
			} else if time.Since(okSince) >= 300*time.Millisecond {
				return nil
			}
		} else {
			okSince = time.Time{}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mesh did not converge within %v: %w", r.sc.Settle, why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (r *runner) settled() error {
	t := &r.sc.Topology
	var first [32]byte
	for i, n := range t.NodeNames() {
		info, ok := r.cl.LSDB(n)
		if !ok {
			return fmt.Errorf("node %s is down", n)
		}
		if info.Records != len(t.RoutingGroups) {
			return fmt.Errorf("node %s holds %d of %d records", n, info.Records, len(t.RoutingGroups))
		}
		if i == 0 {
			first = info.Digest
		} else if info.Digest != first {
			return fmt.Errorf("node %s: digest differs", n)
		}
	}
	for _, rg := range t.RoutingGroups {
		reach := t.reachable(rg.Name)
		for _, n := range rg.Nodes {
			for _, other := range t.RoutingGroups {
				if !reach[other.Name] {
					continue
				}
				for _, d := range other.Domains {
					if _, err := r.cl.Route(n.Name, d); err != nil {
						return fmt.Errorf("node %s has no route to %s: %w", n.Name, d, err)
					}
				}
			}
		}
	}
	return nil
}

// reachable lists the routing groups reachable from rg over connectors.
func (t *Topology) reachable(rg string) map[string]bool {
	seen := map[string]bool{rg: true}
	queue := []string{rg}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, c := range t.Connectors {
			if c.From == cur && !seen[c.To] {
				seen[c.To] = true
				queue = append(queue, c.To)
			}
		}
	}
	return seen
}

// loop plays the timeline and decides the time-bound assertions.
func (r *runner) loop(ctx context.Context) error {
	tick := time.NewTicker(r.opts.Poll)
	defer tick.Stop()
	next := 0
	hardStop := r.sc.Duration + r.lastDeadline() + 30*time.Second
	for {
		now := r.elapsed()
		for next < len(r.sc.Timeline) && r.sc.Timeline[next].At <= now {
			st := &r.sc.Timeline[next]
			at := r.elapsed()
			err := r.do(ctx, next, st)
			if err != nil {
				r.log.Warn("step failed", "step", st.describe(), "err", err)
			}
			r.steps = append(r.steps, stepRun{step: st, at: at, err: err})
			next++
		}
		r.timelineDone = next == len(r.sc.Timeline)
		now = r.elapsed()
		r.sample(now)
		done := next == len(r.sc.Timeline) && now >= r.sc.Duration && !r.isSending()
		for _, c := range r.checks {
			if !c.decided {
				r.evaluate(c, now)
			}
			if !c.decided && !c.atEnd() {
				done = false
			}
		}
		if done {
			return nil
		}
		if now > hardStop {
			for _, c := range r.checks {
				if !c.decided && !c.atEnd() {
					c.fail("undecided when the run was stopped at %v", round(now))
				}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("harness: %s: %w", r.sc.Name, ctx.Err())
		case <-tick.C:
		}
	}
}

func (r *runner) lastDeadline() time.Duration {
	var d time.Duration
	for _, a := range r.sc.Assert {
		switch {
		case a.DeliveredExactlyOnce != nil:
			d = max(d, a.DeliveredExactlyOnce.By)
		case a.LSDBConverged != nil:
			d = max(d, a.LSDBConverged.By)
		case a.Route != nil:
			d = max(d, a.Route.By)
		case a.MaxAdvertisements != nil:
			d = max(d, a.MaxAdvertisements.To)
		}
	}
	return d
}

// sample records whether the live nodes agree on the LSDB.
func (r *runner) sample(now time.Duration) {
	agree, digest := r.agreement()
	r.conv.add(now, agree, digest)
}

func (r *runner) agreement() (bool, [32]byte) {
	var first [32]byte
	live := 0
	for _, n := range r.sc.Topology.NodeNames() {
		info, ok := r.cl.LSDB(n)
		if !ok {
			continue
		}
		if live == 0 {
			first = info.Digest
		} else if info.Digest != first {
			return false, [32]byte{}
		}
		live++
	}
	return live > 0, first
}

func (r *runner) isSending() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sending > 0
}

func (r *runner) originated() map[string]uint64 {
	out := map[string]uint64{}
	for _, n := range r.sc.Topology.NodeNames() {
		out[n] = r.cl.Originated(n)
	}
	return out
}

// do carries out one step.
func (r *runner) do(ctx context.Context, idx int, st *Step) error {
	t := &r.sc.Topology
	f := r.cl.Faults()
	eachPair := func(l *LinkRef, fn func(a, b string)) {
		for _, p := range t.pairs(l) {
			fn(p[0], p[1])
		}
	}
	r.log.Info("step", "at", st.At, "action", st.describe())
	switch {
	case st.Cut != nil:
		eachPair(st.Cut, f.Cut)
	case st.Heal != nil:
		eachPair(st.Heal, f.Heal)
	case st.HealAll:
		f.HealAll()
	case st.Partition != nil:
		f.Partition(t.groupNodes(st.Partition.Groups[0]), t.groupNodes(st.Partition.Groups[1]))
	case st.Delay != nil:
		eachPair(&st.Delay.LinkRef, func(a, b string) { f.Delay(a, b, st.Delay.Latency) })
	case st.Drop != nil:
		eachPair(&st.Drop.LinkRef, func(a, b string) { f.Drop(a, b, st.Drop.Probability) })
	case st.Flap != nil:
		eachPair(&st.Flap.LinkRef, func(a, b string) { f.Flap(a, b, st.Flap.Period) })
	case st.Crash != "":
		return r.cl.Crash(st.Crash)
	case st.Restart != "":
		return r.cl.Restart(ctx, st.Restart)
	case st.DiskFull != "":
		return r.cl.SetDiskFull(ctx, st.DiskFull, true)
	case st.DiskFree != "":
		return r.cl.SetDiskFull(ctx, st.DiskFree, false)
	case st.SwapDisk != "":
		sw, ok := r.cl.(diskSwapper)
		if !ok {
			return fmt.Errorf("harness: swap_disk: this cluster cannot swap data directories")
		}
		return sw.SwapDisk(st.SwapDisk)
	case st.Drain != "" || st.Undrain != "":
		dr, ok := r.cl.(drainer)
		if !ok {
			return fmt.Errorf("harness: drain: this cluster cannot drain nodes")
		}
		if st.Drain != "" {
			return dr.SetDrain(st.Drain, true)
		}
		return dr.SetDrain(st.Undrain, false)
	case st.Send != nil:
		r.startSend(ctx, idx, st.Send)
	case st.RemoveRG != nil:
		return r.cl.RemoveRG(st.RemoveRG.Node, st.RemoveRG.RG)
	case st.Org != nil:
		oa, ok := r.cl.(orgApplier)
		if !ok {
			return fmt.Errorf("harness: org: this cluster cannot apply organisation documents")
		}
		return oa.ApplyOrg(st.Org)
	}
	return nil
}

// startSend paces Count messages at Rate per second on a goroutine of its
// own, so that faults keep happening while mail flows.
func (r *runner) startSend(ctx context.Context, idx int, s *SendSpec) {
	r.mu.Lock()
	r.sending++
	r.mu.Unlock()
	r.sendWG.Add(1)
	go func() {
		defer r.sendWG.Done()
		defer func() {
			r.mu.Lock()
			r.sending--
			r.mu.Unlock()
		}()
		begin := time.Now()
		interval := time.Duration(float64(time.Second) / s.Rate)
		fromRG, _ := r.sc.Topology.rgOf(s.From)
		sender := "sim@" + r.sc.Topology.rg(fromRG).Domains[0]
		for i := 0; i < s.Count; i++ {
			if wait := time.Until(begin.Add(time.Duration(i) * interval)); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			id := fmt.Sprintf("%s.%d.%d@harness.meshd.test", r.sc.Name, idx, i)
			m := Mail{MessageID: id, From: sender, To: s.To, Body: mailBody(id, sender, s.To, i)}
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := r.cl.Send(sctx, s.From, m)
			cancel()
			if err != nil {
				r.log.Debug("send refused", "qid", id, "sim_node", s.From, "err", err)
			}
			r.mu.Lock()
			r.sent = append(r.sent, sentMsg{id: id, from: s.From, to: s.To, accepted: err == nil})
			r.lastSent = r.elapsed()
			r.mu.Unlock()
		}
	}()
}

func mailBody(id, from, to string, seq int) []byte {
	return fmt.Appendf(nil, "Message-ID: <%s>\r\nFrom: <%s>\r\nTo: <%s>\r\nSubject: harness message %d\r\n"+
		"Date: %s\r\n\r\nmessage %d of a meshd harness run\r\n",
		id, from, to, seq, time.Now().UTC().Format(time.RFC1123Z), seq)
}

func (r *runner) sentSnapshot() []sentMsg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sent)
}

// finish decides the end-of-run assertions and fills the report.
func (r *runner) finish(rep *Report, eventsFrom int) {
	now := r.elapsed()
	counts, err := r.cl.Delivered()
	if err != nil {
		r.log.Warn("count deliveries", "err", err)
	}
	rep.Messages = tally(r.sentSnapshot(), counts)
	rep.Messages.AllDeliveredAt = r.allDelivered
	r.mu.Lock()
	rep.Messages.LastSentAt = r.lastSent
	r.mu.Unlock()
	for _, s := range r.sentSnapshot() {
		if t, ok := counts.At[s.id]; ok && s.accepted {
			rep.Messages.LastDeliveryAt = max(rep.Messages.LastDeliveryAt, t.Sub(r.start))
		}
	}
	if l, ok := r.cl.(locator); ok {
		for i, id := range rep.Messages.LostIDs {
			if where := l.Locate(id); len(where) > 0 {
				rep.Messages.LostIDs[i] = id + " (" + strings.Join(where, "; ") + ")"
			} else {
				rep.Messages.LostIDs[i] = id + " (in no live queue)"
			}
		}
	}

	adv := r.originated()
	rep.Advertisements = map[string]uint64{}
	for _, rg := range r.sc.Topology.RoutingGroups {
		var sum uint64
		for _, n := range rg.Nodes {
			sum += adv[n.Name] - r.baseAdv[n.Name]
		}
		rep.Advertisements[rg.Name] = sum
	}
	rep.Steps = r.stepReports(now, eventsFrom)
	for _, c := range r.checks {
		if !c.decided {
			r.decideAtEnd(c, now, rep)
		}
		rep.Assertions = append(rep.Assertions, c.result())
	}
	rep.Passed = true
	for _, a := range rep.Assertions {
		if !a.Passed {
			rep.Passed = false
		}
	}
	for _, s := range rep.Steps {
		if s.Error != "" {
			rep.Passed = false
			rep.Assertions = append(rep.Assertions, AssertionResult{Name: "step " + s.Action, Detail: s.Error})
		}
	}
}

func tally(sent []sentMsg, d Deliveries) MessageStats {
	var m MessageStats
	for _, s := range sent {
		m.Sent++
		n := d.Copies[s.id]
		if !s.accepted {
			m.Refused++
			if n > 0 {
				m.DeliveredRefused++
			}
			continue
		}
		m.Accepted++
		switch {
		case n == 0:
			if diag, ok := d.Bounced[s.id]; ok {
				m.Bounced++
				if len(m.BouncedIDs) < 10 {
					m.BouncedIDs = append(m.BouncedIDs, s.id+" ("+diag+")")
				}
				continue
			}
			m.Lost++
			if len(m.LostIDs) < 10 {
				m.LostIDs = append(m.LostIDs, s.id)
			}
		case n > 1 && d.External[s.id] == n && n-1 <= d.ReplyLost[s.id]:
			// Every copy left the organisation, and each extra one
			// followed a transaction its sender logged unanswered.
			m.DuplicatedReplyLost++
			m.Delivered++
		case n > 1:
			m.Duplicated++
			m.Delivered++
		default:
			m.Delivered++
		}
	}
	return m
}

func (r *runner) stepReports(end time.Duration, eventsFrom int) []StepReport {
	events := r.cl.Faults().Events()
	if eventsFrom <= len(events) {
		events = events[eventsFrom:]
	}
	var out []StepReport
	for i, s := range r.steps {
		sr := StepReport{At: s.at, Name: s.step.Name, Action: s.step.describe()}
		if s.err != nil {
			sr.Error = s.err.Error()
		}
		if s.step.Send == nil {
			to := end
			for _, later := range r.steps[i+1:] {
				if later.step.Send == nil {
					to = later.at
					break
				}
			}
			sr.Converged, sr.Note = r.conv.settle(s.at, to)
			sr.Events = r.eventsIn(events, s.at, to)
		}
		out = append(out, sr)
	}
	return out
}

func (r *runner) eventsIn(events []netemEvent, from, to time.Duration) []string {
	const maxEvents = 12
	var out []string
	skipped := 0
	for _, e := range events {
		at := e.Time.Sub(r.start)
		if at < from-50*time.Millisecond || at >= to-50*time.Millisecond {
			continue
		}
		if len(out) == maxEvents {
			skipped++
			continue
		}
		out = append(out, fmt.Sprintf("+%v %s", round(at), strings.TrimSpace(strings.SplitN(e.String(), " ", 2)[1])))
	}
	if skipped > 0 {
		out = append(out, fmt.Sprintf("... and %d more", skipped))
	}
	return out
}

// describe is a one-line form of a step for logs and reports.
func (st *Step) describe() string {
	link := func(l *LinkRef) string {
		switch {
		case l.Connector != "":
			return "connector " + l.Connector
		case l.Nodes != nil:
			return "link " + strings.Join(l.Nodes, "-")
		default:
			var g []string
			for _, x := range l.Groups {
				g = append(g, "["+strings.Join(x, ",")+"]")
			}
			return strings.Join(g, " | ")
		}
	}
	switch {
	case st.Cut != nil:
		return "cut " + link(st.Cut)
	case st.Heal != nil:
		return "heal " + link(st.Heal)
	case st.HealAll:
		return "heal all"
	case st.Partition != nil:
		return "partition " + link(st.Partition)
	case st.Delay != nil:
		return fmt.Sprintf("delay %s by %v", link(&st.Delay.LinkRef), st.Delay.Latency)
	case st.Drop != nil:
		return fmt.Sprintf("drop %s p=%g", link(&st.Drop.LinkRef), st.Drop.Probability)
	case st.Flap != nil:
		return fmt.Sprintf("flap %s every %v", link(&st.Flap.LinkRef), st.Flap.Period)
	case st.Crash != "":
		return "crash " + st.Crash
	case st.Restart != "":
		return "restart " + st.Restart
	case st.DiskFull != "":
		return "disk full on " + st.DiskFull
	case st.DiskFree != "":
		return "disk freed on " + st.DiskFree
	case st.SwapDisk != "":
		return "swap the data directory of " + st.SwapDisk
	case st.Drain != "":
		return "drain " + st.Drain
	case st.Undrain != "":
		return "undrain " + st.Undrain
	case st.Send != nil:
		return fmt.Sprintf("send %d from %s to %s at %g/s", st.Send.Count, st.Send.From, st.Send.To, st.Send.Rate)
	case st.RemoveRG != nil:
		return fmt.Sprintf("remove routing group %s through %s", st.RemoveRG.RG, st.RemoveRG.Node)
	case st.Org != nil:
		return fmt.Sprintf("apply an organisation document (%d connectors) at %s", len(st.Org.Connectors), st.Org.Node)
	}
	return "?"
}

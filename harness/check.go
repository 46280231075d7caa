package harness

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// check is one assertion being decided.
type check struct {
	a       *Assertion
	decided bool
	passed  bool
	detail  string

	lastScan  time.Duration
	quietFrom time.Duration // delivered: all found since
	lastPath  string
	advFrom   map[string]uint64
	advTo     map[string]uint64
}

// quietPeriod is how long every accepted message must stay delivered
// exactly once before delivered_exactly_once passes early, so that a
// late duplicate is still seen.
const quietPeriod = time.Second

func newCheck(a *Assertion) *check { return &check{a: a, quietFrom: -1} }

func (c *check) pass(format string, args ...any) {
	c.decided, c.passed, c.detail = true, true, fmt.Sprintf(format, args...)
}

func (c *check) fail(format string, args ...any) {
	c.decided, c.passed, c.detail = true, false, fmt.Sprintf(format, args...)
}

// atEnd: decided only once the run is over.
func (c *check) atEnd() bool {
	a := c.a
	return a.Convergence != nil || a.Refused != nil || a.NoLeak != nil || (a.MaxAdvertisements != nil && a.MaxAdvertisements.To == 0)
}

func (c *check) name() string {
	a := c.a
	switch {
	case a.DeliveredExactlyOnce != nil:
		return fmt.Sprintf("delivered exactly once by %v", a.DeliveredExactlyOnce.By)
	case a.LSDBConverged != nil:
		return fmt.Sprintf("LSDB digests equal by %v", a.LSDBConverged.By)
	case a.Route != nil:
		return fmt.Sprintf("route %s -> %s is %s in [%v, %v]", a.Route.From, a.Route.Domain,
			strings.Join(a.Route.Path, ">"), a.Route.After, a.Route.By)
	case a.MaxAdvertisements != nil:
		m := a.MaxAdvertisements
		scope := "all groups"
		if m.RG != "" {
			scope = m.RG
		}
		to := "end"
		if m.To > 0 {
			to = m.To.String()
		}
		return fmt.Sprintf("at most %d advertisements by %s in [%v, %s]", m.Max, scope, m.From, to)
	case a.Convergence != nil:
		return fmt.Sprintf("convergence after %s within %v", a.Convergence.Step, a.Convergence.Max)
	case a.Refused != nil:
		return fmt.Sprintf("at least %d messages refused", a.Refused.Min)
	case a.NoLeak != nil:
		return "no organisation mail delivered by an external connector"
	case a.Tombstone != nil:
		return fmt.Sprintf("tombstone of %s on every live node by %v", a.Tombstone.RG, a.Tombstone.By)
	case a.Bounced != nil:
		return fmt.Sprintf("at least %d accepted messages bounced by %v", a.Bounced.Min, a.Bounced.By)
	case a.Drained != nil:
		return fmt.Sprintf("%s drained (holds no mail) in [%v, %v]", a.Drained.Node, a.Drained.After, a.Drained.By)
	}
	return "?"
}

func (c *check) result() AssertionResult {
	return AssertionResult{Name: c.name(), Passed: c.passed, Detail: c.detail}
}

// evaluate advances a time-bound assertion at offset now.
func (r *runner) evaluate(c *check, now time.Duration) {
	a := c.a
	switch {
	case a.DeliveredExactlyOnce != nil:
		r.evalDelivered(c, now, a.DeliveredExactlyOnce.By)
	case a.LSDBConverged != nil:
		last := time.Duration(0)
		if n := len(r.sc.Timeline); n > 0 {
			last = r.sc.Timeline[n-1].At
		}
		// Agreement counts once the last step had time to take effect.
		if now >= last+time.Second && r.conv.stableFor(now, time.Second) {
			c.pass("every live node agrees since %v", round(r.conv.since))
		} else if now > a.LSDBConverged.By {
			c.fail("live nodes still disagree at %v", round(now))
		}
	case a.Route != nil:
		ra := a.Route
		if now < ra.After {
			return
		}
		path, err := r.cl.Route(ra.From, ra.Domain)
		got := strings.Join(path, ">")
		if err != nil {
			got = "error: " + err.Error()
		}
		if err == nil && got == strings.Join(ra.Path, ">") {
			c.pass("path %s at %v", got, round(now))
			return
		}
		c.lastPath = got
		if now > ra.By {
			c.fail("last seen %s at %v", c.lastPath, round(now))
		}
	case a.Tombstone != nil:
		var missing []string
		for _, n := range r.sc.Topology.NodeNames() {
			info, ok := r.cl.LSDB(n)
			if ok && !slices.Contains(info.Tombstones, a.Tombstone.RG) {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			c.pass("held everywhere at %v", round(now))
		} else if now > a.Tombstone.By {
			c.fail("not held by %s at %v", strings.Join(missing, ", "), round(now))
		}
	case a.Bounced != nil:
		if c.lastScan > 0 && now-c.lastScan < 100*time.Millisecond && now <= a.Bounced.By {
			return
		}
		c.lastScan = now
		d, err := r.cl.Delivered()
		if err != nil {
			return
		}
		m := tally(r.sentSnapshot(), d)
		if m.Bounced >= a.Bounced.Min {
			c.pass("%d of %d accepted messages bounced by %v", m.Bounced, m.Accepted, round(now))
		} else if now > a.Bounced.By {
			c.fail("%d of %d accepted messages bounced by %v (%d delivered)", m.Bounced, m.Accepted, a.Bounced.By, m.Delivered)
		}
	case a.Drained != nil:
		da := a.Drained
		if now < da.After {
			return
		}
		dr, ok := r.cl.(drainer)
		if !ok {
			c.fail("this cluster cannot drain nodes")
			return
		}
		done, state := dr.Drained(da.Node)
		if done {
			c.pass("%s at %v", state, round(now))
		} else if now > da.By {
			c.fail("%s at %v", state, round(now))
		}
	case a.MaxAdvertisements != nil:
		m := a.MaxAdvertisements
		if c.advFrom == nil && now >= m.From {
			c.advFrom = r.originated()
		}
		if m.To > 0 && c.advFrom != nil && now >= m.To {
			c.advTo = r.originated()
			r.decideAdvert(c)
		}
	}
}

func (r *runner) evalDelivered(c *check, now, by time.Duration) {
	if !r.timelineDone || r.isSending() {
		if now > by {
			c.fail("traffic still being sent at the deadline")
		}
		return
	}
	if c.lastScan > 0 && now-c.lastScan < 100*time.Millisecond && now <= by {
		return
	}
	c.lastScan = now
	counts, err := r.cl.Delivered()
	if err != nil {
		if now > by {
			c.fail("count deliveries: %v", err)
		}
		return
	}
	m := tally(r.sentSnapshot(), counts)
	if m.Accepted == 0 {
		c.fail("no message was accepted (%d sent, %d refused): nothing to deliver", m.Sent, m.Refused)
		return
	}
	if m.Duplicated > 0 {
		c.fail("%d of %d accepted messages delivered more than once", m.Duplicated, m.Accepted)
		return
	}
	if m.Lost == 0 && m.Bounced == 0 {
		if c.quietFrom < 0 {
			c.quietFrom = now
			if r.allDelivered == 0 {
				r.allDelivered = now
			}
		}
		if now-c.quietFrom >= quietPeriod || now > by {
			c.pass("%d of %d accepted messages delivered once (all by %v)", m.Delivered, m.Accepted, round(c.quietFrom))
		}
		return
	}
	c.quietFrom = -1
	r.allDelivered = 0
	if now > by {
		c.fail("%d of %d accepted messages lost and %d bounced by %v", m.Lost, m.Accepted, m.Bounced, by)
	}
}

func (r *runner) decideAdvert(c *check) {
	m := c.a.MaxAdvertisements
	if c.advFrom == nil {
		c.fail("window start %v not reached", m.From)
		return
	}
	var n uint64
	for _, rg := range r.sc.Topology.RoutingGroups {
		if m.RG != "" && rg.Name != m.RG {
			continue
		}
		for _, nd := range rg.Nodes {
			n += c.advTo[nd.Name] - c.advFrom[nd.Name]
		}
	}
	if n <= m.Max {
		c.pass("%d originated", n)
	} else {
		c.fail("%d originated, more than %d", n, m.Max)
	}
}

// decideAtEnd decides the assertions that look at the whole run.
func (r *runner) decideAtEnd(c *check, now time.Duration, rep *Report) {
	a := c.a
	switch {
	case a.MaxAdvertisements != nil:
		c.advTo = r.originated()
		r.decideAdvert(c)
	case a.Convergence != nil:
		for _, s := range rep.Steps {
			if s.Name != a.Convergence.Step {
				continue
			}
			switch {
			case s.Converged == nil:
				c.fail("no convergence measured (%s)", s.Note)
			case *s.Converged <= a.Convergence.Max:
				c.pass("converged in %v", round(*s.Converged))
			default:
				c.fail("converged in %v", round(*s.Converged))
			}
			return
		}
		c.fail("step %s did not run", a.Convergence.Step)
	case a.NoLeak != nil:
		d, err := r.cl.Delivered()
		if err != nil {
			c.fail("count deliveries: %v", err)
			return
		}
		var leaked []string
		for _, s := range r.sentSnapshot() {
			if _, org := r.sc.Topology.rgOfAddress(s.to); org && d.External[s.id] > 0 {
				leaked = append(leaked, s.id)
			}
		}
		if len(leaked) == 0 {
			c.pass("none of the organisation's messages reached a smarthost")
		} else {
			c.fail("%d organisation messages delivered to a smarthost, e.g. %s", len(leaked), leaked[0])
		}
	case a.Refused != nil:
		if rep.Messages.Refused >= a.Refused.Min {
			c.pass("%d refused", rep.Messages.Refused)
		} else {
			c.fail("%d refused", rep.Messages.Refused)
		}
	default:
		c.fail("undecided at %v", round(now))
	}
}

package harness

import "time"

// convSample is the LSDB agreement of the live nodes from At on.
type convSample struct {
	At     time.Duration
	Agree  bool
	Digest [32]byte
}

// convTracker keeps the changes of agreement seen by the sampler: a
// sample is stored only when agreement or the agreed digest changes.
type convTracker struct {
	samples []convSample
	cur     convSample
	since   time.Duration // cur unchanged since
}

func (c *convTracker) add(at time.Duration, agree bool, digest [32]byte) {
	if !agree {
		digest = [32]byte{}
	}
	if len(c.samples) > 0 && c.cur.Agree == agree && c.cur.Digest == digest {
		return
	}
	c.cur = convSample{At: at, Agree: agree, Digest: digest}
	c.since = at
	c.samples = append(c.samples, c.cur)
}

// stableFor reports whether the live nodes have agreed for at least d at now.
func (c *convTracker) stableFor(now, d time.Duration) bool {
	return len(c.samples) > 0 && c.cur.Agree && now-c.since >= d
}

// settle measures convergence after a fault at from, looking at changes
// before to (the next fault or the end of the run): the time of the last
// change in the window, when that change is to agreement. No change in the
// window means the fault did not reach the LSDB.
func (c *convTracker) settle(from, to time.Duration) (*time.Duration, string) {
	var last *convSample
	for i := range c.samples {
		s := &c.samples[i]
		if s.At >= from && s.At < to {
			last = s
		}
	}
	if last == nil {
		return nil, "LSDB unchanged"
	}
	if !last.Agree {
		return nil, "LSDB did not settle"
	}
	d := last.At - from
	return &d, ""
}

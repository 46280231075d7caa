package testkit

import (
	"testing"
	"time"
)

// maxTick is the longest pause between two polls: the first polls come
// quickly (most conditions hold within milliseconds), later ones back off
// so that an expensive condition (an HTTP request, a directory scan) does
// not spin.
const maxTick = 50 * time.Millisecond

// Eventually calls cond until it returns nil and returns how long that
// took. If within passes first, it fails t with what and the last error
// cond returned, so the message names the condition and why it did not
// hold. Inside a testing/synctest bubble the pauses are on the bubble's
// clock.
func Eventually(t testing.TB, within time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	return eventually(t, within, what, cond, time.Millisecond, maxTick)
}

// EventuallyEvery is Eventually polling every tick, without backing off:
// for a benchmark whose measure includes the pause between the condition
// coming true and the poll that sees it, which must then be the same in
// every build compared.
func EventuallyEvery(t testing.TB, tick, within time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	return eventually(t, within, what, cond, tick, tick)
}

// eventually polls cond, the pauses doubling from first up to most.
func eventually(t testing.TB, within time.Duration, what string, cond func() error, first, most time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	tick := first
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("%s: not within %v: %v", what, within, err)
			return 0
		}
		time.Sleep(min(tick, time.Until(deadline)))
		tick = min(2*tick, most)
	}
}

// Until is Eventually for a condition that gives no reason.
func Until(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return Eventually(t, within, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

// Poll reports whether cond held within the time given, for a caller that
// fails in its own words or checks that something does not happen.
func Poll(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	tick := time.Millisecond
	for {
		if cond() {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(min(tick, time.Until(deadline)))
		tick = min(2*tick, maxTick)
	}
}

type notYet struct{}

func (notYet) Error() string { return "condition still false" }

var errNotYet error = notYet{}

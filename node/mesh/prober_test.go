package mesh

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meshd/meshd/linkstate/channel"
)

// scriptedTarget is a bridgehead whose probes succeed or fail in the
// order of a script (the last entry repeats), answering on net.Pipe so
// that the prober runs inside a synctest bubble.
type scriptedTarget struct {
	mu     sync.Mutex
	script []bool
	dials  []time.Time // when each probe dialled, on the bubble's clock
	wg     sync.WaitGroup
}

func (s *scriptedTarget) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	s.mu.Lock()
	up := s.script[min(len(s.dials), len(s.script)-1)]
	s.dials = append(s.dials, time.Now())
	s.mu.Unlock()
	if !up {
		return nil, errors.New("connection refused")
	}
	client, server := net.Pipe()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer server.Close()
		if _, err := server.Write([]byte("220 b1.test ESMTP\r\n")); err != nil {
			return
		}
		_, _ = bufio.NewReader(server).ReadString('\n') // QUIT
	}()
	return client, nil
}

func (s *scriptedTarget) dialTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.dials...)
}

// TestProberHysteresis drives the failure detector with the default
// timers (down pairs probed every 1s, up pairs every 5-10s, two glitch
// retries 50-100ms apart, up after two successes) on the bubble's clock: a
// single failed probe is a glitch and no transition; three in a row mark
// the pair down; a down pair comes up only after two consecutive
// successes, a failure in between starting the count again.
func TestProberHysteresis(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		target := &scriptedTarget{script: []bool{
			true,        // 0: first probe: up, reported as the first result
			false, true, // 1-2: keepalive fails, the first glitch retry succeeds
			false, false, false, // 3-5: keepalive and both retries fail: down
			true, false, // 6-7: down: one success, then a failure resets the count
			true, true, // 8-9: two successes: up
			true,
		}}
		defer target.wg.Wait()
		m := &Mesh{cfg: Config{
			Node:       "a1",
			Connectors: []Connector{{Name: "ab", To: "rgb", Targets: []string{"b1:25"}}},
			Probe:      ProbeConfig{Interval: time.Second, Keepalive: 10 * time.Second, Timeout: 2 * time.Second, GlitchRetries: 2, GlitchDelay: 50 * time.Millisecond, UpAfter: 2},
			Dial:       target.dial,
			Now:        time.Now,
		}}
		p := newProber(m)
		var mu sync.Mutex
		var obs []channel.Observation
		p.observe = func(o channel.Observation) { mu.Lock(); obs = append(obs, o); mu.Unlock() }
		start := time.Now()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); p.run(ctx) }()
		time.Sleep(time.Minute)
		cancel()
		<-done

		mu.Lock()
		defer mu.Unlock()
		var ups []bool
		for _, o := range obs {
			ups = append(ups, o.Up)
		}
		if len(ups) != 3 || !ups[0] || ups[1] || !ups[2] {
			t.Fatalf("transitions %v, want up (first result), down, up", ups)
		}
		d := target.dialTimes()
		if len(d) < 11 {
			t.Fatalf("%d probes in a minute", len(d))
		}
		gap := func(i int) time.Duration { return d[i].Sub(d[i-1]) }
		if first := d[0].Sub(start); first < 500*time.Millisecond || first >= time.Second {
			t.Errorf("first probe after %v, want within [0.5s, 1s) (jittered Interval)", first)
		}
		if g := gap(1); g < 5*time.Second || g >= 10*time.Second {
			t.Errorf("keepalive probe %v after the first, want [5s, 10s)", g)
		}
		for _, i := range []int{2, 4, 5} {
			if g := gap(i); g < 50*time.Millisecond || g > 100*time.Millisecond {
				t.Errorf("glitch retry %d came %v after the failure, want [50ms, 100ms]", i, g)
			}
		}
		for _, i := range []int{6, 7, 8, 9} {
			if g := gap(i); g != time.Second {
				t.Errorf("probe %d of the down pair %v after the last, want the 1s Interval", i, g)
			}
		}
		if !obs[1].At.Equal(d[5]) || !obs[2].At.Equal(d[9]) {
			t.Errorf("transitions at %v and %v, want at probes 5 (%v) and 9 (%v)", obs[1].At, obs[2].At, d[5], d[9])
		}
	})
}

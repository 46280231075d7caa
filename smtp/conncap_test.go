package smtp

import "testing"

// TestServerConnsPerListener: limits.max_connections bounds a listener's
// connections from every address together, and the refusal is counted.
func TestServerConnsPerListener(t *testing.T) {
	srv := startServer(t, &fakeSink{}, func(c *ServerConfig) { c.Limits.MaxConns, c.Limits.MaxConnsPerIP = 2, 10 })
	a, b := dialWire(t, srv.Addr().String()), dialWire(t, srv.Addr().String())
	a.expect("220")
	b.expect("220")
	c := dialWire(t, srv.Addr().String())
	c.expect("421 4.7.0 Too many connections, try again later")
	c.expectClosed()
	if st := srv.ConnStats(); st.RefusedListener != 1 || st.Open != 2 || st.RefusedPerIP != 0 {
		t.Fatalf("stats %+v", st)
	}
	a.cmd("QUIT", "221")
	a.expectClosed()
	waitFor(t, "slot to free", func() bool { return srv.ConnStats().Open < 2 })
	d := dialWire(t, srv.Addr().String())
	d.expect("220")
}

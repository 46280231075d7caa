// Package testkit is what meshd's tests share instead of copying: a test
// organisation with node and host certificates issued by the real pki
// package, golden files rewritten by one -update flag, a bounded poll
// (Eventually) whose failure names the condition, and fake SMTP peers on
// loopback (a scripted one and a recording sink) for tests that play the
// other side of a session themselves.
//
// Data flow: a test builds what it needs (NewCA → CA.Node / CA.Host for
// TLS; NewScript or NewSink for a peer), runs the code under test against
// it, then reads back what the peer received or compares output with
// Golden. Everything a kit value starts is stopped by t.Cleanup.
//
// Tests that run real external tools (swaks, Postfix, openssl) keep them:
// the peers here replace only hand-written fakes.
package testkit

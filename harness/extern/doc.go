// Package extern finds and runs the external programs that meshd's integration tests talk to:
// swaks and python3 (clients), dnsmasq (a real DNS server for MX lookups) and Postfix's test
// tools smtp-sink, smtp-source and the daemon directory holding smtpd.
//
// None of these ship with Go. scripts/install-deps installs them: swaks (with the Perl TLS
// modules its STARTTLS needs), dnsmasq-base and python3 from Debian, and Postfix unpacked (not installed as a service) into <repo>/.deps/postfix, or
// into $MESHD_POSTFIX_DIR when that is set; then it checks each for the capability the tests use. Every lookup in this package returns a *MissingError
// that names scripts/install-deps when a program is absent.
//
// Tests use the Require* helpers and the Start* helpers, which fail the test when a program is
// missing. A missing tool is never a silent skip: only when the environment variable
// MESHD_SKIP_EXTERN=1 is set (by a developer, locally) do they call t.Skip instead.
//
//	dns := extern.StartDNSMasq(t, extern.Local("example.test"),
//		extern.MX("example.test", "mx1.example.test", 10),
//		extern.Host("mx1.example.test", "127.0.0.2"))
//	// query dns.Addr ("127.0.0.1:PORT", UDP and TCP)
//
//	sink := extern.StartSMTPSink(t, "", extern.SinkOptions{})
//	// deliver to sink.Addr, then:
//	msgs := sink.WaitMessages(t, 1, 10*time.Second)
//
// Every process started here is killed in t.Cleanup; its output is logged when the test failed.
// Postfix binaries keep RUNPATH /usr/lib/postfix, so they are run with LD_LIBRARY_PATH pointing
// at the unpacked copy (see Postfix.Env).
package extern

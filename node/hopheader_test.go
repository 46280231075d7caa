package node

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/meshd/meshd/internal/testkit"
	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/mesh"
)

// exitMesh is a chain of three routing groups of one node each, rga (a1),
// rgb (b1) and rgc (c1), where rgc leaves the mesh for far.test through an
// external connector to remote (a smarthost): mail from a1 out of the mesh
// makes a hop from the node it entered at and one from a node it reached
// by a hop. Clients on loopback may relay.
func exitMesh(t *testing.T, remote *remoteMTA) *testMesh {
	tm := newTestMeshWith(t, map[string][]string{"rga": {"a1"}, "rgb": {"b1"}, "rgc": {"c1"}},
		[]meshLink{{"ab", "rga", "rgb", 10}, {"ba", "rgb", "rga", 10}, {"bc", "rgb", "rgc", 10}, {"cb", "rgc", "rgb", 10}},
		func(c *config.Config) {
			c.Relay.AllowNetworks = []string{"127.0.0.1"}
			if c.Node.RoutingGroup == "rgc" {
				c.Connectors = append(c.Connectors, mesh.Connector{Name: "out", Cost: 1, Smarthost: remote.addr.String(),
					AddressSpaces: []linkstate.AddressSpace{{Pattern: "far.test", Cost: 1}}})
			}
		})
	poll(t, 20*time.Second, "LSDB convergence", tm.converged)
	poll(t, 10*time.Second, "route to far.test", tm.pathIs("a1", "far.test", "rga>rgb>rgc"))
	return tm
}

// hopMessage is what the client sends to a1 in the hop-header tests.
const hopMessage = "From: alice@rga.test\r\nTo: carol@rgc.test, x@far.test, bounce@far.test\r\n" +
	"Message-ID: <hop@test>\r\nSubject: hop headers\r\n\r\nbody line\r\n.leading dot\r\n"

// TestHopHeadersGolden: a message from a client of a1 for a mailbox of
// rgc, an address out of the mesh through rgc's smarthost and one the
// smarthost refuses carries, where it ends, the header fields it carried
// before the hop's header was kept apart from the stored body, in the same
// order (testdata/hop-headers.golden, written by the code before), but for
// the X-Meshd-* fields, which never leave the organisation: the copy in
// c1's Maildir (its X-Meshd-ID and the trace), the message at the
// smarthost and the original the failure DSN returns to a1's mailbox over
// two hops (neither with any X-Meshd-* field).
func TestHopHeadersGolden(t *testing.T) {
	remote := startRemote(t, func(rcpt string, _ int) error {
		if strings.HasPrefix(rcpt, "bounce@") {
			return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	})
	tm := exitMesh(t, remote)
	if err := send(tm.nodes["a1"].SMTPAddr(), "alice@rga.test", []string{"carol@rgc.test", "x@far.test", "bounce@far.test"}, hopMessage); err != nil {
		t.Fatal(err)
	}
	poll(t, 20*time.Second, "copy at c1, message at the smarthost, DSN at a1", func() error {
		switch {
		case tm.delivered("rgc")["<hop@test>"] != 1:
			return fmt.Errorf("no copy in rgc")
		case len(remote.received()) != 1:
			return fmt.Errorf("%d messages at the smarthost", len(remote.received()))
		case len(mailbox(t, tm.nodes["a1"].cfg, "alice@rga.test")) != 1:
			return fmt.Errorf("no DSN for alice")
		}
		return nil
	})
	var out strings.Builder
	out.WriteString("== c1 Maildir, carol@rgc.test\n")
	out.WriteString(headerFields(readOneMessage(t, tm, "rgc", "<hop@test>")))
	out.WriteString("== smarthost, x@far.test\n")
	out.WriteString(headerFields(remote.received()[0].Body))
	dsn := mailbox(t, tm.nodes["a1"].cfg, "alice@rga.test")[0]
	i := strings.Index(dsn, "message/rfc822")
	if i < 0 {
		t.Fatalf("DSN returns no message:\n%s", dsn)
	}
	j := strings.Index(dsn[i:], "\r\n\r\n")
	out.WriteString("== DSN at a1\n")
	out.WriteString(headerFields(dsn))
	out.WriteString("== DSN at a1, the message returned\n")
	out.WriteString(headerFields(dsn[i+j+4:]))
	testkit.Golden(t, "testdata/hop-headers.golden", []byte(out.String()))
}

var (
	goldenDate = regexp.MustCompile(`[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}`)
	goldenID   = regexp.MustCompile(`\b[a-z2-7]{26}\b`)
	goldenPort = regexp.MustCompile(`127\.0\.0\.1([:.])\d+`)
	goldenHex  = regexp.MustCompile(`\b[0-9a-f]{20,}\b`)
	goldenAge  = regexp.MustCompile(`(X-Meshd-Age: )\S+`) // the copy's age in the mesh (docs/shadow.md)
)

// headerFields lists the header fields of msg, one a line, unfolded, with
// dates, mesh IDs, hex digests and ports replaced by placeholders.
func headerFields(msg string) string {
	hdr, _, _ := strings.Cut(strings.ReplaceAll(msg, "\r\n", "\n"), "\n\n")
	hdr = strings.ReplaceAll(strings.ReplaceAll(hdr, "\n\t", " "), "\n ", " ")
	hdr = goldenDate.ReplaceAllString(hdr, "<date>")
	hdr = goldenAge.ReplaceAllString(hdr, "${1}<age>")
	hdr = goldenID.ReplaceAllString(hdr, "<id>")
	hdr = goldenHex.ReplaceAllString(hdr, "<hex>")
	hdr = goldenPort.ReplaceAllString(hdr, "127.0.0.1${1}<port>")
	return hdr + "\n"
}

package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/meshd/meshd/node/adminapi"
)

// TestPrintMembersUnverified: meshctl members lists gossip members that
// have not proven their name apart, with the reason, and never as master.
func TestPrintMembersUnverified(t *testing.T) {
	var b bytes.Buffer
	printMembers(&b, adminapi.Members{Node: "a1", RG: "rga", Master: "a1",
		Members: []adminapi.Member{{Name: "a1", Master: true, Priority: 1}},
		Unverified: []adminapi.Member{{Name: "zz-rogue", Priority: 1 << 30, LinkState: "127.0.0.1:9",
			Reason: "mesh: verify member zz-rogue at 127.0.0.1:9: tls: first record does not look like a TLS handshake"}}})
	out := b.String()
	for _, want := range []string{"1 live members, master a1", "1 UNVERIFIED gossip members", "zz-rogue", "first record does not look like a TLS handshake"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	printMembers(&b, adminapi.Members{Node: "a1", RG: "rga", Master: "a1", Members: []adminapi.Member{{Name: "a1", Master: true}}})
	if strings.Contains(b.String(), "UNVERIFIED") {
		t.Errorf("no unverified members, yet:\n%s", b.String())
	}
}

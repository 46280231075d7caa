package node

import (
	"github.com/meshd/meshd/node/mesh"
	"github.com/meshd/meshd/node/org"
	"github.com/meshd/meshd/orgdoc"
)

// applyOrg puts a new organisation document (node/org) in force while the
// node runs: the keyring holds the groups and keys it names (and forgets
// the others), the node's local domains (what it accepts and delivers)
// become the file's and its group's in the document, and the mesh takes
// the connectors, costs, bridgeheads, address spaces, TTL and priority.
// It runs under the reload lock, so a reload of the local file and a new
// document never interleave.
func (n *Node) applyOrg(s *orgdoc.Signed) {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	next := org.Next(*n.live.Load(), &s.Doc)
	if err := next.Validate(); err != nil {
		n.org.NotApplied()
		n.log.Error("organisation document not applied: with this node's file it makes no valid configuration", "version", s.Doc.Version, "err", err)
		return
	}
	if n.keyring != nil {
		// The keyring becomes the document's: groups and keys it no
		// longer names are forgotten at once, not at the next start.
		kr, err := next.Keyring()
		if err != nil {
			n.org.NotApplied()
			n.log.Error("organisation document not applied: its keys make no keyring with this node's file", "version", s.Doc.Version, "err", err)
			return
		}
		n.keyring.Replace(kr)
	}
	if n.mesh != nil {
		n.mesh.SetTopology(mesh.Topology{Connectors: next.Connectors, LocalSpaces: next.LocalSpaces(),
			TTL: next.Mesh.TTL, Refresh: next.Mesh.Refresh, Priority: next.Mesh.Priority})
	}
	n.policy.SetLocal(next.LocalDomains)
	n.live.Store(&next)
	n.log.Info("organisation document applied", "version", s.Doc.Version, "count", len(next.Connectors))
}

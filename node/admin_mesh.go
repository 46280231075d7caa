package node

// LinkStateAddr is the advertised address of the node's port-691
// listener (as its routing group's gossip carries it), "" when
// standalone or before Start.
func (n *Node) LinkStateAddr() string {
	if n.mesh == nil {
		return ""
	}
	for _, m := range n.mesh.View().Members {
		if m.Name == n.cfg.Node.Name {
			return m.LinkState
		}
	}
	return ""
}

// Package holds is the node's side of mesh hops in doubt (a copy sent in
// full whose reply was lost; node/delivery/hopdoubt.go decides what to do
// with the answer): Asker locates the node behind a mesh SMTP address in
// the LSDB and asks its port-691 listener whether its queue holds the copy
// (delivery.Doubts), and HoldsAt asks the same of many copies for the
// shadow watcher and the group check of suspect copies (docs/shadow.md);
// Answer serves the question for this node's queue.
//
//	delivery ─Holds(doubt)─▶ Asker ─channel.Holds (port 691, mutual TLS naming the node)─▶ peer
//	peer's request ─▶ channel server ─mesh.Config.Holds─▶ Answer ─▶ queue.Holds (synced state)
package holds

// Package identity holds the node's certificates: the one its public
// listeners offer (tls.*: LoadTLS, a file pair or a self-signed
// certificate kept in data_dir/tls), and its mesh identity (mesh.identity:
// Node, over package pki), which gives every mesh channel its TLS and
// decides who is an authenticated mesh peer.
//
//	mesh listener ─ServerTLS─┐              ┌─ Peer(addr, TLS state): smtp.ServerConfig.MeshPeer
//	xlink, track ─ClientTLS──┤              ├─ ChannelPeer: port-691 identify
//	gossip member ─MemberTLS─┼─ Node (pki) ─┤
//	holds request ─HoldsTLS──┘              └─ Mesh.KnowsNode, Org.Names, Addresses (relay policy)
//
// Every refused certificate is counted in meshd_mesh_tls_peers_refused_total
// by channel: a refusal is what a man in the middle looks like. Without an
// identity (mesh.insecure_plaintext) Peer decides by address, through the
// relay policy.
package identity

// Package relay is the node's relay policy, the smtp.Policy of its
// listeners: mail for a local domain (local_domains, or a domain a
// routing group of the mesh delivers) is accepted from anyone; mail for
// any other domain only from an authenticated submission client, a mesh
// peer or a relay.allow_networks address (550 5.7.1 otherwise). RFC 5321
// §3.6 leaves relaying to local policy; an open relay is never the
// default.
//
//	smtp.Server ──CheckRcpt(session, rcpt)──▶ Policy
//	                                            ├─ IsLocal: local_domains (SetLocal: a new organisation document)
//	                                            ├─ Mesh.OwnsDomain: the organisation's other groups
//	                                            └─ AuthUser, MeshPeer, allow_networks
//
// The same addresses decide who is a mesh peer when the mesh runs without
// identities (mesh.insecure_plaintext): IsMeshPeer, InMeshPeers.
package relay

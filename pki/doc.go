// Package pki is the organisation's certificate authority and the identity
// every node proves with it.
//
// `meshd org init` creates an organisation directory (CA) with the CA's
// certificate and key, the org key that signs link-state records and the
// gossip key that encrypts every routing group's gossip. `meshd org issue`
// signs a node certificate naming the node and its routing group in one URI
// SAN, meshd://RG/NODE (see ParseIdentityURI); the certificate is good for
// both TLS server and client authentication, so one file serves every
// node-to-node channel in both directions.
//
// A node loads a Trust (one or more CA certificates: during a CA rollover
// the old and the new CA are trusted together) and its own certificate
// (re-read when the file changes, so a renewal needs no restart), and
// builds the TLS configurations of its mesh channels from it:
// ServerConfig requires and verifies a client certificate, ClientConfig
// verifies the server's chain against the CAs and hands the peer's
// Identity to a check (the LSDB: is it a member of that routing group, a
// bridgehead of that connector?). The peer is who its verified
// certificate says; host names and addresses play no part.
package pki

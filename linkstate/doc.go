// Package linkstate holds the link-state records of meshd's routing groups
// (RGs), their canonical encoding and signatures, the link-state database
// (LSDB) every node keeps, and the logic that turns bridgehead observations
// into the connector state a record advertises. It has no network code:
// the mesh protocols (port-691 channel, X-LINK2STATE over SMTP) move the
// bytes it produces, and package routing reads its snapshots.
//
// # Types
//
//   - Record: the state of one RG as its master originated it: versions
//     (Epoch, Major, Minor, User), master, IssuedAt and TTL, Members,
//     Connectors (with per-bridgehead-pair state, damping and bridge
//     flags), AddressSpaces, and a signature. A Tombstone record deletes
//     an RG.
//   - EncodeRecord / DecodeRecord: the canonical binary encoding,
//     documented byte by byte in PROTOCOL.md. Lists are sorted by the
//     encoder and must be sorted for the decoder, every length and count
//     has a limit, and one record has exactly one encoding.
//   - Keyring: the keys of the configuration: Ed25519 public keys bound to
//     RGs, our own RG's private key, the org-wide HMAC key (simple mode).
//     Sign and Verify; failures are typed (ErrUnsigned, ErrBadSignature,
//     ErrUnknownRG, ErrUnknownKey).
//   - LSDB: one record per RG. Install verifies, compares versions (equal
//     version, different bytes: the higher content hash wins everywhere),
//     and publishes an immutable Snapshot by atomic pointer swap; Expire
//     ages records out at IssuedAt+TTL (tombstones at IssuedAt+2×TTL);
//     Subscribe reports which RGs changed.
//   - Snapshot: what readers use, lock-free: Records (live, sorted by RG),
//     Get, Lookup, Encoded, Summaries, Digest.
//   - Summary, EncodeSummaries / DecodeSummaries, Diff: the (RG, version,
//     tombstone, hash) lists two nodes exchange, and which records each
//     side must then send. Digest is SHA-256 over the summary list.
//   - ConnectorState, Damper, Bridges: a master's view of one of its
//     connectors. Observations of bridgehead pairs pass through hysteresis
//     (N successes and a hold time before up); the connector is up when a
//     pair is up; each up/down transition feeds RFC 2439-style flap
//     damping; a connector that Bridges finds to be the only path between
//     its ends is always advertised up.
//
// # Data flow
//
// On a master: failure detection calls ConnectorState.Observe; when the
// advertised state changes the master builds a new Record version
// (ConnectorState.Apply fills each connector, Bridges over the current
// Snapshot decides the bridge flag), signs it with Keyring.Sign and
// installs it in its own LSDB; it reissues the record when NeedsRefresh.
//
// On every node: the protocols compare Snapshot.Digest with a peer's,
// exchange Summaries, Diff them, send Snapshot.Encoded for the RGs Diff
// names, and hand what they receive to LSDB.InstallEncoded. A
// Subscription wakes route computation, which reads Snapshot.Records. A
// timer driven by LSDB.NextExpiry calls Expire.
package linkstate

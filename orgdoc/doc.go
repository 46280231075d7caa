// Package orgdoc is the organisation document: the one description of an
// organisation's routing topology (routing groups with their domains,
// public keys and nodes; connectors between them with costs, bridgeheads
// and address spaces; org-wide link-state settings) that every node of the
// mesh applies, instead of each node's file repeating it.
//
// Data flows one way:
//
//	org.yaml --Parse--> Document --Sign(CA key)--> Signed --Encode--> bytes (flooded)
//	bytes --Decode--> Signed --Verify(trusted CAs)--> Store (data dir, with history)
//
// Parse reads the operator's YAML; every refusal names the key and its
// line (Error). Validate checks the references (bridgeheads belong to
// their groups, connectors are not repeated, ...). Sign signs the
// canonical encoding with the organisation's CA key on the operator's
// machine: the CA key never needs to live on a node. Nodes Verify with the
// CA certificates they already trust for mutual TLS (old and new together
// during a CA rollover). Decode reads untrusted bytes: it accepts only the
// canonical encoding (Encode of what it decoded gives the same bytes),
// at most MaxEncoded bytes, and a document that validates.
//
// A Document has a Version: a node takes a document only when its version
// is above the one it holds (Store.Put), so an old copy can never come
// back. Store keeps every version it took, for `meshctl org history|diff`.
package orgdoc

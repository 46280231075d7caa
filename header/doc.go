// Package header reads and rewrites the header section of a message as it
// travels (RFC 5322 §2.2): the value of one field, the end of the header
// section, and copies without some fields. It never parses more than the
// header section and never allocates when nothing is to be dropped.
//
//	body ──End──▶ header section │ content (untouched)
//	       │
//	       ├─ Value(name): first field called name, unfolded, trimmed
//	       ├─ Strip(names...): fields called one of names dropped
//	       └─ StripPrefix(prefix): fields whose name starts with prefix dropped
//	                              (the mesh's X-Meshd-* from an outsider)
//
// Field names compare in ASCII only (FoldEqual, ContainsFold): a name with a
// byte outside ASCII (U+017F long s, the Kelvin sign) is never taken for an
// ASCII one, so a look-alike cannot pass for a trust header.
package header

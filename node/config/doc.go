// Package config is the configuration of one meshd node: the YAML file
// that docs/config.md documents key by key.
//
// Config is the whole file; Default returns it with every default filled
// in, and Parse and Load decode a file over it:
//
//	YAML ──checkNode (check.go)──▶ unknown key / wrong type: "config: line 4: queue.retry.intial: unknown key"
//	     ──yaml.v3 decode over Default()──▶ Config
//	     ──Validate──▶ bad value: "config: limits.max_recipients: must be 1..10000, got 0"
//	                   derived values filled in (hostname, helo_name, maildir, token file)
//
// A validated Config is complete. Sections that configure a library are
// that library's own type, with its defaults from the library's Default…()
// constructor (smtp.DefaultLimits, queue.DefaultBackoff,
// mesh.DefaultTimers, mesh.DefaultProbeConfig, linkstate.DefaultDamping;
// connectors are mesh.Connector), so the node hands them on as they are
// and every default is written once. Only the keys and signatures of the
// mesh are converted (Keyring, LocalSpaces, DeclaredDomains, CopyIDKey).
// Keys lists every dotted key of the schema, so a test keeps docs/config.md
// complete. The package imports no part of the node, so every package of
// the node can import it.
package config

// Package status shows an operator the mesh as one node sees it: the
// topology of routing groups and connectors drawn with live states, the
// bridgehead pairs behind each connector, flap-damping penalties, and the
// per-next-hop queues.
//
// The node mounts the handler from NewHandler on its admin listener and
// adapts itself to the small Source interface; this package imports the
// link-state and membership types but never package node.
//
// Data flows one way, on every request:
//
//	Source ──► Build ──► Status ──► GET /status.json, GET / (html/template)
//	Source.Snapshot() ──► Graph (DOT text) ──► GET /graph.dot
//	                           └──► RenderSVG (go-graphviz) ──► GET /graph.svg, inline in GET /
//
// Graph is deterministic: records, connectors, members and pairs are sorted
// before they are written, so the same link-state database gives the same
// DOT bytes on every node (golden files under testdata pin the format).
// Each routing group is one box (name, master, version, members, address
// spaces); each connector is one edge labelled with its name and cost and
// coloured by state (see State); external connectors end at an "internet"
// node (delivery by DNS MX) or at a node per smarthost.
//
// SVG rendering uses github.com/goccy/go-graphviz, Graphviz compiled to
// WebAssembly and run by wazero, so no C toolchain or dot binary is needed.
// That library drives one process-wide WebAssembly instance, so every
// rendering in the process is serialised, and it keeps some memory per
// rendering, so the handler renders again only when the drawn DOT text
// changes; damping penalties, which decay all the time, are listed in the
// connector table rather than drawn (see RenderSVG).
//
// The HTML page has no external assets; a small inline script re-fetches
// status.json and graph.svg every two seconds. All its links are relative,
// so the handler works under a prefix (http.StripPrefix("/status", h) with
// the page at /status/).
package status

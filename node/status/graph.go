package status

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/meshd/meshd/linkstate"
)

// GraphOptions adjusts what Graph draws. The zero value draws the plain
// topology with a legend.
type GraphOptions struct {
	// LocalRG is highlighted (the routing group of the node drawing it).
	LocalRG string
	// Admin holds operator overrides ("down" or "drain") per connector.
	Admin map[linkstate.ConnectorKey]string
	// Penalties holds flap-damping penalties per connector; they are
	// printed on the edge when above zero.
	Penalties map[linkstate.ConnectorKey]float64
	// NoLegend leaves the legend out.
	NoLegend bool
}

// Graph returns the Graphviz DOT text of the topology in records: one box
// per routing group, one edge per connector coloured by state, external
// connectors as edges to an "internet" node (DNS MX) or a smarthost node,
// and a legend. The output depends only on its arguments: equal inputs
// give equal bytes.
func Graph(records []*linkstate.Record, opts GraphOptions) []byte {
	recs := sortedRecords(records)
	known := make(map[string]bool, len(recs))
	for _, r := range recs {
		known[r.RG] = true
	}
	var b bytes.Buffer
	b.WriteString("digraph meshd {\n")
	b.WriteString("\tgraph [rankdir=LR, fontname=\"Helvetica\", fontsize=11, nodesep=0.5, ranksep=1.1, bgcolor=\"white\", pad=0.2];\n")
	b.WriteString("\tnode [fontname=\"Helvetica\", fontsize=10];\n")
	b.WriteString("\tedge [fontname=\"Helvetica\", fontsize=9, penwidth=2];\n")

	for _, r := range recs {
		writeRG(&b, r, r.RG == opts.LocalRG)
	}
	ghosts, ext := outsideNodes(recs, known)
	for _, rg := range ghosts {
		fmt.Fprintf(&b, "\t%s [shape=box, style=\"rounded,dashed\", color=\"#999999\", fontcolor=\"#666666\", label=%s];\n",
			quote(rgNodeID(rg)), quote(rg+"\nno record"))
	}
	for _, id := range ext {
		label := "internet\n(DNS MX)"
		if id != internetID {
			label = "smarthost\n" + strings.TrimPrefix(id, smarthostPrefix)
		}
		fmt.Fprintf(&b, "\t%s [shape=ellipse, style=filled, fillcolor=\"#eeeeee\", color=\"#888888\", label=%s];\n", quote(id), quote(label))
	}
	for _, r := range recs {
		for _, c := range sortedConnectors(r) {
			writeConnector(&b, c, opts)
		}
	}
	if !opts.NoLegend {
		writeLegend(&b)
	}
	b.WriteString("}\n")
	return b.Bytes()
}

const (
	internetID      = "ext:internet"
	smarthostPrefix = "ext:smarthost:"
)

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

func rgNodeID(rg string) string { return "rg:" + rg }

// extNodeID is the node an external connector ends at.
func extNodeID(c *linkstate.Connector) string {
	if c.Smarthost == "" {
		return internetID
	}
	return smarthostPrefix + c.Smarthost
}

// outsideNodes returns the RGs that connectors point at but that have no
// record, and the external endpoints, both sorted and without repeats.
func outsideNodes(recs []*linkstate.Record, known map[string]bool) (ghosts, ext []string) {
	for _, r := range recs {
		for i := range r.Connectors {
			c := &r.Connectors[i]
			switch {
			case c.To == "":
				ext = append(ext, extNodeID(c))
			case !known[c.To]:
				ghosts = append(ghosts, c.To)
			}
		}
	}
	slices.Sort(ghosts)
	slices.Sort(ext)
	return slices.Compact(ghosts), slices.Compact(ext)
}

func writeRG(b *bytes.Buffer, r *linkstate.Record, local bool) {
	lines := []string{r.RG, "master " + orDash(r.Master), "version " + FormatVersion(r.Version)}
	members := make([]string, len(r.Members))
	for i, m := range r.Members {
		members[i] = m.Name
	}
	slices.Sort(members)
	lines = append(lines, "members "+orDash(strings.Join(members, ", ")))
	if as := formatSpaces(r.AddressSpaces); as != "" {
		lines = append(lines, "domains "+as)
	}
	fill, pen := "#f4f6fb", "1"
	if local {
		fill, pen = "#dfeafc", "2.5"
	}
	fmt.Fprintf(b, "\t%s [shape=box, style=\"rounded,filled\", fillcolor=%s, color=\"#34495e\", penwidth=%s, label=%s];\n",
		quote(rgNodeID(r.RG)), quote(fill), pen, quote(strings.Join(lines, "\n")))
}

func writeConnector(b *bytes.Buffer, c *linkstate.Connector, opts GraphOptions) {
	key := linkstate.ConnectorKey{From: c.From, ID: c.ID}
	st := ConnectorState(c, opts.Admin[key])
	lines := []string{c.ID + "  cost " + itoa(c.Cost)}
	if st != StateUp {
		lines = append(lines, string(st))
	}
	if c.Bridge {
		lines = append(lines, "bridge")
	}
	if p := opts.Penalties[key]; p > 0 {
		lines = append(lines, "penalty "+strconv.FormatFloat(p, 'f', 0, 64))
	}
	to := rgNodeID(c.To)
	if c.To == "" {
		to = extNodeID(c)
		if as := formatSpaces(c.AddressSpaces); as != "" {
			lines = append(lines, as)
		}
	}
	pen := "2"
	if c.Bridge {
		pen = "3.5"
	}
	fmt.Fprintf(b, "\t%s -> %s [id=%s, class=%s, color=%s, fontcolor=%s, style=%s, penwidth=%s, label=%s];\n",
		quote(rgNodeID(c.From)), quote(to), quote("conn-"+c.From+"-"+c.ID), quote("conn state-"+string(st)),
		quote(st.Color()), quote(st.Color()), quote(st.lineStyle()), pen, quote(strings.Join(lines, "\n")))
}

// writeLegend draws the legend as one small node: a colour swatch and a
// name per state (the line styles are named in the text).
func writeLegend(b *bytes.Buffer) {
	b.WriteString("\t\"legend\" [shape=plaintext, fontsize=9, label=<<table border=\"1\" color=\"#bbbbbb\" cellborder=\"0\" cellspacing=\"2\" cellpadding=\"1\">")
	b.WriteString("<tr><td colspan=\"2\"><b>legend</b></td></tr>")
	for _, st := range allStates() {
		fmt.Fprintf(b, "<tr><td bgcolor=\"%s\" width=\"22\" height=\"4\" fixedsize=\"true\"></td><td align=\"left\">%s</td></tr>",
			st.Color(), legendText(st))
	}
	b.WriteString("<tr><td bgcolor=\"#555555\" width=\"22\" height=\"7\" fixedsize=\"true\"></td><td align=\"left\">thick: bridge (only path)</td></tr>")
	b.WriteString("</table>>];\n")
}

func legendText(st State) string {
	switch st {
	case StateDown:
		return "down (dashed)"
	case StateSuppressed:
		return "suppressed by flap damping (dashed)"
	case StateHeld:
		return "held: bridge with all pairs down (bold)"
	case StateDrain:
		return "drain: last resort (dotted)"
	}
	return string(st)
}

// FormatVersion writes a version as Epoch.Major.Minor.User.
func FormatVersion(v linkstate.Version) string {
	return fmt.Sprintf("%d.%d.%d.%d", v.Epoch, v.Major, v.Minor, v.User)
}

// formatSpaces lists address spaces sorted by pattern, each with its cost.
func formatSpaces(spaces []linkstate.AddressSpace) string {
	return strings.Join(spaceList(spaces), ", ")
}

func sortedRecords(records []*linkstate.Record) []*linkstate.Record {
	recs := make([]*linkstate.Record, 0, len(records))
	for _, r := range records {
		if r != nil && !r.Tombstone {
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(a, b *linkstate.Record) int { return cmp.Compare(a.RG, b.RG) })
	return recs
}

func sortedConnectors(r *linkstate.Record) []*linkstate.Connector {
	cs := make([]*linkstate.Connector, len(r.Connectors))
	for i := range r.Connectors {
		cs[i] = &r.Connectors[i]
	}
	slices.SortFunc(cs, func(a, b *linkstate.Connector) int { return cmp.Compare(a.ID, b.ID) })
	return cs
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// quote writes s as a DOT double-quoted string. Newlines become the
// centred line break "\n"; quotes and backslashes are escaped so a name
// can never end the string or inject an escape sequence.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

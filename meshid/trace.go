package meshid

import "strings"

// MaxVisits is how often a message may enter one routing group. Once is
// the rule; a second time is allowed because a route can change under a
// message in transit (a connector fails after the message left a group,
// and the way forward now leads back through it). A third entry is a loop
// (554 5.4.6), whatever the link state says.
const MaxVisits = 2

// Visits counts the entries of rg in a trace.
func Visits(trace []string, rg string) int {
	n := 0
	for _, t := range trace {
		if t == rg {
			n++
		}
	}
	return n
}

// ParseTrace reads an X-Meshd-Trace value, "rg1, rg2", into its routing
// group names (lower-cased, empty entries dropped).
func ParseTrace(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.ToLower(strings.TrimSpace(f)); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// FormatTrace is the X-Meshd-Trace value of a trace.
func FormatTrace(trace []string) string { return strings.Join(trace, ", ") }

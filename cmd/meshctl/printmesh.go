package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/routing"
)

func newTab(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// fmtSeconds prints a duration in seconds the short way: 42s, 3m10s, 1h0m.
func fmtSeconds(s float64) string {
	d := time.Duration(s * float64(time.Second)).Round(time.Second)
	switch {
	case d >= time.Hour:
		return strings.TrimSuffix(d.Truncate(time.Minute).String(), "0s")
	default:
		return d.String()
	}
}

func printMembers(w io.Writer, v adminapi.Members) {
	fmt.Fprintf(w, "routing group %s seen from %s: %d live members, master %s\n", v.RG, v.Node, len(v.Members), dash(v.Master))
	tw := newTab(w)
	fmt.Fprintln(tw, "NAME\tMASTER\tPRIORITY\tMESH SMTP\tLINKSTATE\tGOSSIP")
	for _, m := range v.Members {
		master := "-"
		if m.Master {
			master = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", m.Name, master, m.Priority, m.SMTP, m.LinkState, m.Gossip)
	}
	_ = tw.Flush()
	var draining []string
	for _, m := range v.Members {
		if m.Draining {
			draining = append(draining, m.Name)
		}
	}
	if len(draining) > 0 {
		fmt.Fprintf(w, "draining: %s (takes no new mail and hands its queue to the other members)\n", strings.Join(draining, ", "))
	}
	if len(v.Unverified) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%d UNVERIFIED gossip members (no node certificate of %s proves their name; never master, never sent mail):\n", len(v.Unverified), v.RG)
	tw = newTab(w)
	fmt.Fprintln(tw, "NAME\tPRIORITY\tMESH SMTP\tLINKSTATE\tGOSSIP\tREASON")
	for _, m := range v.Unverified {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", m.Name, m.Priority, m.SMTP, m.LinkState, m.Gossip, m.Reason)
	}
	_ = tw.Flush()
}

func printLSDB(w io.Writer, v adminapi.LSDB) {
	where := v.Node + " (" + v.RG + ")"
	if v.Source != "" {
		where = v.Source + " over the link-state channel"
	}
	digest := v.Digest
	if len(digest) > 16 {
		digest = digest[:16]
	}
	fmt.Fprintf(w, "LSDB at %s: %d records, digest %s\n\n", where, len(v.Records), dash(digest))
	tw := newTab(w)
	fmt.Fprintln(tw, "RG\tVERSION\tMASTER\tAGE\tTTL\tMEMBERS\tADDRESS SPACES")
	for _, r := range v.Records {
		var members, spaces []string
		for _, m := range r.Members {
			members = append(members, m.Name)
		}
		for _, a := range r.AddressSpaces {
			spaces = append(spaces, a.Pattern+" ("+strconv.FormatUint(uint64(a.Cost), 10)+")")
		}
		version := r.Version
		if r.Tombstone {
			version += " (deleted)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.RG, version, r.Master, fmtSeconds(r.AgeSeconds), fmtSeconds(r.TTLSeconds),
			dash(strings.Join(members, ", ")), dash(strings.Join(spaces, ", ")))
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = newTab(w)
	fmt.Fprintln(tw, "CONNECTOR\tFROM\tTO\tCOST\tSTATE\tFLAGS\tPENALTY\tBRIDGEHEAD PAIRS")
	for _, r := range v.Records {
		for _, c := range r.Connectors {
			to := c.To
			if to == "" {
				to = "external"
				if c.Smarthost != "" {
					to += " " + c.Smarthost
				}
			}
			state := "down"
			if c.Up {
				state = "up"
			}
			var flags []string
			if c.Suppressed {
				flags = append(flags, "suppressed")
			}
			if c.Bridge {
				flags = append(flags, "bridge")
			}
			if c.Admin != "" {
				flags = append(flags, "admin "+c.Admin)
			}
			penalty := "-"
			if c.Penalty != nil {
				penalty = strconv.FormatFloat(*c.Penalty, 'f', 0, 64)
			}
			pairs := pairList(c.Pairs)
			if len(pairs) == 0 {
				pairs = []string{"-"}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", c.ID, c.From, to, c.Cost, state,
				dash(strings.Join(flags, ",")), penalty, pairs[0])
			for _, p := range pairs[1:] {
				fmt.Fprintf(tw, "\t\t\t\t\t\t\t%s\n", p)
			}
		}
	}
	_ = tw.Flush()
}

func pairList(pairs []adminapi.Pair) []string {
	var out []string
	for _, p := range pairs {
		st := "down"
		if p.Up {
			st = "up"
		}
		out = append(out, p.Source+" -> "+p.Target+" "+st)
	}
	return out
}

func printRoutes(w io.Writer, v adminapi.Routes) {
	fmt.Fprintf(w, "routes at %s (%s)\n\n", v.Node, v.RG)
	tw := newTab(w)
	fmt.Fprintln(tw, "RG\tREACHABLE\tCOST\tFIRST HOPS\tPATH")
	for _, r := range v.RGs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", r.RG, yesNo(r.Reachable), r.Cost, firstHops(r.FirstHops), dash(strings.Join(r.Path, " -> ")))
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = newTab(w)
	fmt.Fprintln(tw, "ADDRESS SPACE\tRG\tEXIT\tUP\tREACHABLE\tCOST (PATH+SPACE)\tFIRST HOPS")
	for _, r := range v.Routes {
		rg := r.RG
		if r.Owner != "" {
			rg += " (" + r.Owner + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d (%d+%d)\t%s\n", r.AddressSpace, rg, dash(r.Exit), yesNo(r.Up), yesNo(r.Reachable),
			r.TotalCost, r.PathCost, r.AddressSpaceCost, firstHops(r.FirstHops))
	}
	_ = tw.Flush()
}

func firstHops(hops []routing.FirstHop) string {
	var out []string
	for _, h := range hops {
		out = append(out, h.Connector+" -> "+h.To)
	}
	return dash(strings.Join(out, ", "))
}

func printTrack(w io.Writer, v adminapi.TrackResult) {
	fmt.Fprintf(w, "message %s: %d events\n", v.Key, len(v.Events))
	tw := newTab(w)
	fmt.Fprintln(tw, "TIME\tNODE\tRG\tEVENT\tID\tDETAIL")
	for _, e := range v.Events {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format("15:04:05.000"), e.Node, e.RG, e.Event, e.ID, trackDetail(e))
	}
	_ = tw.Flush()
	for _, u := range v.Unreachable {
		fmt.Fprintf(w, "not answering: %s\n", u)
	}
}

func trackDetail(e adminapi.TrackEvent) string {
	rcpts := strings.Join(e.Rcpts, ", ")
	switch e.Event {
	case "received":
		s := fmt.Sprintf("from %s via %s", e.Client, e.Source)
		if e.MessageID != "" {
			s += " <" + e.MessageID + ">"
		}
		return s + " " + sender(e.From) + " -> " + rcpts
	case "relayed":
		s := "to " + dash(e.NextHop) + " " + e.Addr
		if e.Connector != "" {
			s += " over " + e.Connector
		}
		return s + " as " + e.CopyID + " for " + rcpts
	case "dsn":
		return e.Kind + " DSN " + e.DSNID + " to " + sender(rcpts)
	}
	return e.Kind + " " + rcpts + ": " + e.Reply
}

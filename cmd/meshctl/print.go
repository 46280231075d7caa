package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meshd/meshd/node/adminapi"
)

const timeLayout = "2006-01-02 15:04:05Z07:00"

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(timeLayout)
}

func sender(from string) string {
	if from == "" {
		return "<>"
	}
	return from
}

// fmtSize prints bytes with a binary unit.
func fmtSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fK", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func printStatus(w io.Writer, st adminapi.StatusInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "node\t%s\n", st.Node)
	fmt.Fprintf(tw, "routing group\t%s\n", st.RoutingGroup)
	fmt.Fprintf(tw, "hostname\t%s\n", st.Hostname)
	fmt.Fprintf(tw, "local domains\t%s\n", strings.Join(st.LocalDomains, ", "))
	names := make([]string, 0, len(st.Listeners))
	for k := range st.Listeners {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		fmt.Fprintf(tw, "listen %s\t%s\n", k, st.Listeners[k])
	}
	fmt.Fprintf(tw, "queue\t%d messages, %s\n", st.Queue.Messages, fmtSize(st.Queue.Bytes))
	fmt.Fprintf(tw, "oldest\t%s\n", fmtTime(st.Queue.Oldest))
	if st.Build != nil {
		fmt.Fprintf(tw, "version\t%s\n", *st.Build)
	}
	_ = tw.Flush()
}

func printQueue(w io.Writer, msgs []adminapi.MessageInfo) {
	if len(msgs) == 0 {
		fmt.Fprintln(w, "queue is empty")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRECEIVED\tFROM\tRCPTS\tSIZE\tSTATE\tNEXT ATTEMPT\tLAST ERROR")
	for _, m := range msgs {
		pending, lastErr := 0, ""
		for _, r := range m.Recipients {
			if r.State == "pending" {
				pending++
				if r.LastError != "" && lastErr == "" {
					lastErr = r.LastError
				}
			}
		}
		state := "active"
		if m.Held {
			state = "held"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", m.ID, fmtTime(&m.ReceivedAt), sender(m.From),
			pending, len(m.Recipients), fmtSize(m.Size), state, fmtTime(m.NextAttempt), truncate(lastErr, 60))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d messages\n", len(msgs))
}

func printMessage(w io.Writer, m adminapi.MessageInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%s\n", m.ID)
	fmt.Fprintf(tw, "from\t%s\n", sender(m.From))
	fmt.Fprintf(tw, "received\t%s\n", fmtTime(&m.ReceivedAt))
	fmt.Fprintf(tw, "size\t%s (%d bytes)\n", fmtSize(m.Size), m.Size)
	fmt.Fprintf(tw, "source\t%s\n", m.Source)
	if m.ClientAddr != "" {
		fmt.Fprintf(tw, "client\t%s\n", m.ClientAddr)
	}
	if m.AuthUser != "" {
		fmt.Fprintf(tw, "auth user\t%s\n", m.AuthUser)
	}
	if m.EnvID != "" || m.Ret != "" {
		fmt.Fprintf(tw, "dsn\tenvid=%s ret=%s\n", m.EnvID, m.Ret)
	}
	if len(m.Trace) > 0 {
		fmt.Fprintf(tw, "trace\t%s\n", strings.Join(m.Trace, ", "))
	}
	fmt.Fprintf(tw, "held\t%t\n", m.Held)
	fmt.Fprintf(tw, "delay dsn sent\t%t\n", m.DelayNotified)
	fmt.Fprintf(tw, "next attempt\t%s\n", fmtTime(m.NextAttempt))
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RECIPIENT\tSTATE\tATTEMPTS\tLAST ATTEMPT\tNEXT ATTEMPT\tLAST REPLY")
	for _, r := range m.Recipients {
		reply := r.LastError
		if r.LastReply != "" {
			reply = r.LastReply
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", r.Addr, r.State, r.Attempts, fmtTime(r.LastAttempt), fmtTime(r.NextAttempt), truncate(reply, 70))
	}
	_ = tw.Flush()
}

func printShadows(w io.Writer, l adminapi.ShadowList) {
	fmt.Fprintf(w, "%d shadows, %s of %s (%d hand-offs not shadowed for want of space)\n",
		l.Count, fmtSize(l.Bytes), fmtSize(l.Max), l.Skipped)
	if len(l.Shadows) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COPY ID\tMESSAGE\tPEER\tFROM\tRCPTS\tSIZE\tHANDED AT\tEXPIRES")
	for _, s := range l.Shadows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", s.CopyID, s.MessageID, s.Peer, sender(s.From),
			len(s.Rcpts), fmtSize(s.Size), fmtTime(&s.HandedAt), fmtTime(&s.Expires))
	}
	_ = tw.Flush()
}

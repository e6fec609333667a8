package trace

import (
	"fmt"
	"io"
	"net/netip"
	"strings"

	"synprobe/probe"
)

// WriteText writes the trace as TRACE.md's text form: per probe family
// its hops with what each quote first shows, then the findings with where
// they were made, then what could not be seen.
func (r *Result) WriteText(w io.Writer) {
	fmt.Fprintf(w, "synprobe trace %s (from %s", r.Target, r.Source)
	if r.Via != "" {
		fmt.Fprintf(w, ", via %s", r.Via)
	}
	fmt.Fprintf(w, ", %.0f ms)\n", r.DurationMS)
	for _, p := range r.Probes {
		if p.Family == FamilyAlt && quiet(p) {
			fmt.Fprintf(w, "probe alt to port %d: %s\n", p.Port, altSummary(p))
			continue
		}
		fmt.Fprintf(w, "probe %s: %s\n", p.Family, p.Sent)
		fmt.Fprintf(w, " hop  %-15s %-9s %-11s %s\n", "from", "rtt", "quote", "changes (first seen here)")
		for i := 0; i < len(p.Hops); i++ {
			h := p.Hops[i]
			// A run of three or more silent TTLs is one line.
			j := i
			for j+1 < len(p.Hops) && silent(p.Hops[j+1]) && silent(h) {
				j++
			}
			if j-i >= 2 {
				fmt.Fprintf(w, " %3d-%d  *  no answer\n", h.TTL, p.Hops[j].TTL)
				i = j
				continue
			}
			fmt.Fprintf(w, " %3d  %-15s %-9s %-11s %s\n", h.TTL, addrString(h.From), rttString(h), quoteString(h), hopChanges(p, h))
			for _, n := range h.Notes {
				fmt.Fprintf(w, "      note: %s\n", n)
			}
		}
	}
	fmt.Fprintln(w, "findings")
	if len(r.Findings) == 0 {
		reached := false
		for _, p := range r.Probes {
			reached = reached || p.Destination != nil
		}
		if reached {
			fmt.Fprintln(w, "  PASS  no change, drop or interception seen")
		} else {
			fmt.Fprintln(w, "  PASS  no change seen as far as quotes reach (the target did not answer)")
		}
	}
	for _, f := range r.Findings {
		ev := strings.Join(f.Evidence, "; ")
		fmt.Fprintf(w, "  %-5s %-22s %s %s (%s)\n", strings.ToUpper(string(f.Verdict)), f.Kind, ev, whereString(f), strings.Join(f.Probes, ", "))
	}
	for _, c := range r.Coverage {
		fmt.Fprintf(w, "coverage: %s\n", c)
	}
	fmt.Fprintf(w, "verdict: %s\n", r.Verdict)
}

func silent(h Hop) bool { return h.Reply == "none" && len(h.Notes) == 0 }

// quiet: the alt walk showed nothing worth its own table.
func quiet(p Probe) bool {
	for _, h := range p.Hops {
		if len(h.Changes) > 0 || len(h.Notes) > 0 {
			return false
		}
	}
	return true
}

func altSummary(p Probe) string {
	d := p.Destination
	if d == nil {
		return fmt.Sprintf("no answer from the host up to TTL %d", lastHop(p))
	}
	for _, h := range p.Hops {
		if h.TTL == d.Hop {
			return fmt.Sprintf("hop %d %s %s, ttl %d", d.Hop, addrString(h.From), d.Reply, d.IPTTL)
		}
	}
	return fmt.Sprintf("hop %d %s, ttl %d", d.Hop, d.Reply, d.IPTTL)
}

func lastHop(p Probe) int {
	if len(p.Hops) == 0 {
		return 0
	}
	return p.Hops[len(p.Hops)-1].TTL
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "*"
	}
	return a.String()
}

func rttString(h Hop) string {
	if h.Reply == "none" {
		return ""
	}
	return fmt.Sprintf("%.2f ms", h.RTTus/1000)
}

func quoteString(h Hop) string {
	switch {
	case h.Quote != nil:
		return fmt.Sprintf("%s %d B", h.Quote.Class, h.Quote.Bytes)
	case h.Reply == "none":
		return "*"
	}
	return h.Reply
}

func hopChanges(p Probe, h Hop) string {
	if h.Quote == nil {
		if d := p.Destination; d != nil && h.TTL == d.Hop && len(d.Inferences) > 0 {
			return "answer: " + d.Inferences[0]
		}
		if h.Reply != "none" && h.Reply != "time-exceeded" {
			return ""
		}
		return ""
	}
	if len(h.Changes) == 0 {
		return "none"
	}
	var parts []string
	for _, c := range h.Changes {
		parts = append(parts, changeString(c))
	}
	return strings.Join(parts, "; ")
}

func changeString(c Change) string {
	switch c.Kind {
	case Removed, NOPReplaced:
		return fmt.Sprintf("%s %s (%s)", c.Field, c.Sent, c.Kind)
	case Added:
		return fmt.Sprintf("%s added: %s", c.Field, c.Got)
	}
	return fmt.Sprintf("%s %s -> %s", c.Field, trimOpt(c.Sent), trimOpt(c.Got))
}

// trimOpt drops an option's name from its value: "mss 1460" -> "1460".
func trimOpt(s string) string {
	for _, name := range []string{"mss ", "wscale "} {
		if strings.HasPrefix(s, name) {
			return strings.TrimPrefix(s, name)
		}
	}
	return s
}

func whereString(f Finding) string {
	w := f.Where
	addr := func(i int) string {
		if i < len(w.Between) && w.Between[i].IsValid() {
			return " " + w.Between[i].String()
		}
		return ""
	}
	hop := func(n int, i int) string {
		if n == 0 {
			return "this host" + addr(i)
		}
		return fmt.Sprintf("hop %d%s", n, addr(i))
	}
	switch {
	case w.Reverse:
		return "on the way back (between the target and this host; seen by the reflector)"
	case w.Blind:
		return fmt.Sprintf("after %s (blind)", hop(w.AfterHop, 0))
	case f.Kind == TerminatingProxy || f.Kind == SYNProxy:
		return "at " + hop(w.AtHop, 1)
	case w.AtHop == 0:
		return "somewhere on the path"
	}
	if w.Reflector {
		return fmt.Sprintf("after %s, before the target%s (seen by the reflector)", hop(w.AfterHop, 0), addr(1))
	}
	return fmt.Sprintf("between %s and %s", hop(w.AfterHop, 0), hop(w.AtHop, 1))
}

var _ = probe.QuoteFull

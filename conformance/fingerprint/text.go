package fingerprint

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"synprobe/internal/plural"
)

// WriteText writes the fingerprint as a compact section of the text report:
// one line per aspect, values with units, "?" and the reason where a value
// is missing.
func (f *Fingerprint) WriteText(w io.Writer) {
	var b strings.Builder
	fmt.Fprintf(&b, "stack fingerprint (%s, %s)\n", fmtMS(f.DurationMS), plural.N(f.SYNs, "SYN", "SYNs"))
	line := func(name, format string, args ...any) {
		fmt.Fprintf(&b, "  %-14s %s\n", name, fmt.Sprintf(format, args...))
	}

	line("ttl", "%s", f.TTL.text())
	line("df", "%s", f.DF.text())
	line("ip id", "%s", f.IPID.text())
	line("syn-ack", "%s", f.SYNACK.text())
	line("nmap ops", "%s", orWhy(f.Nmap.OPS, ""))
	line("nmap win", "%s", orWhy(f.Nmap.WIN, ""))
	line("isn", "%s", f.ISN.text())
	line("timestamps", "%s", f.Timestamps.text())
	line("ecn", "%s", f.ECN.text())
	line("sack", "%s", f.SACK.text())
	line("fast open", "%s", f.FastOpen.text())
	line("syn-ack rtx", "%s", f.Retransmission.text())
	line("syn cookies", "%s", f.SYNCookies.text())
	line("challenge ack", "%s", f.ChallengeACK.text())
	for _, n := range f.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	// The report writer checks its own writer's errors.
	_, _ = io.WriteString(w, b.String())
}

func orWhy(s, why string) string {
	if s != "" {
		return s
	}
	if why == "" {
		return "?"
	}
	return "? (" + why + ")"
}

func yesNo(p *bool) string {
	switch {
	case p == nil:
		return "?"
	case *p:
		return "yes"
	}
	return "no"
}

func withWhy(s, why string) string {
	if why == "" {
		return s
	}
	return s + " (" + why + ")"
}

func (t TTL) text() string {
	s := "?"
	if t.SYNACK != nil {
		s = fmt.Sprintf("%d on the SYN-ACK: initial %d, %s", *t.SYNACK, *t.Initial, plural.N(*t.Hops, "hop", "hops"))
	}
	if t.RST != nil {
		s += fmt.Sprintf("; %d on a RST (initial %d)", *t.RST, *t.RSTInitial)
	}
	return withWhy(s, t.Why)
}

func (d DF) text() string {
	if d.SYNACK == nil && d.RST == nil {
		return orWhy("", d.Why)
	}
	return withWhy(fmt.Sprintf("SYN-ACK %s, RST %s", yesNo(d.SYNACK), yesNo(d.RST)), d.Why)
}

func (s IPIDSeries) text() string {
	switch s.Behaviour {
	case "":
		return orWhy("", s.Why)
	case IPIDIncrementing:
		if s.StepMin == s.StepMax {
			return fmt.Sprintf("incrementing by %d", s.StepMin)
		}
		return fmt.Sprintf("incrementing by %d..%d", s.StepMin, s.StepMax)
	case IPIDConstant:
		return fmt.Sprintf("constant %#04x", s.Values[0])
	}
	return s.Behaviour
}

func (i IPID) text() string {
	if i.Why != "" {
		return "? (" + i.Why + ")"
	}
	return fmt.Sprintf("SYN-ACKs %s; RSTs %s; in a connection %s", i.SYNACK.text(), i.RST.text(), i.Connection.text())
}

func (s SYNACK) text() string {
	if s.Window == nil {
		return orWhy("", s.Why)
	}
	ws := "none"
	if s.WScale != nil {
		ws = fmt.Sprint(*s.WScale)
	} else if s.WScaleWhy != "" {
		ws = "? (" + s.WScaleWhy + ")"
	}
	mss := "none"
	if s.MSS != nil {
		mss = fmt.Sprint(*s.MSS)
	}
	mss = withWhy(mss, s.MSSWhy)
	return fmt.Sprintf("window %d, window scale %s, mss %s; options %s", *s.Window, ws, mss, s.NmapOptions)
}

func (i ISN) text() string {
	o, a := i.OneTuple, i.Adjacent
	var parts []string
	switch {
	case o.RateHz != nil:
		parts = append(parts, "one 4-tuple "+fmtHz(*o.RateHz))
	default:
		parts = append(parts, orWhy("", "one 4-tuple: "+o.Why))
	}
	if a.RandomBits != nil {
		parts = append(parts, fmt.Sprintf("adjacent ports ~%.0f random bits, GCD %d", *a.RandomBits, *a.GCD))
	} else {
		parts = append(parts, orWhy("", "adjacent ports: "+a.Why))
	}
	return strings.Join(parts, "; ")
}

func fmtHz(hz float64) string {
	switch a := math.Abs(hz); {
	case a >= 1e6:
		return fmt.Sprintf("%.2f MHz", hz/1e6)
	case a >= 1e4:
		return fmt.Sprintf("%.1f kHz", hz/1e3)
	case a >= 100:
		return fmt.Sprintf("%.0f Hz", hz)
	}
	return strconv.FormatFloat(math.Round(hz*10)/10, 'f', -1, 64) + " Hz"
}

func (t Timestamps) text() string {
	if t.RateHz == nil {
		return orWhy("", t.Why)
	}
	s := fmtHz(*t.RateHz)
	if n := fmtHz(t.NominalHz); t.NominalHz != 0 && n != s {
		s = fmt.Sprintf("%s (measured %s)", n, s)
	}
	if t.UptimeS != nil {
		s += ", implied uptime " + fmtUptime(*t.UptimeS) + " (less any offset per host pair)"
	}
	switch {
	case t.PerTupleOffsets == nil:
	case *t.PerTupleOffsets:
		s += fmt.Sprintf("; a clock offset per 4-tuple (%d compared)", t.Compared)
	default:
		s += fmt.Sprintf("; one clock for %d other 4-tuples", t.Compared)
	}
	if t.UptimeWhy != "" && t.UptimeS == nil {
		s += " (uptime: " + t.UptimeWhy + ")"
	}
	if t.TSecrWrong > 0 {
		s += fmt.Sprintf("; TSecr wrong on %d of %s (%s)", t.TSecrWrong, plural.N(t.TSecrChecked, "SYN-ACK", "SYN-ACKs"), t.TSecrExample)
	}
	return s
}

func fmtUptime(s float64) string {
	d := time.Duration(s) * time.Second
	days := int(d.Hours()) / 24
	if days > 0 {
		return fmt.Sprintf("%dd%dh", days, int(d.Hours())%24)
	}
	return d.String()
}

func (s Support) text() string {
	if s.Supported == nil {
		return orWhy("", s.Why)
	}
	return yesNo(s.Supported) + ": " + s.Detail
}

func (r Retransmission) text() string {
	if r.AtMS == nil {
		return orWhy("", r.Why)
	}
	if len(r.AtMS) == 0 {
		return fmt.Sprintf("none within %s", fmtMS(r.WaitedMS))
	}
	var at []string
	for _, ms := range r.AtMS {
		at = append(at, fmtMS(ms))
	}
	return fmt.Sprintf("at %s after the first (watched %s)", strings.Join(at, ", "), fmtMS(r.WaitedMS))
}

func (c SYNCookies) text() string {
	if c.InUse == nil {
		return orWhy("", c.Why)
	}
	return yesNo(c.InUse) + ": " + strings.Join(c.Evidence, "; ")
}

func (c ChallengeACK) text() string {
	if c.Summary == "" {
		return orWhy("", c.Why)
	}
	return c.Summary
}

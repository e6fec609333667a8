package report

import (
	"fmt"
	"io"
	"strings"

	"synprobe/internal/plural"
)

// TextOptions shape the text report.
type TextOptions struct {
	// Steps shows every step of every result (--verbose).
	Steps bool
	// Passes lists passing results, one line each. Without it the report
	// is a summary: counts, then only what did not pass.
	Passes bool
	// Color marks verdicts with ANSI colours (for terminals only).
	Color bool
	// Fingerprint, if set, writes the fingerprint section.
	Fingerprint func(w io.Writer, fp any)
}

// WriteText writes rep for people: the header, the fingerprint if any, the
// counts per verdict, then the results. A result that failed, warned or
// erred shows the step that decided it and why (in packetdrill's words for
// scripts); with Steps, every step of every result is shown.
func WriteText(w io.Writer, rep *Report, opt TextOptions) error {
	var b strings.Builder
	b.WriteString(header(rep))
	if a, ok := rep.Application.(interface{ Summary() string }); ok {
		fmt.Fprintf(&b, "application: %s\n", a.Summary())
	}
	// The path check's section: what it found, lines starting "path:".
	if p, ok := rep.Path.(interface{ Text() string }); ok {
		b.WriteString(p.Text())
	}
	b.WriteByte('\n')
	if rep.Fingerprint != nil && opt.Fingerprint != nil {
		var fb strings.Builder
		opt.Fingerprint(&fb, rep.Fingerprint)
		b.WriteString(fb.String())
		b.WriteByte('\n')
	}
	listAll := opt.Passes || opt.Steps
	if !listAll && len(rep.Results) > 1 {
		fmt.Fprintf(&b, "%s: %s\n\n", plural.N(len(rep.Results), "result", "results"), rep.Summary.Counts())
	}
	for _, r := range rep.Results {
		if r.Verdict == Pass && !listAll {
			continue
		}
		writeResult(&b, r, opt)
	}
	writeSummary(&b, rep, opt)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeResult writes one result: a line, then (for one that did not pass,
// or with Steps) the step that decided it or every step.
func writeResult(b *strings.Builder, r Result, opt TextOptions) {
	bad := r.Verdict == Fail || r.Verdict == Error || r.Verdict == Warn
	fmt.Fprintf(b, "%s %s", verdictTag(r.Verdict, opt.Color), r.Name)
	if r.Level != "" || r.RFC != "" {
		fmt.Fprintf(b, " [%s]", strings.TrimSpace(r.Level+" "+rfcLabel(r.RFC)))
	}
	fmt.Fprintf(b, " (%s)", ms(r.DurationMS))
	if r.Reason != "" && r.Verdict != Pass {
		fmt.Fprintf(b, ": %s", r.Reason)
	}
	if r.Cause != "" && r.Verdict != Pass {
		fmt.Fprintf(b, " [cause %s]", r.Cause)
	}
	b.WriteByte('\n')
	switch {
	case opt.Steps:
		if bad {
			writePacketdrill(b, r)
		}
		writeSteps(b, r, opt.Color)
	case bad && !writePacketdrill(b, r):
		writeSteps(b, deciding(r), opt.Color)
	}
}

// writeSummary writes the end of a text report: what was left out, the
// counts and the notes.
func writeSummary(b *strings.Builder, rep *Report, opt TextOptions) {
	if !opt.Passes && !opt.Steps && rep.Summary[Pass] > 0 && rep.Summary.Total() > 1 {
		fmt.Fprintf(b, "(%d passing results not listed: --verbose shows every step)\n", rep.Summary[Pass])
	}
	fmt.Fprintf(b, "\nsummary: %s (%s)\n", rep.Summary.Counts(), ms(rep.DurationMS))
	if causes := rep.Causes().String(); causes != "" {
		fmt.Fprintf(b, "causes: %s\n", causes)
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(b, "note: %s\n", n)
	}
}

// writeSteps writes every step of r and its notes.
func writeSteps(b *strings.Builder, r Result, color bool) {
	for _, s := range r.Steps {
		writeStepColor(b, s, color)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(b, "      note: %s\n", n)
	}
}

// deciding keeps the steps that decided r's verdict.
func deciding(r Result) Result {
	out := Result{Notes: r.Notes}
	for _, s := range r.Steps {
		if s.Verdict == r.Verdict {
			out.Steps = append(out.Steps, s)
		}
	}
	return out
}

func rfcLabel(rfc string) string {
	if rfc == "" {
		return ""
	}
	return "RFC " + rfc
}

func header(rep *Report) string {
	t := rep.Target
	h := fmt.Sprintf("synprobe %s %s", rep.Command, t.Address)
	var via []string
	if t.Source != "" {
		via = append(via, "from "+t.Source)
	}
	if t.Interface != "" {
		via = append(via, "via "+t.Interface)
	}
	if t.Lab != "" {
		via = append(via, t.Lab+" lab")
	}
	if len(via) > 0 {
		h += " (" + strings.Join(via, ", ") + ")"
	}
	return h + "\n"
}

func ms(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.2f s", v/1000)
	case v >= 10:
		return fmt.Sprintf("%.0f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

var colors = map[Verdict]string{
	Pass: "\x1b[32m", Fail: "\x1b[31;1m", Warn: "\x1b[33m", Info: "\x1b[36m", Skip: "\x1b[2m", Error: "\x1b[35;1m",
}

func verdictTag(v Verdict, color bool) string {
	tag := fmt.Sprintf("%-5s", strings.ToUpper(string(v)))
	if color {
		return colors[v] + tag + "\x1b[0m"
	}
	return tag
}

func writeStep(b *strings.Builder, s Step) { writeStepColor(b, s, false) }

// writeStepColor writes one step:
//
//	3 expect pass  S. 0:0(0) ack 1 <...>
//	               got S. 0:0(0) ack 1 win 65160 <...>  rtt 84 us
//	               - ack: expected 1 (abs 8221823) got 0
func writeStepColor(b *strings.Builder, s Step, color bool) {
	where := fmt.Sprintf("%4d", s.Index)
	if s.Line > 0 {
		where = fmt.Sprintf("%4s", fmt.Sprintf("L%d", s.Line))
	}
	v := string(s.Verdict)
	if color {
		v = colors[s.Verdict] + fmt.Sprintf("%-5s", v) + "\x1b[0m"
	} else {
		v = fmt.Sprintf("%-5s", v)
	}
	fmt.Fprintf(b, "  %s %-6s %s %s\n", where, s.Direction, v, s.Expected)
	pad := strings.Repeat(" ", 2+4+1+6+1+5+1)
	if s.Actual != "" && (s.Direction != Send || s.Actual != s.Expected) {
		fmt.Fprintf(b, "%sgot %s", pad, s.Actual)
		if s.RTTMicros != nil {
			fmt.Fprintf(b, "  rtt %s", rttText(*s.RTTMicros))
		}
		b.WriteByte('\n')
	}
	for _, p := range s.Problems {
		fmt.Fprintf(b, "%s- %s\n", pad, p)
	}
}

// writePacketdrill writes the step that decided a scripted result that
// failed, warned or erred the way packetdrill reports an error, and says
// whether there was one:
//
//	listen/ack.pkt:7: error handling packet: ack: expected 1 (abs 8221823) got 0
//	  script packet:  > . 1:1(0) ack 1
//	  actual packet:  . 1:1(0) ack 0 win 65160
func writePacketdrill(b *strings.Builder, r Result) bool {
	if r.File == "" || r.Verdict != Fail && r.Verdict != Warn && r.Verdict != Error {
		return false
	}
	for _, s := range r.Steps {
		if s.Verdict != r.Verdict || s.Line == 0 {
			continue
		}
		what := "error"
		if s.Verdict == Warn {
			what = "warning"
		}
		msg := strings.Join(s.Problems, "; ")
		if msg == "" {
			msg = r.Reason
		}
		fmt.Fprintf(b, "  %s:%d: %s handling packet: %s\n", r.File, s.Line, what, msg)
		fmt.Fprintf(b, "    script packet:  %s\n", s.Expected)
		fmt.Fprintf(b, "    actual packet:  %s\n", s.Actual)
		if s.ActualAbs != "" && s.ActualAbs != s.Actual {
			fmt.Fprintf(b, "    (absolute)      %s\n", s.ActualAbs)
		}
		return true
	}
	return false
}

func rttText(us float64) string {
	if us >= 1000 {
		return fmt.Sprintf("%.2f ms", us/1000)
	}
	return fmt.Sprintf("%.0f us", us)
}

package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Stream writes a report while its results come, for reports too large to
// hold (the analysis of a long capture): memory stays bounded by one
// result. Text and JSON stream; JUnit, whose header counts every result,
// is kept whole and written at the end.
type Stream struct {
	w      io.Writer
	format string
	opt    TextOptions
	head   *Report
	n      int
	held   []Result // JUnit only
	err    error
}

// NewStream starts a report in format ("text", "json" or "junit") with
// head's command, target and start time.
func NewStream(w io.Writer, format string, head *Report, opt TextOptions) *Stream {
	s := &Stream{w: w, format: format, opt: opt, head: head}
	switch format {
	case "json":
		var b strings.Builder
		b.WriteString("{\n")
		for _, kv := range []struct {
			k string
			v any
		}{{"command", head.Command}, {"target", head.Target}, {"started", head.Started}} {
			v, err := json.Marshal(kv.v)
			if err != nil {
				s.err = err
				return s
			}
			fmt.Fprintf(&b, "  %q: %s,\n", kv.k, v)
		}
		b.WriteString(`  "results": [`)
		s.write(b.String())
	case "junit":
	default:
		s.write(header(head) + "\n")
	}
	return s
}

func (s *Stream) write(text string) {
	if s.err == nil {
		_, s.err = io.WriteString(s.w, text)
	}
}

// Result writes one result (it must be judged already).
func (s *Stream) Result(r Result) error {
	switch s.format {
	case "json":
		var b strings.Builder
		if s.n > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n    ")
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(r); err != nil {
			return err
		}
		s.write(strings.TrimSuffix(b.String(), "\n"))
	case "junit":
		s.held = append(s.held, r)
	default:
		if r.Verdict != Pass || s.opt.Passes || s.opt.Steps {
			var b strings.Builder
			writeResult(&b, r, s.opt)
			s.write(b.String())
		}
	}
	s.n++
	return s.err
}

// Finish writes what comes after the results (duration, summary, notes)
// from rep, which must be finished.
func (s *Stream) Finish(rep *Report) error {
	switch s.format {
	case "json":
		var b strings.Builder
		if s.n > 0 {
			b.WriteString("\n  ")
		}
		b.WriteString("],\n")
		sum, _ := json.Marshal(rep.Summary)
		fmt.Fprintf(&b, "  \"duration_ms\": %v,\n  \"summary\": %s", rep.DurationMS, sum)
		if len(rep.Notes) > 0 {
			notes, _ := json.Marshal(rep.Notes)
			fmt.Fprintf(&b, ",\n  \"notes\": %s", notes)
		}
		b.WriteString("\n}\n")
		s.write(b.String())
	case "junit":
		all := *rep
		all.Results = s.held
		if s.err == nil {
			s.err = WriteJUnit(s.w, &all)
		}
	default:
		var b strings.Builder
		writeSummary(&b, rep, s.opt)
		s.write(b.String())
	}
	return s.err
}

package summary

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"synprobe/conformance/report"
	"synprobe/internal/plural"
)

// WriteJSON writes the finished summary as one JSON document.
func (s *Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(s)
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// WriteText writes the finished summary as tables.
func (s *Summary) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	var cmds []string
	for _, k := range sortedKeys(s.Commands) {
		cmds = append(cmds, fmt.Sprintf("%s %d", k, s.Commands[k]))
	}
	fmt.Fprintf(tw, "%s (%s) from %s of %s", plural.N(s.Targets, "target", "targets"), strings.Join(cmds, ", "), plural.N(s.Lines, "line", "lines"), plural.N(s.Files, "file", "files"))
	if s.Duplicates > 0 {
		fmt.Fprintf(tw, "; %s", plural.N(s.Duplicates, "line repeats a target and counts once", "lines repeat a target and count once"))
	}
	if s.Interrupted > 0 {
		fmt.Fprintf(tw, "; %s", plural.N(s.Interrupted, "target was only interrupted and is not counted", "targets were only interrupted and are not counted"))
	}
	fmt.Fprintln(tw)
	if len(s.Worst) > 0 {
		var parts []string
		for _, v := range report.Verdicts {
			if n := s.Worst[v]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, v))
			}
		}
		fmt.Fprintf(tw, "Targets by worst verdict: %s\n", strings.Join(parts, ", "))
	}
	if len(s.Scenarios) > 0 {
		fmt.Fprintln(tw, "\nSCENARIO\tTARGETS\tPASS\tFAIL\tWARN\tINFO\tSKIP\tERROR\t")
		for _, sc := range s.Scenarios {
			fmt.Fprintf(tw, "%s\t%d", sc.Name, sc.Targets)
			for _, v := range report.Verdicts {
				fmt.Fprintf(tw, "\t%d", sc.Counts[v])
			}
			fmt.Fprintln(tw, "\t")
			for _, c := range sc.Causes {
				cause := string(c.Cause)
				if cause == "" {
					cause = "(none)"
				}
				fmt.Fprintf(tw, "  %s %s: %d\t\t\t\t\t\t\t\t%s\n", c.Verdict, cause, c.Count, oneLine(c.Example, 100))
			}
		}
	}
	if len(s.Fingerprints) > 0 {
		fmt.Fprintln(tw, "\nTARGETS\tOPTIONS\tINITIAL TTL\tWINDOW\tISN CLOCK\tTS CLOCK\t")
		for _, c := range s.Fingerprints {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t\n", c.Count, c.Options, c.InitialTTL, c.Window, c.ISN, c.Timestamps)
		}
	}
	if s.PathWalked > 0 {
		fmt.Fprintf(tw, "\nPaths walked to %d targets (trace, --path-check): %d with no finding\n", s.PathWalked, s.PathClean)
	}
	if len(s.Paths) > 0 {
		fmt.Fprintln(tw, "TARGETS\tPATH FINDING\tVERDICT\t")
		for _, p := range s.Paths {
			fmt.Fprintf(tw, "%d\t%s\t%s\t\n", p.Count, p.Kind, p.Verdict)
		}
	}
	if len(s.Sweep) > 0 {
		fmt.Fprintln(tw, "\nPORTS\tSWEEP STATE\t")
		for _, k := range sortedKeys(s.Sweep) {
			fmt.Fprintf(tw, "%d\t%s\t\n", s.Sweep[k], k)
		}
	}
	return tw.Flush()
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

// CSVHeader are the columns of WriteCSV: every table in one file, told
// apart by the first column, each filling the columns it has.
var CSVHeader = []string{"table", "scenario", "verdict", "cause", "options", "initial_ttl", "window", "isn_clock", "ts_clock", "path_kind", "state", "count"}

// WriteCSV writes the finished summary as CSV rows of tables: targets
// (by worst verdict), scenario (by verdict), cause (by scenario, verdict
// and cause), fingerprint, path (by kind and verdict), path-walked and
// path-clean (the targets whose path was walked, and of them those with
// no finding) and sweep.
func (s *Summary) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	row := func(table string, fields map[string]string, count int) {
		rec := make([]string, len(CSVHeader))
		rec[0] = table
		for i, h := range CSVHeader[1 : len(CSVHeader)-1] {
			rec[i+1] = fields[h]
		}
		rec[len(rec)-1] = fmt.Sprint(count)
		cw.Write(rec)
	}
	cw.Write(CSVHeader)
	for _, v := range report.Verdicts {
		if n := s.Worst[v]; n > 0 {
			row("targets", map[string]string{"verdict": string(v)}, n)
		}
	}
	for _, sc := range s.Scenarios {
		for _, v := range report.Verdicts {
			if n := sc.Counts[v]; n > 0 {
				row("scenario", map[string]string{"scenario": sc.Name, "verdict": string(v)}, n)
			}
		}
	}
	for _, sc := range s.Scenarios {
		for _, c := range sc.Causes {
			row("cause", map[string]string{"scenario": sc.Name, "verdict": string(c.Verdict), "cause": string(c.Cause)}, c.Count)
		}
	}
	for _, c := range s.Fingerprints {
		row("fingerprint", map[string]string{"options": c.Options, "initial_ttl": c.InitialTTL, "window": c.Window, "isn_clock": c.ISN, "ts_clock": c.Timestamps}, c.Count)
	}
	for _, p := range s.Paths {
		row("path", map[string]string{"path_kind": p.Kind, "verdict": p.Verdict}, p.Count)
	}
	if s.PathWalked > 0 {
		row("path-walked", nil, s.PathWalked)
		row("path-clean", nil, s.PathClean)
	}
	for _, k := range sortedKeys(s.Sweep) {
		row("sweep", map[string]string{"state": k}, s.Sweep[k])
	}
	cw.Flush()
	return cw.Error()
}

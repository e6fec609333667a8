package trace

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"synprobe/conformance/report"
)

// TestReportOf: a trace as a --targets line: one result "trace" whose
// verdict is the path's and whose cause names the finding that decided it
// (never the stack), the path object audit --path-check writes, and the
// exit code trace gives one target (1 only for a failing finding).
func TestReportOf(t *testing.T) {
	reachedProbes := []Probe{{Family: FamilySYN, Destination: &Destination{Hop: 2, Reply: "syn-ack"}}}
	silentProbes := []Probe{{Family: FamilySYN}}
	broken := exFinding(ChecksumBroken)
	broken.Verdict = report.Fail
	proxy := exFinding(TerminatingProxy)
	tests := []struct {
		name     string
		res      Result
		err      error
		verdict  report.Verdict // the result's and the path's
		cause    report.Cause
		reason   string // in the result's reason
		exit     int
		answered string
	}{
		{"nothing found", Result{Probes: reachedProbes, Verdict: report.Pass}, nil,
			report.Pass, "", "", 0, ""},
		{"an info finding", Result{Probes: reachedProbes, Findings: []Finding{exFinding(MSSClamp)}, Verdict: report.Info}, nil,
			report.Info, report.CausePathMSSClamp, "path: MSS clamped between hop 1", 0, ""},
		{"the worst finding decides", Result{Probes: reachedProbes, Findings: []Finding{exFinding(MSSClamp), exFinding(OptionStripped.With("ts"))}, Verdict: report.Warn}, nil,
			report.Warn, report.CausePathTSStripped, "timestamps stripped between hop 1 10.79.1.254 and hop 2 10.79.2.254 (and 1 more findings)", 0, ""},
		{"a failing finding exits 1", Result{Probes: reachedProbes, Findings: []Finding{exFinding(MSSClamp), broken}, Verdict: report.Fail}, nil,
			report.Fail, "path:checksum-broken", "path: checksum-broken", 1, ""},
		{"a proxy names the box", Result{Probes: reachedProbes, Findings: []Finding{proxy}, Verdict: report.Warn}, nil,
			report.Warn, report.CausePathProxy, "a terminating proxy", 0, "a box at hop 2 (10.79.2.254)"},
		{"the target never answered", Result{Probes: silentProbes, Verdict: report.Pass}, nil,
			report.Skip, report.CausePremiseNothing, "the target did not answer", 0, ""},
		{"cut short before the target answered", Result{Probes: silentProbes, Verdict: report.Pass}, errors.New("gave up after --timeout 1s"),
			report.Skip, report.CausePremiseNothing, "ran only in part: gave up after --timeout 1s, before the target answered", 0, ""},
	}
	started := time.Now().Add(-time.Second)
	for _, tt := range tests {
		rep := ReportOf(&tt.res, []Family{FamilySYN, FamilyAlt}, tt.err, report.Target{Address: "10.79.3.1:80"}, started)
		if len(rep.Results) != 1 {
			t.Fatalf("%s: %d results, want 1", tt.name, len(rep.Results))
		}
		r := rep.Results[0]
		c, ok := rep.Path.(*Check)
		if !ok {
			t.Fatalf("%s: path is %T, want *Check", tt.name, rep.Path)
		}
		if r.Name != "trace" || r.Verdict != tt.verdict || r.Cause != tt.cause || !strings.Contains(r.Reason, tt.reason) {
			t.Errorf("%s: result %s %s (cause %q, reason %q); want trace %s (cause %q, reason with %q)", tt.name, r.Name, r.Verdict, r.Cause, r.Reason, tt.verdict, tt.cause, tt.reason)
		}
		if r.Cause.Kind() == "stack" {
			t.Errorf("%s: cause %q: a path finding is never the stack's", tt.name, r.Cause)
		}
		if c.Mode != ModeTrace || c.Verdict != tt.verdict || c.AnsweredBy != tt.answered || c.Findings == nil {
			t.Errorf("%s: path mode %q, verdict %s, answered by %q, findings %v; want mode trace, %s, %q, a list", tt.name, c.Mode, c.Verdict, c.AnsweredBy, c.Findings, tt.verdict, tt.answered)
		}
		if got := rep.ExitCode(); got != tt.exit {
			t.Errorf("%s: exit code %d, want %d", tt.name, got, tt.exit)
		}
		if rep.Command != "trace" || rep.Summary[tt.verdict] != 1 || rep.DurationMS < 1000 {
			t.Errorf("%s: command %q, summary %v, %v ms; want trace, one %s, at least 1000 ms", tt.name, rep.Command, rep.Summary, rep.DurationMS, tt.verdict)
		}
		// The line's path object is what summarize reads of audit's.
		b, err := json.Marshal(rep)
		if err != nil {
			t.Fatal(err)
		}
		var line struct {
			Path struct {
				Mode     string
				Verdict  string
				Findings []struct{ Kind, Verdict string }
			}
		}
		if err := json.Unmarshal(b, &line); err != nil || line.Path.Mode != "trace" || len(line.Path.Findings) != len(tt.res.Findings) {
			t.Errorf("%s: JSON path %+v (%v); want mode trace and %d findings", tt.name, line.Path, err, len(tt.res.Findings))
		}
	}
}

func TestModeTraceIsNoFlagValue(t *testing.T) {
	if _, err := ParseMode(string(ModeTrace)); err == nil {
		t.Errorf("ParseMode(%q) accepted it; want it refused (no --path-check value)", ModeTrace)
	}
}

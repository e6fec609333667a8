package trace

import (
	"fmt"
	"time"

	"synprobe/conformance/report"
)

// ModeTrace is the mode of the path object of synprobe trace's own
// reports (--targets, --format jsonl): the walks are the run itself (its
// --probes), not a check beside a suite. ParseMode does not accept it:
// it is no --path-check value.
const ModeTrace Mode = "trace"

// ResultName is the name of the one result of a trace's report.
const ResultName = "trace"

// CheckOf is a trace as the path object a path check writes (--path-check
// puts one in report.Report.Path): the findings, their verdict (skip when
// none and the target never answered), what could not be seen and the box
// that answered instead of the target, if one did.
// families are the families walked (nil: all); err, when set, says why the
// trace ran only in part. res must not be nil.
func CheckOf(mode Mode, families []Family, res *Result, err error) *Check {
	if families == nil {
		families = Families
	}
	c := &Check{Mode: mode, Families: families, Verdict: res.Verdict, Findings: res.Findings,
		Coverage: res.Coverage, DurationMS: res.DurationMS}
	if c.Findings == nil {
		c.Findings = []Finding{}
	}
	if c.Verdict == "" {
		c.Verdict = report.Pass
		for _, f := range c.Findings {
			c.Verdict = report.Worst(c.Verdict, f.Verdict)
		}
	}
	if len(c.Findings) == 0 && !reached(res) {
		// Nothing answered: the walk saw no change as far as quotes
		// reach, and judged nothing beyond.
		c.Verdict = report.Skip
	}
	if f := find(res, proxies); f != nil {
		c.AnsweredBy = f.Where.boxHop()
	}
	if err != nil {
		c.Error = "ran only in part: " + err.Error()
	}
	return c
}

// reached says whether the target (or a box for it) answered any walk.
func reached(res *Result) bool {
	for _, p := range res.Probes {
		if p.Destination != nil {
			return true
		}
	}
	return false
}

// resultOf is the check as the one result of a trace's report, named
// "trace": its verdict is the path's (pass when nothing was found), its
// cause "path:" and the kind of the finding that decided it, so that
// nothing counts it as the stack's. A trace that found nothing and never
// reached the target judged nothing: skip (premise:nothing-to-judge).
func resultOf(c *Check) report.Result {
	r := report.Result{Name: ResultName, Description: "the path to the target, walked with TCP probes of increasing TTL",
		Verdict: c.Verdict, DurationMS: c.DurationMS, Steps: []report.Step{}}
	var worst *Finding
	for i := range c.Findings {
		if f := &c.Findings[i]; worst == nil || report.Worst(worst.Verdict, f.Verdict) != worst.Verdict {
			worst = f
		}
	}
	switch {
	case worst != nil:
		r.Cause = report.Cause("path:" + string(worst.Kind))
		r.Reason = reason(worst)
		if n := len(c.Findings) - 1; n > 0 {
			r.Reason += fmt.Sprintf(" (and %d more findings)", n)
		}
		if r.Verdict == report.Pass || r.Verdict == "" {
			// A finding's verdict is never pass; keep the result's in step
			// with it whatever the check said.
			r.Verdict = report.Worst(report.Info, worst.Verdict)
		}
	case c.Verdict == report.Skip && c.Error == "":
		r.Cause = report.CausePremiseNothing
		r.Reason = "the target did not answer: no change seen as far as quotes reach, and nothing beyond the last answer can be judged"
	case c.Verdict == report.Skip:
		r.Cause = report.CausePremiseNothing
		r.Reason = "the trace " + c.Error + ", before the target answered"
	}
	if c.AnsweredBy != "" {
		r.Notes = append(r.Notes, "answered by "+c.AnsweredBy+", not by the target")
	}
	if c.Error != "" && c.Verdict != report.Skip {
		r.Notes = append(r.Notes, "the trace "+c.Error)
	}
	return r
}

// ReportOf is a trace as a report of synprobe's report model (trace
// --targets, --format jsonl): one result, "trace", whose verdict is the
// path's, and the path object (CheckOf, mode "trace") that audit's
// --path-check writes, so that summarize and every reader of audit's
// lines read it. started is when the command began, err why the trace
// ran only in part; the report is finished.
func ReportOf(res *Result, families []Family, err error, target report.Target, started time.Time) *report.Report {
	c := CheckOf(ModeTrace, families, res, err)
	rep := &report.Report{Command: "trace", Target: target, Started: started,
		DurationMS: report.Millis(time.Since(started)), Results: []report.Result{resultOf(c)}, Path: c}
	rep.Finish()
	return rep
}

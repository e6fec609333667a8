package scenarios

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"synprobe/conformance/report"
	"synprobe/internal/pathlab"
	"synprobe/internal/trace"
	"synprobe/probe"
)

// startPathBed starts a path bed for t (client, r1, r2, server) and closes
// it when t ends; without root or nft, t is skipped with the reason.
func startPathBed(t testing.TB) *pathlab.Bed {
	t.Helper()
	if ok, why := pathlab.Available(); !ok {
		t.Skip(why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := pathlab.Start(ctx, pathlab.Config{})
	if err != nil {
		t.Fatalf("pathlab.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("closing the path bed: %v", err)
		}
	})
	return b
}

// bedAudit audits the bed's server from its client namespace with the
// path check in mode.
func bedAudit(t testing.TB, b *pathlab.Bed, mode trace.Mode) *report.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := probe.Dial(ctx, b.Target.Addr(), probe.DialConfig{NetNS: b.NSFD(pathlab.Client)})
	if err != nil {
		t.Fatalf("probe.Dial %v from the bed's client: %v", b.Target.Addr(), err)
	}
	defer p.Close()
	rep, err := Audit(ctx, p, AuditConfig{RunConfig: RunConfig{Target: b.Target, PathCheck: mode}})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func blames(v report.Verdict) bool { return v == report.Fail || v == report.Warn }

// pathDiff compares an audit through a box with the audit without one: the
// results that changed, one line each, and the problems: a fail or warn
// the audit without a box lacks, a changed result that is not skip with a
// path: or premise: cause.
func pathDiff(base, boxed *report.Report) (changed, problems []string) {
	was := map[string]report.Result{}
	for _, r := range base.Results {
		was[r.Name] = r
	}
	for _, r := range boxed.Results {
		b := was[r.Name]
		if r.Verdict == b.Verdict && r.Cause == b.Cause {
			continue
		}
		line := fmt.Sprintf("%s: %s -> %s [%s] %s", r.Name, b.Verdict, r.Verdict, r.Cause, r.Reason)
		changed = append(changed, line)
		switch {
		case blames(r.Verdict) && !blames(b.Verdict):
			problems = append(problems, "new "+line)
		case r.Verdict == b.Verdict:
		case r.Verdict != report.Skip || r.Cause.Kind() != "path" && r.Cause.Kind() != "premise":
			problems = append(problems, "changed "+line)
		}
	}
	return changed, problems
}

// TestPathCheckThroughBoxes: through every box of the bed, on the first
// router and on the last, an audit with --path-check auto has no fail or
// warn that the audit without a box lacks; the results that change are
// skip with a path: or premise: cause (issue 11).
func TestPathCheckThroughBoxes(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 29 audits through a path bed")
	}
	mode := trace.ModeAuto
	if m := os.Getenv("SYNPROBE_TEST_PATH_CHECK"); m != "" {
		mode = trace.Mode(m) // to see what the boxes do without the check
	}
	b := startPathBed(t)
	base := bedAudit(t, b, mode)
	var baseBad []string
	for _, r := range base.Results {
		if blames(r.Verdict) {
			baseBad = append(baseBad, r.Name)
		}
	}
	t.Logf("no box: %s; fail/warn: %v; path %s", base.Summary.Counts(), baseBad, pathText(base))
	var table []string
	for _, box := range pathlab.Boxes() {
		for _, at := range []pathlab.Position{pathlab.First, pathlab.Last} {
			if err := b.SetBox(box, at); err != nil {
				t.Fatalf("SetBox %s %s: %v", box, at, err)
			}
			rep := bedAudit(t, b, mode)
			changed, problems := pathDiff(base, rep)
			sort.Strings(changed)
			table = append(table, fmt.Sprintf("%-22s %-5s %-40s %d changed, %d problems", box, at, rep.Summary.Counts(), len(changed), len(problems)))
			t.Logf("%s on %s: %s; path %s\n  %s", box, at, rep.Summary.Counts(), pathText(rep), strings.Join(changed, "\n  "))
			for _, p := range problems {
				t.Errorf("%s on %s: %s", box, at, p)
			}
		}
	}
	if err := b.SetBox(pathlab.BoxNone, pathlab.First); err != nil {
		t.Errorf("SetBox none: %v", err)
	}
	t.Logf("per box (%s):\n%s", mode, strings.Join(table, "\n"))
}

func pathText(rep *report.Report) string {
	c, ok := rep.Path.(*trace.Check)
	if !ok {
		return "not checked"
	}
	return strings.TrimSpace(c.Text())
}

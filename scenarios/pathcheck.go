package scenarios

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"synprobe/conformance/report"
	"synprobe/internal/trace"
	"synprobe/probe"
)

// TraceFunc walks the path to a target (trace.Run).
type TraceFunc func(ctx context.Context, p *probe.Prober, cfg trace.Config) (*trace.Result, error)

// defaultTrace is the trace engine the path check uses when its config
// names none.
var defaultTrace TraceFunc = trace.Run

// PathCheckConfig says how to check the path beside a run (--path-check).
type PathCheckConfig struct {
	Mode       trace.Mode
	Target     netip.AddrPort
	ClosedPort uint16
	// Rate caps the probes per second that reach the target (probes that
	// expire on the way do not count).
	Rate float64
	// Trace walks the path; nil: trace.Run.
	Trace TraceFunc
}

// PathCheck is a path check under way: the quick walks beside a run
// (auto), or every family before it (full).
type PathCheck struct {
	cfg PathCheckConfig
	p   *probe.Prober
	// quick is the quick walks; early the walks Consider started.
	quick, early sync.WaitGroup
	// walking serializes the walks: one trace at a time.
	walking sync.Mutex
	mu      sync.Mutex
	res     *trace.Result
	walked  []trace.Family
	// asked are the families walked or asked for.
	asked   []trace.Family
	errs    []string
	elapsed time.Duration
}

// StartPathCheck starts checking the path to cfg.Target: with ModeFull it
// walks every family before it returns, with ModeAuto it starts the quick
// walks (trace.QuickFamilies) and returns at once. It returns nil for
// ModeOff.
func StartPathCheck(ctx context.Context, p *probe.Prober, cfg PathCheckConfig) *PathCheck {
	if cfg.Mode == trace.ModeOff || cfg.Mode == "" {
		return nil
	}
	if cfg.Trace == nil {
		cfg.Trace = defaultTrace
	}
	pc := &PathCheck{cfg: cfg, p: p, asked: slices.Clone(trace.QuickFamilies)}
	if cfg.Mode == trace.ModeFull {
		pc.asked = slices.Clone(trace.Families)
		pc.walk(ctx, trace.Families, cfg.ClosedPort)
		return pc
	}
	pc.quick.Add(1)
	go func() {
		defer pc.quick.Done()
		pc.walk(ctx, trace.QuickFamilies, cfg.ClosedPort)
	}()
	return pc
}

// Consider starts beside the run (auto) the walks of the families that
// could explain r, a result just done, so that they are over by the time
// the run is; Finish walks what is still needed then.
func (pc *PathCheck) Consider(ctx context.Context, r report.Result) {
	if pc == nil || pc.cfg.Mode != trace.ModeAuto {
		return
	}
	need := pc.claim(trace.FamiliesFor(r))
	if len(need) == 0 {
		return
	}
	pc.early.Add(1)
	go func() {
		defer pc.early.Done()
		pc.quick.Wait() // for how far to walk
		pc.walk(ctx, need, pc.cfg.ClosedPort)
	}()
}

// claim returns the families of fs not asked for yet, and asks for them:
// with the syn walk first when one is a SYN family (its drop is silence
// where syn, its control, is answered at the same TTL in the same trace).
func (pc *PathCheck) claim(fs []trace.Family) []trace.Family {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	var need []trace.Family
	for _, f := range fs {
		if !slices.Contains(pc.asked, f) && !slices.Contains(need, f) {
			need = append(need, f)
		}
	}
	pc.asked = append(pc.asked, need...)
	if slices.ContainsFunc(need, func(f trace.Family) bool { return f != trace.FamilyConn }) {
		need = append([]trace.Family{trace.FamilySYN}, need...)
	}
	return need
}

// walk runs one trace of families and adds what it found.
func (pc *PathCheck) walk(ctx context.Context, families []trace.Family, closed uint16) {
	pc.walking.Lock()
	defer pc.walking.Unlock()
	pc.mu.Lock()
	maxHops := reach(pc.res)
	pc.mu.Unlock()
	start := time.Now()
	var res *trace.Result
	err := errors.New("no trace engine in this build")
	if pc.cfg.Trace != nil {
		res, err = pc.cfg.Trace(ctx, pc.p, trace.Config{Target: pc.cfg.Target, ClosedPort: closed, Families: families, Rate: pc.cfg.Rate, MaxHops: maxHops})
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.elapsed += time.Since(start)
	for _, f := range families {
		if !slices.Contains(pc.walked, f) {
			pc.walked = append(pc.walked, f)
		}
	}
	if err != nil {
		pc.errs = append(pc.errs, "walking "+familyList(families)+": "+err.Error())
	}
	pc.res = trace.Merge(pc.res, res)
}

// reach is how far a walk after res need go: one hop past the farthest
// destination res found (a family dropped on the way is silent from the
// box on, and walking on to 30 hops would only wait); 0 (the default)
// when res found none.
func reach(res *trace.Result) int {
	far := 0
	if res != nil {
		for _, p := range res.Probes {
			if p.Destination != nil && p.Destination.Hop > far {
				far = p.Destination.Hop
			}
		}
	}
	if far == 0 {
		return 0
	}
	return far + 1
}

func familyList(fs []trace.Family) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

// Finish completes the path check of rep before its verdicts are counted
// (call it before rep.Finish): it waits for the quick walks, walks (auto)
// the families that could explain the results that did not pass, in one
// trace, then rewrites what the findings explain (trace.Explain) and sets
// rep.Path. closed is the closed port the run used (0: none).
func (pc *PathCheck) Finish(ctx context.Context, rep *report.Report, closed uint16) {
	if pc == nil {
		return
	}
	pc.quick.Wait()
	pc.early.Wait()
	if pc.cfg.Mode == trace.ModeAuto && ctx.Err() == nil {
		need := trace.FingerprintFamilies(rep.Fingerprint)
		for _, r := range rep.Results {
			need = append(need, trace.FamiliesFor(r)...)
		}
		if need = pc.claim(need); len(need) > 0 {
			pc.walk(ctx, need, closed)
		}
	}
	c := &trace.Check{Mode: pc.cfg.Mode, Families: pc.walked, Verdict: report.Pass, Findings: []trace.Finding{},
		DurationMS: report.Millis(pc.elapsed), Error: strings.Join(pc.errs, "; ")}
	if pc.res != nil {
		c.Findings, c.Verdict = pc.res.Findings, pc.res.Verdict
		// Each walk says what it did not send; the check says it once.
		for _, l := range pc.res.Coverage {
			if !strings.HasPrefix(l, "not sent:") {
				c.Coverage = append(c.Coverage, l)
			}
		}
		var unsent []trace.Family
		for _, f := range trace.Families {
			if !slices.Contains(pc.walked, f) {
				unsent = append(unsent, f)
			}
		}
		if len(unsent) > 0 {
			c.Coverage = append(c.Coverage, "not sent: "+familyList(unsent)+" (no result they could explain; --path-check full sends them)")
		}
		if c.Findings == nil {
			c.Findings = []trace.Finding{}
		}
		if c.Verdict == "" {
			c.Verdict = report.Worst(report.Pass, worstFinding(c.Findings))
		}
	} else if c.Error != "" {
		c.Verdict = report.Skip
	}
	c.Explained, c.AnsweredBy = trace.Explain(rep, pc.res, pc.cfg.Target.Addr().String())
	rep.Path = c
}

func worstFinding(fs []trace.Finding) report.Verdict {
	var v report.Verdict
	for _, f := range fs {
		v = report.Worst(v, f.Verdict)
	}
	return v
}

package scenarios

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"synprobe/conformance"
	"synprobe/conformance/report"
	"synprobe/conformance/script"
	"synprobe/internal/plural"
	"synprobe/internal/trace"
	"synprobe/probe"
)

// Select returns the scenarios cfg asks for, in suite order.
func Select(only, skip []string, lvl string) ([]Scenario, error) {
	all, err := Suite()
	if err != nil {
		return nil, err
	}
	for _, g := range append(append([]string{}, only...), skip...) {
		if _, err := path.Match(g, ""); err != nil {
			return nil, fmt.Errorf("bad pattern %q: %v", g, err)
		}
	}
	max := map[string]int{"must": 0, "should": 1, "info": 2, "": 2}
	rank := map[string]int{"MUST": 0, "SHOULD": 1, "info": 2}
	limit, ok := max[strings.ToLower(lvl)]
	if !ok {
		return nil, fmt.Errorf("unknown level %q: want must, should or info", lvl)
	}
	var out []Scenario
	for _, s := range all {
		if rank[s.Level] > limit {
			continue
		}
		if len(only) > 0 && !matchAny(only, s) {
			continue
		}
		if matchAny(skip, s) {
			continue
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no scenario matches (see 'synprobe scenarios')")
	}
	return out, nil
}

func matchAny(globs []string, s Scenario) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, s.Name); ok {
			return true
		}
		if ok, _ := path.Match(g, s.Area); ok {
			return true
		}
	}
	return false
}

// RunConfig says how to run scenarios against a target.
type RunConfig struct {
	Target netip.AddrPort
	// ClosedPort is a port of the target host with no listener; 0 means
	// none is known (scenarios that need one skip, unless FindClosedPort).
	ClosedPort uint16
	// FindClosedPort looks for a closed port near the open one when
	// ClosedPort is 0 and a scenario needs one.
	FindClosedPort bool
	// Jobs caps the scenarios running at once (default: all).
	Jobs int
	// Rate caps the SYNs per second to the target (default
	// conformance.DefaultRate; negative: no cap).
	Rate    float64
	Timeout time.Duration
	// Jitter: see conformance.RunConfig.
	Jitter time.Duration
	// Profile learns what the target's application does before the
	// scenarios run (conformance.Profile), so that they account for it.
	Profile bool
	// Request is what checks send where they need the application to
	// answer (--request); nil: conformance.DefaultRequest.
	Request []byte
	// Fingerprint, if set, measures the stack beside the scenarios.
	Fingerprint func(ctx context.Context, env *Env) any
	// Progress, if set, is called as scenarios finish.
	Progress func(done, total int, name string)
	// AfterPathMTU, if set, makes the target forget the path MTU a script
	// taught it (an ICMP "fragmentation needed" or "packet too big"); it
	// is called after each such script, while no other runs. The lab sets
	// it; a remote target keeps what it learned, and the report says so.
	AfterPathMTU func(ctx context.Context) error
	// PathCheck is --path-check: auto walks the path beside the scenarios
	// and explains with what it found the results a box on the path
	// decided, full walks every probe family first; "" or off: none.
	PathCheck trace.Mode
	// Trace walks the path for the check; nil: trace.Run.
	Trace TraceFunc
}

// AuditConfig says what to audit: a selection of the suite and how to run it.
type AuditConfig struct {
	RunConfig
	// Only and Skip select scenarios by name or area with shell globs
	// ("listen-*", "options").
	Only, Skip []string
	// Level keeps scenarios of this level and stronger: "must", "should"
	// or "info" (all, the default).
	Level string
}

// Audit runs the selected built-in scenarios against the target, finding
// a closed port near the open one when none is given.
func Audit(ctx context.Context, p *probe.Prober, cfg AuditConfig) (*report.Report, error) {
	sel, err := Select(cfg.Only, cfg.Skip, cfg.Level)
	if err != nil {
		return nil, err
	}
	rc := cfg.RunConfig
	rc.FindClosedPort, rc.Profile = true, true
	rep := Run(ctx, p, rc, sel)
	rep.Command = "audit"
	return rep, nil
}

// FromScript makes a scenario of a user's script.
func FromScript(s *script.Script) Scenario {
	return Scenario{Name: s.Meta.Name, Level: level(s.Meta.Level), RFC: s.Meta.RFC, Description: s.Meta.Description,
		Needs: s.Meta.Needs, Script: s, File: s.File, Estimate: s.Length()}
}

// FromBroken makes the scenario of a script file that could not be read or
// parsed (err): an error result, so that the other scripts of a directory
// still run.
func FromBroken(file string, err error) Scenario {
	why := err.Error()
	var list script.ErrorList
	if errors.As(err, &list) {
		why = list.Summary()
	}
	return Scenario{Name: strings.TrimSuffix(filepath.Base(file), ".pkt"), File: file, Broken: why}
}

// Run runs scenarios (scripts and Go checks alike) against the target,
// concurrently, the longest first, paced per target, with the fingerprint
// beside them if asked. Results keep the order given. When ctx ends,
// running scenarios stop and say so; those not started are skipped.
func Run(ctx context.Context, p *probe.Prober, cfg RunConfig, items []Scenario) *report.Report {
	start := time.Now()
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	rep := &report.Report{Command: "run", Started: start}
	runner := conformance.NewRunner(p, conformance.RunConfig{
		Target: cfg.Target, ClosedPort: cfg.ClosedPort, Jobs: 1, Rate: cfg.Rate, Timeout: cfg.Timeout, Jitter: cfg.Jitter,
	})
	pc := StartPathCheck(ctx, p, PathCheckConfig{Mode: cfg.PathCheck, Target: cfg.Target, ClosedPort: cfg.ClosedPort, Rate: cfg.Rate, Trace: cfg.Trace})
	env := &Env{Prober: p, Target: cfg.Target, ClosedPort: cfg.ClosedPort, Timeout: cfg.Timeout, Pace: runner.NewPace(0), Facts: runner.Facts(), ListenerDown: runner.ListenerDown}

	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	if cfg.Fingerprint != nil {
		wg.Add(1)
		// The fingerprint's retransmission watch is among the longest jobs
		// of an audit (about 3 s).
		fenv := *env
		fenv.Pace = runner.NewPace(3100)
		go func() {
			defer wg.Done()
			fp := cfg.Fingerprint(ctx, &fenv)
			mu.Lock()
			rep.Fingerprint = fp
			mu.Unlock()
		}()
	}
	// Before the scenarios: the closed port they need, checked or found,
	// and what the application does; both at once.
	var before sync.WaitGroup
	closed := cfg.ClosedPort
	if needsClosed(items) {
		before.Add(1)
		go func() {
			defer before.Done()
			port, why := closedPort(ctx, env, cfg.ClosedPort, cfg.FindClosedPort)
			mu.Lock()
			defer mu.Unlock()
			if port != 0 && cfg.ClosedPort == 0 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("closed port: %d (found near the open port)", port))
			}
			if port == 0 {
				rep.Notes = append(rep.Notes, "closed-port scenarios skipped: "+why)
			}
			closed = port
			runner.SetClosedPort(port, why)
		}()
	}
	if cfg.Profile {
		runner.FactsPending()
		before.Add(1)
		go func() {
			defer before.Done()
			// The profile's SYNs go before the fingerprint's: the
			// scenarios wait for it.
			facts := conformance.Profile(ctx, p, conformance.ProfileConfig{Target: cfg.Target, Request: cfg.Request, Pace: runner.NewPace(100000), Timeout: cfg.Timeout})
			mu.Lock()
			defer mu.Unlock()
			rep.Application = facts.App
			if facts.SYNCookiesKnown && facts.SYNCookies {
				rep.Notes = append(rep.Notes, "SYN cookies answer the target's SYNs (the ACK of a half-open connection synprobe had reset opened a connection): scenarios that need the listener's state for half-open connections skip")
			}
			runner.SetFacts(facts)
		}()
	} else {
		env.Facts.Request = cfg.Request
	}

	// The longest scenarios start first, so the run takes about as long as
	// its slowest scenario rather than their sum.
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return items[order[a]].Estimate > items[order[b]].Estimate })

	results := make([]report.Result, len(items))
	jobs := cfg.Jobs
	if jobs <= 0 {
		jobs = len(items)
	}
	sem := make(chan struct{}, jobs)
	// Scenarios that send the application nothing start at once, beside
	// the profile; the others once it is done.
	start1 := func(i int) {
		sc := items[i]
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			results[i] = describe(report.Result{Verdict: report.Skip, Cause: report.CauseLocalInterrupted, Reason: "not run: interrupted"}, sc)
			return
		}
		if sc.Broken != "" {
			<-sem
			results[i] = describe(report.Result{Verdict: report.Error, Cause: report.CauseInputScript, Reason: sc.Broken}, sc)
			if cfg.Progress != nil {
				mu.Lock()
				done = min(done+1, len(items))
				cfg.Progress(done, len(items), sc.Name)
				mu.Unlock()
			}
			return
		}
		cenv := *env
		cenv.Pace = runner.NewPace(int(sc.Estimate / time.Millisecond))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var res report.Result
			if sc.Script != nil {
				res = runner.RunScript(ctx, sc.Script)
			} else {
				res = runCheck(ctx, sc, &cenv)
			}
			if sc.Early() {
				before.Wait()
				res = premisesAfter(res, sc, runner.Facts())
			}
			results[i] = describe(res, sc)
			// What could explain it is walked beside the others.
			pc.Consider(ctx, results[i])
			if cfg.Progress != nil {
				mu.Lock()
				done = min(done+1, len(items)) // a scenario run again counts once
				cfg.Progress(done, len(items), sc.Name)
				mu.Unlock()
			}
		}()
	}
	// A script that lowers the target's path MTU changes what every later
	// connection from synprobe's address sees: those run last, alone.
	pmtu := make(map[int]pathMTUEvent)
	for i, sc := range items {
		if ev, ok := lowersPathMTU(sc, cfg.Target.Addr().Is6()); ok {
			pmtu[i] = ev
		}
	}
	for _, i := range order {
		if _, last := pmtu[i]; items[i].Early() && !last {
			start1(i)
		}
	}
	before.Wait()
	// The scenarios started from here on copy env with what was learned.
	env.ClosedPort, env.Facts = closed, runner.Facts()
	for _, i := range order {
		if _, last := pmtu[i]; !items[i].Early() && !last {
			start1(i)
		}
	}
	wg.Wait()
	// What the target was too busy to answer while the others ran is run
	// again, alone, one after the other.
	for i, res := range results {
		if !res.Retry || len(items) == 1 || ctx.Err() != nil {
			continue
		}
		open := len(items) - 1
		start1(i)
		wg.Wait()
		results[i].Notes = append(results[i].Notes, fmt.Sprintf("run again alone: its SYN went unanswered while up to %d other checks had connections open (an application that accepts one connection at a time)", open))
	}
	for _, i := range order {
		ev, ok := pmtu[i]
		if !ok {
			continue
		}
		start1(i)
		wg.Wait()
		if cfg.AfterPathMTU == nil {
			rep.Notes = append(rep.Notes, ev.keptNote(p.Path().Source))
		} else if err := cfg.AfterPathMTU(ctx); err != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s:%d lowered the target's path MTU, which it could not be made to forget: %v", ev.file, ev.line, err))
		}
	}
	rep.Results = results
	// Before the verdicts are counted: what the path explains.
	pc.Finish(ctx, rep, closed)
	rep.Notes = append(rep.Notes, p.Notes()...)
	if st := p.Stats(); st.Drops > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the local socket dropped %s during the run", plural.N(st.Drops, "frame", "frames")))
	}
	if ctx.Err() != nil {
		rep.Notes = append(rep.Notes, "interrupted: the report holds what ran")
	}
	rep.DurationMS = report.Millis(time.Since(start))
	rep.Finish()
	return rep
}

// runCheck runs a Go check after the premises it names that are known
// before, and judges what the local host did to its connections after.
func runCheck(ctx context.Context, sc Scenario, env *Env) report.Result {
	for _, n := range sc.Needs {
		switch conformance.Need(n) {
		case conformance.NeedClosedPort:
			if env.ClosedPort == 0 {
				return report.Result{Verdict: report.Skip, Cause: report.CausePremiseClosedPort, Reason: "needs a closed port (--closed-port)"}
			}
		case conformance.NeedIPv4:
			if !env.Target.Addr().Is4() {
				return report.Result{Verdict: report.Skip, Cause: report.CausePremiseFamily, Reason: "needs an IPv4 target"}
			}
		case conformance.NeedIPv6:
			if !env.Target.Addr().Is6() {
				return report.Result{Verdict: report.Skip, Cause: report.CausePremiseFamily, Reason: "needs an IPv6 target"}
			}
		case conformance.NeedSYNState:
			if env.Facts != nil && env.Facts.SYNCookies {
				return report.Result{Verdict: report.Skip, Cause: report.CausePremiseSYNCookies, Reason: "SYN cookies answer the target's SYNs: the listener keeps no state for half-open connections to judge"}
			}
		}
	}
	if why := env.Facts.Refuses(); why != "" {
		return report.Result{Verdict: report.Skip, Cause: report.CauseAppNotAccepting, Reason: why}
	}
	start := time.Now()
	res := sc.Check.Run(ctx, env)
	if res.DurationMS == 0 {
		res.DurationMS = report.Millis(time.Since(start))
	}
	// Whatever the check left open at the target is released (the
	// connection's state says what is left), and its sessions closed.
	for _, c := range env.conns {
		c.Release()
		c.S.Close()
	}
	if v, cause, why := conformance.LocalHost(env.conns...); v != "" && res.Verdict != report.Error {
		res.Verdict, res.Cause, res.Reason = v, cause, why
	}
	if ctx.Err() != nil && res.Verdict != report.Pass {
		res.Verdict, res.Cause, res.Reason = report.Error, report.CauseLocalInterrupted, "interrupted"
	}
	res.Judge()
	if v, cause, why := conformance.Late(res, env.conns...); v != "" {
		res.Verdict, res.Cause, res.Reason = v, cause, why
	}
	res.Retry = conformance.Busy(res, env.conns...)
	if sc.Level == "info" && (res.Verdict == report.Pass || res.Cause == report.CauseStack) {
		res.Verdict, res.Cause = report.Info, report.CauseStack
	}
	return res
}

// premisesAfter applies to the result of a scenario that started before
// the profile the premises the profile settled: with SYN cookies, what
// needs the listener's state for half-open connections was not judged;
// with a listener that does not accept, a SYN that went unanswered was
// not the stack's.
func premisesAfter(res report.Result, sc Scenario, f *conformance.Facts) report.Result {
	if why := f.NothingListens(); why != "" {
		res.Verdict, res.Cause, res.Reason = report.Skip, report.CauseAppNotAccepting, why
	} else if why := f.NotAccepting(); why != "" && res.Retry {
		res.Verdict, res.Cause, res.Reason, res.Retry = report.Skip, report.CauseAppNotAccepting, why, false
	}
	for _, n := range sc.Needs {
		if conformance.Need(n) == conformance.NeedSYNState && f.SYNCookies {
			res.Verdict, res.Cause = report.Skip, report.CausePremiseSYNCookies
			res.Reason = "SYN cookies answer the target's SYNs: the listener keeps no state for half-open connections to judge"
		}
	}
	return res
}

// describe fills a result's identity from its scenario.
func describe(res report.Result, sc Scenario) report.Result {
	res.Name, res.Description, res.Level, res.RFC = sc.Name, sc.Description, sc.Level, sc.RFC
	if sc.File != "" {
		res.File = sc.File
	}
	return res
}

func needsClosed(sel []Scenario) bool {
	for _, s := range sel {
		for _, n := range s.Needs {
			if n == "closed-port" {
				return true
			}
		}
	}
	return false
}

// closedPort checks the closed port the user named (a SYN must be answered
// with a RST: a silent port is filtered, not closed), or looks for one just
// above the open port when none was named and find is set. It returns 0 and
// why when there is none to use.
func closedPort(ctx context.Context, env *Env, named uint16, find bool) (uint16, string) {
	if named != 0 {
		switch state := probePort(ctx, env, named); state {
		case "closed":
			return named, ""
		case "silent":
			return 0, fmt.Sprintf("the closed port %d did not answer a SYN with a RST within %v: it is filtered, not closed (the path or a firewall drops what it gets)", named, env.Timeout/2)
		default:
			return 0, fmt.Sprintf("--closed-port %d is not a closed port: a SYN to it got %s", named, state)
		}
	}
	if !find {
		return 0, "needs a closed port (--closed-port)"
	}
	base := env.Target.Port()
	var tried []string
	for d := uint16(1); d <= 8; d++ {
		port := base + d
		if port == 0 {
			break
		}
		tried = append(tried, fmt.Sprint(port))
		state := probePort(ctx, env, port)
		if state == "closed" {
			return port, ""
		}
		tried[len(tried)-1] += " " + state
	}
	return 0, fmt.Sprintf("no closed port near %d (tried %s); give --closed-port", base, strings.Join(tried, ", "))
}

func probePort(ctx context.Context, env *Env, port uint16) string {
	if err := env.Pace(ctx); err != nil {
		return "interrupted"
	}
	s, err := env.Prober.Open(probe.SessionConfig{Remote: netip.AddrPortFrom(env.Target.Addr(), port)})
	if err != nil {
		return "error"
	}
	defer s.Close()
	c := conformance.NewConn(s)
	syn := probe.Frame{IP: c.IPv4(), TCP: probe.TCP{Seq: 1, Flags: probe.SYN, Window: 1000, Options: []probe.Option{probe.MSSOption(1460)}}}
	if _, err := c.Send(&syn); err != nil {
		return "error"
	}
	r, err := c.Recv(ctx, time.Now().Add(env.Timeout/2))
	switch {
	case err != nil:
		return "silent"
	case r.Frame.Has(probe.LayerTCP) && r.Frame.TCP.Flags&probe.RST != 0:
		return "closed"
	case r.Frame.Has(probe.LayerTCP) && r.Frame.TCP.Flags&probe.SYN != 0:
		c.Observe(&r.Frame.TCP)
		c.Release()
		return "a SYN-ACK (it is open)"
	case r.Frame.Has(probe.LayerICMP):
		return fmt.Sprintf("ICMP type %d code %d", r.Frame.ICMP.Type, r.Frame.ICMP.Code)
	}
	return "an answer that is not TCP"
}

package scenarios

import (
	"context"
	"fmt"
	"net/netip"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"synprobe/conformance"
	"synprobe/conformance/report"
	"synprobe/conformance/script"
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
	// Fingerprint, if set, measures the stack beside the scenarios.
	Fingerprint func(ctx context.Context, env *Env) any
	// Progress, if set, is called as scenarios finish.
	Progress func(done, total int, name string)
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
	rc.FindClosedPort = true
	rep := Run(ctx, p, rc, sel)
	rep.Command = "audit"
	return rep, nil
}

// FromScript makes a scenario of a user's script.
func FromScript(s *script.Script) Scenario {
	return Scenario{Name: s.Meta.Name, Level: level(s.Meta.Level), RFC: s.Meta.RFC, Description: s.Meta.Description,
		Needs: s.Meta.Needs, Script: s, File: s.File, Estimate: s.Length()}
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
		Target: cfg.Target, ClosedPort: cfg.ClosedPort, Jobs: 1, Rate: cfg.Rate, Timeout: cfg.Timeout,
	})
	env := &Env{Prober: p, Target: cfg.Target, ClosedPort: cfg.ClosedPort, Timeout: cfg.Timeout, Pace: runner.NewPace(0)}
	if cfg.ClosedPort == 0 && cfg.FindClosedPort && needsClosed(items) {
		port, why := findClosedPort(ctx, env)
		if port != 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("closed port: %d (found near the open port)", port))
		} else {
			rep.Notes = append(rep.Notes, "closed-port scenarios skipped: "+why)
		}
		env.ClosedPort = port
		runner.SetClosedPort(port)
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
	for _, i := range order {
		sc := items[i]
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			results[i] = describe(report.Result{Verdict: report.Skip, Reason: "not run: interrupted"}, sc)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var res report.Result
			if sc.Script != nil {
				res = runner.RunScript(ctx, sc.Script)
			} else {
				cenv := *env
				cenv.Pace = runner.NewPace(int(sc.Estimate / time.Millisecond))
				res = runCheck(ctx, sc, &cenv)
			}
			results[i] = describe(res, sc)
			if cfg.Progress != nil {
				mu.Lock()
				done++
				cfg.Progress(done, len(items), sc.Name)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	rep.Results = results
	rep.Notes = append(rep.Notes, p.Notes()...)
	if st := p.Stats(); st.Drops > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the local socket dropped %d frames during the run", st.Drops))
	}
	if ctx.Err() != nil {
		rep.Notes = append(rep.Notes, "interrupted: the report holds what ran")
	}
	rep.DurationMS = report.Millis(time.Since(start))
	rep.Finish()
	return rep
}

func runCheck(ctx context.Context, sc Scenario, env *Env) report.Result {
	for _, n := range sc.Needs {
		switch {
		case n == "closed-port" && env.ClosedPort == 0:
			return report.Result{Verdict: report.Skip, Reason: "needs a closed port (--closed-port)"}
		case n == "ipv4" && !env.Target.Addr().Is4():
			return report.Result{Verdict: report.Skip, Reason: "needs an IPv4 target"}
		case n == "ipv6" && !env.Target.Addr().Is6():
			return report.Result{Verdict: report.Skip, Reason: "needs an IPv6 target"}
		}
	}
	start := time.Now()
	res := sc.Check.Run(ctx, env)
	if res.DurationMS == 0 {
		res.DurationMS = report.Millis(time.Since(start))
	}
	res.Judge()
	if res.Verdict == report.Pass && sc.Level == "info" {
		res.Verdict = report.Info
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

// findClosedPort looks for a port with no listener just above the open
// one: a SYN answered by a RST. Ports that answer with a SYN-ACK are
// released with a RST.
func findClosedPort(ctx context.Context, env *Env) (uint16, string) {
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
		rst := probe.Frame{IP: c.IPv4(), TCP: probe.TCP{Seq: 2, Flags: probe.RST}}
		c.Send(&rst)
		return "open"
	}
	return "other"
}

package conformance

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"synprobe/conformance/report"
	"synprobe/conformance/script"
	"synprobe/probe"
)

// RunConfig says how scripts run against a target.
type RunConfig struct {
	// Target is the open port scripts talk to.
	Target netip.AddrPort
	// ClosedPort is a port of the same host with no listener, for scripts
	// that need one (@needs closed-port); 0 when none is known.
	ClosedPort uint16
	// Jobs is how many scripts run at once (default 8).
	Jobs int
	// Rate caps the SYNs per second sent to the target across all scripts
	// (default 20; negative: no cap). A burst of SYNs switches on SYN
	// cookies at the target and changes what is measured.
	Rate float64
	// Timeout bounds every wait: an expectation written "*", the first
	// reply before a round trip is known (default 2s).
	Timeout time.Duration
	// Progress, if set, is called after each script.
	Progress func(done, total int, r *report.Result)
}

// DefaultRate is the default cap on SYNs per second to one target.
const DefaultRate = 20

// Runner runs scripts against one target over a prober.
type Runner struct {
	p    *probe.Prober
	cfg  RunConfig
	pace *pacer
}

// NewRunner returns a runner on p.
func NewRunner(p *probe.Prober, cfg RunConfig) *Runner {
	if cfg.Jobs <= 0 {
		cfg.Jobs = 8
	}
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	return &Runner{p: p, cfg: cfg, pace: newPacer(cfg.Rate)}
}

// SetClosedPort tells the runner a closed port found after it was made;
// call it before running scripts.
func (r *Runner) SetClosedPort(port uint16) { r.cfg.ClosedPort = port }

// NewPace returns the pacing function for one job (a Go check, the
// fingerprint) expected to last priority milliseconds: call it before every
// SYN sent to the target. Jobs share the runner's per-target rate.
func (r *Runner) NewPace(priority int) func(context.Context) error {
	var sent atomic.Int32
	return func(ctx context.Context) error {
		err := r.pace.wait(ctx, priority+int(sent.Load()))
		sent.Add(1)
		return err
	}
}

// Run runs the scripts concurrently, each on its own connection, and
// returns their results in the order given. When ctx ends, running
// scripts stop (their results say so) and scripts not started are skipped.
func (r *Runner) Run(ctx context.Context, scripts []*script.Script) []report.Result {
	results := make([]report.Result, len(scripts))
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for w := 0; w < min(r.cfg.Jobs, len(scripts)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = r.RunScript(ctx, scripts[i])
				if r.cfg.Progress != nil {
					mu.Lock()
					done++
					r.cfg.Progress(done, len(scripts), &results[i])
					mu.Unlock()
				}
			}
		}()
	}
	i := 0
feed:
	for ; i < len(scripts); i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	for ; i < len(scripts); i++ {
		results[i] = notRun(scripts[i], "not run: interrupted")
	}
	return results
}

func notRun(s *script.Script, why string) report.Result {
	res := newResult(s)
	res.Verdict, res.Reason = report.Skip, why
	return res
}

func newResult(s *script.Script) report.Result {
	level := s.Meta.Level
	if level == "" {
		level = "MUST"
	}
	return report.Result{Name: s.Meta.Name, Description: s.Meta.Description, File: s.File, Level: level, RFC: s.Meta.RFC}
}

// RunScript runs one script on a connection of its own.
func (r *Runner) RunScript(ctx context.Context, s *script.Script) report.Result {
	res := newResult(s)
	target, why := r.targetFor(s)
	if why != "" {
		res.Verdict, res.Reason = report.Skip, why
		return res
	}
	sess, err := r.p.Open(probe.SessionConfig{Remote: target})
	if err != nil {
		res.Verdict, res.Reason = report.Error, err.Error()
		return res
	}
	defer sess.Close()
	e := newExecution(ctx, r, s, NewConn(sess))
	e.run()
	res.Steps = e.conn.Steps
	res.Notes = append(res.Notes, e.notes...)
	for _, n := range s.Ignored {
		res.Notes = append(res.Notes, fmt.Sprintf("line %d ignored: %s", n.Line, n.Reason))
	}
	switch {
	case e.interrupted:
		res.Verdict, res.Reason = report.Error, "interrupted"
	case e.conn.LocalHostInterference() != "":
		res.Verdict, res.Reason = report.Error, e.conn.LocalHostInterference()
	case e.skipReason != "":
		res.Verdict, res.Reason = report.Skip, e.skipReason
	}
	res.Judge()
	if s.Meta.Level == "info" {
		res.Verdict, res.Reason = report.Info, observed(res)
	}
	// The script's own time: waits for the pacer are outside it.
	res.DurationMS = report.Millis(time.Since(e.t0))
	return res
}

// observed says what an info-level script saw: its last expectation's
// answer, and whether the script foresaw it.
func observed(res report.Result) string {
	for i := len(res.Steps) - 1; i >= 0; i-- {
		st := res.Steps[i]
		if st.Direction != report.Expect || st.Verdict == report.Skip {
			continue
		}
		if st.Verdict == report.Pass {
			return fmt.Sprintf("as the script describes: %s at line %d", st.Actual, st.Line)
		}
		want := strings.TrimPrefix(st.Expected, "> ")
		if want == "none" {
			want = "silence"
		}
		return fmt.Sprintf("observed %s at line %d, where the script describes %s", st.Actual, st.Line, want)
	}
	return res.Reason
}

// targetFor picks the port a script talks to, or says why it cannot run.
func (r *Runner) targetFor(s *script.Script) (netip.AddrPort, string) {
	t := r.cfg.Target
	switch v := s.Config.IPVersion; {
	case v == 6 && t.Addr().Is4():
		return t, "needs an IPv6 target (--ip_version=ipv6)"
	case v == 4 && t.Addr().Is6():
		return t, "needs an IPv4 target (--ip_version=ipv4)"
	}
	for _, need := range s.Meta.Needs {
		switch need {
		case "closed-port":
			if r.cfg.ClosedPort == 0 {
				return t, "needs a closed port (--closed-port)"
			}
			t = netip.AddrPortFrom(t.Addr(), r.cfg.ClosedPort)
		case "ipv6":
			if t.Addr().Is4() {
				return t, "needs an IPv6 target"
			}
		case "ipv4":
			if t.Addr().Is6() {
				return t, "needs an IPv4 target"
			}
		}
	}
	return t, ""
}

// pacer spaces SYNs to a target: at most one per interval, no bursts.
// Waiting SYNs are served by priority, then in order of arrival. A job's
// priority is its expected length in milliseconds plus the SYNs it has sent
// already: the longest jobs start first and work under way goes before new
// work, so a run takes about as long as its longest job (longest processing
// time first) rather than waiting behind the queue.
type pacer struct {
	interval time.Duration
	mu       sync.Mutex
	next     time.Time // when the next SYN may go
	queue    []*waiter
	armed    bool
	seq      uint64
}

type waiter struct {
	prio int
	seq  uint64
	ch   chan struct{}
}

func newPacer(rate float64) *pacer {
	if rate <= 0 {
		return &pacer{}
	}
	return &pacer{interval: time.Duration(float64(time.Second) / rate)}
}

// wait blocks until the next SYN may go; prio is how many SYNs the caller's
// job has sent already.
func (p *pacer) wait(ctx context.Context, prio int) error {
	if p.interval == 0 {
		return nil
	}
	w := &waiter{prio: prio, ch: make(chan struct{})}
	p.mu.Lock()
	p.seq++
	w.seq = p.seq
	p.queue = append(p.queue, w)
	p.dispatchLocked()
	p.mu.Unlock()
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		p.mu.Lock()
		for i, q := range p.queue {
			if q == w {
				p.queue = append(p.queue[:i], p.queue[i+1:]...)
				break
			}
		}
		p.mu.Unlock()
		return ctx.Err()
	}
}

// dispatchLocked releases the best waiter when the next slot has come,
// and otherwise arms a timer for it.
func (p *pacer) dispatchLocked() {
	for len(p.queue) > 0 {
		now := time.Now()
		if now.Before(p.next) {
			if !p.armed {
				p.armed = true
				time.AfterFunc(p.next.Sub(now), func() {
					p.mu.Lock()
					p.armed = false
					p.dispatchLocked()
					p.mu.Unlock()
				})
			}
			return
		}
		best := 0
		for i, w := range p.queue {
			if w.prio > p.queue[best].prio || w.prio == p.queue[best].prio && w.seq < p.queue[best].seq {
				best = i
			}
		}
		w := p.queue[best]
		p.queue = append(p.queue[:best], p.queue[best+1:]...)
		close(w.ch)
		p.next = now.Add(p.interval)
	}
}

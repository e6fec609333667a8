package conformance

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"synprobe/conformance/report"
	"synprobe/conformance/script"
	"synprobe/internal/plural"
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
	// Jitter is how much later than the measured round trip a reply may
	// come on this path: its round trip's spread, which a path such as
	// the internet has and a LAN has not (default 0).
	Jitter time.Duration
	// Progress, if set, is called after each script.
	Progress func(done, total int, r *report.Result)
	// Facts are what is known of the target (the application profile);
	// nil when nothing is.
	Facts *Facts
	// ClosedPortWhy says why no closed port is known (ClosedPort 0).
	ClosedPortWhy string
}

// DefaultRate is the default cap on SYNs per second to one target.
const DefaultRate = 20

// Runner runs scripts against one target over a prober.
type Runner struct {
	p    *probe.Prober
	cfg  RunConfig
	pace *pacer

	// known guards what is learned of the target while scripts may run
	// (the facts, the closed port): set once, read by every script.
	known sync.Mutex
	// profiled, when a profile runs beside the scripts (FactsPending), is
	// closed by SetFacts.
	profiled chan struct{}

	// liveMu serialises the checks of whether the listener still answers
	// SYNs: many scripts may meet silence at once.
	liveMu    sync.Mutex
	liveAt    time.Time
	liveFound string
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

// SetClosedPort tells the runner a closed port found after it was made,
// or why there is none; call it before running scripts.
func (r *Runner) SetClosedPort(port uint16, why string) {
	r.known.Lock()
	defer r.known.Unlock()
	r.cfg.ClosedPort, r.cfg.ClosedPortWhy = port, why
}

// closedPort returns the closed port known, or why there is none.
func (r *Runner) closedPort() (uint16, string) {
	r.known.Lock()
	defer r.known.Unlock()
	return r.cfg.ClosedPort, r.cfg.ClosedPortWhy
}

// SetFacts tells the runner what was learned of the target after it was
// made; call it before running scripts.
func (r *Runner) SetFacts(f *Facts) {
	r.known.Lock()
	defer r.known.Unlock()
	r.cfg.Facts = f
	if r.profiled != nil {
		select {
		case <-r.profiled:
		default:
			close(r.profiled)
		}
	}
}

// FactsPending says that a profile of the target runs beside the scripts
// and will give SetFacts what it learned: a script that needs them to
// judge a silence waits for them (factsSettled).
func (r *Runner) FactsPending() {
	r.known.Lock()
	defer r.known.Unlock()
	r.profiled = make(chan struct{})
}

// factsSettled waits until the facts are known, when a profile is
// pending, or ctx ends.
func (r *Runner) factsSettled(ctx context.Context) *Facts {
	r.known.Lock()
	ch := r.profiled
	r.known.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
	return r.Facts()
}

// Facts returns what the runner knows of the target (never nil).
func (r *Runner) Facts() *Facts {
	r.known.Lock()
	defer r.known.Unlock()
	if r.cfg.Facts == nil {
		r.cfg.Facts = &Facts{}
	}
	return r.cfg.Facts
}

// liveRecheck is how long a finding that the listener answers SYNs holds
// before a script that met silence asks again.
const liveRecheck = 2 * time.Second

// ListenerDown returns why the listener does not accept connections, or ""
// when it does: what the facts say, else a fresh SYN from another port
// (paced, answered or not within the timeout), whose finding the other
// scripts share.
func (r *Runner) ListenerDown(ctx context.Context) string {
	f := r.Facts()
	if why := f.NotAccepting(); why != "" {
		return why
	}
	r.liveMu.Lock()
	defer r.liveMu.Unlock()
	if why := f.NotAccepting(); why != "" {
		return why
	}
	if time.Since(r.liveAt) < liveRecheck {
		return r.liveFound
	}
	// The finding holds from when the check ended: the scripts that met
	// silence meanwhile, waiting here, share it.
	answered := synAnswered(ctx, r.p, r.cfg.Target, r.NewPace(0), r.cfg.Timeout)
	r.liveAt, r.liveFound = time.Now(), ""
	if answered || ctx.Err() != nil {
		return ""
	}
	// Only completed handshakes fill an accept queue: a listener that
	// stopped answering with none completed since it last answered did
	// not fill it, and its silence is the stack's.
	if hs := r.p.Handshakes(r.cfg.Target); hs.SinceSYNACK == 0 {
		return ""
	}
	r.liveFound = "the listener stopped answering SYNs (a fresh SYN from another port got no answer either) after connections completed: its accept queue is full, the application does not accept connections"
	f.SetNotAccepting(r.liveFound)
	return r.liveFound
}

// synAnswered sends one SYN to target from a fresh port and reports
// whether a SYN-ACK (or a RST) came within timeout; the connection is
// released.
func synAnswered(ctx context.Context, p *probe.Prober, target netip.AddrPort, pace func(context.Context) error, timeout time.Duration) bool {
	if err := pace(ctx); err != nil {
		return false
	}
	s, err := p.Open(probe.SessionConfig{Remote: target})
	if err != nil {
		return false
	}
	defer s.Close()
	c := NewConn(s)
	defer c.Release()
	syn := probe.Frame{IP: c.IPv4(), TCP: probe.TCP{Seq: probe.Seq(rand.Uint32()), Flags: probe.SYN, Window: 64240, Options: []probe.Option{probe.MSSOption(1460)}}}
	if _, err := c.Send(&syn); err != nil {
		return false
	}
	rep, err := c.Recv(ctx, time.Now().Add(timeout))
	if err != nil || !rep.Frame.Has(probe.LayerTCP) {
		return false
	}
	c.Observe(&rep.Frame.TCP)
	return true
}

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
	res.Verdict, res.Cause, res.Reason = report.Skip, report.CauseLocalInterrupted, why
	return res
}

func newResult(s *script.Script) report.Result {
	level := s.Meta.Level
	if level == "" {
		level = "MUST"
	}
	return report.Result{Name: s.Meta.Name, Description: s.Meta.Description, File: s.File, Level: level, RFC: s.Meta.RFC}
}

// staleRetries is how many times a script starts again on a fresh port
// when its opening SYN meets a connection an earlier run left behind: once,
// since a second such answer is believed.
const staleRetries = 1

// RunScript runs one script on a connection of its own.
func (r *Runner) RunScript(ctx context.Context, s *script.Script) report.Result {
	res := newResult(s)
	if s.Unsupported != "" {
		res.Verdict, res.Cause, res.Reason = report.Skip, report.CausePremiseBlackBox, s.Unsupported
		return res
	}
	target, cause, why := r.targetFor(s)
	// What the script does before a line a black box cannot honour does
	// not depend on it and is judged; the rest is skip.
	bbLine, bbWhy := blackBox(s)
	if why == "" && bbWhy != "" && !judgedBefore(s, bbLine) {
		cause, why = report.CausePremiseBlackBox, bbWhy
	}
	if why != "" {
		res.Verdict, res.Cause, res.Reason = report.Skip, cause, why
		return res
	}
	var e *execution
	var stale []string
	for attempt := 0; ; attempt++ {
		sess, err := r.p.Open(probe.SessionConfig{Remote: target})
		if err != nil {
			res.Verdict, res.Cause, res.Reason = report.Error, report.CauseLocalFailure, err.Error()
			return res
		}
		seen := e != nil && e.staleSeen
		e = newExecution(ctx, r, s, NewConn(sess))
		e.staleSeen = seen
		e.stopLine, e.stopWhy = bbLine, bbWhy
		e.run()
		sess.Close()
		e.conn.S.Close()
		if !e.stale || attempt == staleRetries {
			break
		}
		stale = append(stale, fmt.Sprintf("port %d met a connection an earlier run left on the target (a challenge ACK or a RST answered the SYN): the script started again on another port", sess.Local().Port()))
	}
	res.Steps = e.conn.Steps
	res.Notes = append(res.Notes, stale...)
	res.Notes = append(res.Notes, e.notes...)
	conns := e.conns()
	for _, c := range conns {
		if a := c.App; a.Bytes > 0 || a.FIN {
			res.Notes = append(res.Notes, appNote(a))
		}
	}
	for _, n := range s.Ignored {
		res.Notes = append(res.Notes, fmt.Sprintf("line %d ignored: %s", n.Line, n.Reason))
	}
	switch {
	case e.interrupted:
		res.Verdict, res.Cause, res.Reason = report.Error, report.CauseLocalInterrupted, "interrupted"
	default:
		if v, cause, why := LocalHost(conns...); v != "" {
			res.Verdict, res.Cause, res.Reason = v, cause, why
		} else if e.skipReason != "" {
			res.Judge()
			res.Decide(report.Skip, e.skipCause, e.skipReason)
		}
	}
	res.Judge()
	if v, cause, why := Late(res, conns...); v != "" {
		res.Verdict, res.Cause, res.Reason = v, cause, why
	}
	res.Retry = Busy(res, conns...)
	if s.Meta.Level == "info" && (res.Verdict == report.Pass || res.Cause == report.CauseStack) {
		res.Verdict, res.Cause, res.Reason = report.Info, report.CauseStack, observed(res)
	}
	// The script's own time: waits for the pacer are outside it.
	res.DurationMS = report.Millis(time.Since(e.t0))
	return res
}

// appNote says what the application did that no line described.
func appNote(a AppState) string {
	var what []string
	if a.Bytes > 0 {
		what = append(what, fmt.Sprintf("sent %d bytes", a.Bytes))
	}
	if a.FIN {
		what = append(what, "closed the connection")
	}
	return fmt.Sprintf("the target's application %s, which no line describes: synprobe acknowledged it and counted the target's sequence numbers past it (not a TCP matter)", strings.Join(what, " and "))
}

// Busy says whether a result could not be judged because the target was
// busy with the run's other connections: a SYN of its went unanswered,
// sent again and all (an application that accepts one connection at a time
// fills its small accept queue with the run's connections). Run alone, it
// may be judged.
func Busy(res report.Result, conns ...*Conn) bool {
	if res.Verdict == report.Pass || res.Cause == report.CauseAppNotAccepting || res.Cause.Kind() == "local-host" {
		return false
	}
	for _, c := range conns {
		if c.SYNUnanswered {
			return true
		}
	}
	return false
}

// LocalHost says whether the local host disturbed what came back on the
// connections of a check, and how: its kernel answered on synprobe's port
// (no RST guard), or its socket dropped frames while the check ran. The
// verdict is then error: nothing the target did can be judged from what
// is left.
func LocalHost(conns ...*Conn) (report.Verdict, report.Cause, string) {
	for _, c := range conns {
		if msg := c.LocalHostInterference(); msg != "" {
			return report.Error, report.CauseLocalKernelRST, msg
		}
	}
	for _, c := range conns {
		if n := c.DroppedLocally(); n > 0 {
			return report.Error, report.CauseLocalDrops, fmt.Sprintf("the local socket dropped %s while this ran: what the target sent cannot be told from what this host lost", plural.N(n, "frame", "frames"))
		}
	}
	return "", "", ""
}

// LateBound is how late synprobe may send a segment before the target's
// answers stop being judged: beyond it the target's timers (a delayed
// ACK's 40 ms, the RTO's 200 ms, the SYN-ACK's 1 s) may have run while
// this host was busy, and what did not pass may be this host's doing.
// Well above the jitter of a busy host (a few ms), so a check that fails
// on an idle host still fails.
const LateBound = 50 * time.Millisecond

// Late says whether synprobe sent a segment of the check's connections
// later than LateBound, for a result that did not pass: its verdict is
// then error, the local host's.
func Late(res report.Result, conns ...*Conn) (report.Verdict, report.Cause, string) {
	if res.Verdict != report.Fail && res.Verdict != report.Warn {
		return "", "", ""
	}
	var worst *Conn
	for _, c := range conns {
		if c.Late > LateBound && (worst == nil || c.Late > worst.Late) {
			worst = c
		}
	}
	if worst == nil {
		return "", "", ""
	}
	return report.Error, report.CauseLocalBusy, fmt.Sprintf("this host sent %s %d ms late (its CPU was busy): the target's timers ran meanwhile, so what it sent then is not judged (fewer targets at once, --concurrency, keeps the host on time)", worst.LateWhat, worst.Late.Milliseconds())
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

// targetFor picks the port a script talks to, or says why it cannot run:
// a premise known before it runs does not hold.
func (r *Runner) targetFor(s *script.Script) (netip.AddrPort, report.Cause, string) {
	t := r.cfg.Target
	switch v := s.Config.IPVersion; {
	case v == 6 && t.Addr().Is4():
		return t, report.CausePremiseFamily, "needs an IPv6 target (--ip_version=ipv6)"
	case v == 4 && t.Addr().Is6():
		return t, report.CausePremiseFamily, "needs an IPv4 target (--ip_version=ipv4)"
	}
	f := r.Facts()
	closed := false
	for _, need := range s.Meta.Needs {
		switch Need(need) {
		case NeedClosedPort:
			port, why := r.closedPort()
			if port == 0 {
				if why == "" {
					why = "needs a closed port (--closed-port)"
				}
				return t, report.CausePremiseClosedPort, why
			}
			t, closed = netip.AddrPortFrom(t.Addr(), port), true
		case NeedIPv6:
			if t.Addr().Is4() {
				return t, report.CausePremiseFamily, "needs an IPv6 target"
			}
		case NeedIPv4:
			if t.Addr().Is6() {
				return t, report.CausePremiseFamily, "needs an IPv4 target"
			}
		case NeedSYNState:
			if f.SYNCookies {
				return t, report.CausePremiseSYNCookies, "SYN cookies answer the target's SYNs (a forgotten half-open connection's ACK opened a connection): the listener keeps no state for half-open connections to judge"
			}
		}
	}
	if why := f.NothingListens(); why != "" && !closed {
		return t, report.CauseAppNotAccepting, why
	}
	if why := f.Refuses(); why != "" && !closed && expectsSYNACK(s) {
		return t, report.CauseAppNotAccepting, why
	}
	return t, "", ""
}

// judgedBefore reports whether a line before line expects something of
// the target.
func judgedBefore(s *script.Script, line int) bool {
	for _, ev := range s.Events {
		if ev.Line >= line {
			return false
		}
		if p := ev.Packet; p != nil && p.Dir == script.Outbound {
			return true
		}
	}
	return false
}

// expectsSYNACK reports whether a script waits for a SYN-ACK: it needs a
// listener that completes connections.
func expectsSYNACK(s *script.Script) bool {
	for _, ev := range s.Events {
		if p := ev.Packet; p != nil && p.Dir == script.Outbound && p.Flags.Has(probe.SYN|probe.ACK) {
			return true
		}
	}
	return false
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

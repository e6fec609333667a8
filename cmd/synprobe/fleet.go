package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"

	"synprobe/conformance/report"
	"synprobe/internal/exclude"
	"synprobe/internal/fleet"
	"synprobe/internal/netns"
	"synprobe/internal/plural"
	"synprobe/internal/progress"
	targetsrc "synprobe/internal/targets"
	"synprobe/probe"
)

// Bounds of the --targets flags.
const (
	defaultConcurrency = 16
	maxConcurrency     = 4096
	maxPPS             = 1e6
)

// excludeList is what --targets and sweep never probe: the default ranges
// (the documentation ones too unless --allow-documentation or under lab)
// and each --exclude, a CIDR or a zmap blocklist file.
func excludeList(c *cli.Context) (*exclude.List, error) {
	list := exclude.Default(c.Bool("allow-documentation") || labTarget(c.Context) != nil)
	if labTarget(c.Context) != nil && c.IsSet("targets") {
		excludeOutsideLab(list) // lab sweep refuses them instead
	}
	for _, e := range c.StringSlice("exclude") {
		if p, err := exclude.ParsePrefix(e); err == nil {
			list.Add(p, "excluded by --exclude "+p.String())
			continue
		}
		if stopIfCheckOnly(c) != nil {
			continue // a file: not read in a check-only run
		}
		f, err := openFile("--exclude", e)
		if err != nil {
			return nil, err
		}
		err = list.ReadBlocklist(f, e)
		f.Close()
		if err != nil {
			return nil, usageErr("--exclude: %v", printable(err.Error()))
		}
	}
	return list, nil
}

// fleetFlags are the flags of a many-target run (audit and handshake).
func fleetFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "targets", Usage: "check every target of `FILE` ('-': standard input): HOST:PORT, HOST or CIDR lines (with --port), or the output of masscan -oL/-oJ, nmap -oG, zmap (CSV) or synprobe sweep; writes --format jsonl"},
		&cli.UintFlag{Name: "port", Usage: "the `PORT` of --targets lines that name none (HOST, CIDR)"},
		&cli.IntFlag{Name: "concurrency", Value: defaultConcurrency, Usage: "check up to `N` targets at once (--targets)"},
		&cli.Float64Flag{Name: "pps", Usage: "send at most `N` SYNs per second in the whole run (--targets; 0: no cap beyond --rate per target); fewer targets run at once to keep it"},
		&cli.StringFlag{Name: "shard", Usage: "check only shard `I/N` of the targets (I from 0), partitioned by a hash of HOST:PORT", DefaultText: "from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX, else all"},
		&cli.IntFlag{Name: "shard-count", Usage: "the number of shards `N` for JOB_COMPLETION_INDEX (a Kubernetes Indexed Job's completions; or SYNPROBE_SHARDS)"},
		&cli.StringFlag{Name: "resume", Usage: "skip the targets already in `FILE`, the JSON lines of an earlier run, but those interrupted or with an error and no fail (the same file as --output appends to it)"},
		&cli.StringSliceFlag{Name: "exclude", Usage: "never check `CIDR|FILE` (a zmap blocklist); repeatable"},
		&cli.BoolFlag{Name: "allow-documentation", Usage: "check targets in the documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32, 3fff::/20), excluded by default"},
		&cli.IntFlag{Name: "fail-exit-code", Value: exitFail, Usage: "exit with `CODE` when a target failed a check (--targets); 0 for a batch task that succeeded whatever it found (a target with an error still exits 3)"},
	}
}

// fleetArgs are the checked flags of a --targets run.
type fleetArgs struct {
	command   string
	opt       targetsrc.Options
	shardFrom string
	workers   int
	perTarget float64 // SYNs per second per target
	startRate float64 // targets started per second
	failCode  int     // the exit code when a target failed a check
}

// parseFleetArgs checks the flags of a --targets run; rate is the
// command's SYNs per second per target (0: no limit), synsPerTarget how
// many SYNs one target costs when the command has no pacing of its own
// (handshake: 1), 0 when it paces itself.
func parseFleetArgs(c *cli.Context, command string, rate float64) (*fleetArgs, error) {
	a := &fleetArgs{command: command}
	if c.NArg() > 0 {
		return nil, usageErr("%s: --targets names the targets; drop the argument %q", command, printable(c.Args().First()))
	}
	if c.IsSet("format") && c.String("format") != "jsonl" {
		return nil, usageErr("%s: --targets writes --format jsonl, one line per target (got --format %s)", command, printable(c.String("format")))
	}
	if c.String("pcap") != "" {
		return nil, usageErr("%s: --pcap records one target; with --targets, record with tcpdump", command)
	}
	if p := c.Uint("port"); p > 65535 {
		return nil, usageErr("--port %d: want 1 to 65535", p)
	}
	a.opt.DefaultPort = uint16(c.Uint("port"))
	if n := c.Int("concurrency"); n < 1 || n > maxConcurrency {
		return nil, usageErr("--concurrency %d: want 1 to %d", n, maxConcurrency)
	}
	pps := c.Float64("pps")
	if math.IsNaN(pps) || math.IsInf(pps, 0) || pps < 0 || pps > maxPPS || pps > 0 && pps < minRate {
		return nil, usageErr("--pps %v: want %v to %v SYNs per second, 0 for no cap", pps, minRate, maxPPS)
	}
	a.failCode = c.Int("fail-exit-code")
	if a.failCode < 0 || a.failCode > 255 || a.failCode == exitUsage || a.failCode == exitEnv {
		return nil, usageErr("--fail-exit-code %d: want 0 to 255 but not %d or %d, which mean bad input and a failed environment", a.failCode, exitUsage, exitEnv)
	}
	a.workers, a.perTarget = fleet.Plan(c.Int("concurrency"), rate, pps)
	if t := labTarget(c.Context); t != nil && t.Probe.Link != nil {
		// The in-process lab has one link: its targets run one at a time.
		a.workers = 1
	}
	a.startRate = pps
	if c.Int("shard-count") < 0 || c.Int("shard-count") > targetsrc.MaxShards {
		return nil, usageErr("--shard-count %d: want 1 to %d", c.Int("shard-count"), targetsrc.MaxShards)
	}
	if s := c.String("shard"); s != "" {
		sh, err := targetsrc.ParseShard(s)
		if err != nil {
			return nil, usageErr("--shard %v", printable(err.Error()))
		}
		a.opt.Shard, a.shardFrom = sh, "--shard"
	} else {
		sh, from, err := targetsrc.ShardFromEnv(os.Getenv, c.Int("shard-count"))
		if err != nil {
			return nil, usageErr("shard from the environment: %v (or give --shard I/N)", printable(err.Error()))
		}
		a.opt.Shard, a.shardFrom = sh, from
	}
	list, err := excludeList(c)
	if err != nil {
		return nil, err
	}
	a.opt.Exclude = list
	a.opt.Lookup = targetsrc.LookupFunc(lookupFrom(c.Context))
	a.opt.Context = c.Context
	return a, nil
}

// runFleet checks every target of --targets with check and writes one
// JSON line per target.
func runFleet(c *cli.Context, a *fleetArgs, check fleet.Func) error {
	if err := stopIfCheckOnly(c); err != nil {
		return err
	}
	if ns := c.String("netns"); ns != "" {
		// Each target opens it again; a bad name is found once, here.
		fd, err := openNetNS(ns)
		if err != nil {
			return err
		}
		netns.Close(fd)
	}
	stderr := c.App.ErrWriter
	name := c.String("targets")
	a.opt.Name = name
	if name == "-" {
		a.opt.Name = "standard input"
	}
	if r := c.String("resume"); r != "" {
		f, err := os.Open(r)
		if err == nil {
			err = notDir(f)
		}
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Nothing done yet: the first run of a job that is resumed
			// with the same command line.
		case err != nil:
			return fileErr("--resume", r, err)
		default:
			done, err := targetsrc.ReadDone(f, r)
			f.Close()
			if err != nil {
				return usageErr("--resume: %v", printable(err.Error()))
			}
			a.opt.Done = done
		}
	}
	// A file is read twice: once to count the targets and find a bad
	// line before anything is sent, then to run them. Standard input is
	// read once: a bad line stops the run where it is.
	total := -1
	if name != "-" {
		n, err := countTargets(name, a.opt)
		if err != nil {
			return err
		}
		total = n
	}
	in, closeIn, err := openTargets(c, name)
	if err != nil {
		return err
	}
	defer closeIn()
	out, closeOut, err := openFleetOutput(c)
	if err != nil {
		return err
	}
	src := targetsrc.NewReader(in, a.opt)
	prog := newFleetProgress(c, a.command, total)
	st, runErr := fleet.Run(c.Context, src, check, fleet.Config{
		Workers: a.workers, StartRate: a.startRate, Out: prog.line.Above(out), Progress: prog.show,
	})
	prog.end()
	if cerr := closeOut(); cerr != nil && runErr == nil {
		runErr = fmt.Errorf("write %s: %w", c.String("output"), cerr)
	}
	printFleetSummary(stderr, a, src.Stats(), st)
	var le *targetsrc.LineError
	switch {
	case errors.As(runErr, &le):
		return usageErr("%s: %v (the %d targets before it are written)", a.command, printable(le.Error()), st.Done)
	case errors.Is(runErr, context.Canceled):
		return runErr
	case runErr != nil:
		return envErr(fmt.Errorf("%s: %w", a.command, runErr))
	}
	if code := runExitCode(st, a.failCode); code != 0 {
		return exitCode(code)
	}
	return nil
}

// runExitCode is the exit code of a run that went to its end: failCode
// when a target failed a check, else 3 when one had an error (this host
// could not probe it), else 0. A failCode of 0 lets the errors show.
func runExitCode(st fleet.Stats, failCode int) int {
	code := st.ExitCode()
	switch {
	case code == exitFail && failCode == 0 && st.Errored > 0:
		return exitEnv
	case code == exitFail:
		return failCode
	}
	return code
}

// countTargets reads the file once with the filters, for the total and
// its bad lines.
func countTargets(name string, opt targetsrc.Options) (int, error) {
	f, err := openFile("--targets", name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := targetsrc.NewReader(f, opt)
	n := 0
	for {
		_, err := r.Next()
		if err == io.EOF {
			return n, nil
		}
		var le *targetsrc.LineError
		if errors.As(err, &le) {
			return 0, usageErr("--targets %s", printable(err.Error()))
		}
		if err != nil {
			return 0, envErr(fmt.Errorf("--targets: %w", err))
		}
		n++
	}
}

func openTargets(c *cli.Context, name string) (io.Reader, func(), error) {
	if name == "-" {
		return c.App.Reader, func() {}, nil
	}
	f, err := openFile("--targets", name)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

// openFleetOutput opens where the lines go: --output, appended to when
// it is the --resume file (after cutting a last line a killed run left
// unfinished), else emptied; or standard output.
func openFleetOutput(c *cli.Context) (io.Writer, func() error, error) {
	name := c.String("output")
	if name == "" || name == "-" {
		return c.App.Writer, func() error { return nil }, nil
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if r := c.String("resume"); r != "" {
		if rs, err := os.Stat(r); err == nil {
			if os.SameFile(rs, statOrNil(name)) {
				flags = os.O_WRONLY | os.O_APPEND
				if err := targetsrc.TrimPartialLine(name); err != nil {
					return nil, nil, fileErr("--output", name, err)
				}
			}
		}
	}
	f, err := os.OpenFile(name, flags, 0o666)
	if err != nil {
		return nil, nil, fileErr("--output", name, err)
	}
	return f, f.Close, nil
}

func statOrNil(name string) os.FileInfo {
	st, err := os.Stat(name)
	if err != nil {
		return nil
	}
	return st
}

// fleetProgress is the progress line of a --targets run: targets done
// (of how many, when read from a file), rate, estimate, errors.
type fleetProgress struct {
	line    *progress.Line
	errored atomic.Int64
	last    atomic.Value // netip.AddrPort
}

func newFleetProgress(c *cli.Context, command string, total int) *fleetProgress {
	p := &fleetProgress{}
	p.line = progress.Start(c.App.ErrWriter, progress.Options{
		Name: command, Unit: "targets", Total: int64(total), Extra: p.extra,
	})
	return p
}

func (p *fleetProgress) show(pr fleet.Progress) {
	p.errored.Store(int64(pr.Errored))
	p.last.Store(pr.Last)
	p.line.SetCurrent(int64(pr.Done))
}

func (p *fleetProgress) extra() string {
	s := plural.N(p.errored.Load(), "error", "errors")
	if last, ok := p.last.Load().(netip.AddrPort); ok {
		s += ", last " + last.String()
	}
	return s
}

func (p *fleetProgress) end() { p.line.Stop() }

// printFleetSummary says on stderr what the run did and what it left
// out, and why.
func printFleetSummary(w io.Writer, a *fleetArgs, rs targetsrc.Stats, st fleet.Stats) {
	fmt.Fprintf(w, "%s: %s checked in %v (%d failed a check, %d had an error, %d interrupted); %d at once, %s\n",
		a.command, plural.N(st.Done, "target", "targets"), st.Duration.Round(time.Millisecond), st.Failed, st.Errored, st.Interrupted, a.workers, rateText(a))
	var left []string
	if n := rs.ExcludedTotal(); n > 0 {
		left = append(left, fmt.Sprintf("excluded %d (%s)", n, excludedSummary(rs.Excluded)))
	}
	if rs.OtherShard > 0 {
		left = append(left, fmt.Sprintf("%d in other shards (shard %v, from %s)", rs.OtherShard, a.opt.Shard, a.shardFrom))
	}
	if rs.Done > 0 {
		left = append(left, fmt.Sprintf("%d done before (--resume)", rs.Done))
	}
	if rs.NotOpen > 0 {
		left = append(left, fmt.Sprintf("%d scan results not open TCP ports", rs.NotOpen))
	}
	if len(left) > 0 {
		fmt.Fprintf(w, "%s: left out: %s\n", a.command, strings.Join(left, "; "))
	}
}

func rateText(a *fleetArgs) string {
	s := "no SYN rate limit per target"
	if a.perTarget > 0 {
		s = fmt.Sprintf("at most %.4g SYNs/s per target", a.perTarget)
	}
	if a.startRate > 0 {
		s += fmt.Sprintf(", %.4g/s in all", a.startRate)
	}
	return s
}

// fleetErrorReport is the report of a target that could not be probed
// (no route, no neighbour): an error of the local host's, and the run
// goes on.
func fleetErrorReport(command string, target netip.AddrPort, err error) *report.Report {
	rep := &report.Report{
		Command: command,
		Target:  report.Target{Address: target.String(), Host: target.Addr().String(), Port: int(target.Port())},
		Started: time.Now(),
		Results: []report.Result{{Name: command, Verdict: report.Error, Cause: report.CauseLocalFailure, Reason: err.Error()}},
	}
	rep.Finish()
	return rep
}

// fatalDialError reports whether a dial error will be the same for every
// target (privileges, the guard, a bad --source or --interface): the run
// stops rather than write it for each. No route, no neighbour, a target
// that is this host are the target's.
func fatalDialError(c *cli.Context, err error) bool {
	return errors.Is(err, probe.ErrPermission) || errors.Is(err, probe.ErrGuardUnavailable) ||
		errors.Is(err, probe.ErrSourceNotLocal) || errors.Is(err, probe.ErrUnsupportedLink) ||
		errors.Is(err, probe.ErrNoInterface) && c.String("interface") != ""
}

// fleetCheck makes the check of one target from a command's report
// function: dial, run, close. A dial error that every target would meet
// ends the run (fatal is set and the run's context cancelled).
type fleetCheck struct {
	c       *cli.Context
	command string
	run     func(c *cli.Context, s *session, target netip.AddrPort) (*report.Report, error)
	// dialOpts are the command's own dial options (trace's AnyQuotedPort)
	// and the run's shared resources (ports, guard, next hops).
	dialOpts []func(*probe.DialConfig)

	mu     sync.Mutex
	fatal  error
	cancel context.CancelFunc
}

func (f *fleetCheck) check(ctx context.Context, target netip.AddrPort) *report.Report {
	if ctx.Err() != nil {
		return nil
	}
	s, err := dialWith(f.c, target, false, f.dialOpts...)
	if err == nil {
		var rep *report.Report
		rep, err = f.run(f.c, s, target)
		if err == nil {
			return rep
		}
	}
	if fatalDialError(f.c, err) {
		f.mu.Lock()
		if f.fatal == nil {
			f.fatal = err
		}
		f.mu.Unlock()
		f.cancel()
		return nil
	}
	return fleetErrorReport(f.command, target, err)
}

// runFleetCommand runs a command's report function over --targets, each
// target dialled with dialOpts.
func runFleetCommand(c *cli.Context, a *fleetArgs, run func(c *cli.Context, s *session, target netip.AddrPort) (*report.Report, error), dialOpts ...func(*probe.DialConfig)) error {
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	// What every target's prober shares is closed when the run ends.
	shared := probe.NewShared()
	defer shared.Close()
	defer fleetGC()()
	dialOpts = append(dialOpts, func(cfg *probe.DialConfig) { cfg.Shared = shared })
	fc := &fleetCheck{c: c, command: a.command, run: run, cancel: cancel, dialOpts: dialOpts}
	parent := c.Context
	c.Context = ctx
	err := runFleet(c, a, fc.check)
	c.Context = parent
	if fc.fatal != nil {
		return fc.fatal
	}
	if errors.Is(err, context.Canceled) && parent.Err() == nil {
		return nil
	}
	return err
}

// fleetOnly are the flags that mean something only with --targets.
var fleetOnly = []string{"port", "concurrency", "pps", "shard", "shard-count", "resume", "exclude", "allow-documentation", "fail-exit-code"}

// fleetMode runs many (a command's --targets run) when --targets is
// given and reports true; otherwise it refuses the flags that need
// --targets (true and the error), or reports false: one target.
func fleetMode(c *cli.Context, many func(*cli.Context) error) (bool, error) {
	if c.IsSet("targets") {
		return true, many(c)
	}
	for _, f := range fleetOnly {
		if c.IsSet(f) {
			return true, usageErr("--%s needs --targets (many targets); a single HOST:PORT takes none", f)
		}
	}
	// handshake's --rate paces nothing for one target, but a value that
	// could not be honoured is still refused.
	if err := checkRate(c.Float64("rate")); err != nil {
		return true, err
	}
	return false, nil
}

// writeJSONLine writes rep as one line of JSON, as a --targets run does
// (--format jsonl of one target).
func writeJSONLine(w io.Writer, rep *report.Report) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(rep)
}

// runAuditTargets is audit --targets.
func runAuditTargets(c *cli.Context) error {
	items, err := auditItems(c)
	if err != nil {
		return err
	}
	a, err := parseFleetArgs(c, "audit", c.Float64("rate"))
	if err != nil {
		return err
	}
	return runFleetCommand(c, a, func(c *cli.Context, s *session, target netip.AddrPort) (*report.Report, error) {
		return scenarioReport(c, s, "audit", target, items, true, a.perTarget)
	})
}

// runHandshakeTargets is handshake --targets. A handshake sends one SYN:
// the per-target rate holds by itself, and the global cap is kept by
// starting targets no faster than --pps.
func runHandshakeTargets(c *cli.Context) error {
	if err := checkHandshakeFlags(c); err != nil {
		return err
	}
	if c.IsSet("source-port") {
		return usageErr("handshake: --source-port with --targets would reuse one port for every target; drop it")
	}
	a, err := parseFleetArgs(c, "handshake", 0)
	if err != nil {
		return err
	}
	return runFleetCommand(c, a, handshakeReport)
}

// runTraceTargets is trace --targets: one trace per target, each line a
// report whose path object holds the findings (trace.ReportOf). --rate
// keeps its meaning per target (probes that can reach it; those that
// expire at routers are not counted), and --pps caps the same probes over
// the whole run.
func runTraceTargets(c *cli.Context) error {
	if r := c.String("reflector"); r != "" {
		// A reflector records one port of one host: it could answer for
		// one line of the list, and lines with and without it would not
		// compare (what is blind in one is seen in the other).
		return usageErr("trace: --reflector %s answers for one target (a reflector records one port of one host); with --targets, trace that target alone: synprobe trace --reflector %s HOST:PORT", printable(r), printable(r))
	}
	cfg, err := traceConfig(c, netip.AddrPort{})
	if err != nil {
		return err
	}
	a, err := parseFleetArgs(c, "trace", c.Float64("rate"))
	if err != nil {
		return err
	}
	cfg.Rate = a.perTarget
	if cfg.Rate == 0 {
		cfg.Rate = maxRate
	}
	return runFleetCommand(c, a, func(c *cli.Context, s *session, target netip.AddrPort) (*report.Report, error) {
		cfg := cfg
		cfg.Target = target
		return traceReport(c, s, cfg)
	}, traceDial)
}

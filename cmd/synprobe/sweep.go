package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"synprobe/internal/exclude"
	"synprobe/internal/netns"
	"synprobe/internal/plural"
	"synprobe/internal/progress"
	"synprobe/internal/sweep"
)

// Bounds of sweep's flags.
const (
	sweepMaxRate    = 10_000_000
	sweepMaxRetries = 10
	sweepMaxWait    = time.Minute
)

func sweepCommand() *cli.Command {
	return &cli.Command{
		Name:      "sweep",
		Usage:     "stateless SYN sweep of addresses and ports",
		ArgsUsage: "TARGET...",
		Description: `Sends one SYN to every address of TARGET (an address or a CIDR prefix, IPv4)
on every port of --ports, and prints one JSON line per (address, port) as soon
as it is classified:

  open      a SYN-ACK came back; the line has its TTL, window, MSS, window scale
            and options (M1460,S,T,N,W7: MSS, SACK permitted, timestamps, NOP,
            window scale)
  closed    a RST came back
  filtered  an ICMP destination unreachable came back (icmp_type, icmp_code;
            icmp_from when a router sent it)
  silent    nothing, after --retries more SYNs and --wait after each pass

The output is valid --targets input. No state is kept per probe: each SYN's ISN
is a keyed hash of its 4-tuple, and a reply counts only if it acknowledges it.
Probes unanswered after a pass are sent again (their lines say "attempt": N).
A summary goes to standard error: counts per state, the rate achieved, the
drops of the receive socket and the interface; progress too, when standard
error is a terminal.

Never swept: 0/8, 127/8, 169.254/16, 224/4, 240/4, ::1, fe80::/10, ff00::/8,
and the documentation ranges unless --allow-documentation. Private ranges are
swept. --exclude takes a CIDR or a file in zmap's blocklist format (one CIDR or
address per line, # comments); the run says how many addresses were excluded
and why.

All targets must be reached through one route (one interface, one gateway).
Targets on the local link are resolved one by one (ARP; at most 256); those
that do not answer are reported silent without a SYN (attempt 0).
Needs root (CAP_NET_RAW and CAP_NET_ADMIN).

Examples:
  synprobe sweep --ports 22,80,443 10.0.0.0/16 > hosts.jsonl
  synprobe sweep --ports 1-65535 --rate 100000 10.1.2.3
  synprobe sweep --ports 80 --exclude blocklist.conf --exclude 10.9.0.0/16 10.0.0.0/8
  synprobe sweep --netns lab --ports 8000-8100 --retries 2 --wait 500ms -o out.jsonl 10.200.0.0/24
  synprobe lab sweep                   (the lab's target, its open and closed port)`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "ports", Aliases: []string{"p"}, Usage: "the `LIST` of ports: 80,443,8000-8100 (required)"},
			&cli.IntFlag{Name: "rate", Value: 10000, Usage: "send `N` SYNs per second (1 to 10000000: a sweep is always paced, so 0 is refused, unlike the --rate of audit, run and handshake)"},
			&cli.IntFlag{Name: "retries", Value: 1, Usage: "send `N` more SYNs to a probe that got no answer, after the first (0 to 10; trace's --tries counts the first send too)"},
			&cli.DurationFlag{Name: "wait", Value: time.Second, Usage: "wait `DURATION` for replies after each pass (0 to 1m; 0: what has not answered when the last SYN leaves is silent)"},
			&cli.StringSliceFlag{Name: "exclude", Usage: "never sweep `CIDR|FILE` (a zmap blocklist); repeatable"},
			&cli.BoolFlag{Name: "allow-documentation", Usage: "sweep the documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32, 3fff::/20)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the JSON lines to `FILE` instead of standard output"},
			&cli.StringFlag{Name: "netns", Usage: "sweep from the network namespace `NAME` (of ip netns, or a path)"},
			&cli.StringFlag{Name: "interface", Aliases: []string{"i"}, Usage: "send from interface `IFACE`"},
			&cli.StringFlag{Name: "source", Usage: "send from address `ADDR` (one of this host's)"},
			&cli.StringFlag{Name: "progress", Value: "auto", Usage: "a progress line on standard error when it is a terminal (`auto`; always is the same: a line is never written into a pipe or a file), or never"},
		},
		Action: runSweep,
	}
}

// sweepArgs are sweep's checked flags and arguments.
type sweepArgs struct {
	cfg      sweep.Config
	set      exclude.Set
	progress bool
}

func parseSweepArgs(c *cli.Context) (*sweepArgs, error) {
	a := &sweepArgs{}
	if !c.IsSet("ports") {
		return nil, usageErr("sweep: --ports is required (e.g. --ports 80,443,8000-8100)")
	}
	ports, err := sweep.ParsePorts(c.String("ports"))
	if err != nil {
		return nil, usageErr("--ports: %v", printable(err.Error()))
	}
	if r := c.Int("rate"); r < 1 || r > sweepMaxRate {
		return nil, usageErr("--rate %d: want 1 to %d SYNs per second", r, sweepMaxRate)
	}
	if r := c.Int("retries"); r < 0 || r > sweepMaxRetries {
		return nil, usageErr("--retries %d: want 0 to %d", r, sweepMaxRetries)
	}
	if w := c.Duration("wait"); w < 0 || w > sweepMaxWait {
		return nil, usageErr("--wait %v: want a duration from 0 to %v, such as 1s", w, sweepMaxWait)
	}
	switch c.String("progress") {
	case "auto", "always":
		// always: kept for the command lines that say it; a progress
		// line is drawn on a terminal only, never into a file.
		a.progress = true
	case "never":
	default:
		return nil, usageErr("--progress %q: want auto, always or never", printable(c.String("progress")))
	}
	a.cfg = sweep.Config{
		Ports:     ports,
		Rate:      c.Int("rate"),
		Retries:   c.Int("retries"),
		Wait:      c.Duration("wait"),
		Interface: c.String("interface"),
	}
	if s := c.String("source"); s != "" {
		addr, err := netip.ParseAddr(s)
		if err != nil || !addr.Unmap().Is4() {
			return nil, usageErr("--source %q: not an IPv4 address", printable(s))
		}
		a.cfg.Source = addr.Unmap()
	}
	if c.NArg() == 0 {
		return nil, usageErr("sweep: no targets (give addresses or CIDR prefixes, e.g. 10.0.0.0/24)")
	}
	var targets []netip.Prefix
	for _, arg := range c.Args().Slice() {
		p, err := exclude.ParsePrefix(arg)
		if err != nil {
			return nil, usageErr("sweep: target %v", printable(err.Error()))
		}
		if !p.Addr().Is4() {
			return nil, usageErr("sweep: target %s: sweep supports IPv4 only", p)
		}
		targets = append(targets, p)
	}
	list, err := excludeList(c)
	if err != nil {
		return nil, err
	}
	a.set = list.Apply(targets)
	a.cfg.Targets = a.set.Prefixes
	return a, nil
}

func runSweep(c *cli.Context) error {
	a, err := parseSweepArgs(c)
	if err != nil {
		return err
	}
	if err := stopIfCheckOnly(c); err != nil {
		return err
	}
	stderr := c.App.ErrWriter
	if n := a.set.ExcludedTotal(); n > 0 {
		fmt.Fprintf(stderr, "sweep: excluded %s: %s\n", plural.N(n, "address", "addresses"), excludedSummary(a.set.Excluded))
	}
	if a.set.Size() == 0 {
		return usageErr("sweep: every target is excluded")
	}
	if name := c.String("netns"); name != "" {
		fd, err := openNetNS(name)
		if err != nil {
			return err
		}
		defer netns.Close(fd)
		a.cfg.NetNS = fd
	}
	if t := labTarget(c.Context); t != nil {
		if t.Probe.Link != nil {
			return usageErr("lab sweep: the %s lab has no interface to sweep on; use --stack linux (needs root)", t.Stack)
		}
		for _, p := range a.cfg.Targets {
			if p != netip.PrefixFrom(t.Open.Addr(), 32) {
				return usageErr("lab sweep: %s is not in the lab; the lab's target is %s", p, t.Open.Addr())
			}
		}
		a.cfg.NetNS = t.Probe.NetNS
	}
	out := c.App.Writer
	if name := c.String("output"); name != "" && name != "-" {
		f, err := os.Create(name)
		if err != nil {
			return fileErr("--output", name, err)
		}
		defer f.Close()
		out = f
	}
	prog := newSweepProgress(stderr, a)
	w := &lineWriter{w: bufio.NewWriterSize(prog.line.Above(out), 1<<16)}
	a.cfg.Emit = w.emit
	// Lines reach a pipe within a second even without progress.
	a.cfg.Progress = func(p sweep.Progress) { prog.show(p); w.flush() }
	if prog.line != nil {
		a.cfg.ProgressEvery = 250 * time.Millisecond
	}
	st, err := sweep.Run(c.Context, a.cfg)
	w.flush() // before the line goes: the lines it holds back are written above it
	prog.end()
	if ferr := w.flush(); ferr != nil && err == nil {
		err = envErr(fmt.Errorf("sweep: write results: %w", ferr))
	}
	if err != nil {
		return sweepError(err)
	}
	printSweepSummary(stderr, a, st)
	return nil
}

// sweepError: a sweep that fails after its arguments were checked was
// stopped by the environment (privileges, routes, the guard): exit 3.
func sweepError(err error) error {
	var ee *exitError
	if errors.As(err, &ee) || errors.Is(err, context.Canceled) {
		return err
	}
	return envErr(err)
}

func excludedSummary(m map[string]uint64) string {
	reasons := make([]string, 0, len(m))
	for r := range m {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool {
		return m[reasons[i]] > m[reasons[j]] || m[reasons[i]] == m[reasons[j]] && reasons[i] < reasons[j]
	})
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%d %s", m[r], r)
	}
	return strings.Join(parts, ", ")
}

func printSweepSummary(w io.Writer, a *sweepArgs, st sweep.Stats) {
	fmt.Fprintf(w, "sweep: %s (%s x %s) in %v: %d open, %d closed, %d filtered, %d silent\n",
		plural.N(st.Total, "probe", "probes"), plural.N(a.set.Size(), "address", "addresses"), plural.N(len(a.cfg.Ports), "port", "ports"),
		st.Duration.Round(time.Millisecond), st.Open, st.Closed, st.Filtered, st.Silent)
	fmt.Fprintf(w, "sweep: sent %s from %s port %d at %.0f pps (%v sending); %s answered only on a retry (\"attempt\" > 1)\n",
		plural.N(st.Sent, "SYN", "SYNs"), st.Interface, st.SourcePort, st.SendRate(), st.SendTime.Round(time.Millisecond), plural.N(st.Retried, "probe was", "probes were"))
	fmt.Fprintf(w, "sweep: drops: receive socket %d, interface %d sent, %d received; %s validation, %s\n",
		st.RxDrops, st.LinkTxDrops, st.LinkRxDrops, plural.N(st.Invalid, "reply failed", "replies failed"), plural.N(st.Duplicates, "duplicate", "duplicates"))
	if drops := st.RxDrops + st.LinkTxDrops + st.LinkRxDrops; drops > 0 && st.Retried > 0 {
		fmt.Fprintf(w, "sweep: frames were dropped; the probes answered on a retry (%d) are marked with their attempt\n", st.Retried)
	}
	for _, n := range st.Notes {
		fmt.Fprintf(w, "sweep: %s\n", n)
	}
}

// lineWriter writes results as JSON lines, from the sweep's goroutine,
// and is flushed from the progress one.
type lineWriter struct {
	mu  sync.Mutex
	w   *bufio.Writer
	err error
}

func (l *lineWriter) emit(r sweep.Result) {
	b, _ := json.Marshal(r) // a Result always encodes
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		b = append(b, '\n')
		_, l.err = l.w.Write(b)
	}
}

func (l *lineWriter) flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = l.w.Flush()
	}
	return l.err
}

// sweepProgress is sweep's progress line: probes classified of all,
// the SYNs sent per second, the estimate of the sweep (which knows its
// send rate and the wait after it), the pass and the receive socket's
// drops.
type sweepProgress struct {
	line *progress.Line // nil: no line
	mu   sync.Mutex
	last sweep.Progress
}

func newSweepProgress(stderr io.Writer, a *sweepArgs) *sweepProgress {
	p := &sweepProgress{}
	if !a.progress || !progress.IsTerminal(stderr) {
		return p
	}
	p.line = progress.Start(stderr, progress.Options{
		Name: "sweep", Unit: "answered", Total: int64(a.set.Size()) * int64(len(a.cfg.Ports)),
		Rate:     func() float64 { return p.get().Rate },
		RateUnit: "SYN",
		ETA:      func() time.Duration { return p.get().ETA },
		Extra: func() string {
			s := p.get()
			return fmt.Sprintf("pass %d, %s sent, drops: socket %d, interface %d", max(s.Pass, 1), plural.N(s.Sent, "SYN", "SYNs"), s.RxDrops, s.LinkTxDrops+s.LinkRxDrops)
		},
	})
	return p
}

func (p *sweepProgress) get() sweep.Progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

func (p *sweepProgress) show(s sweep.Progress) {
	if p.line == nil {
		return
	}
	p.mu.Lock()
	p.last = s
	p.mu.Unlock()
	p.line.SetTotal(int64(s.Total))
	p.line.SetCurrent(int64(s.Done))
}

func (p *sweepProgress) end() { p.line.Stop() }

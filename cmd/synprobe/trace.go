package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"synprobe/conformance/report"
	"synprobe/internal/reflector"
	"synprobe/internal/trace"
	"synprobe/probe"
)

// newReflector makes the client of a cooperating reflector (synprobe
// reflect) for --reflector: it asks from the probes' namespace and
// source address (the one the reflector's --allow names).
var newReflector = func(addr netip.AddrPort, netNS int, source netip.Addr) trace.Reflector {
	return trace.NewReflectorClient(addr, reflector.Client{NetNS: netNS, Source: source, Timeout: 10 * time.Second})
}

func traceCommand() *cli.Command {
	return &cli.Command{
		Name:      "trace",
		Usage:     "find where on the path TCP segments are changed, dropped or answered by a box",
		ArgsUsage: "HOST:PORT",
		Description: `Walks the path to HOST:PORT with TCP probes of increasing TTL, as traceroute -T
does, but reads every ICMP time-exceeded for what it quotes: each router quotes
the probe as it arrived there, so comparing quote with quote, field by field and
option by option, says between which two hops a box changed it (MSS clamping,
options stripped or replaced by NOPs, ECN or DSCP rewritten, sequence numbers
translated). A probe family that falls silent where the plain SYN is answered is
dropped there. A SYN answered from fewer hops than the closed alt port's RST is
answered by a proxy or a SYN proxy, not by the target. Findings are about the
path, never the target.

Probe families (--probes, comma-separated; default all):
  syn       SYN with Linux's options (the control), and the same to --alt-port
  ecn       SYN|ECE|CWR with DSCP AF11            exotic   + TFO request and kind 253
  syndata   SYN with 16 bytes of data             badsum   SYN with a wrong checksum
  conn      three handshakes, then in-window data, out-of-window data and an
            ACK above SND.NXT (each on its own connection); a bare ACK, a FIN,
            a segment without flags and a SYN-ACK of no connection (the last
            three to --alt-port)
'--probes syn' is the quick walk: about two probes per hop.

Each family keeps one 5-tuple and ISN; only the TTL changes (and the IP ID,
0x5300|TTL, which names the TTL in a quote; IPv6 carries it in the TSval). A
control SYN at TTL 64 gives the hop count, then every TTL of every family goes
out at once: only probes that can reach the target count against --rate.

What the last router forwards nobody quotes: a box there is "blind", reported
from its symptoms at the target (e.g. "unobserved": the SYN-ACK lacks TS) and
named in the coverage lines.

--reflector HOST:PORT names the report port of a 'synprobe reflect' on the
target host that records HOST:PORT's port (the target's). After the walks,
trace asks it once what arrived in the last seconds of its own clock (the
hosts' clocks are never compared), by the probes' ISNs and payloads, and
compares: each probe as it arrived with the probe as sent and the last
router's quote (changes, NAT, seq translation and drops after the last
router, "seen by the reflector"), and the target's SYN-ACK as its host sent
it with what arrived here (the reverse path). A probe the reflector did not
record while it recorded the control is a drop, unless the reflector reports
lost captures. The query leaves from the probes' namespace and source
address: the reflector's --allow must name it (or, behind a NAT, the NAT's).

--targets FILE traces every target of a list (as audit --targets takes it),
--concurrency at a time, and writes one JSON line per target as soon as it is
done: synprobe's report (command "trace", target HOST:PORT) with one result,
"trace", whose verdict is the path's and whose cause names the finding that
decided it (path:KIND; skip when the target never answered), and the "path"
object audit --path-check writes (mode "trace": findings, coverage, the box
that answered). summarize counts their findings by kind. --rate stays per
target; --pps caps the probes that can reach a target over the whole run.
--reflector answers for one target and is refused with --targets.

Exit codes: 0 pass, info or warn; 1 a finding fails (TS stripped from data
after it was negotiated, a checksum left invalid); 2 usage; 3 environment.
With --targets: 1 when a target's path has a failing finding, else 3 when a
target could not be traced, else 0.

Examples:
  synprobe trace 192.0.2.10:80
  synprobe trace --probes syn --format json 192.0.2.10:443
  synprobe trace --netns client --pcap trace.pcap 10.79.3.1:8080
  synprobe trace --reflector 10.79.3.1:9001 10.79.3.1:8080
  synprobe trace --probes syn --targets open.jsonl -o paths.jsonl
  synprobe lab trace                (a disposable target; no routers in between)`,
		Flags: append(append([]cli.Flag{
			&cli.IntFlag{Name: "max-hops", Value: trace.DefaultMaxHops, Usage: "walk up to `N` hops"},
			&cli.IntFlag{Name: "first-hop", Value: 1, Usage: "start the walk at TTL `N`"},
			&cli.IntFlag{Name: "tries", Value: trace.DefaultTries, Usage: "send each silent TTL up to `N` times in all, the first send included (1 to 10; an answer to any counts; sweep's --retries counts only the sends after the first)"},
			&cli.DurationFlag{Name: "wait", Value: trace.DefaultWait, Usage: "wait up to `DURATION` for the answers of a round (ICMP may be rate limited); 1ms to 1h"},
			&cli.Float64Flag{Name: "rate", Value: trace.DefaultRate, Usage: "send at most `N` probes per second that can reach the target (probes that expire at routers are not counted); 0: no limit"},
			&cli.StringFlag{Name: "probes", Value: "all", Usage: "probe families, comma-separated: `LIST` of syn,ecn,exotic,syndata,badsum,conn, or all"},
			&cli.UintFlag{Name: "closed-port", Usage: "a closed `PORT` of the target", DefaultText: "none"},
			&cli.UintFlag{Name: "alt-port", Usage: "a `PORT` expected closed and not intercepted, where the host itself answers", DefaultText: "closed-port+1, or port+2"},
			&cli.StringFlag{Name: "reflector", Usage: "compare with what a synprobe reflect on the target host recorded (its report port `HOST:PORT`)"},
			&cli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "give up the whole trace after `DURATION`"},
		}, outputFlags("text", "json", "jsonl")...), append(probeFlags(), fleetFlags()...)...),
		Action: runTrace,
	}
}

// traceConfig reads the flags into a trace configuration.
func traceConfig(c *cli.Context, target netip.AddrPort) (trace.Config, error) {
	cfg := trace.Config{Target: target, FirstHop: c.Int("first-hop"), MaxHops: c.Int("max-hops"), Tries: c.Int("tries"),
		Wait: c.Duration("wait"), Rate: c.Float64("rate")}
	if err := checkLimit(c, "max-hops", 255); err != nil {
		return cfg, err
	}
	if err := checkLimit(c, "first-hop", c.Int("max-hops")); err != nil {
		return cfg, err
	}
	if err := checkLimit(c, "tries", 10); err != nil {
		return cfg, err
	}
	if w := c.Duration("wait"); w < minTimeout || w > maxTimeout {
		return cfg, usageErr("--wait %v: want a duration from %v to %v, such as 1s", w, minTimeout, maxTimeout)
	}
	if err := checkTimeout(c.Duration("timeout")); err != nil {
		return cfg, err
	}
	if r := c.Float64("rate"); r == 0 {
		cfg.Rate = maxRate
	} else if err := checkRate(r); err != nil {
		return cfg, err
	}
	for _, name := range []string{"closed-port", "alt-port"} {
		if p := c.Uint(name); p > 65535 {
			return cfg, usageErr("--%s %d: want 1 to 65535", name, p)
		}
	}
	cfg.ClosedPort, cfg.AltPort = uint16(c.Uint("closed-port")), uint16(c.Uint("alt-port"))
	fams, err := parseFamilies(c.String("probes"))
	if err != nil {
		return cfg, err
	}
	cfg.Families = fams
	return cfg, nil
}

// parseFamilies reads --probes: "all", or families separated by commas
// ("syn" also sends the alt-port walk).
func parseFamilies(s string) ([]trace.Family, error) {
	const want = "syn, ecn, exotic, syndata, badsum, conn or all"
	if strings.TrimSpace(s) == "" {
		// Not "all": an empty value is more often a variable left unset
		// than a choice.
		return nil, usageErr("--probes %q: no family given; want a comma-separated list of %s", printable(s), want)
	}
	if s == "all" {
		return trace.Families, nil
	}
	seen := map[trace.Family]bool{}
	var out []trace.Family
	for _, name := range strings.Split(s, ",") {
		f := trace.Family(strings.TrimSpace(name))
		ok := false
		for _, g := range trace.Families {
			ok = ok || g == f && f != trace.FamilyAlt
		}
		if !ok {
			if f == "" {
				return nil, usageErr("--probes %q: an empty family between commas (want %s)", printable(s), want)
			}
			return nil, usageErr("--probes %q: no family %q (want %s)", printable(s), printable(string(f)), want)
		}
		if f == trace.FamilySYN && !seen[trace.FamilyAlt] {
			seen[trace.FamilyAlt] = true
			out = append(out, trace.FamilySYN, trace.FamilyAlt)
			seen[f] = true
			continue
		}
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out, nil
}

// traceDial is how trace dials: ICMP errors quoting any source port of
// ours reach it (a box that rewrites ports makes routers beyond it quote
// one no session has).
func traceDial(d *probe.DialConfig) { d.AnyQuotedPort = true }

// traceReport traces cfg.Target over s (closed on return) and returns the
// report of a --targets line: trace.ReportOf, with the prober's notes. A
// trace that found nothing to report is an error.
func traceReport(c *cli.Context, s *session, cfg trace.Config) (*report.Report, error) {
	started := s.started
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	res, err := trace.Run(ctx, s.prober, cfg)
	target := s.reportTarget(netip.AddrPort{})
	notes := s.prober.Notes()
	if st := s.prober.Stats(); st.Drops > 0 {
		notes = append(notes, fmt.Sprintf("the local socket dropped %d frames", st.Drops))
	}
	closeErr := s.close()
	if errors.Is(err, context.DeadlineExceeded) && c.Context.Err() == nil {
		err = fmt.Errorf("gave up after --timeout %v", c.Duration("timeout"))
	}
	if res == nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	rep := trace.ReportOf(res, cfg.Families, err, target, started)
	rep.Notes = notes
	if closeErr != nil {
		rep.Notes = append(rep.Notes, "closing: "+closeErr.Error())
	}
	return rep, nil
}

func runTrace(c *cli.Context) error {
	if many, err := fleetMode(c, runTraceTargets); many {
		return err
	}
	if c.NArg() != 1 {
		return usageErr("trace needs one HOST:PORT (flags go before it), got %d arguments", c.NArg())
	}
	if err := checkFormat(c, "text", "json", "jsonl"); err != nil {
		return err
	}
	target, err := parseTarget(c.Context, c.Args().First())
	if err != nil {
		return err
	}
	cfg, err := traceConfig(c, target)
	if err != nil {
		return err
	}
	var reflAddr netip.AddrPort
	if s := c.String("reflector"); s != "" {
		if reflAddr, err = netip.ParseAddrPort(s); err != nil {
			return usageErr("--reflector %q: want HOST:PORT with a numeric address", s)
		}
		if reflAddr.Addr().Is4() != target.Addr().Is4() {
			return usageErr("--reflector %q: want an address of the target's family (%v)", s, target.Addr())
		}
	}
	s, err := dial(c, target, traceDial)
	if err != nil {
		return err
	}
	if reflAddr.IsValid() {
		if s.inProcess {
			s.close()
			s.out.discard()
			return usageErr("--reflector: the in-process lab target (gVisor) has no network a reflector's query could cross; use the Linux lab")
		}
		// The query leaves from where the probes leave (the lab's probe
		// side too), never from this process's own namespace.
		cfg.Reflector = newReflector(reflAddr, s.probeNS, s.prober.Path().Source)
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	res, err := trace.Run(ctx, s.prober, cfg)
	rtarget := s.reportTarget(netip.AddrPort{})
	closeErr := s.close()
	if res == nil {
		s.out.discard()
		if c.Context.Err() != nil {
			return c.Context.Err()
		}
		return envErr(err)
	}
	var line *report.Report
	if c.String("format") == "jsonl" {
		// A --targets line of one target.
		line = trace.ReportOf(res, cfg.Families, err, rtarget, s.started)
		if closeErr != nil {
			line.Notes = append(line.Notes, "closing: "+closeErr.Error())
		}
	}
	if err != nil {
		res.Coverage = append(res.Coverage, "interrupted: "+err.Error())
	}
	if closeErr != nil {
		res.Coverage = append(res.Coverage, "closing: "+closeErr.Error())
	}
	out := s.out
	if err := out.begin(); err != nil {
		out.close()
		return envErr(fmt.Errorf("write report: %w", err))
	}
	var werr error
	switch c.String("format") {
	case "json":
		enc := json.NewEncoder(out.w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		werr = enc.Encode(res)
	case "jsonl":
		werr = writeJSONLine(out.w, line)
	default:
		res.WriteText(out.w)
	}
	if cerr := out.close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return envErr(fmt.Errorf("write report: %w", werr))
	}
	if res.Verdict == report.Fail {
		return exitCode(exitFail)
	}
	if c.Context.Err() != nil {
		return c.Context.Err()
	}
	return nil
}

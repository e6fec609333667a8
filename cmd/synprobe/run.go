package main

import (
	"context"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"

	"synprobe/conformance"
	"synprobe/conformance/report"
	"synprobe/conformance/script"
	"synprobe/internal/progress"
	"synprobe/scenarios"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run packetdrill-style scripts against a live target",
		ArgsUsage: "SCRIPT|DIR|SCENARIO ...",
		Description: `Runs scripts in packetdrill's packet-line language against a remote target and
reports pass or fail per line. A directory runs every .pkt file in it (and below);
a name runs a built-in scenario (see 'synprobe scenarios'; globs like 'listen-*'
work). Every script is parsed before anything is sent: a syntax error in a
script named on the command line stops the run with file:line:col; in a
directory, an unparsable script is an error result (cause input:script) and
the others run (the run stops only when none parses). A valid packetdrill
script that needs what a remote black box cannot do (encapsulation, UDP,
explicit ports) is skip with cause premise:black-box, naming the line.

Symbols: -D NAME=VALUE (or --define, repeatable), as packetdrill's -D, and
'--define=NAME=VALUE' lines in a script's header (the command line wins): a
word NAME of the script stands for VALUE. The Linux selftests pass, e.g.,
-D CMSG_LEVEL_IP=SOL_IP -D CMSG_TYPE_RECVERR=IP_RECVERR; google/packetdrill's
tests also -D TFO_COOKIE=... -D CODE=host_unreachable.

A script must be a regular file of at most --max-script-size bytes (1 MiB),
lines of at most --max-line-length bytes and at most --max-events timed lines;
anything else is refused at once with one line naming the file.

Direction is seen from the target, as in packetdrill: '<' is a segment synprobe
injects, '>' one it expects. SYN lines carry absolute sequence numbers, all
others are relative to the two ISNs. System calls describe the target's
application and are never executed: an expectation that is not met after a
'write', 'read', 'close' or 'shutdown' is skip, not fail. Shell commands and
%{ }% blocks are never executed. Extensions: wildcards ('win *', 'mss *'),
'> none' (silence), payloads ("GET /\r\n\r\n"), IP fields ('[ttl 64, df]'),
malformed sends ('{tcpsum bad}', 'raw 0x...' options), '// @name' metadata.
See README.md for the whole language.

What the target's application does is learned first (--profile) and never
judged as the stack's: bytes no line describes (a banner, an answer) are
acknowledged and counted past, a close or reset it makes ends a script as
skip, with the cause. A data line without a payload sends bytes the
application ignores.

Scripts run concurrently, each on its own source port, with at most --rate SYNs
per second to the target. Ctrl-C stops cleanly and still writes the report.

Examples:
  synprobe run --target 192.0.2.10:80 close.pkt
  synprobe run --target 192.0.2.10:80 --closed-port 81 --format junit -o out.xml tests/
  synprobe lab run my.pkt            (against a disposable local target)`,
		Flags:  runFlags(),
		Action: runScripts,
	}
}

func runFlags() []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "target", Aliases: []string{"t"}, Usage: "the listening `HOST:PORT` the scripts talk to (required)"},
		&cli.UintFlag{Name: "closed-port", Usage: "a `PORT` of the target host with no listener, for scripts that need one", DefaultText: "none: such scripts skip"},
		&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Value: 16, Usage: "run up to `N` scripts at once"},
		&cli.Float64Flag{Name: "rate", Value: conformance.DefaultRate, Usage: "send at most `N` SYNs per second to the target (0: no limit)"},
		&cli.DurationFlag{Name: "timeout", Value: 2 * time.Second, Usage: "wait up to `DURATION` for a '*' expectation or a first reply"},
		jitterFlag(),
		pathCheckFlag(),
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "show every step of every script"},
	}
	flags = append(flags, defineFlags()...)
	flags = append(flags,
		&cli.IntFlag{Name: "max-script-size", Value: script.DefaultMaxSize, Usage: "refuse scripts larger than `BYTES`"},
		&cli.IntFlag{Name: "max-line-length", Value: script.DefaultMaxLineLength, Usage: "refuse scripts with a line longer than `BYTES`"},
		&cli.IntFlag{Name: "max-events", Value: script.DefaultMaxEvents, Usage: "refuse scripts with more than `N` timed lines"},
	)
	flags = append(flags, applicationFlags()...)
	flags = append(flags, outputFlags("text", "json", "junit")...)
	return append(flags, probeFlags()...)
}

func runScripts(c *cli.Context) error {
	if err := checkFormat(c, "text", "json", "junit"); err != nil {
		return err
	}
	if c.String("target") == "" {
		return usageErr("run needs --target HOST:PORT (the listening port the scripts talk to)")
	}
	if c.NArg() == 0 {
		return usageErr("run needs at least one script, directory or scenario name")
	}
	if err := checkRunFlags(c); err != nil {
		return err
	}
	if _, err := requestFlag(c); err != nil {
		return err
	}
	target, err := parseTarget(c.Context, c.String("target"))
	if err != nil {
		return err
	}
	pcfg, err := parseConfig(c)
	if err != nil {
		return err
	}
	if err := stopIfCheckOnly(c); err != nil {
		return err
	}
	items, err := loadScripts(c.Args().Slice(), pcfg)
	if err != nil {
		return err
	}
	return runScenarios(c, "run", target, items, false)
}

// runScenarios dials the target, runs items and writes the report.
func runScenarios(c *cli.Context, command string, target netip.AddrPort, items []scenarios.Scenario, audit bool) error {
	s, err := dial(c, target)
	if err != nil {
		return err
	}
	rep, err := scenarioReport(c, s, command, target, items, audit, c.Float64("rate"))
	if err != nil {
		return err
	}
	// A run lists every script; an audit is a summary of what did not pass.
	return s.writeReport(c, rep, report.TextOptions{Steps: c.Bool("verbose"), Passes: !audit, Fingerprint: writeFingerprint})
}

// scenarioReport runs items against target over s, at most rate SYNs per
// second (0: no limit), and returns the finished report; s is closed.
func scenarioReport(c *cli.Context, s *session, command string, target netip.AddrPort, items []scenarios.Scenario, audit bool, rate float64) (*report.Report, error) {
	started := s.started
	var err error
	if rate == 0 {
		rate = -1 // no limit
	}
	cfg := scenarios.RunConfig{
		Target:         target,
		ClosedPort:     uint16(c.Uint("closed-port")),
		FindClosedPort: audit,
		Jobs:           c.Int("jobs"),
		Rate:           rate,
		Timeout:        c.Duration("timeout"),
		Jitter:         c.Duration("jitter"),
	}
	cfg.PathCheck, _ = pathCheckMode(c) // checked by checkRunFlags
	if audit {
		cfg.Fingerprint = fingerprintFunc()
	}
	if t := labTarget(c.Context); t != nil {
		// The lab's target forgets what a script taught it of the path
		// MTU, so that the scripts after it see what they would alone.
		cfg.AfterPathMTU = func(context.Context) error { return t.FlushPathMTU() }
	}
	cfg.Profile = c.Bool("profile")
	if cfg.Request, err = requestFlag(c); err != nil {
		s.close()
		return nil, err
	}
	prog := newScriptProgress(c, command, len(items))
	cfg.Progress = prog.update
	rep := scenarios.Run(c.Context, s.prober, cfg, items)
	prog.end()
	rep.Command = command
	rep.Target = s.reportTarget(netip.AddrPort{})
	rep.Started = started
	if t := labTarget(c.Context); t != nil {
		rep.Notes = append(rep.Notes, t.Notes...)
	}
	if err := s.close(); err != nil {
		rep.Notes = append(rep.Notes, "closing: "+err.Error())
	}
	rep.DurationMS = report.Millis(time.Since(started))
	return rep, nil
}

// defineFlag is -D/--define NAME=VALUE, repeatable. A value may hold
// commas, so it is no string slice (which would split it).
type defineFlag struct {
	defs map[string]string
}

func (d *defineFlag) Set(s string) error {
	name, value, err := script.ParseDefine(s)
	if err != nil {
		return err
	}
	if d.defs == nil {
		d.defs = map[string]string{}
	}
	d.defs[name] = value
	return nil
}

func (d *defineFlag) String() string {
	names := make([]string, 0, len(d.defs))
	for n := range d.defs {
		names = append(names, n+"="+d.defs[n])
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

// defineFlags are --define and packetdrill's -D: two flags on one list of
// symbols (an alias could not be mixed with its flag on one command line).
func defineFlags() []cli.Flag {
	d := &defineFlag{}
	return []cli.Flag{
		&cli.GenericFlag{Name: "define", Value: d, Usage: "define the packetdrill symbol `NAME=VALUE` (repeatable)"},
		&cli.GenericFlag{Name: "D", Value: d, Usage: "`NAME=VALUE`: --define, as packetdrill writes it"},
	}
}

// parseConfig is what the flags say about reading scripts.
func parseConfig(c *cli.Context) (script.ParseConfig, error) {
	cfg := script.ParseConfig{
		MaxSize:       c.Int("max-script-size"),
		MaxLineLength: c.Int("max-line-length"),
		MaxEvents:     c.Int("max-events"),
	}
	if d, ok := c.Generic("define").(*defineFlag); ok {
		cfg.Defines = d.defs
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"max-script-size", cfg.MaxSize}, {"max-line-length", cfg.MaxLineLength}, {"max-events", cfg.MaxEvents}} {
		if f.v < 1 {
			return cfg, usageErr("--%s %d: want at least 1", f.name, f.v)
		}
	}
	return cfg, nil
}

// loadScripts parses every script named (files, directories) and resolves
// built-in scenario names, before anything is sent. A script named on the
// command line that does not parse is a usage error; one found in a
// directory becomes an error result, unless no script parses at all.
func loadScripts(args []string, cfg script.ParseConfig) ([]scenarios.Scenario, error) {
	var items []scenarios.Scenario
	var errs []string
	parsed, broken := 0, 0
	named := false // a script named on the command line does not parse
	for _, arg := range args {
		st, err := os.Stat(arg)
		switch {
		case err == nil && st.IsDir():
			var files []string
			werr := filepath.WalkDir(arg, func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() && strings.HasSuffix(p, ".pkt") {
					files = append(files, p)
				}
				return err
			})
			if werr != nil {
				return nil, usageErr("%s: %v", script.SafeName(arg), werr)
			}
			if len(files) == 0 {
				return nil, usageErr("%s: no .pkt scripts in this directory", script.SafeName(arg))
			}
			sort.Strings(files)
			for _, f := range files {
				it, err := parseFile(f, cfg)
				if err != nil {
					errs = append(errs, err.Error())
					items = append(items, scenarios.FromBroken(f, err))
					broken++
					continue
				}
				items = append(items, it)
				parsed++
			}
		case err == nil:
			it, err := parseFile(arg, cfg)
			if err != nil {
				errs = append(errs, err.Error())
				named = true
				continue
			}
			items = append(items, it)
			parsed++
		case !errors.Is(err, fs.ErrNotExist):
			return nil, usageErr("%v", err)
		default:
			sel, serr := scenarios.Select([]string{arg}, nil, "")
			if serr != nil {
				return nil, usageErr("%s: no such script, directory or built-in scenario (see 'synprobe scenarios')", strconv.Quote(arg))
			}
			items = append(items, sel...)
			parsed += len(sel)
		}
	}
	if named || broken > 0 && parsed == 0 {
		return nil, usageErr("%s", strings.Join(errs, "\n"))
	}
	return items, nil
}

// parseFile reads and parses one script within the limits of cfg.
func parseFile(name string, cfg script.ParseConfig) (scenarios.Scenario, error) {
	src, err := script.ReadFile(name, cfg.MaxSize)
	if err != nil {
		return scenarios.Scenario{}, err
	}
	s, err := script.ParseWith(name, src, cfg)
	if err != nil {
		return scenarios.Scenario{}, err
	}
	return scenarios.FromScript(s), nil
}

// scriptProgress is the progress line of a run or an audit of one
// target: scripts done of all, rate, estimate, the last one done. A
// --targets run draws its own line, of targets, and none per target.
type scriptProgress struct {
	line *progress.Line
	last atomic.Value // string
}

func newScriptProgress(c *cli.Context, command string, total int) *scriptProgress {
	p := &scriptProgress{}
	if total < 2 || c.IsSet("targets") {
		return p
	}
	p.line = progress.Start(c.App.ErrWriter, progress.Options{
		Name: command, Unit: "scripts", Total: int64(total),
		Extra: func() string {
			s, _ := p.last.Load().(string)
			return s
		},
	})
	return p
}

func (p *scriptProgress) update(done, _ int, name string) {
	p.last.Store(printable(name))
	p.line.SetCurrent(int64(done))
}

func (p *scriptProgress) end() { p.line.Stop() }

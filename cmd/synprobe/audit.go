package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"synprobe/conformance"
	"synprobe/conformance/fingerprint"
	"synprobe/scenarios"
)

func auditCommand() *cli.Command {
	return &cli.Command{
		Name:      "audit",
		Usage:     "run the built-in conformance suite against HOST:PORT and fingerprint the stack",
		ArgsUsage: "HOST:PORT",
		Description: `Runs every built-in scenario (see 'synprobe scenarios') against a listening
port, rule by rule, and measures what the stack is like (TTL, options, ISN and
timestamp clocks, retransmission schedule...). Scenarios run concurrently, the
slowest first, with at most --rate SYNs per second to the target: the whole
suite takes little longer than its slowest scenario.

Before the scenarios, a few connections learn what the target's application
does (it speaks first, answers the request, closes after answering, what it does
with bytes it does not expect, whether it accepts connections at all), so that
its bytes, its close and its resets are never read as the stack's behaviour.
Only the stack earns fail or warn: a result the application, a premise
(timestamps not negotiated, SYN cookies, a filtered closed port), the path or
this host decided is skip, info or error, and its cause says which.

The path is checked beside the scenarios (--path-check auto): the TTLs are
walked as synprobe trace does, and before the verdicts are counted, the probes
that could explain each result that did not pass. A result a box on the path
explains (timestamps stripped, SYNs with data dropped, a stateful firewall, a
proxy answering instead of the target) is skip with cause path:KIND, naming
the box's place; one whose failing step the box did not change keeps its
verdict. --path-check full sends every probe first; off sends none.

A scenario's level sets the verdict a deviation earns: MUST -> fail,
SHOULD -> warn, info -> info (reported as observed). Some scenarios need the
application to send data: they send --request (default: "GET /N HTTP/1.0",
which web servers answer) and skip, saying how much came, when too little did.

Examples:
  synprobe audit 192.0.2.10:80
  synprobe audit --only 'listen-*' --only closed 192.0.2.10:80
  synprobe audit --level must --format junit -o audit.xml 192.0.2.10:80
  synprobe audit --request 'GET /big.iso HTTP/1.0\r\n\r\n' 192.0.2.10:80
  synprobe lab                      (audit a disposable local target)`,
		Flags: append(append([]cli.Flag{
			&cli.UintFlag{Name: "closed-port", Usage: "a `PORT` of the target host with no listener", DefaultText: "find one near the open port"},
			&cli.StringSliceFlag{Name: "only", Usage: "run only scenarios whose name or area matches `GLOB` (repeatable)"},
			&cli.StringSliceFlag{Name: "skip", Usage: "skip scenarios whose name or area matches `GLOB` (repeatable)"},
			&cli.StringFlag{Name: "level", Value: "info", Usage: "run scenarios of `LEVEL` and stronger: must, should or info (all)"},
			&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Value: 64, Usage: "run up to `N` scenarios at once"},
			&cli.Float64Flag{Name: "rate", Value: conformance.DefaultRate, Usage: "send at most `N` SYNs per second to the target (0: no limit)"},
			&cli.DurationFlag{Name: "timeout", Value: 2 * time.Second, Usage: "wait up to `DURATION` for a reply that has no time of its own"},
			jitterFlag(),
			pathCheckFlag(),
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "show every step of every scenario"},
		}, append(applicationFlags(), outputFlags("text", "json", "junit", "jsonl")...)...), append(probeFlags(), fleetFlags()...)...),
		Action: runAudit,
	}
}

func runAudit(c *cli.Context) error {
	if many, err := fleetMode(c, runAuditTargets); many {
		return err
	}
	if c.NArg() != 1 {
		return usageErr("audit needs one HOST:PORT (flags go before it), got %d arguments", c.NArg())
	}
	if err := checkFormat(c, "text", "json", "junit", "jsonl"); err != nil {
		return err
	}
	items, err := auditItems(c)
	if err != nil {
		return err
	}
	target, err := parseTarget(c.Context, c.Args().First())
	if err != nil {
		return err
	}
	return runScenarios(c, "audit", target, items, true)
}

// auditItems checks an audit's flags, for one target or --targets, and
// returns the scenarios they select.
func auditItems(c *cli.Context) ([]scenarios.Scenario, error) {
	if err := checkRunFlags(c); err != nil {
		return nil, err
	}
	if _, err := requestFlag(c); err != nil {
		return nil, err
	}
	items, err := scenarios.Select(c.StringSlice("only"), c.StringSlice("skip"), c.String("level"))
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return items, nil
}

// fingerprintFunc measures the stack beside an audit's scenarios.
func fingerprintFunc() func(ctx context.Context, env *scenarios.Env) any {
	return func(ctx context.Context, env *scenarios.Env) any {
		return fingerprint.Measure(ctx, env.Prober, fingerprint.Config{
			Target: env.Target, ClosedPort: env.ClosedPort, Pace: env.Pace, Timeout: env.Timeout / 2,
		})
	}
}

// writeFingerprint writes the fingerprint section of a text report.
func writeFingerprint(w io.Writer, fp any) {
	if f, ok := fp.(*fingerprint.Fingerprint); ok && f != nil {
		f.WriteText(w)
	}
}

// applicationFlags are the flags of the commands that account for the
// target's application: run and audit.
func applicationFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "request", Usage: "send `STRING` (Go string escapes: \\r\\n, \\x00, \\\\) where a check needs the application to answer", DefaultText: `"GET /N HTTP/1.0\r\nHost: synprobe\r\n\r\n"`},
		&cli.BoolFlag{Name: "profile", Value: true, Usage: "learn first what the target's application does (a few connections, about a second), so that its bytes, its close and its resets are never judged as the stack's; --profile=false assumes nothing of it"},
	}
}

// requestFlag reads --request (see parseRequest); nil when not given.
func requestFlag(c *cli.Context) ([]byte, error) {
	if !c.IsSet("request") {
		return nil, nil
	}
	b, err := parseRequest(c.String("request"))
	if err != nil {
		return nil, usageErr("--request %q: %v", c.String("request"), err)
	}
	return b, nil
}

// parseRequest reads the body of a Go string literal, escapes and all:
// "GET / HTTP/1.0\r\n\r\n", "\x00\x01", "a\\b"; a double quote needs
// no escape.
func parseRequest(text string) ([]byte, error) {
	s, err := strconv.Unquote(`"` + strings.ReplaceAll(text, `"`, `\"`) + `"`)
	if err != nil {
		return nil, fmt.Errorf("not a string with Go escapes (\\r, \\n, \\t, \\xHH, \\\\): %v", err)
	}
	if s == "" {
		return nil, errors.New("empty; give the bytes the application answers, e.g. 'GET / HTTP/1.0\\r\\n\\r\\n'")
	}
	return []byte(s), nil
}

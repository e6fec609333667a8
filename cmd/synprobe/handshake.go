package main

import (
	"net/netip"
	"time"

	"github.com/urfave/cli/v2"

	"synprobe/conformance"
	"synprobe/conformance/report"
	"synprobe/internal/plural"
	"synprobe/probe"
	"synprobe/scenarios"
)

func handshakeCommand() *cli.Command {
	return &cli.Command{
		Name:      "handshake",
		Usage:     "open and close one connection the KB 172983 way, checking every reply",
		ArgsUsage: "HOST:PORT",
		Description: `Runs the exchange of Microsoft KB 172983 against a listening port, seven steps,
each checked against RFC 9293:

  1 send    SYN with a random ISN and the options a current Linux offers
  2 expect  SYN-ACK: SYN and ACK set, ack = ISN+1, only options that were offered
  3 send    ACK: the connection is open
  4 send    FIN-ACK: synprobe closes first
  5 expect  the ACK of that FIN: ack = FIN's seq + 1
  6 expect  the target's FIN (needs the target application to close; if it
            keeps its half open, the step is skip: not a TCP fault)
  7 send    the ACK of the target's FIN

A closed port fails at step 2 ("port closed: RST+ACK") and its RST is checked
(seq 0, ack ISN+1). Silence fails at step 2 ("no reply within T (filtered?)").
Flags go before the address.

Examples:
  synprobe handshake 192.0.2.10:80
  synprobe handshake --format json --pcap hs.pcap [2001:db8::10]:443
  synprobe lab handshake            (against a disposable local target)`,
		Flags: append(append([]cli.Flag{
			&cli.DurationFlag{Name: "timeout", Value: 2 * time.Second, Usage: "wait up to `DURATION` for each expected segment"},
			&cli.UintFlag{Name: "source-port", Usage: "send from `PORT`", DefaultText: "a free port outside the kernel's ephemeral range"},
			&cli.Float64Flag{Name: "rate", Value: conformance.DefaultRate, Usage: "send at most `N` SYNs per second to a target (0: no limit); one handshake sends one"},
			pathCheckFlag(),
		}, outputFlags("text", "json", "junit", "jsonl")...), append(probeFlags(), fleetFlags()...)...),
		Action: runHandshake,
	}
}

func runHandshake(c *cli.Context) error {
	if many, err := fleetMode(c, runHandshakeTargets); many {
		return err
	}
	if c.NArg() != 1 {
		return usageErr("handshake needs one HOST:PORT (flags go before it), got %d arguments", c.NArg())
	}
	if err := checkFormat(c, "text", "json", "junit", "jsonl"); err != nil {
		return err
	}
	if err := checkHandshakeFlags(c); err != nil {
		return err
	}
	if c.Uint("source-port") > 65535 {
		return usageErr("--source-port %d: want 1 to 65535", c.Uint("source-port"))
	}
	target, err := parseTarget(c.Context, c.Args().First())
	if err != nil {
		return err
	}
	s, err := dial(c, target)
	if err != nil {
		return err
	}
	rep, err := handshakeReport(c, s, target)
	if err != nil {
		s.out.discard()
		return err
	}
	return s.writeReport(c, rep, report.TextOptions{Steps: true, Passes: true})
}

// handshakeReport runs the handshake against target over s and returns
// the finished report; s is closed.
func handshakeReport(c *cli.Context, s *session, target netip.AddrPort) (*report.Report, error) {
	started := s.started
	sess, err := s.prober.Open(probe.SessionConfig{Remote: target, LocalPort: uint16(c.Uint("source-port"))})
	if err != nil {
		s.close()
		return nil, usageErr("%v", err)
	}
	// The path's quick walks go beside the handshake; what could explain
	// a handshake that failed is walked after it.
	mode, _ := pathCheckMode(c) // checked with the other flags
	pc := scenarios.StartPathCheck(c.Context, s.prober, scenarios.PathCheckConfig{Mode: mode, Target: target, Rate: c.Float64("rate")})
	res := conformance.Handshake(c.Context, sess, conformance.HandshakeOptions{Timeout: c.Duration("timeout")})
	sess.Close()
	rep := &report.Report{
		Command: "handshake",
		Target:  s.reportTarget(sess.Local()),
		Started: started,
		Results: []report.Result{res},
	}
	pc.Finish(c.Context, rep, 0)
	rep.Notes = s.prober.Notes()
	if st := s.prober.Stats(); st.Drops > 0 {
		rep.Notes = append(rep.Notes, "the local socket dropped "+plural.N(st.Drops, "frame", "frames"))
	}
	if err := s.close(); err != nil {
		rep.Notes = append(rep.Notes, "closing: "+err.Error())
	}
	if c.Context.Err() != nil {
		rep.Notes = append(rep.Notes, "interrupted")
	}
	rep.DurationMS = report.Millis(time.Since(started))
	rep.Finish()
	return rep, nil
}

// checkHandshakeFlags checks the flags a handshake takes for one target
// or --targets.
func checkHandshakeFlags(c *cli.Context) error {
	if err := checkTimeout(c.Duration("timeout")); err != nil {
		return err
	}
	if err := checkRate(c.Float64("rate")); err != nil {
		return err
	}
	_, err := pathCheckMode(c)
	return err
}

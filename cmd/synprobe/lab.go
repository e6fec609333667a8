package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/urfave/cli/v2"

	"synprobe/internal/exclude"
	"synprobe/internal/lab"
)

// labDefault is the command 'synprobe lab' runs when given none.
const labDefault = "audit"

func labCommand() *cli.Command {
	return &cli.Command{
		Name:      "lab",
		Usage:     "run a command against a disposable target on this machine",
		ArgsUsage: "[COMMAND [FLAGS]]",
		Description: `Makes a target, runs COMMAND against it (default: ` + labDefault + `), and removes
everything afterwards, also on Ctrl-C or a crash.

  linux   two network namespaces joined by a veth pair; the target is the Linux
          kernel's own TCP stack, with a listener on port 80 that reads to end of
          stream and then closes (and answers "GET /N" with N bytes), and port 81
          closed. Needs root. Namespaces are anonymous: nothing shows in
          'ip netns', nothing survives synprobe. For 'run' the target has the
          TCP sysctls of the Linux packetdrill selftests' defaults.sh (cubic, no
          ECN, Fast Open on, ...), as published scripts expect; 'audit' and
          'handshake' see a stock kernel.
  gvisor  the gVisor netstack in this process, over an in-memory link, with the
          same listener. Needs no privileges.
  auto    linux when privileged, else gvisor.

The lab supplies the target; an address may be given only if it is the lab's
(192.0.2.2 or 2001:db8::2), to pick the closed port or IPv6.

Examples:
  synprobe lab
  synprobe lab --stack gvisor handshake --format json
  synprobe lab handshake 192.0.2.2:81          (the closed port)
  synprobe lab handshake [2001:db8::2]:80      (IPv6)`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "stack", Value: "auto", Usage: "lab stack: auto, linux or gvisor"},
		},
		Action: runLab,
	}
}

func runLab(c *cli.Context) error {
	stack, err := lab.ParseStack(c.String("stack"))
	if err != nil {
		return usageErr("--stack: %v", err)
	}
	args := c.Args().Slice()
	if len(args) == 0 {
		args = []string{labDefault}
	}
	name, rest := args[0], args[1:]
	if name == "lab" {
		return usageErr("lab: cannot run lab inside a lab")
	}
	if c.App.Command(name) == nil {
		return usageErr("lab: unknown command %q", name)
	}
	sub, err := labArgs(name, rest)
	if err != nil {
		return err
	}
	// The command checks its flags and arguments first, without a lab: it
	// stops before it would use one.
	checkCtx := context.WithValue(c.Context, checkOnlyKey{}, true)
	err = c.App.RunContext(checkCtx, append([]string{c.App.Name, name}, sub...))
	if stopIfCheckOnly(c) != nil || !errors.Is(err, errChecked) {
		return err // refused, or done (--help), or only checking
	}
	t, err := lab.StartWith(c.Context, stack, labOptions(name))
	if err != nil {
		return envErr(fmt.Errorf("start %s lab: %w", stack, err))
	}
	defer t.Close()
	fmt.Fprintf(c.App.ErrWriter, "lab: %s target %v (port %d open, port %d closed)\n", t.Stack, t.Open.Addr(), t.Open.Port(), t.Closed.Port())
	for _, n := range t.Notes {
		fmt.Fprintf(c.App.ErrWriter, "lab: %s\n", n)
	}
	ctx := context.WithValue(c.Context, labKey{}, t)
	return c.App.RunContext(ctx, append([]string{c.App.Name, name}, sub...))
}

// labOptions says how the lab differs from a stock kernel for a command.
// Scripts run as packetdrill's Linux selftests run them, under the sysctls
// of their defaults.sh, so that lab verdicts match packetdrill's; audit and
// handshake judge a stock Linux.
func labOptions(command string) lab.Options {
	if command == "run" {
		return lab.Options{Sysctls: lab.PacketdrillDefaults}
	}
	return lab.Options{}
}

// labSweepArgs gives sweep the lab's IPv4 address and its two ports,
// unless the arguments name targets or --ports (sweep refuses targets
// outside the lab).
func labSweepArgs(args []string) []string {
	hasTarget, hasPorts := false, false
	for _, a := range args {
		if _, err := netip.ParsePrefix(a); err == nil {
			hasTarget = true
		}
		if _, err := netip.ParseAddr(a); err == nil {
			hasTarget = true
		}
		if a == "--ports" || a == "-p" || strings.HasPrefix(a, "--ports=") || strings.HasPrefix(a, "-p=") {
			hasPorts = true
		}
	}
	if !hasPorts {
		args = append([]string{"--ports", fmt.Sprintf("%d,%d", lab.OpenPort, lab.ClosedPort)}, args...)
	}
	if !hasTarget {
		args = append(args, lab.TargetAddr4.String())
	}
	return args
}

// excludeOutsideLab excludes every address but the lab target's, so that
// a --targets run under the lab checks the lines naming the lab's target
// (its open or closed port, IPv4 or IPv6) and counts every other line as
// excluded, with the reason: synprobe lab never sends anywhere else.
func excludeOutsideLab(list *exclude.List) {
	for _, a := range []netip.Addr{lab.TargetAddr4, lab.TargetAddr6} {
		for _, p := range allBut(a) {
			list.Add(p, fmt.Sprintf("not in the lab (its target is %v or %v)", lab.TargetAddr4, lab.TargetAddr6))
		}
	}
}

// allBut is the prefixes that cover every address of a's family but a:
// at each length, the half that does not hold a.
func allBut(a netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for bits := 1; bits <= a.BitLen(); bits++ {
		p := netip.PrefixFrom(a, bits).Masked()
		b := p.Addr().AsSlice()
		b[(bits-1)/8] ^= 0x80 >> ((bits - 1) % 8) // the other half
		sib, _ := netip.AddrFromSlice(b)
		out = append(out, netip.PrefixFrom(sib, bits))
	}
	return out
}

// labArgs gives a command the lab's target in the form it takes one. An
// address the user gives must be one of the lab's (to see the closed port,
// or IPv6): synprobe lab never sends anywhere else. With --targets the
// file names the targets (the lab's), and none is added.
// valueFlags are the names (and aliases) of the flags of command name that
// take a value in the next argument.
func valueFlags(name string) map[string]bool {
	out := map[string]bool{}
	for _, cmd := range []*cli.Command{auditCommand(), handshakeCommand(), traceCommand(), runCommand(), sweepCommand()} {
		if cmd.Name != name {
			continue
		}
		for _, f := range cmd.Flags {
			if _, isBool := f.(*cli.BoolFlag); isBool {
				continue
			}
			for _, n := range f.Names() {
				out[n] = true
			}
		}
	}
	return out
}

func labArgs(name string, rest []string) ([]string, error) {
	target := netip.AddrPortFrom(lab.TargetAddr4, lab.OpenPort).String()
	closed := fmt.Sprint(lab.ClosedPort)
	var args []string
	for _, a := range rest {
		if a == "-h" || a == "--help" || a == "-help" {
			return rest, nil // the command's help, no target
		}
	}
	valued := valueFlags(name)
	many := false // --targets names the targets: the lab adds none
	given := ""   // a target the user gave
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--targets" || strings.HasPrefix(a, "--targets=") {
			many = true
		}
		if a == "--target" || a == "-t" || strings.HasPrefix(a, "--target=") {
			return nil, usageErr("lab %s: the lab supplies the target; drop --target", name)
		}
		if valued[strings.TrimLeft(a, "-")] && strings.HasPrefix(a, "-") && i+1 < len(rest) {
			// A flag's value ("--reflector 192.0.2.2:9001") is not the target.
			args = append(args, a, rest[i+1])
			i++
			continue
		}
		ap, err := netip.ParseAddrPort(a)
		if err != nil || strings.HasPrefix(a, "-") {
			args = append(args, a)
			continue
		}
		if ap.Addr() != lab.TargetAddr4 && ap.Addr() != lab.TargetAddr6 {
			return nil, usageErr("lab %s: %v is not in the lab; use %v or %v (port %d open, %d closed)", name, ap, lab.TargetAddr4, lab.TargetAddr6, lab.OpenPort, lab.ClosedPort)
		}
		target, given = ap.String(), a
	}
	if many && given != "" {
		return nil, usageErr("lab %s: --targets names the targets; drop the argument %q", name, given)
	}
	switch {
	case many && name == "handshake":
		return args, nil
	case many && (name == "audit" || name == "trace"):
		return append([]string{"--closed-port", closed}, args...), nil
	}
	switch name {
	case "handshake":
		return append(args, target), nil
	case "audit", "trace":
		return append(append([]string{"--closed-port", closed}, args...), target), nil
	case "run":
		return append([]string{"--target", target, "--closed-port", closed}, args...), nil
	case "sweep":
		return labSweepArgs(args), nil
	}
	return nil, usageErr("lab: %s does not run against a target", name)
}

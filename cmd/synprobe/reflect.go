package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"synprobe/internal/netns"
	"synprobe/internal/plural"
	"synprobe/internal/reflector"
	"synprobe/probe"
)

func reflectCommand() *cli.Command {
	return &cli.Command{
		Name:  "reflect",
		Usage: "run on the target host: record what arrives on a port, for 'trace --reflector'",
		Description: `The cooperating endpoint of 'synprobe trace'. Run it on the target host: it
listens on ADDR:PORT like an ordinary server (the kernel answers; whatever
arrives is read and thrown away, nothing is ever written back), records the IP
and TCP headers of every segment to and from that port as they arrived and as
the host sent them, and answers trace's questions about them on a report port.
Trace then compares what it sent with what arrived, and what the host sent with
what it received: the last hop before the target (which no router quotes), NAT,
sequence number translation, option stripping and the reverse direction become
visible.

With --capture-only it does not listen: a server of the host already answers on
the port, and the reflector records that service's traffic.

Examples (on the target 10.1.2.3, then on the client 10.9.8.7):
  synprobe reflect --listen 10.1.2.3:8080 --allow 10.9.8.7
  synprobe trace --reflector 10.1.2.3:8081 10.1.2.3:8080
  synprobe reflect --listen 10.1.2.3:443 --capture-only --report 9001 --allow 10.9.8.7
  synprobe trace --reflector 10.1.2.3:9001 10.1.2.3:443
Behind a NAT the reflector sees the NAT's address: allow that one.

Protocol (port --report, default the listen port + 1): the client sends one JSON
line, such as
  {"v":1,"port":8080,"within_ms":5000,"seq":[3735928559],"tsval":[1],"payload_sha256":["..."]}
and gets one JSON line per matching record (segments whose seq, TSval or payload
digest is one of the keys, and what the host sent back on their connections),
then an end line: {"type":"end",...}. A bad request gets one error line. Times
are the reflector's own: the two hosts' clocks are never compared. See
internal/reflector/doc.go for every field.

Safety: both ports are bound to the given address only. Only clients in --allow
get an answer (others are disconnected, counted and logged). Memory is bounded
(--max-records, oldest overwritten) and records expire (--expiry). Payloads are
kept only as their length and SHA-256: nothing anyone sends is ever echoed, and
nothing is executed. Needs root (or CAP_NET_RAW) to capture. Runs until
interrupted (Ctrl-C, SIGTERM).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Usage: "listen on and record `ADDR:PORT` (a specific address of this host)"},
			&cli.UintFlag{Name: "report", Usage: "answer queries on `PORT` of the same address", DefaultText: "the listen port + 1"},
			&cli.StringSliceFlag{Name: "allow", Usage: "answer queries from `CIDR` (or one address); repeat for more; required (one shorter than /8, such as 0.0.0.0/0, is taken with a warning)"},
			&cli.IntFlag{Name: "max-records", Value: reflector.DefaultMaxRecords, Usage: "keep at most `N` records (the oldest are overwritten)"},
			&cli.DurationFlag{Name: "expiry", Value: reflector.DefaultExpiry, Usage: "forget records older than `DURATION`"},
			&cli.BoolFlag{Name: "capture-only", Usage: "record --listen without listening there: a server of this host already answers on it"},
			&cli.StringFlag{Name: "interface", Aliases: []string{"i"}, Usage: "capture on `IFACE`", DefaultText: "the interface holding the listen address"},
			&cli.StringFlag{Name: "netns", Usage: "run in the network namespace `NAME` (ip netns) or a path such as /proc/PID/ns/net"},
		},
		Action: runReflect,
	}
}

// reflectConfig turns the flags into a reflector configuration; every
// error is bad usage.
func reflectConfig(c *cli.Context) (reflector.Config, error) {
	var cfg reflector.Config
	if c.NArg() > 0 {
		return cfg, usageErr("reflect takes no arguments (got %q); give --listen ADDR:PORT", printable(c.Args().First()))
	}
	l := c.String("listen")
	if l == "" {
		return cfg, usageErr("reflect needs --listen ADDR:PORT, the address and port to record")
	}
	ap, err := netip.ParseAddrPort(l)
	switch {
	case err != nil:
		return cfg, usageErr("--listen %q: want ADDR:PORT with an IP address, such as 10.1.2.3:8080 or [2001:db8::3]:8080", printable(l))
	case ap.Addr().IsUnspecified():
		return cfg, usageErr("--listen %q: want a specific address of this host, not a wildcard (the reflector binds the given address only)", printable(l))
	case ap.Addr().Is4In6():
		return cfg, usageErr("--listen %q: an IPv4-mapped IPv6 address; give it as IPv4", printable(l))
	case ap.Port() == 0:
		return cfg, usageErr("--listen %q: want a port from 1 to 65535", printable(l))
	}
	cfg.Listen = ap
	r := c.Uint("report")
	switch {
	case r > 65535 || c.IsSet("report") && r == 0:
		return cfg, usageErr("--report %d: want a port from 1 to 65535", r)
	case r == uint(ap.Port()):
		return cfg, usageErr("--report %d: the listen port; give another", r)
	case r == 0 && ap.Port() == 65535:
		return cfg, usageErr("--listen %q: port 65535 has no next port for reports; give --report PORT", printable(l))
	}
	cfg.ReportPort = uint16(r)
	allow := c.StringSlice("allow")
	if len(allow) == 0 {
		return cfg, usageErr("reflect needs --allow CIDR: who may query the records (nobody is allowed by default)")
	}
	for _, a := range allow {
		p, err := parseAllow(a)
		if err != nil {
			return cfg, err
		}
		cfg.Allow = append(cfg.Allow, p)
	}
	if n := c.Int("max-records"); n < 1 || n > reflector.MaxMaxRecords {
		return cfg, usageErr("--max-records %d: want 1 to %d", n, reflector.MaxMaxRecords)
	}
	cfg.MaxRecords = c.Int("max-records")
	if d := c.Duration("expiry"); d < time.Second || d > 24*time.Hour {
		return cfg, usageErr("--expiry %v: want a duration from 1s to 24h", d)
	}
	cfg.Expiry = c.Duration("expiry")
	cfg.Interface = c.String("interface")
	cfg.CaptureOnly = c.Bool("capture-only")
	return cfg, nil
}

// parseAllow reads a CIDR or a single address.
func parseAllow(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, usageErr("--allow %q: no zone in a prefix", printable(s))
		}
		return p.Masked(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.Prefix{}, usageErr("--allow %q: want a CIDR such as 10.9.8.0/24 or one address", printable(s))
}

// broadAllow is a warning when --allow lets a prefix shorter than /8
// query the records (0.0.0.0/0, ::/0: anyone); "" when none does. Such a
// value may be meant (a lab, a reflector behind a filter), so it is said,
// not refused.
func broadAllow(allow []netip.Prefix) string {
	var broad []string
	for _, p := range allow {
		if p.Bits() < 8 {
			what := fmt.Sprintf("2^%d addresses", p.Addr().BitLen()-p.Bits())
			if p.Bits() == 0 {
				what = fmt.Sprintf("every IPv%d address", map[bool]int{true: 4, false: 6}[p.Addr().Is4()])
			}
			broad = append(broad, fmt.Sprintf("%v (%s)", p, what))
		}
	}
	if len(broad) == 0 {
		return ""
	}
	return "synprobe reflect: warning: --allow " + strings.Join(broad, ", ") + " lets anyone there query the records of what arrived here"
}

func runReflect(c *cli.Context) error {
	cfg, err := reflectConfig(c)
	if err != nil {
		return err
	}
	if err := stopIfCheckOnly(c); err != nil {
		return err
	}
	errOut := c.App.ErrWriter
	if w := broadAllow(cfg.Allow); w != "" {
		fmt.Fprintln(errOut, w)
	}
	if name := c.String("netns"); name != "" {
		fd, err := openNetNS(name)
		if err != nil {
			return err
		}
		defer netns.Close(fd)
		cfg.NetNS = fd
	}
	cfg.Logf = func(format string, args ...any) {
		fmt.Fprintf(errOut, "synprobe reflect: %s\n", printable(fmt.Sprintf(format, args...)))
	}
	s, err := reflector.Start(cfg)
	if err != nil {
		switch {
		case errors.Is(err, probe.ErrPermission), errors.Is(err, reflector.ErrNotLocal):
			return envErr(err)
		case cfg.Interface != "" && strings.Contains(err.Error(), "interface"):
			return &exitError{exitUsage, err}
		}
		return envErr(err)
	}
	allow := make([]string, len(cfg.Allow))
	for i, p := range cfg.Allow {
		allow[i] = p.String()
	}
	fmt.Fprintf(errOut, "synprobe reflect: recording %v on %s, reports on %v to %s; %s, expiry %v (Ctrl-C stops)\n",
		s.Listen(), s.Interface(), s.Report(), strings.Join(allow, ", "), plural.N(cfg.MaxRecords, "record", "records"), cfg.Expiry)
	var runErr error
	select {
	case <-c.Context.Done():
	case runErr = <-s.Failed():
	}
	st := s.Stats()
	if err := s.Close(); err != nil && runErr == nil {
		runErr = err
	}
	fmt.Fprintf(errOut, "synprobe reflect: stopped: %s recorded (%d lost by the capture), %s, %s, %s, %s refused\n",
		plural.N(st.Captured, "segment", "segments"), st.KernelDrops, plural.N(st.ProbeConns, "connection", "connections"),
		plural.N(st.Queries, "query", "queries"), plural.N(st.BadRequests, "bad request", "bad requests"), plural.N(st.Refused, "client", "clients"))
	if runErr != nil {
		return envErr(runErr)
	}
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"synprobe/conformance/report"
	"synprobe/internal/lab"
	"synprobe/internal/netns"
	"synprobe/probe"
	"synprobe/probe/pcap"
)

// Flags shared by the commands that probe a live target.
func probeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "interface", Aliases: []string{"i"}, Usage: "send on `IFACE` (default: the route to the target decides)"},
		&cli.StringFlag{Name: "source", Usage: "send from `ADDR`, an address of this host (default: the route's source)"},
		&cli.StringFlag{Name: "netns", Usage: "probe from the network namespace `NAME` (ip netns) or a path such as /proc/PID/ns/net"},
		&cli.StringFlag{Name: "pcap", Usage: "record every frame sent and received to `FILE` (pcap, for Wireshark and tcpdump)"},
		&cli.BoolFlag{Name: "no-guard", Usage: "do not install the nftables RST guard; the local kernel's RSTs are then detected and reported as a disturbance (error)", DefaultText: "guard on"},
	}
}

// outputFlags are --format and --output.
func outputFlags(formats ...string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "text", Usage: "report format: " + strings.Join(formats, ", ")},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the report to `FILE` instead of standard output"},
	}
}

// checkFormat rejects an unknown --format before anything is sent.
func checkFormat(c *cli.Context, formats ...string) error {
	f := c.String("format")
	for _, ok := range formats {
		if f == ok {
			return nil
		}
	}
	return usageErr("--format %q: want one of %s", f, strings.Join(formats, ", "))
}

// parseTarget reads HOST:PORT; HOST may be a name, resolved here.
func parseTarget(ctx context.Context, s string) (netip.AddrPort, error) {
	host, portText, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, usageErr("target %q: want HOST:PORT, e.g. 192.0.2.10:80 or [2001:db8::1]:443", s)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 {
		return netip.AddrPort{}, usageErr("target %q: port %q is not a number from 1 to 65535", s, portText)
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		addrs, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if lerr != nil || len(addrs) == 0 {
			return netip.AddrPort{}, usageErr("target %q: cannot resolve %q (%v)", s, host, lerr)
		}
		addr = addrs[0]
		for _, a := range addrs {
			if a.Is4() || a.Is4In6() {
				addr = a // IPv4 first, as most tools do
				break
			}
		}
	}
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}

type labKey struct{}

// labTarget returns the lab a command runs under ('synprobe lab ...'), or nil.
func labTarget(ctx context.Context) *lab.Target {
	t, _ := ctx.Value(labKey{}).(*lab.Target)
	return t
}

// session is what a probing command works with: the prober and what must
// be released with it.
type session struct {
	prober *probe.Prober
	target netip.AddrPort
	pcap   *os.File
	pcapW  *pcap.Writer
	netns  int
	// lab names the lab stack when the target is one.
	lab string
}

// dial sets up probing of target from the command's flags: path, link,
// guard, pcap; or the lab's probe side under 'synprobe lab'.
func dial(c *cli.Context, target netip.AddrPort) (*session, error) {
	ctx := c.Context
	s := &session{target: target}
	cfg := probe.DialConfig{Interface: c.String("interface"), NoGuard: c.Bool("no-guard")}
	if src := c.String("source"); src != "" {
		a, err := netip.ParseAddr(src)
		if err != nil {
			return nil, usageErr("--source %q: not an IP address", src)
		}
		cfg.Source = a
	}
	if name := c.String("netns"); name != "" {
		path := name
		if !strings.Contains(name, "/") {
			path = filepath.Join("/var/run/netns", name)
		}
		fd, err := netns.Open(path)
		if err != nil {
			return nil, usageErr("--netns %q: %v", name, err)
		}
		s.netns, cfg.NetNS = fd, fd
	}
	if t := labTarget(ctx); t != nil {
		s.lab = string(t.Stack)
		cfg.NetNS = t.Probe.NetNS
		if t.Probe.Link != nil {
			cfg.Link, cfg.Path = t.Probe.Link, t.Probe.Path4
			if target.Addr().Is6() {
				cfg.Path = t.Probe.Path6
			}
		}
	}
	if file := c.String("pcap"); file != "" {
		f, err := os.Create(file)
		if err != nil {
			s.close()
			return nil, usageErr("--pcap: %v", err)
		}
		w, err := pcap.NewWriter(f, pcap.LinkTypeEthernet)
		if err != nil {
			f.Close()
			s.close()
			return nil, envErr(fmt.Errorf("--pcap: %w", err))
		}
		s.pcap, s.pcapW, cfg.Recorder = f, w, w
	}
	p, err := probe.Dial(ctx, target.Addr(), cfg)
	if err != nil {
		s.close()
		return nil, dialError(c, err)
	}
	s.prober = p
	return s, nil
}

// dialError sorts setup errors into bad input (2) and an environment that
// prevents the run (3).
func dialError(c *cli.Context, err error) error {
	switch {
	case errors.Is(err, probe.ErrNoInterface) && c.String("interface") != "",
		errors.Is(err, probe.ErrSourceNotLocal),
		errors.Is(err, probe.ErrLocalTarget):
		return &exitError{exitUsage, err}
	case errors.Is(err, probe.ErrPermission), errors.Is(err, probe.ErrNoRoute),
		errors.Is(err, probe.ErrNeighborUnresolved), errors.Is(err, probe.ErrUnsupportedLink),
		errors.Is(err, probe.ErrNoInterface), errors.Is(err, probe.ErrGuardUnavailable):
		return envErr(err)
	}
	return &exitError{exitUsage, err}
}

// close releases the prober, the pcap file and the namespace.
func (s *session) close() error {
	var errs []error
	if s.prober != nil {
		errs = append(errs, s.prober.Close())
	}
	if s.pcap != nil {
		if s.pcapW != nil {
			errs = append(errs, s.pcapW.Flush())
		}
		errs = append(errs, s.pcap.Close())
	}
	netns.Close(s.netns)
	return errors.Join(errs...)
}

// reportTarget describes the target for reports.
func (s *session) reportTarget(local netip.AddrPort) report.Target {
	t := report.Target{Address: s.target.String(), Host: s.target.Addr().String(), Port: int(s.target.Port()), Lab: s.lab}
	if s.prober != nil {
		t.Interface = s.prober.Path().Interface
		t.Source = s.prober.Path().Source.String()
		if local.IsValid() {
			t.Source = local.String()
		}
	}
	return t
}

// output opens where the report goes (--output, or standard output) and
// says whether colour suits it (a terminal, NO_COLOR unset).
func output(c *cli.Context) (w io.Writer, color bool, done func() error, err error) {
	if name := c.String("output"); name != "" && name != "-" {
		f, err := os.Create(name)
		if err != nil {
			return nil, false, nil, usageErr("--output: %v", err)
		}
		return f, false, f.Close, nil
	}
	w = c.App.Writer
	f, ok := w.(*os.File)
	return w, ok && isTerminal(f) && os.Getenv("NO_COLOR") == "", func() error { return nil }, nil
}

// writeReport writes rep in the chosen format and returns the exit code
// the report earns (as an error, so that actions can return it).
func writeReport(c *cli.Context, rep *report.Report, textOpt report.TextOptions) error {
	w, color, done, err := output(c)
	if err != nil {
		return err
	}
	textOpt.Color = color
	switch c.String("format") {
	case "json":
		err = report.WriteJSON(w, rep)
	case "junit":
		err = report.WriteJUnit(w, rep)
	default:
		err = report.WriteText(w, rep, textOpt)
	}
	if cerr := done(); err == nil {
		err = cerr
	}
	if err != nil {
		return envErr(fmt.Errorf("write report: %w", err))
	}
	return exitFor(rep)
}

// exitFor is the exit code a report earns, as an error for actions.
func exitFor(rep *report.Report) error {
	if code := rep.ExitCode(); code != 0 {
		return exitCode(code)
	}
	return nil
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"synprobe/conformance/report"
	"synprobe/internal/lab"
	"synprobe/internal/netns"
	"synprobe/internal/progress"
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

type labKey struct{}

// labTarget returns the lab a command runs under ('synprobe lab ...'), or nil.
func labTarget(ctx context.Context) *lab.Target {
	t, _ := ctx.Value(labKey{}).(*lab.Target)
	return t
}

// session is what a probing command works with: the prober, where the
// report goes, and what must be released with them.
type session struct {
	prober *probe.Prober
	target netip.AddrPort
	out    *reportOut
	pcap   *os.File
	pcapW  *pcap.Writer
	netns  int // the --netns descriptor this session opened (closed with it)
	// probeNS is the namespace the probes leave from (--netns, the lab's
	// probe side; 0: this process's); inProcess: the target is an
	// in-process stack no kernel socket reaches.
	probeNS   int
	inProcess bool
	// lab names the lab stack when the target is one.
	lab string
	// started is when dialling began: a report's time includes it.
	started time.Time
}

// dial sets up probing of target from the command's flags: where the
// report goes, path, link, guard, pcap; or the lab's probe side under
// 'synprobe lab'. Every file is opened before anything is sent (resolving
// the next hop may already send an ARP request), so that a report that
// cannot be written is found before the target sees a packet.
func dial(c *cli.Context, target netip.AddrPort, opts ...func(*probe.DialConfig)) (*session, error) {
	return dialWith(c, target, true, opts...)
}

// dialWith is dial; withOutput false opens nowhere for the report (a
// --targets run writes every target's report to one output of its own).
func dialWith(c *cli.Context, target netip.AddrPort, withOutput bool, opts ...func(*probe.DialConfig)) (_ *session, err error) {
	if err := stopIfCheckOnly(c); err != nil {
		return nil, err
	}
	ctx := c.Context
	s := &session{target: target, started: time.Now()}
	defer func() {
		if err != nil {
			s.close()
			s.out.discard()
		}
	}()
	cfg := probe.DialConfig{Interface: c.String("interface"), NoGuard: c.Bool("no-guard")}
	if src := c.String("source"); src != "" {
		a, err := netip.ParseAddr(src)
		if err != nil {
			return nil, usageErr("--source %q: not an IP address", src)
		}
		cfg.Source = a
	}
	if withOutput {
		if s.out, err = openOutput(c); err != nil {
			return nil, err
		}
	}
	if name := c.String("netns"); name != "" {
		fd, err := openNetNS(name)
		if err != nil {
			return nil, err
		}
		s.netns, cfg.NetNS = fd, fd
	}
	if t := labTarget(ctx); t != nil {
		s.lab = string(t.Stack)
		cfg.NetNS = t.Probe.NetNS
		if t.Probe.Link != nil {
			s.inProcess = true
			cfg.Link, cfg.Path = t.Probe.Link, t.Probe.Path4
			// The prober owns a handle, not the lab's link: a --targets
			// run dials once per target.
			if m, ok := t.Probe.Link.(*probe.MemoryLink); ok {
				cfg.Link = m.Handle()
			}
			if target.Addr().Is6() {
				cfg.Path = t.Probe.Path6
			}
		}
	}
	s.probeNS = cfg.NetNS
	if file := c.String("pcap"); file != "" {
		f, err := os.Create(file)
		if err != nil {
			return nil, fileErr("--pcap", file, err)
		}
		s.pcap = f
		w, err := pcap.NewWriter(f, pcap.LinkTypeEthernet)
		if err != nil {
			return nil, envErr(fmt.Errorf("--pcap: %w", err))
		}
		s.pcapW, cfg.Recorder = w, w
	}
	for _, o := range opts {
		o(&cfg)
	}
	p, err := probe.Dial(ctx, target.Addr(), cfg)
	if err != nil {
		return nil, dialError(c, target, err)
	}
	s.prober = p
	return s, nil
}

// dialError sorts setup errors into bad input (2) and an environment that
// prevents the run (3).
func dialError(c *cli.Context, target netip.AddrPort, err error) error {
	switch {
	case errors.Is(err, probe.ErrNoInterface) && target.Addr().Zone() != "" && c.String("interface") == "":
		return usageErr("target %q: zone %q names no interface here (see `ip link`)", target.String(), target.Addr().Zone())
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

// close releases the prober, the pcap file and the namespace; where the
// report goes stays open for writeReport.
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
	s.prober, s.pcap, s.pcapW, s.netns = nil, nil, nil, 0
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

// reportOut is where a report goes: --output, or standard output.
type reportOut struct {
	w     io.Writer
	color bool
	file  *os.File
	// created is set when the file did not exist before: a run that never
	// starts removes it again.
	created bool
}

// openOutput opens where the report goes, before anything is sent. An
// existing file is not emptied until the report is written, so that a run
// that fails to start leaves it as it was.
func openOutput(c *cli.Context) (*reportOut, error) {
	name := c.String("output")
	if name == "" || name == "-" {
		w := c.App.Writer
		return &reportOut{w: w, color: progress.IsTerminal(w) && os.Getenv("NO_COLOR") == ""}, nil
	}
	_, statErr := os.Stat(name)
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fileErr("--output", name, err)
	}
	return &reportOut{w: f, file: f, created: errors.Is(statErr, fs.ErrNotExist)}, nil
}

// begin empties a regular file about to receive the report (a device or
// a pipe cannot be, and need not be).
func (o *reportOut) begin() error {
	if o.file == nil {
		return nil
	}
	if st, err := o.file.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil
	}
	return o.file.Truncate(0)
}

// close closes the file the report went to.
func (o *reportOut) close() error {
	if o == nil || o.file == nil {
		return nil
	}
	f := o.file
	o.file = nil
	return f.Close()
}

// discard closes the file of a run that wrote no report, and removes it
// if the run made it.
func (o *reportOut) discard() {
	if o == nil || o.file == nil {
		return
	}
	name := o.file.Name()
	o.close()
	if o.created {
		os.Remove(name)
	}
}

// writeReport writes rep in the chosen format where dial opened it, and
// returns the exit code the report earns (as an error, so that actions can
// return it).
func (s *session) writeReport(c *cli.Context, rep *report.Report, textOpt report.TextOptions) error {
	out := s.out
	if err := out.begin(); err != nil {
		out.close()
		return envErr(fmt.Errorf("write report: %w", err))
	}
	textOpt.Color = out.color
	var err error
	switch c.String("format") {
	case "json":
		err = report.WriteJSON(out.w, rep)
	case "junit":
		err = report.WriteJUnit(out.w, rep)
	case "jsonl":
		err = writeJSONLine(out.w, rep)
	default:
		err = report.WriteText(out.w, rep, textOpt)
	}
	if cerr := out.close(); err == nil {
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

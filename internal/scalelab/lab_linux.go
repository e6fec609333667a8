//go:build linux

package scalelab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"synprobe/internal/netns"
	"synprobe/internal/veth"
)

// labCount numbers the labs of this process, for their names.
var labCount atomic.Uint64

type labSys struct {
	probeFD, targetFD int
	pair              *veth.Pair
	listeners         []net.Listener
}

// targetSysctls lift the ICMP rate limits and let one listener hold a
// sweep's worth of half-open connections. tcp_synack_retries 0: a lost
// SYN-ACK is the sweep's to retry, not the target's to repeat.
var targetSysctls = map[string]string{
	"net/ipv4/icmp_ratelimit":         "0",
	"net/ipv4/icmp_msgs_per_sec":      "100000000",
	"net/ipv4/icmp_msgs_burst":        "100000000",
	"net/core/somaxconn":              "65535",
	"net/ipv4/tcp_max_syn_backlog":    "1048576",
	"net/ipv4/tcp_synack_retries":     "0",
	"net/ipv4/conf/all/rp_filter":     "0",
	"net/ipv4/conf/default/rp_filter": "0",
}

// Start builds the lab for plan. Close removes everything, also what a
// failed Start left; labs of dead processes are removed first.
func Start(ctx context.Context, plan Plan) (*Lab, error) {
	for _, prog := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(prog); err != nil {
			return nil, fmt.Errorf("start scale lab: %s not found (install iproute2 and nftables)", prog)
		}
	}
	removeStale()
	id := strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(labCount.Add(1), 10)
	l := &Lab{Plan: plan, ProbeNS: NamePrefix + id + "-probe", TargetNS: NamePrefix + id + "-target"}
	if err := l.setup(ctx); err != nil {
		l.Close()
		return nil, fmt.Errorf("start scale lab: %w", err)
	}
	return l, nil
}

func (l *Lab) setup(ctx context.Context) error {
	var err error
	for _, ns := range []string{l.ProbeNS, l.TargetNS} {
		if err := ip("netns", "add", ns); err != nil {
			return err
		}
	}
	if l.sys.probeFD, err = netns.Open(filepath.Join("/var/run/netns", l.ProbeNS)); err != nil {
		return err
	}
	if l.sys.targetFD, err = netns.Open(filepath.Join("/var/run/netns", l.TargetNS)); err != nil {
		return err
	}
	l.sys.pair, err = veth.New(ctx, veth.Config{
		Probe:  veth.End{Name: ProbeIf, NS: l.sys.probeFD, Addrs: []netip.Prefix{netip.PrefixFrom(ProbeAddr, 30)}},
		Target: veth.End{Name: TargetIf, NS: l.sys.targetFD, Addrs: []netip.Prefix{netip.PrefixFrom(TargetAddr, 30)}},
	})
	if err != nil {
		return err
	}
	l.ProbeMAC, l.GatewayMAC = l.sys.pair.Probe.MAC.String(), l.sys.pair.Target.MAC.String()
	for _, s := range []veth.Side{l.sys.pair.Probe, l.sys.pair.Target} {
		for _, o := range []veth.Offload{veth.TSO, veth.GSO, veth.GRO} {
			if err := veth.SetOffload(s.NS, s.Name, o, false); err != nil {
				return err
			}
		}
	}
	prefix := l.Plan.Prefix.String()
	if err := ip("-n", l.ProbeNS, "route", "add", prefix, "via", TargetAddr.String()); err != nil {
		return err
	}
	if err := ip("-n", l.TargetNS, "link", "set", "lo", "up"); err != nil {
		return err
	}
	// The whole prefix is local: the kernel answers for every address.
	if err := ip("-n", l.TargetNS, "route", "add", "local", prefix, "dev", "lo"); err != nil {
		return err
	}
	if err := netns.Do(l.sys.targetFD, func() error {
		for name, v := range targetSysctls {
			if err := os.WriteFile("/proc/sys/"+name, []byte(v), 0); err != nil {
				return fmt.Errorf("set %s: %w", strings.ReplaceAll(name, "/", "."), err)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	cmd := exec.Command("ip", "netns", "exec", l.TargetNS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(l.Plan.nftRules("scalelab"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("load nftables rules: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return netns.Do(l.sys.targetFD, func() error {
		for _, p := range l.Plan.OpenPorts {
			lc := net.ListenConfig{}
			ln, err := lc.Listen(context.Background(), "tcp4", "0.0.0.0:"+strconv.Itoa(int(p)))
			if err != nil {
				return fmt.Errorf("listen on port %d: %w", p, err)
			}
			l.sys.listeners = append(l.sys.listeners, ln)
		}
		return nil
	})
}

// ProbeFD is a descriptor of the probe namespace (the lab owns it).
func (l *Lab) ProbeFD() int { return l.sys.probeFD }

// Close removes the lab: listeners, veth pair, namespaces (the nftables
// table goes with its namespace).
func (l *Lab) Close() error {
	var errs []error
	for _, ln := range l.sys.listeners {
		ln.Close()
	}
	l.sys.listeners = nil
	if l.sys.pair != nil {
		errs = append(errs, l.sys.pair.Close())
		l.sys.pair = nil
	}
	for _, fd := range []*int{&l.sys.probeFD, &l.sys.targetFD} {
		if *fd > 0 {
			netns.Close(*fd)
			*fd = 0
		}
	}
	for _, ns := range []string{l.ProbeNS, l.TargetNS} {
		if _, err := os.Stat(filepath.Join("/var/run/netns", ns)); err == nil {
			errs = append(errs, ip("netns", "delete", ns))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close scale lab: %w", err)
	}
	return nil
}

// removeStale deletes the namespaces of labs whose process is gone.
func removeStale() {
	names, _ := filepath.Glob("/var/run/netns/" + NamePrefix + "*")
	for _, path := range names {
		name := filepath.Base(path)
		pidStr, _, _ := strings.Cut(strings.TrimPrefix(name, NamePrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			ip("netns", "delete", name)
		}
	}
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

package lab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"synprobe/internal/netns"
	"synprobe/internal/veth"
)

// The veth pair's names. Each lives in its own namespace, so the names
// cannot clash with anything on the host.
const (
	probeIfName  = "probe0"
	targetIfName = "target0"
)

// readyTimeout bounds the wait for the veth pair to come up when the
// caller's context has no deadline.
const readyTimeout = 10 * time.Second

// LinuxAvailable reports whether this process can make a Linux lab: create
// a network namespace and a veth pair in it. why says what failed.
func LinuxAvailable() (ok bool, why string) {
	ns, err := netns.New()
	if err != nil {
		return false, fmt.Sprintf("cannot create a network namespace (needs root or CAP_SYS_ADMIN): %v", err)
	}
	defer netns.Close(ns)
	err = netns.Do(ns, func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("open netlink: %w", err)
		}
		defer h.Close()
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "check0"}, PeerName: "check1"}
		if err := h.LinkAdd(veth); err != nil {
			return fmt.Errorf("create veth pair: %w", err)
		}
		return h.LinkDel(veth)
	})
	if err != nil {
		return false, fmt.Sprintf("cannot create a veth pair (needs CAP_NET_ADMIN): %v", err)
	}
	return true, ""
}

// TargetInterface is the target-side veth of a Linux lab, in the namespace
// TargetNetNS names: tests capture there what reached the target.
const TargetInterface = targetIfName

// kernelLab is the Linux kernel in a target namespace, reached from a probe
// namespace over a veth pair.
type kernelLab struct {
	pair   *veth.Pair
	server *server
	opts   Options
	notes  []string
}

func startLinux(ctx context.Context, opts Options) (*Target, error) {
	k := &kernelLab{server: newServer(), opts: opts}
	if err := k.setup(ctx); err != nil {
		k.teardown()
		return nil, fmt.Errorf("start linux lab: %w", err)
	}
	probeSide := ProbeSide{NetNS: k.pair.Probe.NS, Interface: probeIfName}
	t := newTarget(StackLinux, probeSide, k, k.teardown)
	t.targetNS = k.pair.Target.NS
	t.Notes = k.notes
	return t, nil
}

func (k *kernelLab) setup(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, readyTimeout)
		defer cancel()
	}
	var err error
	k.pair, err = veth.New(ctx, veth.Config{
		Probe: veth.End{
			Name:  probeIfName,
			MAC:   ProbeMAC.HardwareAddr(),
			Addrs: []netip.Prefix{netip.PrefixFrom(ProbeAddr4, Prefix4.Bits()), netip.PrefixFrom(ProbeAddr6, Prefix6.Bits())},
		},
		Target: veth.End{
			Name:  targetIfName,
			MAC:   TargetMAC.HardwareAddr(),
			Addrs: []netip.Prefix{netip.PrefixFrom(TargetAddr4, Prefix4.Bits()), netip.PrefixFrom(TargetAddr6, Prefix6.Bits())},
		},
		MTU: MTU,
	})
	if err != nil {
		return err
	}
	for _, s := range []struct {
		name string
		side veth.Side
	}{{"probe", k.pair.Probe}, {"target", k.pair.Target}} {
		err := netns.Do(s.side.NS, func() error {
			if err := packetdrillBuffers(); err != nil {
				return err
			}
			return segmentOnTheWire(s.side.Name)
		})
		if err != nil {
			return fmt.Errorf("configure %s namespace: %w", s.name, err)
		}
	}
	return netns.Do(k.pair.Target.NS, func() error {
		k.notes = setSysctls(k.opts.Sysctls)
		var lc net.ListenConfig
		for _, a := range []struct {
			network string
			addr    netip.AddrPort
		}{
			{"tcp4", netip.AddrPortFrom(TargetAddr4, OpenPort)},
			{"tcp6", netip.AddrPortFrom(TargetAddr6, OpenPort)},
		} {
			l, err := lc.Listen(ctx, a.network, a.addr.String())
			if err != nil {
				return fmt.Errorf("listen in target namespace: %w", err)
			}
			k.server.serve(l)
		}
		return nil
	})
}

// segmentOnTheWire switches off TSO and GSO on the veth, so that the kernel
// cuts segments to the MSS before they cross it, as a NIC would on a wire.
// With them on, veth carries the target's 64 KiB super-segments whole and
// synprobe would see segments no real network carries. Checksum offload
// stays on: synprobe must cope with partial checksums.
func segmentOnTheWire(ifName string) error {
	for _, o := range []veth.Offload{veth.TSO, veth.GSO} {
		if err := veth.SetOffload(0, ifName, o, false); err != nil {
			return fmt.Errorf("switch off segmentation offload: %w", err)
		}
	}
	return nil
}

// packetdrillBuffers sets the TCP buffer sizes of packetdrill's test
// environment (defaults.sh in Linux's selftests), which published scripts
// assume: a 15 MiB receive buffer gives window scale 8. The rest stays as a
// stock kernel has it (ECN, Fast Open, SYN cookies), so that an audit of
// the lab shows a stock Linux.
func packetdrillBuffers() error {
	for knob, value := range map[string]string{
		"/proc/sys/net/ipv4/tcp_rmem": "4096 540000 15728640",
		"/proc/sys/net/ipv4/tcp_wmem": "4096 262144 4194304",
	} {
		if err := os.WriteFile(knob, []byte(value+"\n"), 0); err != nil {
			return fmt.Errorf("set sysctl: %w", err)
		}
	}
	return nil
}

// setSysctls sets each setting in the calling thread's network namespace
// and says what it did. A name the namespace does not have is a global
// setting (the kernel shows only per-namespace ones outside the initial
// namespace) or one this kernel lacks: it is left out, never set on the
// host. A value the kernel refuses is noted too; the lab still runs.
func setSysctls(sysctls []Sysctl) []string {
	if len(sysctls) == 0 {
		return nil
	}
	var set, notes []string
	for _, s := range sysctls {
		file := filepath.Join("/proc/sys", strings.ReplaceAll(s.Name, ".", "/"))
		if _, err := os.Stat(file); err != nil {
			notes = append(notes, fmt.Sprintf("sysctl %s not set: not a setting of the target's network namespace on this kernel", s.Name))
			continue
		}
		if err := os.WriteFile(file, []byte(s.Value+"\n"), 0); err != nil {
			why := err.Error()
			if errors.Is(err, fs.ErrPermission) {
				// The kernel refuses some values outside the initial
				// namespace (a congestion control not in
				// net.ipv4.tcp_allowed_congestion_control): packetdrill's
				// own defaults.sh gets the same refusal there.
				why = "the kernel refuses it outside the initial network namespace, as it does for packetdrill"
			}
			notes = append(notes, fmt.Sprintf("sysctl %s=%s not set: %s", s.Name, s.Value, why))
			continue
		}
		set = append(set, s.Name+"="+s.Value)
	}
	return append([]string{"target sysctls: " + strings.Join(set, " ")}, notes...)
}

// flushPathMTU forgets the target's route exceptions towards synprobe: for
// IPv4 as 'ip route flush cache' does (the kernel's route/flush sysctl,
// which invalidates every exception of the namespace), for IPv6 by deleting
// the cached route to the probe address (RTM_F_CLONED, as 'ip -6 route
// flush cache' deletes each one). No exception is not an error.
func (k *kernelLab) flushPathMTU() error {
	return netns.Do(k.pair.Target.NS, func() error {
		if err := os.WriteFile("/proc/sys/net/ipv4/route/flush", []byte("1\n"), 0); err != nil {
			return fmt.Errorf("flush IPv4 route exceptions: %w", err)
		}
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("open netlink: %w", err)
		}
		defer h.Close()
		dst := &net.IPNet{IP: ProbeAddr6.AsSlice(), Mask: net.CIDRMask(128, 128)}
		err = h.RouteDel(&netlink.Route{Dst: dst, Table: unix.RT_TABLE_MAIN, Flags: unix.RTM_F_CLONED})
		if err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("delete IPv6 route exception to %v: %w", ProbeAddr6, err)
		}
		return nil
	})
}

// teardown stops the application and lets both namespaces go: once their
// descriptors and sockets are closed the kernel destroys them, and with
// them the veth pair.
func (k *kernelLab) teardown() error {
	k.server.close()
	if k.pair == nil {
		return nil
	}
	return k.pair.Close()
}

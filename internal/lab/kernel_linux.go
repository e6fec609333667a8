package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"unsafe"

	"synprobe/internal/netns"
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
	probeNS, targetNS int
	server            *server
}

func startLinux(ctx context.Context) (*Target, error) {
	k := &kernelLab{server: newServer()}
	if err := k.setup(ctx); err != nil {
		k.teardown()
		return nil, fmt.Errorf("start linux lab: %w", err)
	}
	probeSide := ProbeSide{NetNS: k.probeNS, Interface: probeIfName}
	t := newTarget(StackLinux, probeSide, k, k.teardown)
	t.targetNS = k.targetNS
	return t, nil
}

// labSide is one end of the veth pair.
type labSide struct {
	name   string
	ns     int
	h      *netlink.Handle
	ifName string
	addr4  netip.Addr
	addr6  netip.Addr
}

func (k *kernelLab) setup(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, readyTimeout)
		defer cancel()
	}
	var err error
	// Anonymous namespaces: they die with their last descriptor or socket,
	// so nothing outlives this process.
	if k.probeNS, err = netns.New(); err != nil {
		return err
	}
	if k.targetNS, err = netns.New(); err != nil {
		return err
	}
	sides := []*labSide{
		{name: "probe", ns: k.probeNS, ifName: probeIfName, addr4: ProbeAddr4, addr6: ProbeAddr6},
		{name: "target", ns: k.targetNS, ifName: targetIfName, addr4: TargetAddr4, addr6: TargetAddr6},
	}
	for _, s := range sides {
		if err := netns.Do(s.ns, quietIPv6); err != nil {
			return fmt.Errorf("configure %s namespace: %w", s.name, err)
		}
		if err := netns.Do(s.ns, packetdrillBuffers); err != nil {
			return fmt.Errorf("configure %s namespace: %w", s.name, err)
		}
		err := netns.Do(s.ns, func() (err error) {
			s.h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
			return err
		})
		if err != nil {
			return fmt.Errorf("open netlink in %s namespace: %w", s.name, err)
		}
		defer s.h.Close()
	}
	probeSide, targetSide := sides[0], sides[1]

	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: probeIfName, MTU: MTU, HardwareAddr: ProbeMAC.HardwareAddr()},
		PeerName:         targetIfName,
		PeerHardwareAddr: TargetMAC.HardwareAddr(),
		PeerMTU:          MTU,
		PeerNamespace:    netlink.NsFd(k.targetNS),
	}
	if err := probeSide.h.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth pair %s/%s: %w", probeIfName, targetIfName, err)
	}
	for _, s := range sides {
		if err := netns.Do(s.ns, func() error { return segmentOnTheWire(s.ifName) }); err != nil {
			return fmt.Errorf("%s namespace: %w", s.name, err)
		}
		if err := s.up(); err != nil {
			return err
		}
	}
	for _, s := range sides {
		if err := s.waitReady(ctx); err != nil {
			return err
		}
	}
	for _, s := range sides {
		if err := s.addAddrs(); err != nil {
			return err
		}
	}
	return netns.Do(targetSide.ns, func() error {
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

// quietIPv6 switches off what would put frames on the lab link that nobody
// asked for: router solicitations and duplicate address detection (which
// would also hold new addresses back for a second). It must run before the
// veth exists, so that the veth inherits the defaults.
func quietIPv6() error {
	for _, conf := range []string{"all", "default"} {
		for _, knob := range []string{"accept_dad", "router_solicitations"} {
			path := "/proc/sys/net/ipv6/conf/" + conf + "/" + knob
			if err := os.WriteFile(path, []byte("0\n"), 0); err != nil {
				return fmt.Errorf("set sysctl: %w", err)
			}
		}
	}
	return nil
}

// Legacy ethtool commands (linux/ethtool.h) that switch segmentation
// offloads.
const (
	ethtoolSTSO = 0x1f // TCP segmentation offload
	ethtoolSGSO = 0x24 // generic segmentation offload
)

// segmentOnTheWire switches off TSO and GSO on the veth, so that the kernel
// cuts segments to the MSS before they cross it, as a NIC would on a wire.
// With them on, veth carries the target's 64 KiB super-segments whole and
// synprobe would see segments no real network carries. Checksum offload
// stays on: synprobe must cope with partial checksums.
func segmentOnTheWire(ifName string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("switch off segmentation offload on %s: %w", ifName, err)
	}
	defer unix.Close(fd)
	for _, cmd := range []uint32{ethtoolSTSO, ethtoolSGSO} {
		value := struct{ cmd, data uint32 }{cmd, 0}
		var ifr struct {
			name [unix.IFNAMSIZ]byte
			data uintptr
			_    [16]byte
		}
		copy(ifr.name[:], ifName)
		ifr.data = uintptr(unsafe.Pointer(&value))
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
			return fmt.Errorf("switch off segmentation offload (ethtool 0x%x) on %s: %w", cmd, ifName, errno)
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

func (s *labSide) up() error {
	for _, name := range []string{"lo", s.ifName} {
		link, err := s.h.LinkByName(name)
		if err != nil {
			return fmt.Errorf("find %s in %s namespace: %w", name, s.name, err)
		}
		if err := s.h.LinkSetUp(link); err != nil {
			return fmt.Errorf("bring %s up in %s namespace: %w", name, s.name, err)
		}
	}
	return nil
}

// waitReady waits until the kernel has finished bringing the veth up: its
// carrier is seen, its queueing discipline is no longer the one that drops
// everything, and IPv6 is configured on it. IPv6 gives the surest sign:
// the kernel adds the link-local address only once the link is ready for
// traffic (addrconf_link_ready), and with DAD off it is final at once.
func (s *labSide) waitReady(ctx context.Context) error {
	for {
		state, err := s.linkState()
		if err != nil {
			return err
		}
		if state == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s in %s namespace to come up: %s: %w", s.ifName, s.name, state, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// linkState says what the veth still lacks; "" when it is ready.
func (s *labSide) linkState() (string, error) {
	link, err := s.h.LinkByName(s.ifName)
	if err != nil {
		return "", fmt.Errorf("find %s in %s namespace: %w", s.ifName, s.name, err)
	}
	if op := link.Attrs().OperState; op != netlink.OperUp {
		return "operstate " + op.String(), nil
	}
	addrs, err := s.h.AddrList(link, netlink.FAMILY_V6)
	if err != nil {
		return "", fmt.Errorf("list addresses of %s in %s namespace: %w", s.ifName, s.name, err)
	}
	for _, a := range addrs {
		if a.IP.IsLinkLocalUnicast() && a.Flags&unix.IFA_F_TENTATIVE == 0 {
			return "", nil
		}
	}
	return "no usable IPv6 link-local address yet", nil
}

func (s *labSide) addAddrs() error {
	link, err := s.h.LinkByName(s.ifName)
	if err != nil {
		return fmt.Errorf("find %s in %s namespace: %w", s.ifName, s.name, err)
	}
	for _, a := range []struct {
		addr   netip.Addr
		prefix netip.Prefix
	}{
		{s.addr4, Prefix4},
		{s.addr6, Prefix6},
	} {
		addr := &netlink.Addr{IPNet: &net.IPNet{
			IP:   a.addr.AsSlice(),
			Mask: net.CIDRMask(a.prefix.Bits(), a.addr.BitLen()),
		}}
		if a.addr.Is6() {
			addr.Flags = unix.IFA_F_NODAD // usable at once
		}
		if err := s.h.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("add %s to %s in %s namespace: %w", a.addr, s.ifName, s.name, err)
		}
	}
	return nil
}

// teardown stops the application and lets both namespaces go: once their
// descriptors and sockets are closed the kernel destroys them, and with
// them the veth pair.
func (k *kernelLab) teardown() error {
	k.server.close()
	var errs []error
	for _, ns := range []*int{&k.targetNS, &k.probeNS} {
		if *ns == 0 {
			continue
		}
		if err := netns.Close(*ns); err != nil {
			errs = append(errs, fmt.Errorf("close namespace: %w", err))
		}
		*ns = 0
	}
	return errors.Join(errs...)
}

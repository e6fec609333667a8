package veth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"synprobe/internal/netns"
)

// readyTimeout bounds the wait for the pair to become ready when the
// caller's context has no deadline: generous, because the machine may be
// shared and noisy, and only a broken kernel ever waits that long.
const readyTimeout = 30 * time.Second

// end is one end of the pair while New sets it up.
type end struct {
	role string // "probe" or "target", for messages
	cfg  End
	side *Side
	h    *netlink.Handle
}

// New makes two anonymous namespaces joined by a veth pair as cfg says,
// brings the veths and both loopbacks up and waits until the veths carry
// traffic. ctx bounds the wait; without a deadline New gives up after 30 s.
// On error it leaves nothing behind.
func New(ctx context.Context, cfg Config) (*Pair, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, readyTimeout)
		defer cancel()
	}
	p := &Pair{}
	if err := p.setup(ctx, cfg); err != nil {
		p.Close()
		return nil, fmt.Errorf("create veth pair %s/%s: %w", cfg.Probe.Name, cfg.Target.Name, err)
	}
	return p, nil
}

func (p *Pair) setup(ctx context.Context, cfg Config) error {
	ends := []*end{
		{role: "probe", cfg: cfg.Probe, side: &p.Probe},
		{role: "target", cfg: cfg.Target, side: &p.Target},
	}
	for _, e := range ends {
		ns, err := e.namespace()
		if err != nil {
			return fmt.Errorf("%s namespace: %w", e.role, err)
		}
		e.side.NS, e.side.Name = ns, e.cfg.Name
		if err := netns.Do(ns, quietIPv6); err != nil {
			return fmt.Errorf("configure %s namespace: %w", e.role, err)
		}
		err = netns.Do(ns, func() (err error) {
			e.h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
			return err
		})
		if err != nil {
			return fmt.Errorf("open netlink in %s namespace: %w", e.role, err)
		}
		defer e.h.Close()
	}
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: cfg.Probe.Name, MTU: cfg.MTU, HardwareAddr: cfg.Probe.MAC},
		PeerName:         cfg.Target.Name,
		PeerHardwareAddr: cfg.Target.MAC,
		PeerMTU:          uint32(cfg.MTU),
		PeerNamespace:    netlink.NsFd(p.Target.NS),
	}
	if err := ends[0].h.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth: %w", err)
	}
	for _, e := range ends {
		if err := e.configure(cfg.NoAutoLinkLocal); err != nil {
			return err
		}
	}
	for _, e := range ends {
		if err := e.waitReady(ctx, cfg.NoAutoLinkLocal); err != nil {
			return err
		}
	}
	return nil
}

// namespace returns a descriptor of the end's namespace that the pair
// owns: a duplicate of the caller's, or a new anonymous namespace.
func (e *end) namespace() (int, error) {
	if e.cfg.NS == 0 {
		return netns.New()
	}
	fd, err := unix.FcntlInt(uintptr(e.cfg.NS), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("duplicate namespace descriptor %d: %w", e.cfg.NS, err)
	}
	return fd, nil
}

// quietIPv6 switches off what would put frames on the link that nobody
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

// configure addresses the veth and brings it and the loopback up. The
// loopback is up as on a host: some kernel features look at it (packet
// sockets check there that timestamping is on).
func (e *end) configure(noAutoLinkLocal bool) error {
	link, err := e.h.LinkByName(e.cfg.Name)
	if err != nil {
		return fmt.Errorf("find %s in %s namespace: %w", e.cfg.Name, e.role, err)
	}
	e.side.Index = link.Attrs().Index
	e.side.MAC = link.Attrs().HardwareAddr
	if noAutoLinkLocal {
		if err := e.h.LinkSetIP6AddrGenMode(link, nl.IN6_ADDR_GEN_MODE_NONE); err != nil {
			return fmt.Errorf("switch off IPv6 address generation on %s in %s namespace: %w", e.cfg.Name, e.role, err)
		}
	}
	for _, a := range e.cfg.Addrs {
		addr := &netlink.Addr{IPNet: &net.IPNet{
			IP:   a.Addr().AsSlice(),
			Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen()),
		}}
		if a.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD // usable at once
		}
		if err := e.h.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("add %s to %s in %s namespace: %w", a, e.cfg.Name, e.role, err)
		}
	}
	lo, err := e.h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo in %s namespace: %w", e.role, err)
	}
	for _, l := range []netlink.Link{lo, link} {
		if err := e.h.LinkSetUp(l); err != nil {
			return fmt.Errorf("bring %s up in %s namespace: %w", l.Attrs().Name, e.role, err)
		}
	}
	return nil
}

// waitReady waits until the kernel has finished bringing the veth up.
func (e *end) waitReady(ctx context.Context, noAutoLinkLocal bool) error {
	for {
		state, err := e.linkState(noAutoLinkLocal)
		if err != nil {
			return err
		}
		if state == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s in %s namespace to come up: %s: %w", e.cfg.Name, e.role, state, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// linkState says what the veth still lacks; "" when it is ready:
//   - its operational state is up: the link watch has run, so the veth has
//     its queueing discipline and no longer drops every frame;
//   - IPv6 is configured on it: no address is tentative and each has its
//     local route, and the link has its multicast route (without it IPv6
//     drops every neighbour solicitation). The automatic link-local address
//     is the surest sign of all: the kernel adds it only once the link is
//     ready for traffic (addrconf_link_ready), and with DAD off it is final
//     at once.
func (e *end) linkState(noAutoLinkLocal bool) (string, error) {
	link, err := e.h.LinkByIndex(e.side.Index)
	if err != nil {
		return "", fmt.Errorf("find %s in %s namespace: %w", e.cfg.Name, e.role, err)
	}
	if op := link.Attrs().OperState; op != netlink.OperUp {
		return "operstate " + op.String(), nil
	}
	addrs, err := e.h.AddrList(link, netlink.FAMILY_V6)
	if err != nil {
		return "", fmt.Errorf("list addresses of %s in %s namespace: %w", e.cfg.Name, e.role, err)
	}
	linkLocal := false
	for _, a := range addrs {
		if a.Flags&unix.IFA_F_TENTATIVE != 0 {
			return "tentative IPv6 address " + a.IP.String(), nil
		}
		rs, err := e.h.RouteGet(a.IP)
		if err != nil || len(rs) == 0 || rs[0].Type != unix.RTN_LOCAL {
			return "no local route for " + a.IP.String(), nil
		}
		linkLocal = linkLocal || a.IP.IsLinkLocalUnicast()
	}
	if !linkLocal && !noAutoLinkLocal {
		return "no IPv6 link-local address yet", nil
	}
	rs, err := e.h.RouteListFiltered(netlink.FAMILY_V6,
		&netlink.Route{Table: unix.RT_TABLE_LOCAL, LinkIndex: e.side.Index},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_OIF)
	if err != nil {
		return "", fmt.Errorf("list IPv6 routes of %s in %s namespace: %w", e.cfg.Name, e.role, err)
	}
	for _, r := range rs {
		if r.Type == unix.RTN_MULTICAST {
			return "", nil
		}
	}
	return "no IPv6 multicast route yet", nil
}

// Close closes both namespace descriptors. The kernel destroys each
// namespace, and with them the veth pair, once the sockets in it are closed
// too; a namespace the caller gave (End.NS) lives on with its end of the
// pair, for the caller to delete. Close is idempotent, but not safe for
// concurrent use.
func (p *Pair) Close() error {
	var errs []error
	for _, s := range []*Side{&p.Target, &p.Probe} {
		if s.NS == 0 {
			continue
		}
		if err := netns.Close(s.NS); err != nil {
			errs = append(errs, fmt.Errorf("close namespace of %s: %w", s.Name, err))
		}
		s.NS = 0
	}
	return errors.Join(errs...)
}

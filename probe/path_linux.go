package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"synprobe/internal/netns"
)

// usableNeighbor are the neighbour states whose link-layer address the
// kernel itself would send to.
const usableNeighbor = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY |
	netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP

// netlinkTimeout keeps a wedged netlink socket from hanging synprobe.
const netlinkTimeout = 5 * time.Second

// neighborRetransmit is how often synprobe repeats its own ARP or Neighbor
// Solicitation: the kernel's default retransmission time.
const neighborRetransmit = time.Second

// ResolvePath finds how frames reach target: the egress interface and its
// MAC, the source address, and the next hop with its MAC, as the routing
// and neighbour tables of the namespace opts.NetNS see them.
//
// When the next hop's MAC is not in the neighbour table, the kernel is asked
// to resolve it through an ordinary neighbour entry kicked as if a packet
// waited for it, which is removed afterwards (and which the kernel ages out
// by itself if synprobe dies); failing that, synprobe sends its own ARP
// request or Neighbor Solicitation. IPv6 link-local targets need a zone
// (fe80::1%eth0) or opts.Interface.
//
// Errors wrap ErrNoRoute, ErrNoInterface, ErrSourceNotLocal,
// ErrNeighborUnresolved, ErrLocalTarget or ErrUnsupportedLink when the host
// prevents the run; other errors mean bad input or a failing system call.
func ResolvePath(ctx context.Context, target netip.Addr, opts PathOptions) (Path, error) {
	p, err := resolvePath(ctx, target, opts)
	if err != nil {
		return Path{}, fmt.Errorf("resolve path to %s: %w", target, err)
	}
	return p, nil
}

func resolvePath(ctx context.Context, target netip.Addr, opts PathOptions) (Path, error) {
	target = target.Unmap()
	if !target.IsValid() || target.IsUnspecified() || target.IsMulticast() ||
		target == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return Path{}, fmt.Errorf("%s is not a unicast address", target)
	}
	if target.IsLoopback() {
		return Path{}, ErrLocalTarget
	}
	ifname := opts.Interface
	if zone := target.Zone(); zone != "" {
		if ifname != "" && ifname != zone {
			return Path{}, fmt.Errorf("zone %%%s and interface %s disagree", zone, ifname)
		}
		ifname = zone
	}
	if target.Is6() && target.IsLinkLocalUnicast() && ifname == "" {
		return Path{}, fmt.Errorf("link-local target needs a zone or an interface: %s%%eth0", target)
	}
	target = target.WithZone("")
	src := opts.Source.Unmap().WithZone("")
	if src.IsValid() && src.Is4() != target.Is4() {
		return Path{}, fmt.Errorf("source %s and target are of different IP versions", src)
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultNeighborTimeout
	}

	var h *netlink.Handle
	err := netns.Do(opts.NetNS, func() (err error) {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return Path{}, fmt.Errorf("open netlink socket: %w", err)
	}
	defer h.Close()
	if err := h.SetSocketTimeout(netlinkTimeout); err != nil {
		return Path{}, fmt.Errorf("set netlink timeout: %w", err)
	}

	family := netlink.FAMILY_V4
	if target.Is6() {
		family = netlink.FAMILY_V6
	}
	ropts := &netlink.RouteGetOptions{}
	if ifname != "" {
		l, err := linkByName(h, ifname)
		if err != nil {
			return Path{}, err
		}
		ropts.OifIndex = l.Attrs().Index
	}
	if src.IsValid() {
		if err := checkLocalSource(h, family, src); err != nil {
			return Path{}, err
		}
		ropts.SrcAddr = src.AsSlice()
	}

	routes, err := h.RouteGetWithOptions(target.AsSlice(), ropts)
	if err != nil || len(routes) == 0 {
		if err == nil {
			err = errors.New("kernel returned no route")
		}
		return Path{}, fmt.Errorf("%w (%w; check `ip route get %s`)", ErrNoRoute, err, target)
	}
	r := routes[0]
	switch r.Type {
	case unix.RTN_UNICAST:
	case unix.RTN_LOCAL:
		return Path{}, ErrLocalTarget
	case unix.RTN_BROADCAST, unix.RTN_MULTICAST, unix.RTN_ANYCAST:
		return Path{}, fmt.Errorf("%s is a broadcast, multicast or anycast destination here (route type %d)", target, r.Type)
	default:
		return Path{}, fmt.Errorf("%w (route type %d; check `ip route get %s`)", ErrNoRoute, r.Type, target)
	}

	link, err := h.LinkByIndex(r.LinkIndex)
	if err != nil {
		return Path{}, fmt.Errorf("read egress interface %d: %w", r.LinkIndex, err)
	}
	a := link.Attrs()
	mac, ok := MACFrom(a.HardwareAddr)
	if a.EncapType != "ether" || !ok {
		return Path{}, fmt.Errorf("%w: %s is %s (%s)", ErrUnsupportedLink, a.Name, a.EncapType, link.Type())
	}

	p := Path{Interface: a.Name, IfIndex: a.Index, MTU: a.MTU, LocalMAC: mac, Source: src, NextHop: target}
	if r.MTU > 0 && r.MTU < p.MTU {
		p.MTU = r.MTU
	}
	if !p.Source.IsValid() {
		p.Source, _ = netip.AddrFromSlice(r.Src)
		p.Source = p.Source.Unmap()
		if !p.Source.IsValid() {
			return Path{}, fmt.Errorf("%w (%s has no address to send from; add one or give a source)", ErrNoRoute, a.Name)
		}
	}
	if gw, ok := netip.AddrFromSlice(r.Gw); ok {
		p.NextHop = gw.Unmap()
	} else if r.Via != nil {
		// A gateway of the other family (RFC 8950: IPv4 routes via an IPv6
		// next hop, Linux 5.2+): frames go to its MAC all the same.
		via, ok := r.Via.(*netlink.Via)
		if !ok {
			return Path{}, fmt.Errorf("%w (unsupported next hop %s; check `ip route get %s`)", ErrNoRoute, r.Via, target)
		}
		gw, ok := netip.AddrFromSlice(via.Addr)
		if !ok {
			return Path{}, fmt.Errorf("%w (unsupported next hop %s; check `ip route get %s`)", ErrNoRoute, r.Via, target)
		}
		p.NextHop = gw.Unmap()
	}

	if opts.neighbors != nil {
		p.NextHopMAC, err = opts.neighbors.resolve(ctx, neighborKey{p.IfIndex, p.NextHop}, func() (MAC, error) {
			return resolveNextHop(ctx, h, opts.NetNS, p, timeout)
		})
	} else {
		p.NextHopMAC, err = resolveNextHop(ctx, h, opts.NetNS, p, timeout)
	}
	if err != nil {
		if a.OperState == netlink.OperDown || a.OperState == netlink.OperLowerLayerDown {
			err = fmt.Errorf("%w (%s has no carrier)", err, a.Name)
		}
		return Path{}, err
	}
	return p, nil
}

// linkByName finds an interface by name or, as in a zone, by index.
func linkByName(h *netlink.Handle, name string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	if err == nil {
		return l, nil
	}
	if idx, aerr := strconv.Atoi(name); aerr == nil && idx > 0 {
		if l, ierr := h.LinkByIndex(idx); ierr == nil {
			return l, nil
		}
	}
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
		return nil, fmt.Errorf("%w: %s (see `ip link`)", ErrNoInterface, name)
	}
	return nil, fmt.Errorf("look up interface %s: %w", name, err)
}

// checkLocalSource makes sure src is assigned here: IPv4 route lookups
// refuse a foreign source with a misleading "network unreachable", IPv6
// ones accept it, and either way no reply would ever come back.
func checkLocalSource(h *netlink.Handle, family int, src netip.Addr) error {
	addrs, err := h.AddrList(nil, family)
	if err != nil {
		return fmt.Errorf("list local addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == src {
			return nil
		}
	}
	return fmt.Errorf("%w: %s (see `ip addr`)", ErrSourceNotLocal, src)
}

// resolveNextHop returns the MAC of p.NextHop on p.IfIndex: from the
// neighbour table if it holds a usable entry, else by making the kernel
// resolve it, else by asking the next hop directly.
func resolveNextHop(ctx context.Context, h *netlink.Handle, ns int, p Path, timeout time.Duration) (MAC, error) {
	mac, ok, err := lookupNeighbor(h, p.IfIndex, p.NextHop)
	if err != nil || ok {
		return mac, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	mac, err = kernelResolve(ctx, h, p)
	if errors.Is(err, errKernelCannotResolve) {
		var serr error
		mac, serr = solicitNeighbor(ctx, ns, p)
		if serr != nil {
			return MAC{}, fmt.Errorf("%w (%w; check `ip neigh show dev %s`)", serr, err, p.Interface)
		}
		return mac, nil
	}
	if err != nil {
		return MAC{}, fmt.Errorf("%w (check `ip neigh show dev %s`)", err, p.Interface)
	}
	return mac, nil
}

// lookupNeighbor reads ip's entry in the neighbour table of interface
// ifindex; ok reports whether it holds a link-layer address fit to use.
func lookupNeighbor(h *netlink.Handle, ifindex int, ip netip.Addr) (mac MAC, ok bool, err error) {
	family := netlink.FAMILY_V4
	if ip.Is6() {
		family = netlink.FAMILY_V6
	}
	neighs, err := h.NeighList(ifindex, family)
	if err != nil {
		return mac, false, fmt.Errorf("read neighbour table: %w", err)
	}
	for _, n := range neighs {
		if a, _ := netip.AddrFromSlice(n.IP); a.Unmap() != ip || n.State&usableNeighbor == 0 {
			continue
		}
		if mac, ok := MACFrom(n.HardwareAddr); ok {
			return mac, true, nil
		}
	}
	return mac, false, nil
}

// errKernelCannotResolve means the kernel could not be made to resolve the
// next hop (old kernel, no permission): synprobe has to ask itself.
var errKernelCannotResolve = errors.New("kernel cannot resolve the next hop for synprobe")

// kernelResolve makes the kernel resolve p.NextHop and waits until it has.
// The entry is made and kicked with NTF_USE, as if a packet were waiting
// for it: an ordinary entry, which the kernel probes ucast/mcast_solicit
// times, then marks FAILED and garbage-collects, whatever becomes of
// synprobe. (A managed entry, NTF_EXT_MANAGED, is never collected and is
// probed again and again: synprobe killed while resolving left one that
// sent ARP forever.) synprobe deletes the entry it made once done; one
// that already existed (INCOMPLETE, FAILED) is not synprobe's: it is only
// kicked.
func kernelResolve(ctx context.Context, h *netlink.Handle, p Path) (mac MAC, err error) {
	n := &netlink.Neigh{
		LinkIndex: p.IfIndex,
		Family:    netlink.FAMILY_V4,
		IP:        p.NextHop.AsSlice(),
		State:     netlink.NUD_NONE,
		Flags:     netlink.NTF_USE,
	}
	if p.NextHop.Is6() {
		n.Family = netlink.FAMILY_V6
	}
	err = h.NeighAdd(n)
	switch {
	case err == nil:
		defer func() {
			derr := h.NeighDel(&netlink.Neigh{LinkIndex: n.LinkIndex, Family: n.Family, IP: n.IP})
			if derr != nil && !errors.Is(derr, unix.ENOENT) && err == nil {
				err = fmt.Errorf("remove synprobe's neighbour entry for %s: %w", p.NextHop, derr)
			}
		}()
	case errors.Is(err, unix.EEXIST):
		if uerr := h.NeighSet(n); uerr != nil {
			return mac, fmt.Errorf("%w: kick neighbour entry: %w", errKernelCannotResolve, uerr)
		}
	default:
		return mac, fmt.Errorf("%w: add neighbour entry: %w", errKernelCannotResolve, err)
	}

	poll := 5 * time.Millisecond
	for {
		mac, ok, err := lookupNeighbor(h, p.IfIndex, p.NextHop)
		if err != nil || ok {
			return mac, err
		}
		select {
		case <-ctx.Done():
			return mac, fmt.Errorf("%w: %s on %s (%w)", ErrNeighborUnresolved, p.NextHop, p.Interface, context.Cause(ctx))
		case <-time.After(poll):
		}
		poll = min(2*poll, 100*time.Millisecond)
	}
}

// solicitNeighbor asks p.NextHop for its MAC with synprobe's own ARP
// request (IPv4) or Neighbor Solicitation (IPv6), sent from p.Source and
// p.LocalMAC out of p.IfIndex in namespace ns, repeated every second until
// an answer comes or ctx ends.
func solicitNeighbor(ctx context.Context, ns int, p Path) (MAC, error) {
	var (
		req   []byte
		err   error
		dst   = BroadcastMAC
		proto = unix.ETH_P_ARP
		parse = ParseARPReply
		what  = "ARP reply"
	)
	if p.NextHop.Is6() {
		req, err = AppendNeighborSolicitation(nil, p.LocalMAC, p.Source, p.NextHop)
		_, dst = ndpSolicitedNode(p.NextHop)
		proto, parse, what = unix.ETH_P_IPV6, ParseNeighborAdvertisement, "neighbor advertisement"
	} else {
		req, err = AppendARPRequest(nil, p.LocalMAC, p.Source, p.NextHop)
	}
	if err != nil {
		return MAC{}, err
	}

	ifi := &net.Interface{Index: p.IfIndex, Name: p.Interface, HardwareAddr: p.LocalMAC.HardwareAddr(), MTU: p.MTU}
	var conn *packet.Conn
	err = netns.Do(ns, func() (err error) {
		conn, err = packet.Listen(ifi, packet.Raw, proto, nil)
		return err
	})
	if err != nil {
		return MAC{}, fmt.Errorf("open packet socket on %s: %w", p.Interface, err)
	}
	defer conn.Close()
	// A cancelled context must interrupt a blocked read.
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	to := &packet.Addr{HardwareAddr: dst.HardwareAddr()}
	buf := make([]byte, 2048)
	for ctx.Err() == nil {
		if _, err := conn.WriteTo(req, to); err != nil {
			return MAC{}, fmt.Errorf("send %s request on %s: %w", what, p.Interface, err)
		}
		resend := time.Now().Add(neighborRetransmit)
		if d, ok := ctx.Deadline(); ok && d.Before(resend) {
			resend = d
		}
		if err := conn.SetReadDeadline(resend); err != nil {
			return MAC{}, fmt.Errorf("set read deadline: %w", err)
		}
		if ctx.Err() != nil { // cancelled between the check and the deadline
			break
		}
		for {
			n, _, err := conn.ReadFrom(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return MAC{}, fmt.Errorf("read %s on %s: %w", what, p.Interface, err)
			}
			if ip, mac, err := parse(buf[:n]); err == nil && ip == p.NextHop {
				return mac, nil
			}
		}
	}
	return MAC{}, fmt.Errorf("%w: no %s from %s on %s (%w)", ErrNeighborUnresolved, what, p.NextHop, p.Interface, context.Cause(ctx))
}

package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"synprobe/internal/netns"
	"synprobe/internal/veth"
	"synprobe/internal/veth/vethtest"
)

// pathLab is two fresh network namespaces joined by a veth pair: "local",
// where paths are resolved, and "peer", whose kernel answers. No link-local
// address is made automatically: the ends have only these.
//
//	local sp0 10.9.0.1/24 10.9.0.3/24 fd00:9::1/64 fe80::1/64
//	peer  sp1 10.9.0.2/24             fd00:9::2/64 fe80::2/64
type pathLab struct {
	local, peer int // namespace descriptors
	hl          *netlink.Handle
	localIndex  int
	localMAC    MAC
	peerMAC     MAC
}

func newPathLab(t *testing.T) *pathLab {
	t.Helper()
	pair := vethtest.New(t, veth.Config{
		Probe:           veth.End{Name: "sp0", Addrs: prefixes("10.9.0.1/24", "10.9.0.3/24", "fd00:9::1/64", "fe80::1/64")},
		Target:          veth.End{Name: "sp1", Addrs: prefixes("10.9.0.2/24", "fd00:9::2/64", "fe80::2/64")},
		NoAutoLinkLocal: true,
	})
	lab := &pathLab{local: pair.Probe.NS, peer: pair.Target.NS, localIndex: pair.Probe.Index}
	lab.localMAC = vethMAC(t, pair.Probe)
	lab.peerMAC = vethMAC(t, pair.Target)
	lab.hl = netlinkIn(t, lab.local)
	return lab
}

// vethMAC is the hardware address of one end of a veth pair.
func vethMAC(t testing.TB, s veth.Side) MAC {
	t.Helper()
	mac, ok := MACFrom(s.MAC)
	if !ok {
		t.Fatalf("%s has hardware address %v, want 6 bytes", s.Name, s.MAC)
	}
	return mac
}

// prefixes parses addresses with their prefix lengths.
func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

func netlinkIn(t *testing.T, ns int) *netlink.Handle {
	t.Helper()
	var h *netlink.Handle
	err := netns.Do(ns, func() (err error) {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		t.Fatalf("open netlink in namespace: %v", err)
	}
	t.Cleanup(h.Close)
	return h
}

func (lab *pathLab) addRoute(t *testing.T, dst, gw string) {
	t.Helper()
	ipn, err := netlink.ParseIPNet(dst)
	if err != nil {
		t.Fatalf("parse %s: %v", dst, err)
	}
	r := &netlink.Route{Dst: ipn, LinkIndex: lab.localIndex, Gw: net.ParseIP(gw)}
	if gwIP := net.ParseIP(gw); gwIP != nil && (gwIP.To4() != nil) != (ipn.IP.To4() != nil) {
		family := netlink.FAMILY_V4
		if gwIP.To4() == nil {
			family = netlink.FAMILY_V6
		}
		r.Gw, r.Via = nil, &netlink.Via{AddrFamily: family, Addr: gwIP}
	}
	if gw == "" {
		lo, err := lab.hl.LinkByName("lo")
		if err != nil {
			t.Fatalf("find lo: %v", err)
		}
		r.LinkIndex = lo.Attrs().Index
	}
	if err := lab.hl.RouteAdd(r); err != nil {
		t.Fatalf("add route %s via %q: %v", dst, gw, err)
	}
	t.Cleanup(func() {
		if err := lab.hl.RouteDel(r); err != nil {
			t.Errorf("delete route %s: %v", dst, err)
		}
	})
}

// neighbor returns ip's entry in the local neighbour table of sp0.
func (lab *pathLab) neighbor(t *testing.T, ip netip.Addr) (netlink.Neigh, bool) {
	t.Helper()
	return neighborOf(t, lab.hl, lab.localIndex, ip)
}

// neighborOf returns ip's entry in the neighbour table of interface
// ifindex, read through h.
func neighborOf(t *testing.T, h *netlink.Handle, ifindex int, ip netip.Addr) (netlink.Neigh, bool) {
	t.Helper()
	neighs, err := h.NeighList(ifindex, 0)
	if err != nil {
		t.Fatalf("list neighbours: %v", err)
	}
	for _, n := range neighs {
		if a, _ := netip.AddrFromSlice(n.IP); a.Unmap() == ip {
			return n, true
		}
	}
	return netlink.Neigh{}, false
}

// assertNoManagedEntry checks that synprobe took its managed entry away.
func (lab *pathLab) assertNoManagedEntry(t *testing.T, ip netip.Addr) {
	t.Helper()
	if n, ok := lab.neighbor(t, ip); ok && n.FlagsExt&netlink.NTF_EXT_MANAGED != 0 {
		t.Errorf("managed neighbour entry for %s left behind: state %#x", ip, n.State)
	}
}

func TestResolvePath(t *testing.T) {
	lab := newPathLab(t)
	lab.addRoute(t, "198.51.100.0/24", "10.9.0.2")
	lab.addRoute(t, "2001:db8:5::/48", "fe80::2")
	lab.addRoute(t, "198.51.101.0/24", "fe80::2")

	want := func(src, nextHop string) Path {
		return Path{
			Interface:  "sp0",
			IfIndex:    lab.localIndex,
			MTU:        1500,
			LocalMAC:   lab.localMAC,
			Source:     netip.MustParseAddr(src),
			NextHop:    netip.MustParseAddr(nextHop),
			NextHopMAC: lab.peerMAC,
		}
	}
	tests := []struct {
		name   string
		target string
		opts   PathOptions
		want   Path
	}{
		{"on-link IPv4", "10.9.0.2", PathOptions{}, want("10.9.0.1", "10.9.0.2")},
		{"on-link IPv6", "fd00:9::2", PathOptions{}, want("fd00:9::1", "fd00:9::2")},
		{"IPv4-mapped IPv6 target", "::ffff:10.9.0.2", PathOptions{}, want("10.9.0.1", "10.9.0.2")},
		{"link-local with zone", "fe80::2%sp0", PathOptions{}, want("fe80::1", "fe80::2")},
		{"link-local with interface", "fe80::2", PathOptions{Interface: "sp0"}, want("fe80::1", "fe80::2")},
		{"IPv4 via gateway", "198.51.100.7", PathOptions{}, want("10.9.0.1", "10.9.0.2")},
		{"IPv6 via link-local gateway", "2001:db8:5::7", PathOptions{}, want("fd00:9::1", "fe80::2")},
		{"IPv4 via IPv6 gateway", "198.51.101.7", PathOptions{}, want("10.9.0.1", "fe80::2")},
		{"forced interface", "10.9.0.2", PathOptions{Interface: "sp0"}, want("10.9.0.1", "10.9.0.2")},
		{"forced source", "10.9.0.2", PathOptions{Source: netip.MustParseAddr("10.9.0.3")}, want("10.9.0.3", "10.9.0.2")},
		{"forced source via gateway", "198.51.100.7", PathOptions{Source: netip.MustParseAddr("10.9.0.3")}, want("10.9.0.3", "10.9.0.2")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.NetNS = lab.local
			got, err := ResolvePath(context.Background(), netip.MustParseAddr(tt.target), tt.opts)
			if err != nil {
				t.Fatalf("ResolvePath(%s): %v", tt.target, err)
			}
			if got != tt.want {
				t.Errorf("ResolvePath(%s):\n got  %+v\n want %+v", tt.target, got, tt.want)
			}
			lab.assertNoManagedEntry(t, tt.want.NextHop)
		})
	}
}

// TestResolvePathMissingNeighbor proves that a next hop absent from the
// neighbour table is resolved by the kernel through an ordinary entry (not
// a managed one, which the kernel never collects), deleted afterwards. The
// neighbour events of the namespace show both.
func TestResolvePathMissingNeighbor(t *testing.T) {
	lab := newPathLab(t)
	events := make(chan netlink.NeighUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	err := netns.Do(lab.local, func() error { return netlink.NeighSubscribe(events, done) })
	if err != nil {
		t.Fatalf("subscribe to neighbour events: %v", err)
	}

	for _, target := range []string{"10.9.0.2", "fd00:9::2", "fe80::2%sp0"} {
		t.Run(target, func(t *testing.T) {
			ip := netip.MustParseAddr(target)
			if n, ok := lab.neighbor(t, ip.WithZone("")); ok {
				t.Fatalf("neighbour table already holds %s (state %#x); the test needs it absent", ip, n.State)
			}
			p, err := ResolvePath(context.Background(), ip, PathOptions{NetNS: lab.local})
			if err != nil {
				t.Fatalf("ResolvePath(%s): %v", ip, err)
			}
			if p.NextHopMAC != lab.peerMAC {
				t.Errorf("ResolvePath(%s).NextHopMAC = %s, want the peer's %s", ip, p.NextHopMAC, lab.peerMAC)
			}
			lab.assertNoManagedEntry(t, ip.WithZone(""))

			// The deletion was acknowledged before ResolvePath returned, so
			// its event is already queued; the wait only covers delivery.
			var added, deleted bool
			timeout := time.After(10 * time.Second)
			for !deleted {
				select {
				case u := <-events:
					if a, _ := netip.AddrFromSlice(u.IP); a.Unmap() != ip.WithZone("") {
						continue
					}
					switch {
					case u.Type == unix.RTM_NEWNEIGH && u.FlagsExt&netlink.NTF_EXT_MANAGED != 0:
						t.Fatalf("synprobe made a managed neighbour entry for %s", ip)
					case u.Type == unix.RTM_NEWNEIGH:
						added = true
					case u.Type == unix.RTM_DELNEIGH && added:
						deleted = true
					}
				case <-timeout:
					if !added {
						t.Skipf("no neighbour entry was made; resolved by synprobe's own solicitation")
					}
					t.Fatalf("neighbour entry for %s was added but no deletion was seen", ip)
				}
			}
		})
	}
}

// resolveChildEnv makes the test binary resolve a path and wait to be
// killed, in TestResolvePathKilledHelper.
const resolveChildEnv = "SYNPROBE_TEST_RESOLVE_CHILD"

// TestResolvePathKilled: synprobe killed (SIGKILL) while the kernel
// resolves a next hop that never answers leaves no neighbour entry that
// goes on probing (issue 10: a managed INCOMPLETE entry sent ARP forever).
// The retransmission timer is shortened in the test's namespace, so the
// kernel gives up within a second; the requests are then counted for
// longer than the kernel waits before it probes a managed entry again
// (interval_probe_time_ms, 5 s, global).
func TestResolvePathKilled(t *testing.T) {
	lab := newPathLab(t)
	for _, path := range []string{"/proc/sys/net/ipv4/neigh/sp0/retrans_time_ms", "/proc/sys/net/ipv6/neigh/sp0/retrans_time_ms"} {
		err := netns.Do(lab.local, func() error { return os.WriteFile(path, []byte("100"), 0) })
		if err != nil {
			t.Fatalf("set %s: %v", path, err)
		}
	}
	for _, target := range []string{"10.9.0.77", "fd00:9::77"} {
		t.Run(target, func(t *testing.T) {
			t.Parallel()
			ip := netip.MustParseAddr(target)
			h := netlinkIn(t, lab.local) // a handle is not for two goroutines
			requests := lab.countSolicitations(t, ip)
			fd, err := unix.Dup(lab.local)
			if err != nil {
				t.Fatal(err)
			}
			nsFile := os.NewFile(uintptr(fd), "netns")
			defer nsFile.Close()
			cmd := exec.Command(os.Args[0], "-test.run=^TestResolvePathKilledHelper$")
			cmd.Env = append(os.Environ(), resolveChildEnv+"="+target)
			cmd.ExtraFiles = []*os.File{nsFile} // descriptor 3 in the child
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Kill it once the kernel is resolving for it.
			deadline := time.Now().Add(10 * time.Second)
			for {
				if n, ok := neighborOf(t, h, lab.localIndex, ip); ok && n.State&netlink.NUD_INCOMPLETE != 0 {
					break
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("no INCOMPLETE neighbour entry for %s appeared within 10 s", ip)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			if n, ok := neighborOf(t, h, lab.localIndex, ip); ok && n.FlagsExt&netlink.NTF_EXT_MANAGED != 0 {
				t.Errorf("the killed process left a managed neighbour entry for %s (state %#x): the kernel probes it forever", ip, n.State)
			}

			// The kernel gives up after a few retransmissions (3 x 100 ms).
			deadline = time.Now().Add(5 * time.Second)
			for {
				n, ok := neighborOf(t, h, lab.localIndex, ip)
				if !ok || n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_PROBE|netlink.NUD_DELAY) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("neighbour entry for %s still in state %#x 5 s after the kill", ip, n.State)
				}
				time.Sleep(20 * time.Millisecond)
			}
			// Then nothing asks for the address any more.
			before := requests()
			time.Sleep(6 * time.Second)
			if after := requests(); after != before {
				t.Errorf("%d requests for %s in the 6 s after its entry failed, want none", after-before, ip)
			}
			if n, ok := neighborOf(t, h, lab.localIndex, ip); ok {
				h.NeighDel(&n)
			}
		})
	}
}

// TestResolvePathKilledHelper is the process TestResolvePathKilled kills:
// it resolves a path in the namespace of descriptor 3 and waits.
func TestResolvePathKilledHelper(t *testing.T) {
	target := os.Getenv(resolveChildEnv)
	if target == "" {
		t.Skip("runs only as TestResolvePathKilled's child")
	}
	ResolvePath(context.Background(), netip.MustParseAddr(target), PathOptions{NetNS: 3, Timeout: time.Minute})
	t.Fatal("ResolvePath returned before it was killed")
}

// countSolicitations counts the ARP requests or Neighbor Solicitations for
// ip that reach the peer end until the test ends; the function returns the
// count so far.
func (lab *pathLab) countSolicitations(t *testing.T, ip netip.Addr) func() int {
	t.Helper()
	proto := unix.ETH_P_ARP
	if ip.Is6() {
		proto = unix.ETH_P_IPV6
	}
	var fd int
	err := netns.Do(lab.peer, func() (err error) {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(uint16(proto))))
		return err
	})
	if err != nil {
		t.Fatalf("packet socket in the peer namespace: %v", err)
	}
	var count atomic.Int64
	stop := make(chan struct{})
	finished := make(chan struct{})
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 50000})
	go func() {
		defer close(finished)
		buf := make([]byte, 2048)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			if solicits(buf[:n], ip) {
				count.Add(1)
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-finished
		unix.Close(fd)
	})
	return func() int { return int(count.Load()) }
}

// solicits reports whether an Ethernet frame is an ARP request or a
// Neighbor Solicitation for ip.
func solicits(f []byte, ip netip.Addr) bool {
	if ip.Is4() {
		// ARP: opcode 1 at byte 20, target IP at 38.
		if len(f) < 42 || f[12] != 0x08 || f[13] != 0x06 || f[20] != 0 || f[21] != 1 {
			return false
		}
		a, _ := netip.AddrFromSlice(f[38:42])
		return a == ip
	}
	// IPv6, ICMPv6 (58) type 135, target at byte 14+40+8.
	if len(f) < 14+40+24 || f[12] != 0x86 || f[13] != 0xdd || f[14+6] != 58 || f[14+40] != 135 {
		return false
	}
	a, _ := netip.AddrFromSlice(f[14+48 : 14+64])
	return a == ip
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// TestResolvePathExistingNeighbor proves that usable entries are taken as
// they are and left in place, and that an unusable entry that synprobe did
// not create is resolved but not deleted.
func TestResolvePathExistingNeighbor(t *testing.T) {
	lab := newPathLab(t)
	fake := MAC{0x02, 0, 0, 0, 0, 0x50}
	static := &netlink.Neigh{
		LinkIndex:    lab.localIndex,
		IP:           net.ParseIP("10.9.0.50"),
		State:        netlink.NUD_PERMANENT,
		HardwareAddr: fake.HardwareAddr(),
	}
	if err := lab.hl.NeighAdd(static); err != nil {
		t.Fatalf("add permanent neighbour: %v", err)
	}
	// A FAILED entry, as the kernel leaves after an unanswered resolution.
	failed := &netlink.Neigh{LinkIndex: lab.localIndex, IP: net.ParseIP("10.9.0.2"), State: netlink.NUD_FAILED}
	if err := lab.hl.NeighAdd(failed); err != nil {
		t.Fatalf("add failed neighbour: %v", err)
	}

	tests := []struct {
		target string
		want   MAC
	}{
		{"10.9.0.50", fake},
		{"10.9.0.2", lab.peerMAC},
	}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.target)
		p, err := ResolvePath(context.Background(), ip, PathOptions{NetNS: lab.local})
		if err != nil {
			t.Fatalf("ResolvePath(%s): %v", ip, err)
		}
		if p.NextHopMAC != tt.want {
			t.Errorf("ResolvePath(%s).NextHopMAC = %s, want %s", ip, p.NextHopMAC, tt.want)
		}
		n, ok := lab.neighbor(t, ip)
		if !ok {
			t.Errorf("neighbour entry for %s that synprobe did not create was deleted", ip)
			continue
		}
		if n.FlagsExt&netlink.NTF_EXT_MANAGED != 0 {
			t.Errorf("neighbour entry for %s was turned into a managed one", ip)
		}
	}
}

// TestSolicitNeighbor proves synprobe's own ARP and Neighbor Discovery
// against the peer namespace's kernel.
func TestSolicitNeighbor(t *testing.T) {
	lab := newPathLab(t)
	tests := []struct{ src, target string }{
		{"10.9.0.1", "10.9.0.2"},
		{"fd00:9::1", "fd00:9::2"},
		{"fe80::1", "fe80::2"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			p := Path{
				Interface: "sp0",
				IfIndex:   lab.localIndex,
				MTU:       1500,
				LocalMAC:  lab.localMAC,
				Source:    netip.MustParseAddr(tt.src),
				NextHop:   netip.MustParseAddr(tt.target),
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			mac, err := solicitNeighbor(ctx, lab.local, p)
			if err != nil {
				t.Fatalf("solicitNeighbor(%s from %s): %v", tt.target, tt.src, err)
			}
			if mac != lab.peerMAC {
				t.Errorf("solicitNeighbor(%s) = %s, want the peer's %s", tt.target, mac, lab.peerMAC)
			}
		})
	}
}

func TestSolicitNeighborCancelled(t *testing.T) {
	lab := newPathLab(t)
	p := Path{
		Interface: "sp0", IfIndex: lab.localIndex, MTU: 1500, LocalMAC: lab.localMAC,
		Source: netip.MustParseAddr("10.9.0.1"), NextHop: netip.MustParseAddr("10.9.0.77"),
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := solicitNeighbor(ctx, lab.local, p)
	if !errors.Is(err, ErrNeighborUnresolved) || !errors.Is(err, context.Canceled) {
		t.Errorf("solicitNeighbor with a cancelled context: got %v, want ErrNeighborUnresolved and context.Canceled", err)
	}
}

func TestResolvePathErrors(t *testing.T) {
	lab := newPathLab(t)
	lab.addRoute(t, "192.0.2.0/24", "") // through lo: no Ethernet framing

	tests := []struct {
		name    string
		target  string
		opts    PathOptions
		wantErr error  // a sentinel, or nil when only the message matters
		wantMsg string // a part of the message
	}{
		{"no IPv4 route", "203.0.113.5", PathOptions{}, ErrNoRoute, "ip route get 203.0.113.5"},
		{"no IPv6 route", "2001:db8:77::1", PathOptions{}, ErrNoRoute, "ip route get 2001:db8:77::1"},
		{"unknown interface", "10.9.0.2", PathOptions{Interface: "nope0"}, ErrNoInterface, "nope0"},
		{"unknown zone", "fe80::2%nope0", PathOptions{}, ErrNoInterface, "nope0"},
		{"zone and interface disagree", "fe80::2%lo", PathOptions{Interface: "sp0"}, nil, "disagree"},
		{"link-local without zone", "fe80::2", PathOptions{}, nil, "needs a zone"},
		{"local IPv4 address", "10.9.0.1", PathOptions{}, ErrLocalTarget, "synprobe lab"},
		{"local IPv6 address", "fd00:9::1", PathOptions{}, ErrLocalTarget, "synprobe lab"},
		{"local address on a forced interface", "10.9.0.1", PathOptions{Interface: "sp0"}, ErrLocalTarget, "synprobe lab"},
		{"subnet broadcast", "10.9.0.255", PathOptions{}, nil, "broadcast"},
		{"IPv4 loopback", "127.0.0.1", PathOptions{}, ErrLocalTarget, "remote target"},
		{"IPv6 loopback", "::1", PathOptions{}, ErrLocalTarget, "remote target"},
		{"foreign IPv4 source", "10.9.0.2", PathOptions{Source: netip.MustParseAddr("10.9.0.99")}, ErrSourceNotLocal, "10.9.0.99"},
		{"foreign IPv6 source", "fd00:9::2", PathOptions{Source: netip.MustParseAddr("fd00:9::99")}, ErrSourceNotLocal, "fd00:9::99"},
		{"source of the other version", "10.9.0.2", PathOptions{Source: netip.MustParseAddr("fd00:9::1")}, nil, "different IP versions"},
		{"multicast target", "224.0.0.1", PathOptions{}, nil, "not a unicast address"},
		{"route through loopback", "192.0.2.9", PathOptions{}, ErrUnsupportedLink, "lo"},
		{"silent IPv4 neighbour", "10.9.0.77", PathOptions{Timeout: 300 * time.Millisecond}, ErrNeighborUnresolved, "ip neigh show dev sp0"},
		{"silent IPv6 neighbour", "fd00:9::77", PathOptions{Timeout: 300 * time.Millisecond}, ErrNeighborUnresolved, "ip neigh show dev sp0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.NetNS = lab.local
			target := netip.MustParseAddr(tt.target)
			p, err := ResolvePath(context.Background(), target, tt.opts)
			if err == nil {
				t.Fatalf("ResolvePath(%s) = %+v, want an error", tt.target, p)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("ResolvePath(%s) error %q, want %q", tt.target, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) || !strings.HasPrefix(err.Error(), "resolve path to "+tt.target) {
				t.Errorf("ResolvePath(%s) error %q, want it to start with %q and mention %q", tt.target, err, "resolve path to "+tt.target, tt.wantMsg)
			}
			if ip := target.WithZone(""); ip.Is6() || ip.Is4() {
				lab.assertNoManagedEntry(t, ip)
			}
		})
	}
}

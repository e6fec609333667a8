//go:build linux

package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"synprobe/internal/netns"
	"synprobe/internal/veth"
	"synprobe/internal/veth/vethtest"
)

// linkLab is two anonymous namespaces, "probe" and "target", joined by a
// veth pair. Nothing of it exists outside the namespaces, and the
// namespaces die with the test process.
type linkLab struct {
	probeNS, targetNS   int
	probeIf, targetIf   string
	probeMAC, targetMAC MAC
	probe4, target4     netip.Addr
	probe6, target6     netip.Addr
}

// Ports outside the default ip_local_port_range (32768-60999), so that a
// kernel connection in the lab never uses one by chance.
var labPorts = PortRange{Lo: 61000, Hi: 61009}

// linkWatchdog bounds a test that waits for frames which never come; it is
// a guard against hanging, not a measurement.
const linkWatchdog = 30 * time.Second

func newLinkLab(t testing.TB) *linkLab {
	t.Helper()
	lab := &linkLab{
		probeIf:  "sp-probe",
		targetIf: "sp-target",
		probe4:   netip.MustParseAddr("10.77.0.1"),
		target4:  netip.MustParseAddr("10.77.0.2"),
		probe6:   netip.MustParseAddr("fd77::1"),
		target6:  netip.MustParseAddr("fd77::2"),
	}
	// The probe side's loopback is up, as on a host: OpenPacketLink uses it
	// to see that the kernel's timestamping is on (awaitTimestamps).
	pair := vethtest.New(t, veth.Config{
		Probe:  veth.End{Name: lab.probeIf, Addrs: []netip.Prefix{netip.PrefixFrom(lab.probe4, 24), netip.PrefixFrom(lab.probe6, 64)}},
		Target: veth.End{Name: lab.targetIf, Addrs: []netip.Prefix{netip.PrefixFrom(lab.target4, 24), netip.PrefixFrom(lab.target6, 64)}},
	})
	lab.probeNS, lab.targetNS = pair.Probe.NS, pair.Target.NS
	lab.probeMAC, lab.targetMAC = vethMAC(t, pair.Probe), vethMAC(t, pair.Target)
	return lab
}

func (lab *linkLab) addrs(v6 bool) (probe, target netip.Addr) {
	if v6 {
		return lab.probe6, lab.target6
	}
	return lab.probe4, lab.target4
}

// listen opens a TCP listener in the target namespace.
func (lab *linkLab) listen(t testing.TB, v6 bool) (net.Listener, uint16) {
	t.Helper()
	_, target := lab.addrs(v6)
	var ln net.Listener
	err := netns.Do(lab.targetNS, func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(target, 0).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, uint16(ln.Addr().(*net.TCPAddr).Port)
}

func (lab *linkLab) open(t testing.TB, v6 bool, ports PortRange, recvBuffer int) *PacketLink {
	t.Helper()
	_, target := lab.addrs(v6)
	l, err := OpenPacketLink(PacketLinkConfig{
		NetNS:      lab.probeNS,
		Interface:  lab.probeIf,
		Filter:     FlowFilter{Remote: target, LocalPorts: ports},
		RecvBuffer: recvBuffer,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// segment encodes a TCP segment from the probe to the target.
func (lab *linkLab) segment(t testing.TB, v6 bool, sport, dport uint16, flags Flags, seq Seq) []byte {
	t.Helper()
	probe, target := lab.addrs(v6)
	f := &Frame{
		Ethernet: Ethernet{Dst: lab.targetMAC, Src: lab.probeMAC},
		IP:       IP{Src: probe, Dst: target, Flags: IPFlagDF},
		TCP:      TCP{SrcPort: sport, DstPort: dport, Seq: seq, Flags: flags, Window: 65535, Options: []Option{MSSOption(1400)}},
	}
	b, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type linkRead struct {
	c         Capture
	f         Frame
	decodeErr error
}

// readFrames reads n frames, failing the test if the link is quiet for
// longer than the watchdog.
func readFrames(t testing.TB, l *PacketLink, n int) []linkRead {
	t.Helper()
	var out []linkRead
	for len(out) < n {
		got := make(chan linkRead, 1)
		errc := make(chan error, 1)
		go func() {
			c, err := l.ReadFrame()
			if err != nil {
				errc <- err
				return
			}
			r := linkRead{c: c}
			r.decodeErr = r.f.Decode(c.Data)
			got <- r
		}()
		select {
		case r := <-got:
			out = append(out, r)
		case err := <-errc:
			t.Fatalf("frame %d of %d: %v", len(out)+1, n, err)
		case <-time.After(linkWatchdog):
			l.Close()
			t.Fatalf("frame %d of %d: nothing within %v; read so far: %s", len(out)+1, n, linkWatchdog, describe(out))
		}
	}
	return out
}

func describe(rs []linkRead) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "\n\t%s", describeRead(r))
	}
	return b.String()
}

func describeRead(r linkRead) string {
	dir := "in "
	if r.c.Outgoing {
		dir = "out"
	}
	s := fmt.Sprintf("%s %v partial=%v checksum=%v time=%v", dir, &r.f, r.c.ChecksumPartial, r.f.Checksum, r.c.Time.Format("15:04:05.000000000"))
	if r.decodeErr != nil {
		s += " decode error: " + r.decodeErr.Error()
	}
	return s
}

// waitQueued waits until the link's socket has queued n frames in all.
func waitQueued(t testing.TB, l *PacketLink, n uint64) {
	t.Helper()
	deadline := time.Now().Add(linkWatchdog)
	for {
		s, err := l.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if s.Received >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket queued %d frames within %v, want %d", s.Received, linkWatchdog, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPacketLinkHandshake sends a SYN to a listener in the target namespace
// and checks what the link shows: the SYN leaving, the SYN-ACK arriving and
// the probe kernel's RST to the SYN-ACK it did not expect, leaving.
func TestPacketLinkHandshake(t *testing.T) {
	lab := newLinkLab(t)
	for _, v6 := range []bool{false, true} {
		name := "v4"
		if v6 {
			name = "v6"
		}
		t.Run(name, func(t *testing.T) {
			_, port := lab.listen(t, v6)
			l := lab.open(t, v6, labPorts, 0)
			probe, target := lab.addrs(v6)
			sport := labPorts.Lo + 1

			before := time.Now()
			if err := l.WriteFrame(lab.segment(t, v6, sport, port, SYN, 1000)); err != nil {
				t.Fatal(err)
			}
			// All three frames queue before any is read, so a timestamp
			// taken when the frame was read would come after queued.
			waitQueued(t, l, 3)
			queued := time.Now()
			rs := readFrames(t, l, 3)
			for _, r := range rs {
				t.Log(describeRead(r))
			}
			syn, synack, rst := rs[0], rs[1], rs[2]

			ours := netip.AddrPortFrom(probe, sport)
			theirs := netip.AddrPortFrom(target, port)
			for _, c := range []struct {
				what     string
				r        linkRead
				outgoing bool
				src, dst netip.AddrPort
				flags    Flags
			}{
				{"our SYN", syn, true, ours, theirs, SYN},
				{"the SYN-ACK", synack, false, theirs, ours, SYN | ACK},
				{"the probe kernel's RST", rst, true, ours, theirs, RST},
			} {
				if !c.r.f.Has(LayerTCP) || c.r.f.Src() != c.src || c.r.f.Dst() != c.dst || c.r.f.TCP.Flags != c.flags {
					t.Errorf("%s: got %v, want %v > %v flags %v", c.what, &c.r.f, c.src, c.dst, c.flags)
				}
				if c.r.c.Outgoing != c.outgoing {
					t.Errorf("%s: Outgoing got %v, want %v", c.what, c.r.c.Outgoing, c.outgoing)
				}
				if c.r.c.Time.Before(before) || !c.r.c.Time.Before(queued) {
					t.Errorf("%s: time %v, want a kernel timestamp between the send (%v) and the moment all frames were queued (%v)",
						c.what, c.r.c.Time, before, queued)
				}
				// A partial checksum is the kernel's business: it must fail
				// verification, and every other checksum must pass.
				want := ChecksumValid
				if c.r.c.ChecksumPartial {
					want = ChecksumInvalid
				}
				if c.r.f.Checksum != want {
					t.Errorf("%s: ChecksumPartial %v, checksum %v: want %v", c.what, c.r.c.ChecksumPartial, c.r.f.Checksum, want)
				}
			}
			if syn.c.ChecksumPartial {
				t.Errorf("our SYN: ChecksumPartial set, but synprobe computed the checksum")
			}
			if !synack.c.Time.After(syn.c.Time) || !rst.c.Time.After(synack.c.Time) {
				t.Errorf("times out of order: SYN %v, SYN-ACK %v, RST %v", syn.c.Time, synack.c.Time, rst.c.Time)
			}
			if n := l.untimed.Load(); n != 0 {
				t.Errorf("%d frames without a kernel timestamp", n)
			}
			if synack.f.TCP.Ack != 1001 {
				t.Errorf("SYN-ACK ack got %d, want 1001", synack.f.TCP.Ack)
			}
			s, err := l.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if s != (LinkStats{Received: 3}) {
				t.Errorf("stats got %+v, want 3 received, no drops", s)
			}
		})
	}
}

// otherHostMAC is a destination no interface in the lab has: the target
// drops such frames (PACKET_OTHERHOST), while the probe side still sees
// them leave.
var otherHostMAC = MAC{0x02, 0, 0, 0, 0, 0x99}

func (lab *linkLab) otherHostSegment(t testing.TB, v6 bool, sport uint16) []byte {
	t.Helper()
	probe, target := lab.addrs(v6)
	f := &Frame{
		Ethernet: Ethernet{Dst: otherHostMAC, Src: lab.probeMAC},
		IP:       IP{Src: probe, Dst: target},
		TCP:      TCP{SrcPort: sport, DstPort: 9, Seq: 1, Flags: ACK, Window: 1000},
	}
	b, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPacketLinkOtherFlows runs a kernel-to-kernel TCP connection between
// the namespaces (from an ephemeral port, outside synprobe's range) before
// synprobe's own SYN: the first frame the link shows must be that SYN.
func TestPacketLinkOtherFlows(t *testing.T) {
	lab := newLinkLab(t)
	for _, v6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("v6=%v", v6), func(t *testing.T) {
			ln, port := lab.listen(t, v6)
			l := lab.open(t, v6, labPorts, 0)
			_, target := lab.addrs(v6)

			accepted := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil {
					_, err = c.Write([]byte("hello"))
					c.Close()
				}
				accepted <- err
			}()
			var conn net.Conn
			err := netns.Do(lab.probeNS, func() error {
				var err error
				conn, err = net.Dial("tcp", netip.AddrPortFrom(target, port).String())
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 5)
			if _, err := conn.Read(buf); err != nil {
				t.Fatal(err)
			}
			conn.Close()
			if err := <-accepted; err != nil {
				t.Fatal(err)
			}
			local := netip.MustParseAddrPort(conn.LocalAddr().String())
			if labPorts.Contains(local.Port()) {
				t.Fatalf("kernel connection from %v: inside synprobe's ports %v", local, labPorts)
			}

			sport := labPorts.Hi
			if err := l.WriteFrame(lab.segment(t, v6, sport, port, SYN, 7)); err != nil {
				t.Fatal(err)
			}
			rs := readFrames(t, l, 3)
			for i, r := range rs {
				t.Log(describeRead(r))
				if r.f.TCP.SrcPort != sport && r.f.TCP.DstPort != sport {
					t.Errorf("frame %d: %v is not synprobe's flow", i+1, &r.f)
				}
			}
			if f := &rs[0].f; !rs[0].c.Outgoing || f.TCP.Flags != SYN || f.TCP.Seq != 7 {
				t.Errorf("first frame: got %s, want our SYN (seq 7) leaving", describeRead(rs[0]))
			}
		})
	}
}

// TestPacketLinkDrops fills a tiny receive buffer with frames nobody reads.
func TestPacketLinkDrops(t *testing.T) {
	lab := newLinkLab(t)
	l := lab.open(t, false, labPorts, 1) // the kernel rounds up to its minimum
	const sent = 200
	frame := lab.otherHostSegment(t, false, labPorts.Lo)
	for i := 0; i < sent; i++ {
		if err := l.WriteFrame(frame); err != nil {
			t.Fatal(err)
		}
	}
	// The tap runs inside the send call on veth: every frame is counted by
	// the time WriteFrame returns.
	s, err := l.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after %d frames: %+v", sent, s)
	if s.Drops == 0 || s.Received == 0 || s.Received+s.Drops != sent {
		t.Errorf("stats got %+v, want drops > 0, received > 0, received + drops = %d", s, sent)
	}
	// The kernel resets its counters when read; the link must not.
	s2, err := l.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s2 != s {
		t.Errorf("stats read again: got %+v, want %+v", s2, s)
	}
	// What was queued can be read.
	readFrames(t, l, int(s.Received))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if s3, err := l.Stats(); err != nil || s3 != s {
		t.Errorf("stats after close: got %+v, %v, want %+v", s3, err, s)
	}
}

// TestPacketLinkSetFilter changes the filter on a live link.
func TestPacketLinkSetFilter(t *testing.T) {
	lab := newLinkLab(t)
	first, second := PortRange{61000, 61000}, PortRange{61005, 61005}
	l := lab.open(t, false, first, 0)
	if err := l.SetFilter(FlowFilter{Remote: lab.target4, LocalPorts: second}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []uint16{first.Lo, second.Lo} {
		if err := l.WriteFrame(lab.otherHostSegment(t, false, p)); err != nil {
			t.Fatal(err)
		}
	}
	// Now IPv6: the same link, a filter for the other family.
	if err := l.SetFilter(FlowFilter{Remote: lab.target6, LocalPorts: first}); err != nil {
		t.Fatal(err)
	}
	for _, f := range [][]byte{lab.otherHostSegment(t, false, first.Lo), lab.otherHostSegment(t, true, first.Lo)} {
		if err := l.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	rs := readFrames(t, l, 2)
	if got := rs[0].f.Src(); got != netip.AddrPortFrom(lab.probe4, second.Lo) {
		t.Errorf("first frame after SetFilter(%v): got one from %v", second, got)
	}
	if got := rs[1].f.Src(); got != netip.AddrPortFrom(lab.probe6, first.Lo) {
		t.Errorf("first frame after SetFilter(%v): got one from %v", lab.target6, got)
	}
	if err := l.SetFilter(FlowFilter{}); err == nil || !strings.Contains(err.Error(), "no remote address") {
		t.Errorf("SetFilter with no remote: got %v, want an error about the remote address", err)
	}
}

// TestPacketLinkClose closes a link under a blocked reader.
func TestPacketLinkClose(t *testing.T) {
	lab := newLinkLab(t)
	l := lab.open(t, false, labPorts, 0)
	if got := l.Name(); got != lab.probeIf {
		t.Errorf("Name got %q, want %q", got, lab.probeIf)
	}
	if got := l.HardwareAddr(); got != lab.probeMAC {
		t.Errorf("HardwareAddr got %v, want %v", got, lab.probeMAC)
	}
	if got := l.MTU(); got != 1500 {
		t.Errorf("MTU got %d, want 1500 (veth default)", got)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := l.ReadFrame()
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond) // most likely blocked by now; either way the answer is the same
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrLinkClosed) {
			t.Errorf("blocked ReadFrame after Close: got %v, want ErrLinkClosed", err)
		}
	case <-time.After(linkWatchdog):
		t.Fatalf("ReadFrame still blocked %v after Close", linkWatchdog)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := l.ReadFrame(); !errors.Is(err, ErrLinkClosed) {
		t.Errorf("ReadFrame after Close: got %v, want ErrLinkClosed", err)
	}
	if err := l.WriteFrame(lab.otherHostSegment(t, false, labPorts.Lo)); !errors.Is(err, ErrLinkClosed) {
		t.Errorf("WriteFrame after Close: got %v, want ErrLinkClosed", err)
	}
	if err := l.SetFilter(FlowFilter{Remote: lab.target4, LocalPorts: labPorts}); !errors.Is(err, ErrLinkClosed) {
		t.Errorf("SetFilter after Close: got %v, want ErrLinkClosed", err)
	}
}

func TestOpenPacketLinkErrors(t *testing.T) {
	lab := newLinkLab(t)
	// lo is up in both namespaces: in the probe namespace it is an
	// interface that is up but not Ethernet; in the target namespace it is
	// taken down, for an interface that is down.
	err := netns.Do(lab.targetNS, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetDown(lo)
	})
	if err != nil {
		t.Fatalf("take lo down in the target namespace: %v", err)
	}
	good := FlowFilter{Remote: lab.target4, LocalPorts: labPorts}
	for _, c := range []struct {
		name string
		cfg  PacketLinkConfig
		want string
	}{
		{"missing interface", PacketLinkConfig{NetNS: lab.probeNS, Interface: "sp-nope", Filter: good}, `interface "sp-nope": route ip+net: no such network interface`},
		{"interface down", PacketLinkConfig{NetNS: lab.targetNS, Interface: "lo", Filter: good}, "open packet link on lo: interface is down"},
		{"not ethernet", PacketLinkConfig{NetNS: lab.probeNS, Interface: "lo", Filter: good}, "open packet link on lo: not an Ethernet interface (hardware type 772)"},
		{"no interface", PacketLinkConfig{NetNS: lab.probeNS, Filter: good}, "no interface given"},
		{"no filter", PacketLinkConfig{NetNS: lab.probeNS, Interface: lab.probeIf}, "flow filter: no remote address"},
		{"negative buffer", PacketLinkConfig{NetNS: lab.probeNS, Interface: lab.probeIf, Filter: good, RecvBuffer: -1}, "receive buffer of -1 bytes"},
		{"bad namespace", PacketLinkConfig{NetNS: -1, Interface: lab.probeIf, Filter: good}, "enter network namespace"},
	} {
		l, err := OpenPacketLink(c.cfg)
		if err == nil {
			l.Close()
			t.Errorf("%s: no error, want %q", c.name, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %q, want it to contain %q", c.name, err, c.want)
		}
		if errors.Is(err, ErrPermission) {
			t.Errorf("%s: %v is ErrPermission", c.name, err)
		}
	}
}

// TestOpenPacketLinkPermission opens a link on a thread that lacks
// CAP_NET_RAW. Capabilities belong to threads on Linux, so the test drops
// it on one locked thread, inside the probe namespace, and restores it.
func TestOpenPacketLinkPermission(t *testing.T) {
	if os.Geteuid() != 0 {
		// Without root, there is nothing to drop: the open fails before
		// any socket exists, and no frame is ever sent.
		l, err := OpenPacketLink(PacketLinkConfig{Interface: "lo", Filter: FlowFilter{Remote: netip.MustParseAddr("127.0.0.1"), LocalPorts: labPorts}})
		if err == nil {
			l.Close()
			t.Skip("this process may open packet sockets without root (CAP_NET_RAW)")
		}
		if !errors.Is(err, ErrPermission) {
			t.Fatalf("open without root: got %v, want ErrPermission", err)
		}
		return
	}
	lab := newLinkLab(t)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// On any failure to restore, the goroutine exits locked and the
		// runtime retires the thread with its odd namespace and caps.
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(lab.probeNS, unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var caps [2]unix.CapUserData
		if err := unix.Capget(&hdr, &caps[0]); err != nil {
			errc <- err
			return
		}
		saved := caps
		caps[unix.CAP_NET_RAW/32].Effective &^= 1 << (unix.CAP_NET_RAW % 32)
		if err := unix.Capset(&hdr, &caps[0]); err != nil {
			errc <- err
			return
		}
		l, openErr := OpenPacketLink(PacketLinkConfig{Interface: lab.probeIf, Filter: FlowFilter{Remote: lab.target4, LocalPorts: labPorts}})
		if openErr == nil {
			l.Close()
		}
		if err := unix.Capset(&hdr, &saved[0]); err != nil {
			errc <- err
			return
		}
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		runtime.UnlockOSThread()
		errc <- openErr
	}()
	err := <-errc
	if !errors.Is(err, ErrPermission) {
		t.Fatalf("open without CAP_NET_RAW: got %v, want ErrPermission", err)
	}
	if !strings.Contains(err.Error(), "synprobe needs root or CAP_NET_RAW") || !errors.Is(err, unix.EPERM) {
		t.Errorf("got %q, want the hint and EPERM", err)
	}
	t.Log(err)
}

// TestFlowFilterInKernel sends the filter table's frames out of the lab's
// veth and checks that the kernel passes exactly the frames bpf.VM passes:
// the program means the same in both.
func TestFlowFilterInKernel(t *testing.T) {
	lab := newLinkLab(t)
	for _, fam := range []filterFamily{filterV4, filterV6} {
		t.Run(fam.name, func(t *testing.T) {
			l, err := OpenPacketLink(PacketLinkConfig{NetNS: lab.probeNS, Interface: lab.probeIf,
				Filter: FlowFilter{Remote: fam.remote, LocalPorts: filterPorts}})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			// The kernel runs the filter on the frame, not on what
			// recvmsg returns: the virtio_net_hdr in front must not move
			// the offsets it reads.
			if !l.reader.vnet {
				t.Errorf("PACKET_VNET_HDR is off: the filter is not checked with the header in front")
			}
			var want []filterCase
			for _, c := range filterCases(t, fam) {
				if len(c.frame) < EthernetHeaderLen {
					continue // the kernel refuses to send less than a header
				}
				if err := l.WriteFrame(c.frame); err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				if c.pass {
					want = append(want, c)
				}
			}
			// A last frame that passes, so that reading stops after it.
			marker := tcpFrame(t, fam.local, fam.remote, filterPorts.Lo, 4242)
			if err := l.WriteFrame(marker); err != nil {
				t.Fatal(err)
			}
			want = append(want, filterCase{"marker", marker, true})
			rs := readFrames(t, l, len(want))
			for i, r := range rs {
				if string(r.c.Data) != string(want[i].frame) {
					t.Errorf("frame %d: got %s, want %q", i+1, describeRead(r), want[i].name)
				}
			}
		})
	}
}

// cmsgBytes builds one control message carrying the bytes of v.
func cmsgBytes[T any](level, typ int, v T) []byte {
	data := unsafe.Slice((*byte)(unsafe.Pointer(&v)), unsafe.Sizeof(v))
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = int32(level), int32(typ)
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

// TestPacketLinkCapture checks how recvmsg's results become a Capture,
// with control data built by hand: what the kernel reports in the cases the
// lab cannot produce at will (VLAN acceleration, no or read-time stamps,
// frames longer than the buffer).
func TestPacketLinkCapture(t *testing.T) {
	frame := tcpFrame(t, filterV4.remote, filterV4.local, 80, filterPorts.Lo)
	called := time.Unix(1700000000, 500)
	early := unix.NsecToTimespec(called.Add(-time.Microsecond).UnixNano())
	late := unix.NsecToTimespec(called.Add(time.Microsecond).UnixNano())
	stamp := func(ts unix.Timespec) []byte { return cmsgBytes(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, ts) }
	aux := func(a unix.TpacketAuxdata) []byte { return cmsgBytes(unix.SOL_PACKET, unix.PACKET_AUXDATA, a) }
	cat := slices.Concat[[]byte]
	for _, c := range []struct {
		name     string
		oob      []byte
		pkttype  uint8
		n        int // as recvmsg returns it with MSG_TRUNC
		bufLen   int
		outgoing bool
		partial  bool
		time     time.Time
		untimed  uint64
		vlan     uint16
		wantLen  int
		wantTPID uint16
	}{
		{name: "outgoing, stamped, partial checksum", oob: cat(stamp(early), aux(unix.TpacketAuxdata{Status: unix.TP_STATUS_CSUMNOTREADY})),
			pkttype: unix.PACKET_OUTGOING, outgoing: true, partial: true, time: time.Unix(0, unix.TimespecToNsec(early))},
		{name: "arriving, stamped", oob: cat(aux(unix.TpacketAuxdata{Status: unix.TP_STATUS_CSUM_VALID}), stamp(early)),
			pkttype: unix.PACKET_HOST, time: time.Unix(0, unix.TimespecToNsec(early))},
		{name: "stamped by the read", oob: stamp(late), pkttype: unix.PACKET_HOST,
			time: time.Unix(0, unix.TimespecToNsec(late)), untimed: 1},
		{name: "no stamp", oob: nil, pkttype: unix.PACKET_HOST, time: called, untimed: 1},
		{name: "vlan 802.1Q", oob: cat(stamp(early), aux(unix.TpacketAuxdata{Status: unix.TP_STATUS_VLAN_VALID, Vlan_tci: 0x2007})),
			pkttype: unix.PACKET_HOST, time: time.Unix(0, unix.TimespecToNsec(early)), vlan: 7, wantLen: len(frame) + 4, wantTPID: 0x8100},
		{name: "vlan 802.1ad", oob: cat(stamp(early), aux(unix.TpacketAuxdata{Status: unix.TP_STATUS_VLAN_VALID | unix.TP_STATUS_VLAN_TPID_VALID, Vlan_tci: 0x0123, Vlan_tpid: 0x88a8})),
			pkttype: unix.PACKET_HOST, time: time.Unix(0, unix.TimespecToNsec(early)), vlan: 0x123, wantLen: len(frame) + 4, wantTPID: 0x88a8},
		{name: "longer than the buffer", oob: stamp(early), pkttype: unix.PACKET_HOST, n: 9000, bufLen: 40,
			time: time.Unix(0, unix.TimespecToNsec(early)), wantLen: 40},
	} {
		t.Run(c.name, func(t *testing.T) {
			bufLen := c.bufLen
			if bufLen == 0 {
				bufLen = snapLen
			}
			l := &PacketLink{}
			l.reader.init()
			l.reader.buf = l.reader.buf[:bufLen]
			copy(l.reader.buf, frame)
			oobn := copy(l.reader.oob, c.oob)
			n := c.n
			if n == 0 {
				n = len(frame)
			}
			got := l.capture(n, oobn, c.pkttype, called)
			if got.Outgoing != c.outgoing || got.ChecksumPartial != c.partial || !got.Time.Equal(c.time) {
				t.Errorf("got outgoing %v, partial %v, time %v; want %v, %v, %v", got.Outgoing, got.ChecksumPartial, got.Time, c.outgoing, c.partial, c.time)
			}
			if u := l.untimed.Load(); u != c.untimed {
				t.Errorf("untimed got %d, want %d", u, c.untimed)
			}
			wantLen := c.wantLen
			if wantLen == 0 {
				wantLen = len(frame)
			}
			if len(got.Data) != wantLen {
				t.Fatalf("data: got %d bytes, want %d", len(got.Data), wantLen)
			}
			if c.vlan == 0 {
				if string(got.Data) != string(frame[:wantLen]) {
					t.Errorf("data changed")
				}
				return
			}
			var f Frame
			if err := f.Decode(got.Data); err != nil {
				t.Fatal(err)
			}
			if tpid := EtherType(got.Data[12])<<8 | EtherType(got.Data[13]); uint16(tpid) != c.wantTPID {
				t.Errorf("tag protocol got %v, want 0x%04x", tpid, c.wantTPID)
			}
			if !f.Ethernet.Tagged || f.Ethernet.VLAN != c.vlan || f.Src() != netip.AddrPortFrom(filterV4.remote, 80) || f.Checksum != ChecksumValid {
				t.Errorf("decoded %v (tagged %v, vlan %d, checksum %v), want VLAN %d and the TCP segment intact", &f, f.Ethernet.Tagged, f.Ethernet.VLAN, f.Checksum, c.vlan)
			}
		})
	}
}

// BenchmarkPacketLinkWrite measures the send path: frames written per
// second, while a reader drains the copies the link shows of them.
func BenchmarkPacketLinkWrite(b *testing.B) {
	lab := newLinkLab(b)
	l := lab.open(b, false, labPorts, 0)
	frame := lab.otherHostSegment(b, false, labPorts.Lo)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if _, err := l.ReadFrame(); err != nil {
				return
			}
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := l.WriteFrame(frame); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	l.Close()
	wg.Wait()
}

// BenchmarkPacketLinkRead measures the receive path: frames are queued in
// batches with the timer stopped (the copies of frames the link sent), then
// read with it running. A drop would make the numbers meaningless.
func BenchmarkPacketLinkRead(b *testing.B) {
	lab := newLinkLab(b)
	l := lab.open(b, false, labPorts, 0)
	frame := lab.otherHostSegment(b, false, labPorts.Lo)
	const batch = 1000
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(batch, b.N-done)
		b.StopTimer()
		for i := 0; i < n; i++ {
			if err := l.WriteFrame(frame); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		for i := 0; i < n; i++ {
			if _, err := l.ReadFrame(); err != nil {
				b.Fatal(err)
			}
		}
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	if s, err := l.Stats(); err != nil || s.Drops != 0 {
		b.Fatalf("stats %+v, %v: want no drops", s, err)
	}
}

// TestPacketLinkCaptureVnetHdr checks how the virtio_net_hdr in front of a
// frame (PACKET_VNET_HDR) becomes a Capture's GSO fields and checksum state.
func TestPacketLinkCaptureVnetHdr(t *testing.T) {
	frame := tcpFrame(t, filterV4.remote, filterV4.local, 80, filterPorts.Lo)
	hdr := func(flags, gsoType uint8, gsoSize uint16) [vnetHdrLen]byte {
		var h [vnetHdrLen]byte
		h[0], h[1] = flags, gsoType
		binary.NativeEndian.PutUint16(h[2:], 54) // hdr_len: a hint, unused
		binary.NativeEndian.PutUint16(h[4:], gsoSize)
		binary.NativeEndian.PutUint16(h[6:], 34) // csum_start
		binary.NativeEndian.PutUint16(h[8:], 16) // csum_offset
		return h
	}
	for _, c := range []struct {
		name    string
		hdr     [vnetHdrLen]byte
		size    uint16
		gso     GSOType
		partial bool
	}{
		{"plain frame", hdr(0, unix.VIRTIO_NET_HDR_GSO_NONE, 0), 0, GSONone, false},
		{"data valid", hdr(unix.VIRTIO_NET_HDR_F_DATA_VALID, unix.VIRTIO_NET_HDR_GSO_NONE, 0), 0, GSONone, false},
		{"partial checksum", hdr(unix.VIRTIO_NET_HDR_F_NEEDS_CSUM, unix.VIRTIO_NET_HDR_GSO_NONE, 0), 0, GSONone, true},
		{"tcpv4 super-frame", hdr(unix.VIRTIO_NET_HDR_F_NEEDS_CSUM, unix.VIRTIO_NET_HDR_GSO_TCPV4, 1448), 1448, GSOTCPv4, true},
		{"tcpv6 super-frame with ECN", hdr(unix.VIRTIO_NET_HDR_F_NEEDS_CSUM, unix.VIRTIO_NET_HDR_GSO_TCPV6|unix.VIRTIO_NET_HDR_GSO_ECN, 1428), 1428, GSOTCPv6 | GSOECN, true},
	} {
		l := &PacketLink{}
		l.reader.init()
		l.reader.useVnetHdr()
		l.reader.vhdr = c.hdr
		copy(l.reader.buf, frame)
		got := l.capture(len(frame), 0, unix.PACKET_HOST, time.Now())
		if got.GSOSize != c.size || got.GSOType != c.gso || got.ChecksumPartial != c.partial {
			t.Errorf("%s: got gso %d %v, partial %v; want %d %v, %v", c.name, got.GSOSize, got.GSOType, got.ChecksumPartial, c.size, c.gso, c.partial)
		}
		if string(got.Data) != string(frame) {
			t.Errorf("%s: data changed", c.name)
		}
	}
}

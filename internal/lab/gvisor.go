package lab

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"synprobe/probe"
)

const gvisorNIC tcpip.NICID = 1

// The gVisor lab's TCP settings. They follow the defaults of a current
// Linux (6.18) where gVisor has the same knob, so that the two labs differ
// only where the stacks really differ:
//   - SACK on (net.ipv4.tcp_sack=1);
//   - receive and send buffer ranges as the Linux lab sets them (those of
//     packetdrill's defaults.sh), with receive-buffer moderation
//     (tcp_moderate_rcvbuf=1); the maximum receive buffer of 15 MiB gives
//     window scale 8, as on the Linux lab;
//   - CUBIC congestion control, Linux's built-in default (gVisor's own is
//     Reno);
//   - Nagle off (gVisor's default, and what Go sets on the Linux lab's
//     sockets).
//
// Timestamps and window scaling have no switch in gVisor: they are used
// whenever the peer's SYN offers them, as on Linux.
var (
	gvisorReceiveBuffer = tcpip.TCPReceiveBufferSizeRangeOption{Min: 4096, Default: 540000, Max: 15 << 20}
	gvisorSendBuffer    = tcpip.TCPSendBufferSizeRangeOption{Min: 4096, Default: 256 << 10, Max: 4 << 20}
)

// outboundQueue is how many frames the stack may have in flight to the
// link; the queue is drained as each frame is written, so it only needs to
// absorb concurrent writers.
const outboundQueue = 1024

// Tamper turns a gVisor lab into a deliberately faulty responder: a real
// stack whose frames are rewritten on the way, to prove that a check fails
// on the fault it exists for. Each function gets a copy of a frame and
// returns the frames to pass on instead (none drops it); nil passes all.
type Tamper struct {
	// ToProbe rewrites what the stack sends to synprobe.
	ToProbe func(frame []byte) [][]byte
	// ToTarget rewrites what synprobe sends to the stack.
	ToTarget func(frame []byte) [][]byte
	// Answer gets each frame synprobe sends (before ToTarget) and returns
	// frames to hand synprobe as if the stack had sent them: a responder
	// that answers what the stack would not.
	Answer func(frame []byte) [][]byte
}

// StartFaulty starts a gVisor lab whose frames pass through t.
func StartFaulty(ctx context.Context, t Tamper) (*Target, error) {
	return startGVisor(ctx, t)
}

func startGVisor(ctx context.Context, tamper Tamper) (*Target, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start gvisor lab: %w", err)
	}
	s := stack.New(stack.Options{
		NetworkProtocols: []stack.NetworkProtocolFactory{
			ipv4.NewProtocol, // IGMP off
			// No DAD, no router solicitations, no MLD, no link-local
			// address: the stack says nothing until spoken to.
			ipv6.NewProtocolWithOptions(ipv6.Options{
				DADConfigs: stack.DADConfigurations{DupAddrDetectTransmits: 0},
				NDPConfigs: ipv6.NDPConfigurations{MaxRtrSolicitations: 0},
				MLD:        ipv6.MLDOptions{Enabled: false},
			}),
			arp.NewProtocol,
		},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
	})
	l := &gvisorLab{stack: s, server: newServer(), tamper: tamper}
	if err := l.configure(); err != nil {
		l.teardown()
		return nil, fmt.Errorf("start gvisor lab: %w", err)
	}
	probeSide := ProbeSide{
		Link:  l.link,
		Path4: gvisorPath(ProbeAddr4, TargetAddr4),
		Path6: gvisorPath(ProbeAddr6, TargetAddr6),
	}
	return newTarget(StackGVisor, probeSide, l, l.teardown), nil
}

func gvisorPath(source, target netip.Addr) probe.Path {
	return probe.Path{
		Interface:  "memory",
		MTU:        MTU,
		LocalMAC:   ProbeMAC,
		Source:     source,
		NextHop:    target,
		NextHopMAC: TargetMAC,
	}
}

// gvisorLab is one gVisor stack bridged to a MemoryLink.
type gvisorLab struct {
	stack  *stack.Stack
	server *server
	tamper Tamper
	nic    *channel.Endpoint
	link   *probe.MemoryLink

	// inbound is held for reading while a frame is handed to the stack,
	// and for writing while the stack is torn down: no frame enters a
	// stack that is closing.
	inbound       sync.RWMutex
	inboundClosed bool

	// outbound serializes draining the NIC's queue so that frames leave in
	// the order the stack queued them.
	outbound sync.Mutex
}

func (l *gvisorLab) configure() error {
	s := l.stack
	tcpOptions := []tcpip.SettableTransportProtocolOption{
		ptr(tcpip.TCPSACKEnabled(true)),
		ptr(tcpip.TCPModerateReceiveBufferOption(true)),
		ptr(tcpip.TCPDelayEnabled(false)),
		ptr(tcpip.CongestionControlOption("cubic")),
		&gvisorReceiveBuffer,
		&gvisorSendBuffer,
	}
	for _, opt := range tcpOptions {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, opt); err != nil {
			return fmt.Errorf("set tcp option %T: %s", opt, err)
		}
	}

	// The NIC: an Ethernet header over a channel endpoint. The channel
	// does no checksum offload, so the stack computes every checksum it
	// sends and verifies every checksum it receives.
	l.nic = channel.New(outboundQueue, MTU+header.EthernetMinimumSize, tcpip.LinkAddress(TargetMAC[:]))
	l.nic.AddNotify(l)
	l.link = probe.NewMemoryLink(ProbeMAC, MTU, l.deliver)
	if err := s.CreateNIC(gvisorNIC, ethernet.New(l.nic)); err != nil {
		return fmt.Errorf("create nic: %s", err)
	}

	for _, a := range []struct {
		proto         tcpip.NetworkProtocolNumber
		target, probe netip.Addr
		prefix        netip.Prefix
	}{
		{ipv4.ProtocolNumber, TargetAddr4, ProbeAddr4, Prefix4},
		{ipv6.ProtocolNumber, TargetAddr6, ProbeAddr6, Prefix6},
	} {
		addr := tcpip.ProtocolAddress{
			Protocol: a.proto,
			AddressWithPrefix: tcpip.AddressWithPrefix{
				Address:   tcpip.AddrFromSlice(a.target.AsSlice()),
				PrefixLen: a.prefix.Bits(),
			},
		}
		if err := s.AddProtocolAddress(gvisorNIC, addr, stack.AddressProperties{}); err != nil {
			return fmt.Errorf("add address %s: %s", a.target, err)
		}
		// The probe side has no ARP or NDP responder: a static
		// neighbour entry points the stack at its MAC.
		if err := s.AddStaticNeighbor(gvisorNIC, a.proto, tcpip.AddrFromSlice(a.probe.AsSlice()), tcpip.LinkAddress(ProbeMAC[:])); err != nil {
			return fmt.Errorf("add neighbour %s: %s", a.probe, err)
		}
	}
	s.SetRouteTable([]tcpip.Route{
		{Destination: subnet(Prefix4), NIC: gvisorNIC},
		{Destination: subnet(Prefix6), NIC: gvisorNIC},
	})

	for _, a := range []struct {
		proto tcpip.NetworkProtocolNumber
		addr  netip.Addr
	}{
		{ipv4.ProtocolNumber, TargetAddr4},
		{ipv6.ProtocolNumber, TargetAddr6},
	} {
		full := tcpip.FullAddress{NIC: gvisorNIC, Addr: tcpip.AddrFromSlice(a.addr.AsSlice()), Port: OpenPort}
		ln, err := gonet.ListenTCP(s, full, a.proto)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", netip.AddrPortFrom(a.addr, OpenPort), err)
		}
		l.server.serve(ln)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

func subnet(p netip.Prefix) tcpip.Subnet {
	mask := make([]byte, p.Addr().BitLen()/8)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	sn, err := tcpip.NewSubnet(tcpip.AddrFromSlice(p.Addr().AsSlice()), tcpip.MaskFromBytes(mask))
	if err != nil {
		panic(fmt.Sprintf("subnet %s: %v", p, err)) // p is one of the lab's constants
	}
	return sn
}

// deliver hands a frame synprobe wrote to the stack, as if it arrived on
// the NIC. The stack checks it as a kernel would: frames for another MAC,
// with bad checksums or too short are dropped.
func (l *gvisorLab) deliver(frame []byte) {
	l.inbound.RLock()
	defer l.inbound.RUnlock()
	if l.inboundClosed {
		return
	}
	if l.tamper.Answer != nil {
		for _, f := range l.tamper.Answer(append([]byte(nil), frame...)) {
			l.link.Inject(f)
		}
	}
	frames := [][]byte{frame}
	if l.tamper.ToTarget != nil {
		frames = l.tamper.ToTarget(append([]byte(nil), frame...))
	}
	for _, f := range frames {
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(f)})
		// The protocol is ignored: the Ethernet endpoint reads the EtherType.
		l.nic.InjectInbound(0, pkt)
		pkt.DecRef()
	}
}

// WriteNotify implements channel.Notification: the stack queued a frame;
// pass everything queued to synprobe.
func (l *gvisorLab) WriteNotify() {
	l.outbound.Lock()
	defer l.outbound.Unlock()
	for pkt := l.nic.Read(); pkt != nil; pkt = l.nic.Read() {
		v := pkt.ToView()
		pkt.DecRef()
		if l.tamper.ToProbe == nil {
			l.link.Inject(v.AsSlice()) // Inject copies
		} else {
			for _, f := range l.tamper.ToProbe(append([]byte(nil), v.AsSlice()...)) {
				l.link.Inject(f)
			}
		}
		v.Release()
	}
}

// teardown stops the application, the stack and the link. It leaves no
// goroutine behind.
func (l *gvisorLab) teardown() error {
	l.server.close()
	l.inbound.Lock()
	l.inboundClosed = true
	l.inbound.Unlock()
	// Close aborts what is left (connections in TIME-WAIT, half-open
	// handshakes); Wait stops the TCP dispatchers and removes the NIC,
	// which closes the channel endpoint.
	l.stack.Close()
	l.stack.Wait()
	if l.nic != nil {
		l.nic.Close()
	}
	if l.link != nil {
		l.link.Close()
	}
	return nil
}

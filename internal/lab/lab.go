package lab

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	"synprobe/probe"
)

// Stack names the TCP stack a lab runs.
type Stack string

const (
	// StackAuto picks StackLinux when this process may create namespaces
	// and veths, StackGVisor otherwise.
	StackAuto Stack = "auto"
	// StackLinux is the Linux kernel in a network namespace.
	StackLinux Stack = "linux"
	// StackGVisor is the gVisor netstack in this process.
	StackGVisor Stack = "gvisor"
)

// ParseStack parses the value of synprobe's --stack flag.
func ParseStack(s string) (Stack, error) {
	switch st := Stack(s); st {
	case StackAuto, StackLinux, StackGVisor:
		return st, nil
	}
	return "", fmt.Errorf("unknown lab stack %q: want auto, linux or gvisor", s)
}

// The lab's addresses and ports. The probe side is synprobe's end of the
// link, the target side is the stack under test.
var (
	ProbeAddr4  = netip.MustParseAddr("192.0.2.1")
	TargetAddr4 = netip.MustParseAddr("192.0.2.2")
	ProbeAddr6  = netip.MustParseAddr("2001:db8::1")
	TargetAddr6 = netip.MustParseAddr("2001:db8::2")

	// Prefix4 and Prefix6 are the on-link subnets that hold both sides.
	Prefix4 = netip.PrefixFrom(ProbeAddr4, 24).Masked()
	Prefix6 = netip.PrefixFrom(ProbeAddr6, 64).Masked()

	// ProbeMAC and TargetMAC are fixed, locally administered addresses
	// ("SYN" in the middle), so that captures of two runs compare equal.
	ProbeMAC  = probe.MAC{0x02, 0x53, 0x59, 0x4e, 0x00, 0x01}
	TargetMAC = probe.MAC{0x02, 0x53, 0x59, 0x4e, 0x00, 0x02}
)

const (
	// OpenPort has a listening application on both addresses.
	OpenPort = 80
	// ClosedPort has no listener: a SYN to it gets a RST.
	ClosedPort = 81
	// MTU is the largest IP packet the lab link carries.
	MTU = 1500
)

// Target is a running lab.
type Target struct {
	Stack Stack
	// Open is an IPv4 address:port with a listening application.
	Open netip.AddrPort
	// Closed is the same address with a port that has no listener.
	Closed netip.AddrPort
	// Open6 and Closed6 are the same over IPv6.
	Open6, Closed6 netip.AddrPort
	// Probe says how synprobe reaches the target.
	Probe ProbeSide
	// Notes say how the target differs from a stock one (Options.Sysctls):
	// what was set, and what was left out and why.
	Notes []string

	targetNS int // StackLinux: the target namespace, for tests that watch it

	closeOnce sync.Once
	closeErr  error
	teardown  func() error
	impl      any // *kernelLab or *gvisorLab, for tests
}

// ProbeSide says how synprobe reaches the target.
//
// StackLinux: open sockets (packet, netlink, nftables) inside
// internal/netns.Do(NetNS, ...); they stay in the namespace and can then be
// used from any goroutine, with no thread locking. The probe namespace has
// a kernel of its own: it answers a SYN-ACK to a raw SYN with a RST unless
// synprobe's RST guard is installed there. Frames captured on the veth may
// carry partial TCP checksums (veth offload: seen on SYN-ACKs and IPv6
// RSTs). The target sends a few MLDv2 reports (to ff02::16) in the first
// seconds; nothing else arrives unasked.
//
// StackGVisor: WriteFrame hands the frame to the stack before it returns,
// and a reply may already be queued by then; ReadFrame also returns
// synprobe's own frames (Outgoing). Frames from the stack carry complete,
// valid checksums and are not padded to 60 bytes; frames to it must carry
// valid checksums and be addressed to TargetMAC (or broadcast), or the stack
// drops them silently, like a kernel. Only ProbeAddr4 and ProbeAddr6 have
// static neighbour entries: from any other source address the stack first
// sends ARP or NDP requests. It answers ARP and NDP for its own addresses.
type ProbeSide struct {
	// NetNS is, for StackLinux, the descriptor of the probe-side network
	// namespace; 0 for StackGVisor. The lab owns it: Close closes it, and
	// the namespace goes once synprobe's sockets in it are closed too.
	NetNS int
	// Interface is, for StackLinux, the probe-side veth's name.
	Interface string
	// Link is, for StackGVisor, the in-memory link into the stack; nil for
	// StackLinux. Close closes it.
	Link probe.Link
	// Path4 and Path6 are, for StackGVisor, the static paths to the target
	// (there is no kernel to resolve them; IfIndex is 0); zero for
	// StackLinux, where synprobe resolves them itself inside NetNS.
	Path4, Path6 probe.Path
}

// Start makes a lab running stack, as a stock kernel has it. ctx bounds the
// setup only: the lab lives until Close.
func Start(ctx context.Context, stack Stack) (*Target, error) {
	return StartWith(ctx, stack, Options{})
}

// StartWith makes a lab running stack, changed by opts.
func StartWith(ctx context.Context, stack Stack, opts Options) (*Target, error) {
	if stack == StackAuto {
		stack = StackGVisor
		if ok, _ := LinuxAvailable(); ok {
			stack = StackLinux
		}
	}
	switch stack {
	case StackLinux:
		return startLinux(ctx, opts)
	case StackGVisor:
		t, err := startGVisor(ctx, Tamper{})
		if err == nil && len(opts.Sysctls) > 0 {
			t.Notes = append(t.Notes, fmt.Sprintf("%d sysctls not set: the gvisor lab has none and keeps its own settings", len(opts.Sysctls)))
		}
		return t, err
	}
	return nil, fmt.Errorf("start lab: unknown stack %q", stack)
}

// TargetNetNS returns, for StackLinux, the descriptor of the target's
// namespace (0 for StackGVisor): tests capture there what reached the
// target. The lab owns it.
func (t *Target) TargetNetNS() int { return t.targetNS }

// FlushPathMTU makes the target forget the path MTUs it learned from ICMP
// "fragmentation needed" and "packet too big" messages, which Linux keeps
// per destination address (route exceptions) for net.ipv4.route.mtu_expires
// (600 s) whatever the port: what one script taught the target would
// otherwise change what later scripts see. gVisor keeps a path MTU per
// connection only, so there is nothing to forget.
func (t *Target) FlushPathMTU() error {
	if f, ok := t.impl.(interface{ flushPathMTU() error }); ok {
		return f.flushPathMTU()
	}
	return nil
}

// Close tears the lab down. It is idempotent and safe to call from any
// goroutine, for example one handling SIGINT while a command still runs:
// concurrent callers wait for the first one to finish and get its error.
func (t *Target) Close() error {
	t.closeOnce.Do(func() {
		if t.teardown != nil {
			t.closeErr = t.teardown()
		}
	})
	return t.closeErr
}

// newTarget fills in the addresses that are the same for every stack.
func newTarget(stack Stack, probeSide ProbeSide, impl any, teardown func() error) *Target {
	return &Target{
		Stack:    stack,
		Open:     netip.AddrPortFrom(TargetAddr4, OpenPort),
		Closed:   netip.AddrPortFrom(TargetAddr4, ClosedPort),
		Open6:    netip.AddrPortFrom(TargetAddr6, OpenPort),
		Closed6:  netip.AddrPortFrom(TargetAddr6, ClosedPort),
		Probe:    probeSide,
		teardown: teardown,
		impl:     impl,
	}
}

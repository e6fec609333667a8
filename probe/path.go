package probe

import (
	"errors"
	"net/netip"
	"time"
)

// Path is how frames reach a target: out of which interface, from which
// source address, and to which next-hop MAC address.
type Path struct {
	Interface string
	IfIndex   int
	// MTU is the interface's MTU: the largest IP packet it carries (the
	// route's mtu when that is lower, as after a learned path MTU).
	MTU      int
	LocalMAC MAC
	// Source is the address synprobe sends from.
	Source netip.Addr
	// NextHop is the gateway, or the target itself when it is on-link.
	// Neither Source nor NextHop carries a zone: Interface names the link.
	NextHop    netip.Addr
	NextHopMAC MAC
}

// PathOptions narrow the choice ResolvePath makes; zero values mean "let the
// routing table decide".
type PathOptions struct {
	// Interface forces this egress interface (--interface).
	Interface string
	// Source forces this source address (--source); it must be an address
	// of this host.
	Source netip.Addr
	// NetNS is a descriptor of the network namespace to resolve in (see
	// internal/netns); 0 is the namespace synprobe runs in.
	NetNS int
	// Timeout bounds neighbour resolution; 0 means DefaultNeighborTimeout.
	Timeout time.Duration

	// neighbors, when set (Dial with a Shared), resolves each next hop
	// once for all the targets behind it.
	neighbors *neighborCache
}

// DefaultNeighborTimeout is how long ResolvePath waits for the next hop to
// answer ARP or Neighbor Discovery: three of the kernel's one-second
// retransmissions.
const DefaultNeighborTimeout = 3 * time.Second

// Errors from ResolvePath. Each means that the local host's configuration,
// not the target, prevented the run; they come wrapped with the target and
// a hint, so test them with errors.Is.
var (
	// ErrNoRoute: the routing table has no usable route to the target.
	ErrNoRoute = errors.New("no route to host")
	// ErrNoInterface: the interface named by --interface (or by an IPv6
	// zone) does not exist.
	ErrNoInterface = errors.New("no such interface")
	// ErrSourceNotLocal: the address given with --source is not an address
	// of this host, so replies could never come back to it.
	ErrSourceNotLocal = errors.New("source address is not an address of this host")
	// ErrNeighborUnresolved: the next hop did not answer ARP or Neighbor
	// Discovery in time.
	ErrNeighborUnresolved = errors.New("next hop did not answer address resolution")
	// ErrLocalTarget: the target is an address of this host or loopback;
	// its frames would never leave through an Ethernet interface.
	ErrLocalTarget = errors.New("target is an address of this host; synprobe needs a remote target; try `synprobe lab`")
	// ErrUnsupportedLink: the egress interface does not carry Ethernet
	// frames (loopback, tun, WireGuard, other tunnels).
	ErrUnsupportedLink = errors.New("egress interface does not use Ethernet framing")
)

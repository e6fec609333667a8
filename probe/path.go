package probe

import "net/netip"

// Path is how frames reach a target: out of which interface, from which
// source address, and to which next-hop MAC address.
type Path struct {
	Interface string
	IfIndex   int
	// MTU is the interface's MTU: the largest IP packet it carries.
	MTU      int
	LocalMAC MAC
	// Source is the address synprobe sends from.
	Source netip.Addr
	// NextHop is the gateway, or the target itself when it is on-link.
	NextHop    netip.Addr
	NextHopMAC MAC
}

package scalelab

import "net/netip"

// Addresses of the link between the namespaces.
var (
	ProbeAddr  = netip.MustParseAddr("10.199.0.1")
	TargetAddr = netip.MustParseAddr("10.199.0.2")
)

// Interface names, one in each namespace.
const (
	ProbeIf  = "scl0"
	TargetIf = "scl1"
)

// NamePrefix starts the names of the lab's namespaces and nftables table:
// scalelab-PID-N-probe and scalelab-PID-N-target (the Nth lab of process
// PID).
const NamePrefix = "scalelab-"

// Lab is a running scale lab.
type Lab struct {
	Plan Plan
	// ProbeNS and TargetNS are the namespaces' names (ip netns).
	ProbeNS, TargetNS string
	// GatewayMAC is the target side's MAC address: the next hop of every
	// lab address, which masscan needs as --router-mac.
	GatewayMAC string
	// ProbeMAC is the probe side's.
	ProbeMAC string

	sys labSys
}

// Package veth makes two anonymous network namespaces joined by a veth
// pair, addressed and ready for traffic: the Linux lab's link and the test
// links of the packages below it.
//
// New returns only once both ends can carry traffic. A fresh veth is not
// ready when it is up: until the kernel's link watch has run (up to a second
// after the carrier comes on) it has no queueing discipline and drops every
// frame silently, and until IPv6 address configuration has run on it its
// addresses, even those added without duplicate address detection, are
// tentative and have no local route, so the kernel ignores neighbour
// solicitations for them.
//
// The namespaces are anonymous (internal/netns.New) unless the caller
// gives its own: they die with their last descriptor or socket, and the
// veth pair with them, so nothing outlives the process, even one that
// crashes.
package veth

import (
	"net"
	"net/netip"
)

// End describes one end of the pair.
type End struct {
	// Name is the veth's interface name. Each end has a namespace of its
	// own, so the names cannot clash with anything on the host.
	Name string
	// MAC is the veth's hardware address; nil lets the kernel pick one.
	MAC net.HardwareAddr
	// Addrs are the end's addresses with the length of their on-link
	// prefix, such as 192.0.2.1/24 and 2001:db8::1/64. IPv6 ones skip
	// duplicate address detection: they are usable at once.
	Addrs []netip.Prefix
	// NS, when not 0, is an existing namespace (a descriptor) to put the
	// end in, such as a named one; 0 makes an anonymous one. The pair
	// keeps a duplicate of it, so the caller still owns and closes NS.
	NS int
}

// Config describes a pair.
type Config struct {
	// Probe is the end where synprobe (or a test's client) runs; Target is
	// the end whose kernel answers.
	Probe, Target End
	// MTU is both ends' MTU; 0 keeps the kernel's default (1500).
	MTU int
	// NoAutoLinkLocal stops the kernel from making IPv6 link-local
	// addresses of its own: the ends have only the addresses in Addrs, so
	// that source address selection has no other choice.
	NoAutoLinkLocal bool
}

// Side is one end of a pair that New made.
type Side struct {
	// NS is the descriptor of the end's namespace. The pair owns it.
	NS int
	// Name, Index and MAC are the veth's, in NS.
	Name  string
	Index int
	MAC   net.HardwareAddr
}

// Pair is two namespaces joined by a veth pair.
type Pair struct {
	Probe, Target Side
}

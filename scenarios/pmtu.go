package scenarios

import (
	"fmt"
	"net/netip"

	"synprobe/conformance/script"
)

// pathMTUEvent is a script's first ICMP line that lowers the target's path
// MTU: IPv4 "fragmentation needed" (type 3 code 4) or IPv6 "packet too
// big" (type 2).
type pathMTUEvent struct {
	file string
	line int
	mtu  uint32
	what string
}

// lowersPathMTU finds the ICMP line of sc that teaches the target a path
// MTU, for a target of the given family. Linux keeps what it learns per
// destination address (a route exception) for net.ipv4.route.mtu_expires
// (600 s), whatever the port, so every later connection from synprobe's
// address sees it: such scripts must run when no other does.
func lowersPathMTU(sc Scenario, ipv6 bool) (pathMTUEvent, bool) {
	if sc.Script == nil {
		return pathMTUEvent{}, false
	}
	for _, ev := range sc.Script.Events {
		p := ev.Packet
		if p == nil || p.ICMP == nil || p.Dir != script.Inbound {
			continue
		}
		typ, code, err := script.ICMPTypeCode(ipv6, p.ICMP.Type, p.ICMP.Code)
		if err != nil {
			continue // the run says what is wrong with the line
		}
		switch {
		case !ipv6 && typ == 3 && code == 4:
			return pathMTUEvent{sc.File, ev.Line, p.ICMP.MTU.Value, "fragmentation needed"}, true
		case ipv6 && typ == 2:
			return pathMTUEvent{sc.File, ev.Line, p.ICMP.MTU.Value, "packet too big"}, true
		}
	}
	return pathMTUEvent{}, false
}

// keptNote says, for a target whose learned path MTU synprobe cannot make
// it forget, what it may keep after ev.
func (ev pathMTUEvent) keptNote(source netip.Addr) string {
	return fmt.Sprintf("%s:%d sent an ICMP %q with MTU %d: the target may keep that path MTU towards %v for its mtu_expires (600 s on Linux), whatever the port; scripts like it ran after all others, one at a time",
		ev.file, ev.line, ev.what, ev.mtu, source)
}

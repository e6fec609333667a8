package reflector

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/net/bpf"

	"synprobe/internal/bpfasm"
	"synprobe/probe"
)

// snapLen is what the filter keeps of a frame: all of it, since the
// payload's digest is recorded (the largest GSO frame is below it).
const snapLen = 262144

// portFilter is the capture filter: untagged Ethernet frames carrying TCP
// to addr:port (arriving) or from addr:port (leaving), from or to any
// peer. IPv4 fragments other than the first (no ports) and IPv6 packets
// with extension headers are rejected, as probe.FlowFilter does.
func portFilter(ap netip.AddrPort) ([]bpf.Instruction, error) {
	addr := ap.Addr()
	if !addr.IsValid() || addr.Is4In6() || ap.Port() == 0 {
		return nil, fmt.Errorf("capture filter: %v: want an IPv4 or IPv6 address and a port", ap)
	}
	port := uint32(ap.Port())
	a := bpfasm.New()
	if addr.Is4() {
		const ip = probe.EthernetHeaderLen
		want := binary.BigEndian.Uint32(addr.AsSlice())
		a.Emit(bpf.LoadAbsolute{Off: 12, Size: 2})
		a.JumpIf(bpf.JumpEqual, uint32(probe.EtherTypeIPv4), "", "reject")
		a.Emit(bpf.LoadAbsolute{Off: ip, Size: 1})
		a.JumpIf(bpf.JumpLessThan, 0x45, "reject", "")
		a.JumpIf(bpf.JumpGreaterThan, 0x4f, "reject", "")
		a.Emit(bpf.LoadAbsolute{Off: ip + 9, Size: 1})
		a.JumpIf(bpf.JumpEqual, uint32(probe.ProtocolTCP), "", "reject")
		a.Emit(bpf.LoadAbsolute{Off: ip + 6, Size: 2})
		a.JumpIf(bpf.JumpBitsSet, 0x1fff, "reject", "")
		a.Emit(bpf.LoadMemShift{Off: ip}) // X = IP header length
		a.Emit(bpf.LoadAbsolute{Off: ip + 16, Size: 4})
		a.JumpIf(bpf.JumpEqual, want, "", "leaving")
		a.Emit(bpf.LoadIndirect{Off: ip + 2, Size: 2}) // destination port
		// Not the port: it may still be a segment from the port to the
		// address itself.
		a.JumpIf(bpf.JumpEqual, port, "accept", "leaving")
		a.Label("leaving")
		a.Emit(bpf.LoadAbsolute{Off: ip + 12, Size: 4})
		a.JumpIf(bpf.JumpEqual, want, "", "reject")
		a.Emit(bpf.LoadIndirect{Off: ip, Size: 2}) // source port
		a.JumpIf(bpf.JumpEqual, port, "accept", "reject")
	} else {
		const ip = probe.EthernetHeaderLen
		const tcp = ip + probe.IPv6HeaderLen
		a.Emit(bpf.LoadAbsolute{Off: 12, Size: 2})
		a.JumpIf(bpf.JumpEqual, uint32(probe.EtherTypeIPv6), "", "reject")
		a.Emit(bpf.LoadAbsolute{Off: ip + 6, Size: 1})
		a.JumpIf(bpf.JumpEqual, uint32(probe.ProtocolTCP), "", "reject")
		addr6(a, addr, ip+24, "leaving")
		a.Emit(bpf.LoadAbsolute{Off: tcp + 2, Size: 2})
		a.JumpIf(bpf.JumpEqual, port, "accept", "leaving")
		a.Label("leaving")
		addr6(a, addr, ip+8, "reject")
		a.Emit(bpf.LoadAbsolute{Off: tcp, Size: 2})
		a.JumpIf(bpf.JumpEqual, port, "accept", "reject")
	}
	a.Label("accept")
	a.Emit(bpf.RetConstant{Val: snapLen})
	a.Label("reject")
	a.Emit(bpf.RetConstant{Val: 0})
	return a.Resolve()
}

// addr6 compares the 16 bytes at off with addr, jumping to miss on a
// difference and falling through on a match.
func addr6(a *bpfasm.Program, addr netip.Addr, off uint32, miss string) {
	b := addr.As16()
	for i := uint32(0); i < 16; i += 4 {
		a.Emit(bpf.LoadAbsolute{Off: off + i, Size: 4})
		a.JumpIf(bpf.JumpEqual, binary.BigEndian.Uint32(b[i:]), "", miss)
	}
}

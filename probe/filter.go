package probe

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/net/bpf"

	"synprobe/internal/bpfasm"
)

// PortRange is an inclusive range of TCP ports.
type PortRange struct {
	Lo, Hi uint16
}

// Contains reports whether p is in r.
func (r PortRange) Contains(p uint16) bool { return r.Lo <= p && p <= r.Hi }

func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return fmt.Sprint(r.Lo)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// FlowFilter selects the frames of synprobe's probe connections to one target.
//
// Its program (for the kernel, run on every frame of the interface) passes
// untagged Ethernet frames that carry
//   - TCP between any local address and Remote where the local side's port is
//     in LocalPorts, in both directions: arriving (source Remote, destination
//     port in range) and leaving (destination Remote, source port in range);
//   - ICMP errors (types 3, 4, 11, 12) or ICMPv6 errors (types 1 to 4) from
//     any sender (routers on the path send them, not the target) whose quoted
//     packet is TCP to Remote from a port in LocalPorts.
//
// It rejects everything else, among it IPv4 fragments other than the first
// (they carry no ports), IPv6 packets with extension headers before TCP or
// ICMPv6 (following the chain is beyond what classic BPF can do without
// loops; synprobe sends none and targets answer without them), and frames
// with a VLAN tag in the frame data (bind to the VLAN interface instead).
// A frame too short for a field the program reads is rejected, as the kernel
// does.
type FlowFilter struct {
	Remote     netip.Addr // the target host
	LocalPorts PortRange  // synprobe's source ports {Lo, Hi}, inclusive
	// AnyQuotedPort also passes ICMP errors quoting TCP to Remote from a
	// source port outside LocalPorts: a box that rewrites ports without
	// translating the ICMP back (trace) makes routers beyond it quote the
	// rewritten port.
	AnyQuotedPort bool
}

func (f FlowFilter) String() string {
	s := fmt.Sprintf("tcp to %v from ports %v", f.Remote, f.LocalPorts)
	if f.AnyQuotedPort {
		s += ", icmp errors quoting any port"
	}
	return s
}

// snapLen is what the filter returns for a frame it passes: the whole frame
// (the largest GSO frame the kernel builds is below it).
const snapLen = 262144

// maxFilterLen is the kernel's limit on a classic BPF program (BPF_MAXINSNS).
const maxFilterLen = 4096

// rejectAll is a program that passes nothing.
var rejectAll = []bpf.Instruction{bpf.RetConstant{Val: 0}}

// Frame offsets the program reads (untagged Ethernet).
const (
	offEtherType = 12
	offIP        = EthernetHeaderLen // 14

	// IPv4, from the frame start.
	offV4VerIHL   = offIP     // version and IHL
	offV4Frag     = offIP + 6 // flags and fragment offset
	offV4Protocol = offIP + 9
	offV4Src      = offIP + 12
	offV4Dst      = offIP + 16

	// IPv6, from the frame start.
	offV6Next = offIP + 6
	offV6Src  = offIP + 8
	offV6Dst  = offIP + 24
	offV6L4   = offIP + IPv6HeaderLen // 54
)

// Program compiles f into a classic BPF program for a packet socket. The
// program returns the whole frame for a frame it passes and 0 otherwise.
func (f FlowFilter) Program() ([]bpf.Instruction, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	a := bpfasm.New()
	if f.Remote.Is4() {
		f.program4(a)
	} else {
		f.program6(a)
	}
	a.Label("accept")
	a.Emit(bpf.RetConstant{Val: snapLen})
	a.Label("reject")
	a.Emit(bpf.RetConstant{Val: 0})
	prog, err := a.Resolve()
	if err != nil {
		return nil, fmt.Errorf("flow filter %v: %w", f, err)
	}
	if len(prog) > maxFilterLen {
		return nil, fmt.Errorf("flow filter %v: %d instructions, the kernel takes at most %d", f, len(prog), maxFilterLen)
	}
	return prog, nil
}

func (f FlowFilter) check() error {
	if !f.Remote.IsValid() {
		return errors.New("flow filter: no remote address")
	}
	if f.Remote.Is4In6() {
		return fmt.Errorf("flow filter: remote %v is an IPv4-mapped IPv6 address; give it as IPv4", f.Remote)
	}
	if f.Remote.Zone() != "" {
		return fmt.Errorf("flow filter: remote %v: a zone cannot be matched on the wire; give the interface instead", f.Remote)
	}
	if f.LocalPorts.Lo > f.LocalPorts.Hi {
		return fmt.Errorf("flow filter: local ports %d-%d: low end above high end", f.LocalPorts.Lo, f.LocalPorts.Hi)
	}
	return nil
}

// program4 emits the IPv4 program. X holds the outer IPv4 header length from
// the TCP check on; for ICMP it becomes the outer plus the quoted header
// length, so that the quoted TCP ports sit at a constant offset from X.
func (f FlowFilter) program4(a *bpfasm.Program) {
	remote := be32(f.Remote.AsSlice())
	a.Emit(bpf.LoadAbsolute{Off: offEtherType, Size: 2})
	a.JumpIf(bpf.JumpEqual, uint32(EtherTypeIPv4), "", "reject")
	// Version 4 and a header length of at least 20 bytes.
	a.Emit(bpf.LoadAbsolute{Off: offV4VerIHL, Size: 1})
	a.JumpIf(bpf.JumpLessThan, 0x45, "reject", "")
	a.JumpIf(bpf.JumpGreaterThan, 0x4f, "reject", "")
	// A non-first fragment has no transport header.
	a.Emit(bpf.LoadAbsolute{Off: offV4Frag, Size: 2})
	a.JumpIf(bpf.JumpBitsSet, 0x1fff, "reject", "")
	a.Emit(bpf.LoadMemShift{Off: offV4VerIHL}) // X = outer header length
	a.Emit(bpf.LoadAbsolute{Off: offV4Protocol, Size: 1})
	a.JumpIf(bpf.JumpEqual, uint32(ProtocolTCP), "tcp4", "")
	a.JumpIf(bpf.JumpEqual, uint32(ProtocolICMP), "icmp4", "reject")

	a.Label("tcp4")
	a.Emit(bpf.LoadAbsolute{Off: offV4Src, Size: 4})
	a.JumpIf(bpf.JumpEqual, remote, "", "tcp4-leaving")
	a.Emit(bpf.LoadIndirect{Off: offIP + 2, Size: 2}) // destination port
	f.ports(a)
	a.Label("tcp4-leaving")
	a.Emit(bpf.LoadAbsolute{Off: offV4Dst, Size: 4})
	a.JumpIf(bpf.JumpEqual, remote, "", "reject")
	a.Emit(bpf.LoadIndirect{Off: offIP, Size: 2}) // source port
	f.ports(a)

	// ICMP: header at X+14, the quoted IPv4 header at X+22.
	const quoted = offIP + ICMPHeaderLen
	a.Label("icmp4")
	a.Emit(bpf.LoadIndirect{Off: offIP, Size: 1}) // type
	a.JumpIf(bpf.JumpEqual, uint32(ICMPv4DestUnreachable), "icmp4-error", "")
	a.JumpIf(bpf.JumpEqual, uint32(ICMPv4SourceQuench), "icmp4-error", "")
	a.JumpIf(bpf.JumpEqual, uint32(ICMPv4TimeExceeded), "icmp4-error", "")
	a.JumpIf(bpf.JumpEqual, uint32(ICMPv4ParamProblem), "icmp4-error", "reject")
	a.Label("icmp4-error")
	a.Emit(bpf.LoadIndirect{Off: quoted + 9, Size: 1})
	a.JumpIf(bpf.JumpEqual, uint32(ProtocolTCP), "", "reject")
	a.Emit(bpf.LoadIndirect{Off: quoted + 16, Size: 4})
	a.JumpIf(bpf.JumpEqual, remote, "", "reject")
	a.Emit(bpf.LoadIndirect{Off: quoted + 6, Size: 2})
	a.JumpIf(bpf.JumpBitsSet, 0x1fff, "reject", "")
	a.Emit(bpf.LoadIndirect{Off: quoted, Size: 1})
	a.JumpIf(bpf.JumpLessThan, 0x45, "reject", "")
	a.JumpIf(bpf.JumpGreaterThan, 0x4f, "reject", "")
	// X += 4 * quoted IHL. Classic BPF has no "ldx msh" relative to X, so
	// the length is computed in A (which holds the quoted first byte) and
	// added to X.
	a.Emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x0f})
	a.Emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2})
	a.Emit(bpf.ALUOpX{Op: bpf.ALUOpAdd})
	a.Emit(bpf.TAX{})
	a.Emit(bpf.LoadIndirect{Off: quoted, Size: 2}) // quoted source port
	f.quotedPort(a)
}

// program6 emits the IPv6 program: fixed offsets, since a packet with
// extension headers is rejected.
func (f FlowFilter) program6(a *bpfasm.Program) {
	a.Emit(bpf.LoadAbsolute{Off: offEtherType, Size: 2})
	a.JumpIf(bpf.JumpEqual, uint32(EtherTypeIPv6), "", "reject")
	a.Emit(bpf.LoadAbsolute{Off: offIP, Size: 1})
	a.Emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4})
	a.JumpIf(bpf.JumpEqual, 6, "", "reject")
	a.Emit(bpf.LoadAbsolute{Off: offV6Next, Size: 1})
	a.JumpIf(bpf.JumpEqual, uint32(ProtocolTCP), "tcp6", "")
	a.JumpIf(bpf.JumpEqual, uint32(ProtocolICMPv6), "icmp6", "reject")

	a.Label("tcp6")
	f.addr6(a, offV6Src, "tcp6-leaving")
	a.Emit(bpf.LoadAbsolute{Off: offV6L4 + 2, Size: 2}) // destination port
	f.ports(a)
	a.Label("tcp6-leaving")
	f.addr6(a, offV6Dst, "reject")
	a.Emit(bpf.LoadAbsolute{Off: offV6L4, Size: 2}) // source port
	f.ports(a)

	// ICMPv6: header at 54, the quoted IPv6 header at 62.
	const quoted = offV6L4 + ICMPHeaderLen
	a.Label("icmp6")
	a.Emit(bpf.LoadAbsolute{Off: offV6L4, Size: 1}) // type
	a.JumpIf(bpf.JumpLessThan, uint32(ICMPv6DestUnreachable), "reject", "")
	a.JumpIf(bpf.JumpGreaterThan, uint32(ICMPv6ParamProblem), "reject", "")
	a.Emit(bpf.LoadAbsolute{Off: quoted, Size: 1})
	a.Emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4})
	a.JumpIf(bpf.JumpEqual, 6, "", "reject")
	a.Emit(bpf.LoadAbsolute{Off: quoted + 6, Size: 1})
	a.JumpIf(bpf.JumpEqual, uint32(ProtocolTCP), "", "reject")
	f.addr6(a, quoted+24, "reject")
	a.Emit(bpf.LoadAbsolute{Off: quoted + IPv6HeaderLen, Size: 2}) // quoted source port
	f.quotedPort(a)
}

// quotedPort tests the quoted source port in A: against LocalPorts, or not
// at all with AnyQuotedPort (the load before it still rejects a quote too
// short to hold the port).
func (f FlowFilter) quotedPort(a *bpfasm.Program) {
	if !f.AnyQuotedPort {
		f.ports(a)
		return
	}
	a.Jump("accept")
}

// addr6 compares the 16 bytes at off with Remote and jumps to miss when they
// differ; it falls through on a match.
func (f FlowFilter) addr6(a *bpfasm.Program, off uint32, miss string) {
	b := f.Remote.As16()
	for i := uint32(0); i < 16; i += 4 {
		a.Emit(bpf.LoadAbsolute{Off: off + i, Size: 4})
		a.JumpIf(bpf.JumpEqual, be32(b[i:i+4]), "", miss)
	}
}

// ports tests the port in A against LocalPorts and ends in accept or reject.
func (f FlowFilter) ports(a *bpfasm.Program) {
	r := f.LocalPorts
	if r.Lo > 0 {
		a.JumpIf(bpf.JumpLessThan, uint32(r.Lo), "reject", "")
	}
	if r.Hi < 0xffff {
		a.JumpIf(bpf.JumpGreaterThan, uint32(r.Hi), "reject", "")
	}
	a.Jump("accept")
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

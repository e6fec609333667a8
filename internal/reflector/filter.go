package reflector

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/net/bpf"

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
	a := &asm{labels: map[string]int{}}
	if addr.Is4() {
		const ip = probe.EthernetHeaderLen
		want := binary.BigEndian.Uint32(addr.AsSlice())
		a.emit(bpf.LoadAbsolute{Off: 12, Size: 2})
		a.jumpIf(bpf.JumpEqual, uint32(probe.EtherTypeIPv4), "", "reject")
		a.emit(bpf.LoadAbsolute{Off: ip, Size: 1})
		a.jumpIf(bpf.JumpLessThan, 0x45, "reject", "")
		a.jumpIf(bpf.JumpGreaterThan, 0x4f, "reject", "")
		a.emit(bpf.LoadAbsolute{Off: ip + 9, Size: 1})
		a.jumpIf(bpf.JumpEqual, uint32(probe.ProtocolTCP), "", "reject")
		a.emit(bpf.LoadAbsolute{Off: ip + 6, Size: 2})
		a.jumpIf(bpf.JumpBitsSet, 0x1fff, "reject", "")
		a.emit(bpf.LoadMemShift{Off: ip}) // X = IP header length
		a.emit(bpf.LoadAbsolute{Off: ip + 16, Size: 4})
		a.jumpIf(bpf.JumpEqual, want, "", "leaving")
		a.emit(bpf.LoadIndirect{Off: ip + 2, Size: 2}) // destination port
		// Not the port: it may still be a segment from the port to the
		// address itself.
		a.jumpIf(bpf.JumpEqual, port, "accept", "leaving")
		a.label("leaving")
		a.emit(bpf.LoadAbsolute{Off: ip + 12, Size: 4})
		a.jumpIf(bpf.JumpEqual, want, "", "reject")
		a.emit(bpf.LoadIndirect{Off: ip, Size: 2}) // source port
		a.jumpIf(bpf.JumpEqual, port, "accept", "reject")
	} else {
		const ip = probe.EthernetHeaderLen
		const tcp = ip + probe.IPv6HeaderLen
		a.emit(bpf.LoadAbsolute{Off: 12, Size: 2})
		a.jumpIf(bpf.JumpEqual, uint32(probe.EtherTypeIPv6), "", "reject")
		a.emit(bpf.LoadAbsolute{Off: ip + 6, Size: 1})
		a.jumpIf(bpf.JumpEqual, uint32(probe.ProtocolTCP), "", "reject")
		addr6(a, addr, ip+24, "leaving")
		a.emit(bpf.LoadAbsolute{Off: tcp + 2, Size: 2})
		a.jumpIf(bpf.JumpEqual, port, "accept", "leaving")
		a.label("leaving")
		addr6(a, addr, ip+8, "reject")
		a.emit(bpf.LoadAbsolute{Off: tcp, Size: 2})
		a.jumpIf(bpf.JumpEqual, port, "accept", "reject")
	}
	a.label("accept")
	a.emit(bpf.RetConstant{Val: snapLen})
	a.label("reject")
	a.emit(bpf.RetConstant{Val: 0})
	return a.resolve()
}

// addr6 compares the 16 bytes at off with addr, jumping to miss on a
// difference and falling through on a match.
func addr6(a *asm, addr netip.Addr, off uint32, miss string) {
	b := addr.As16()
	for i := uint32(0); i < 16; i += 4 {
		a.emit(bpf.LoadAbsolute{Off: off + i, Size: 4})
		a.jumpIf(bpf.JumpEqual, binary.BigEndian.Uint32(b[i:]), "", miss)
	}
}

// asm assembles conditional jumps to forward labels, so that the program
// reads as a flow chart instead of a table of skip counts.
type asm struct {
	prog   []bpf.Instruction
	labels map[string]int
	fixups []fixup
}

// fixup names the targets of the jump at prog[at]; "" falls through.
type fixup struct {
	at   int
	t, f string
}

func (a *asm) emit(ins bpf.Instruction) { a.prog = append(a.prog, ins) }

func (a *asm) label(name string) { a.labels[name] = len(a.prog) }

func (a *asm) jumpIf(cond bpf.JumpTest, val uint32, t, f string) {
	a.emit(bpf.JumpIf{Cond: cond, Val: val})
	a.fixups = append(a.fixups, fixup{at: len(a.prog) - 1, t: t, f: f})
}

func (a *asm) resolve() ([]bpf.Instruction, error) {
	skip := func(from int, name string) (uint8, error) {
		if name == "" {
			return 0, nil
		}
		to, ok := a.labels[name]
		if !ok || to <= from || to-from-1 > 255 {
			return 0, fmt.Errorf("capture filter: bad jump from %d to %q", from, name)
		}
		return uint8(to - from - 1), nil
	}
	for _, fx := range a.fixups {
		ins := a.prog[fx.at].(bpf.JumpIf)
		var err error
		if ins.SkipTrue, err = skip(fx.at, fx.t); err != nil {
			return nil, err
		}
		if ins.SkipFalse, err = skip(fx.at, fx.f); err != nil {
			return nil, err
		}
		a.prog[fx.at] = ins
	}
	return a.prog, nil
}

package scalelab

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
)

// Behaviour is how a block of the prefix answers SYNs.
type Behaviour string

// The behaviours of a block.
const (
	// Host: the kernel answers, SYN-ACK on the open ports, RST elsewhere.
	Host Behaviour = "host"
	// MSS: as Host, with the SYN-ACK's MSS rewritten to RewrittenMSS (a
	// middlebox clamping it).
	MSS Behaviour = "mss"
	// Strip: as Host, with SACK permitted, timestamps and window scale
	// turned into NOPs in the SYN-ACK (a middlebox stripping them).
	Strip Behaviour = "strip"
	// Reset: nftables answers every SYN with a RST.
	Reset Behaviour = "reset"
	// Drop: nothing answers.
	Drop Behaviour = "drop"
	// PortUnreachable: ICMP destination unreachable, port unreachable (3/3).
	PortUnreachable Behaviour = "port-unreachable"
	// AdminProhibited: ICMP destination unreachable, administratively
	// prohibited (3/13).
	AdminProhibited Behaviour = "admin-prohibited"
)

// RewrittenMSS is the MSS an MSS block's SYN-ACKs carry.
const RewrittenMSS = 536

// behaviours are the blocks of a plan, in address order.
var behaviours = []Behaviour{Host, Host, MSS, Strip, Reset, Drop, PortUnreachable, AdminProhibited}

// Block is a sub-range of the prefix with one behaviour.
type Block struct {
	Prefix    netip.Prefix
	Behaviour Behaviour
}

// Plan is what the lab answers for.
type Plan struct {
	Prefix    netip.Prefix
	Blocks    []Block
	OpenPorts []uint16 // sorted
	// Serve makes the open ports an application's, as on real hosts that
	// an audit checks: every connection is accepted, its request ("GET
	// /N ..." asks for N bytes) answered, and closed (see serveConn); the
	// target keeps the kernel's SYN-ACK retransmissions. Without it (a
	// sweep's lab) connections are never accepted and a SYN-ACK is sent
	// once.
	Serve bool
}

// DefaultOpenPorts are the open ports of the Host, MSS and Strip blocks:
// the usual few, and every thousandth port, so that a sweep over all ports
// of a host finds them spread out.
func DefaultOpenPorts() []uint16 {
	ports := []uint16{22, 80, 443, 8080}
	for p := 1000; p <= 65000; p += 1000 {
		ports = append(ports, uint16(p))
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

// NewPlan splits prefix (IPv4, /29 or longer... up to /8) into eight
// equal blocks: two Host, then MSS, Strip, Reset, Drop, PortUnreachable,
// AdminProhibited.
func NewPlan(prefix netip.Prefix, openPorts []uint16) (Plan, error) {
	prefix = prefix.Masked()
	if !prefix.Addr().Is4() || prefix.Bits() < 8 || prefix.Bits() > 29 {
		return Plan{}, fmt.Errorf("scale lab prefix %s: want IPv4 from /8 to /29", prefix)
	}
	if len(openPorts) == 0 {
		return Plan{}, fmt.Errorf("scale lab: no open ports")
	}
	p := Plan{Prefix: prefix, OpenPorts: slices.Compact(slices.Sorted(slices.Values(openPorts)))}
	base := u32(prefix.Addr())
	size := uint32(1) << (32 - prefix.Bits()) / 8
	for i, b := range behaviours {
		p.Blocks = append(p.Blocks, Block{netip.PrefixFrom(addrOf(base+uint32(i)*size), prefix.Bits()+3), b})
	}
	return p, nil
}

// Expectation is the class a sweep must find for an (address, port).
type Expectation struct {
	State    string // open, closed, filtered, silent
	ICMPType uint8  // for filtered
	ICMPCode uint8
	// MSS is the SYN-ACK's MSS for an open port of an MSS block, else 0.
	MSS       uint16
	Behaviour Behaviour
}

// Expect is the class of (a, port) by construction. An address outside the
// prefix is expected silent.
func (p Plan) Expect(a netip.Addr, port uint16) Expectation {
	for _, b := range p.Blocks {
		if !b.Prefix.Contains(a) {
			continue
		}
		e := Expectation{Behaviour: b.Behaviour}
		switch b.Behaviour {
		case Host, MSS, Strip:
			e.State = "closed"
			if _, open := slices.BinarySearch(p.OpenPorts, port); open {
				e.State = "open"
				if b.Behaviour == MSS {
					e.MSS = RewrittenMSS
				}
			}
		case Reset:
			e.State = "closed"
		case Drop:
			e.State = "silent"
		case PortUnreachable:
			e.State, e.ICMPType, e.ICMPCode = "filtered", 3, 3
		case AdminProhibited:
			e.State, e.ICMPType, e.ICMPCode = "filtered", 3, 13
		}
		return e
	}
	return Expectation{State: "silent"}
}

// Block returns the first block with behaviour b.
func (p Plan) Block(b Behaviour) (Block, bool) {
	for _, bl := range p.Blocks {
		if bl.Behaviour == b {
			return bl, true
		}
	}
	return Block{}, false
}

// nftRules is the nftables ruleset of the target namespace.
func (p Plan) nftRules(table string) string {
	s := fmt.Sprintf("table ip %s {\n", table)
	s += "\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n"
	for _, b := range p.Blocks {
		match := fmt.Sprintf("\t\tip daddr %s meta l4proto tcp", b.Prefix)
		switch b.Behaviour {
		case Reset:
			s += match + " reject with tcp reset\n"
		case Drop:
			s += match + " drop\n"
		case PortUnreachable:
			s += match + " reject with icmp type port-unreachable\n"
		case AdminProhibited:
			s += match + " reject with icmp type admin-prohibited\n"
		}
	}
	s += "\t}\n\tchain output {\n\t\ttype filter hook output priority 0; policy accept;\n"
	for _, b := range p.Blocks {
		match := fmt.Sprintf("\t\tip saddr %s tcp flags & (syn|ack) == syn|ack", b.Prefix)
		switch b.Behaviour {
		case MSS:
			s += fmt.Sprintf("%s tcp option maxseg size set %d\n", match, RewrittenMSS)
		case Strip:
			s += match + " reset tcp option sack-perm reset tcp option timestamp reset tcp option window\n"
		}
	}
	s += "\t}\n}\n"
	return s
}

func u32(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func addrOf(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

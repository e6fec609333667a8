package probe

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Address resolution on the wire: ARP (RFC 826) for IPv4 and Neighbor
// Discovery (RFC 4861) for IPv6, as whole Ethernet frames. ResolvePath uses
// them only when the kernel cannot resolve the next hop for synprobe.
// The helpers are self-contained so that they do not depend on the segment
// codec.

const (
	arpEtherLen = 14 // Ethernet header before ARP or IPv6
	arpEtherARP = 0x0806
	ndpEtherV6  = 0x86dd

	arpLen        = 28 // ARP body for Ethernet/IPv4
	arpOpRequest  = 1
	arpOpReply    = 2
	arpMinFrame   = 60 // shortest Ethernet frame without FCS: short frames are padded
	ndpIPv6Len    = 40
	ndpICMPv6     = 58
	ndpHopLimit   = 255 // RFC 4861: NDP packets must not have crossed a router
	ndpTypeNS     = 135
	ndpTypeNA     = 136
	ndpMessageLen = 24 // ICMPv6 header, flags/reserved and target address
	ndpOptSrcLL   = 1
	ndpOptTgtLL   = 2
)

// AppendARPRequest appends to b a broadcast Ethernet frame carrying an ARP
// request "who has target? tell src" from srcMAC, padded to the 60-byte
// minimum frame. src and target must be IPv4 addresses.
func AppendARPRequest(b []byte, srcMAC MAC, src, target netip.Addr) ([]byte, error) {
	src, target = src.Unmap(), target.Unmap()
	if !src.Is4() || !target.Is4() {
		return b, fmt.Errorf("arp request: source %s and target %s must both be IPv4", src, target)
	}
	start := len(b)
	b = append(b, BroadcastMAC[:]...)
	b = append(b, srcMAC[:]...)
	b = binary.BigEndian.AppendUint16(b, arpEtherARP)
	b = binary.BigEndian.AppendUint16(b, 1) // hardware type: Ethernet
	b = binary.BigEndian.AppendUint16(b, 0x0800)
	b = append(b, 6, 4)
	b = binary.BigEndian.AppendUint16(b, arpOpRequest)
	b = append(b, srcMAC[:]...)
	s4, t4 := src.As4(), target.As4()
	b = append(b, s4[:]...)
	b = append(b, make([]byte, 6)...) // target hardware address: unknown
	b = append(b, t4[:]...)
	for len(b)-start < arpMinFrame {
		b = append(b, 0)
	}
	return b, nil
}

// ParseARPReply reads an Ethernet frame carrying an ARP reply and returns
// the sender's protocol and hardware addresses: the answer to "who has ip?".
// Anything else (another EtherType, an ARP request, a non-Ethernet/IPv4 ARP,
// a short frame) is an error naming the field and its byte offset.
func ParseARPReply(frame []byte) (ip netip.Addr, mac MAC, err error) {
	if len(frame) < arpEtherLen+arpLen {
		return ip, mac, fmt.Errorf("arp reply: frame is %d bytes, want at least %d", len(frame), arpEtherLen+arpLen)
	}
	if et := binary.BigEndian.Uint16(frame[12:]); et != arpEtherARP {
		return ip, mac, fmt.Errorf("arp reply: EtherType %#04x at byte 12, want %#04x", et, arpEtherARP)
	}
	a := frame[arpEtherLen:]
	switch {
	case binary.BigEndian.Uint16(a[0:]) != 1:
		return ip, mac, fmt.Errorf("arp reply: hardware type %d at byte %d, want 1 (Ethernet)", binary.BigEndian.Uint16(a[0:]), arpEtherLen)
	case binary.BigEndian.Uint16(a[2:]) != 0x0800:
		return ip, mac, fmt.Errorf("arp reply: protocol type %#04x at byte %d, want 0x0800 (IPv4)", binary.BigEndian.Uint16(a[2:]), arpEtherLen+2)
	case a[4] != 6 || a[5] != 4:
		return ip, mac, fmt.Errorf("arp reply: address lengths %d/%d at byte %d, want 6/4", a[4], a[5], arpEtherLen+4)
	case binary.BigEndian.Uint16(a[6:]) != arpOpReply:
		return ip, mac, fmt.Errorf("arp reply: operation %d at byte %d, want %d (reply)", binary.BigEndian.Uint16(a[6:]), arpEtherLen+6, arpOpReply)
	}
	copy(mac[:], a[8:14])
	ip = netip.AddrFrom4([4]byte(a[14:18]))
	return ip, mac, nil
}

// ndpSolicitedNode returns the solicited-node multicast address of target
// (ff02::1:ffXX:XXXX, RFC 4291 2.7.1) and the Ethernet group it maps to
// (33:33:ff:XX:XX:XX, RFC 2464 7).
func ndpSolicitedNode(target netip.Addr) (netip.Addr, MAC) {
	t := target.As16()
	g := [16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]}
	return netip.AddrFrom16(g), MAC{0x33, 0x33, 0xff, t[13], t[14], t[15]}
}

// AppendNeighborSolicitation appends to b an Ethernet frame carrying an
// ICMPv6 Neighbor Solicitation for target from src, sent to target's
// solicited-node multicast group, with a source link-layer address option
// so that the answer can come back unicast without a second resolution.
// src must be an IPv6 address of the sending interface (not ::, which would
// make this a duplicate address probe); target a unicast IPv6 address.
func AppendNeighborSolicitation(b []byte, srcMAC MAC, src, target netip.Addr) ([]byte, error) {
	if !src.Is6() || src.Is4In6() || src.IsUnspecified() || src.IsMulticast() {
		return b, fmt.Errorf("neighbor solicitation: source %s is not a unicast IPv6 address", src)
	}
	if !target.Is6() || target.Is4In6() || target.IsUnspecified() || target.IsMulticast() {
		return b, fmt.Errorf("neighbor solicitation: target %s is not a unicast IPv6 address", target)
	}
	group, groupMAC := ndpSolicitedNode(target)
	s16, g16, t16 := src.As16(), group.As16(), target.As16()

	b = append(b, groupMAC[:]...)
	b = append(b, srcMAC[:]...)
	b = binary.BigEndian.AppendUint16(b, ndpEtherV6)

	const icmpLen = ndpMessageLen + 8 // one 8-byte option
	b = append(b, 0x60, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, icmpLen)
	b = append(b, ndpICMPv6, ndpHopLimit)
	b = append(b, s16[:]...)
	b = append(b, g16[:]...)

	icmp := len(b)
	b = append(b, ndpTypeNS, 0, 0, 0) // type, code, checksum (below)
	b = append(b, 0, 0, 0, 0)         // reserved
	b = append(b, t16[:]...)
	b = append(b, ndpOptSrcLL, 1) // length in units of 8 bytes
	b = append(b, srcMAC[:]...)
	binary.BigEndian.PutUint16(b[icmp+2:], ^ndpChecksum(s16, g16, b[icmp:]))
	return b, nil
}

// ParseNeighborAdvertisement reads an Ethernet frame carrying an ICMPv6
// Neighbor Advertisement and returns its target address and the target's
// link-layer address. It applies the validity checks of RFC 4861 7.1.2
// (hop limit 255, correct checksum, code 0, unicast target, well-formed
// options). When the advertisement has no target link-layer address option
// (allowed for answers to unicast solicitations), the frame's Ethernet
// source is the target's address.
func ParseNeighborAdvertisement(frame []byte) (target netip.Addr, mac MAC, err error) {
	const ip = arpEtherLen
	const icmp = ip + ndpIPv6Len
	if len(frame) < icmp+ndpMessageLen {
		return target, mac, fmt.Errorf("neighbor advertisement: frame is %d bytes, want at least %d", len(frame), icmp+ndpMessageLen)
	}
	if et := binary.BigEndian.Uint16(frame[12:]); et != ndpEtherV6 {
		return target, mac, fmt.Errorf("neighbor advertisement: EtherType %#04x at byte 12, want %#04x", et, ndpEtherV6)
	}
	if v := frame[ip] >> 4; v != 6 {
		return target, mac, fmt.Errorf("neighbor advertisement: IP version %d at byte %d, want 6", v, ip)
	}
	// The payload length, not the frame length, bounds the message: frames
	// may carry Ethernet padding.
	plen := int(binary.BigEndian.Uint16(frame[ip+4:]))
	if plen < ndpMessageLen || icmp+plen > len(frame) {
		return target, mac, fmt.Errorf("neighbor advertisement: payload length %d at byte %d, frame holds %d after the IPv6 header (minimum %d)", plen, ip+4, len(frame)-icmp, ndpMessageLen)
	}
	if nh := frame[ip+6]; nh != ndpICMPv6 {
		return target, mac, fmt.Errorf("neighbor advertisement: next header %d at byte %d, want %d (ICMPv6)", nh, ip+6, ndpICMPv6)
	}
	if hl := frame[ip+7]; hl != ndpHopLimit {
		return target, mac, fmt.Errorf("neighbor advertisement: hop limit %d at byte %d, want %d", hl, ip+7, ndpHopLimit)
	}
	m := frame[icmp : icmp+plen]
	if m[0] != ndpTypeNA || m[1] != 0 {
		return target, mac, fmt.Errorf("neighbor advertisement: ICMPv6 type %d code %d at byte %d, want type %d code 0", m[0], m[1], icmp, ndpTypeNA)
	}
	src, dst := [16]byte(frame[ip+8:ip+24]), [16]byte(frame[ip+24:ip+40])
	if sum := ndpChecksum(src, dst, m); sum != 0xffff {
		return target, mac, fmt.Errorf("neighbor advertisement: bad ICMPv6 checksum %#04x at byte %d", binary.BigEndian.Uint16(m[2:]), icmp+2)
	}
	target = netip.AddrFrom16([16]byte(m[8:24]))
	if target.IsMulticast() {
		return netip.Addr{}, mac, fmt.Errorf("neighbor advertisement: target %s at byte %d is multicast", target, icmp+8)
	}
	copy(mac[:], frame[6:12])
	for off := ndpMessageLen; off < len(m); {
		if len(m)-off < 2 || m[off+1] == 0 {
			return netip.Addr{}, MAC{}, fmt.Errorf("neighbor advertisement: truncated or zero-length option at byte %d", icmp+off)
		}
		n := int(m[off+1]) * 8
		if n > len(m)-off {
			return netip.Addr{}, MAC{}, fmt.Errorf("neighbor advertisement: option of %d bytes at byte %d overruns the message (%d bytes left)", n, icmp+off, len(m)-off)
		}
		if m[off] == ndpOptTgtLL {
			if n != 8 {
				return netip.Addr{}, MAC{}, fmt.Errorf("neighbor advertisement: target link-layer address option of %d bytes at byte %d, want 8 for Ethernet", n, icmp+off)
			}
			copy(mac[:], m[off+2:off+8])
		}
		off += n
	}
	return target, mac, nil
}

// ndpChecksum is the ones'-complement sum (not yet complemented) of the
// ICMPv6 pseudo-header for src and dst and of msg. A message with a correct
// checksum sums to 0xffff.
func ndpChecksum(src, dst [16]byte, msg []byte) uint16 {
	return ^fold(sum16(msg, pseudoHeaderSum(netip.AddrFrom16(src), netip.AddrFrom16(dst), ProtocolICMPv6, len(msg))))
}

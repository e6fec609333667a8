package probe

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// IP protocol numbers synprobe knows.
const (
	ProtocolICMP   uint8 = 1
	ProtocolTCP    uint8 = 6
	ProtocolUDP    uint8 = 17
	ProtocolICMPv6 uint8 = 58
)

// Header lengths.
const (
	IPv4HeaderLen = 20
	IPv6HeaderLen = 40
)

// IPFlags are the three flag bits of an IPv4 header.
type IPFlags uint8

const (
	IPFlagMF       IPFlags = 1 << 0 // more fragments
	IPFlagDF       IPFlags = 1 << 1 // don't fragment
	IPFlagReserved IPFlags = 1 << 2 // must be zero
)

// IP is an IPv4 or IPv6 header. The fields that exist in one version only are
// ignored by the other. Zero values mean "compute it" when encoding where the
// comment says so.
type IP struct {
	// Version is 4 or 6. On encode, 0 means "from Src".
	Version  uint8
	Src, Dst netip.Addr
	// TOS is the IPv4 type of service or IPv6 traffic class byte; its low
	// two bits are the ECN codepoint.
	TOS uint8
	// TTL is the IPv4 time to live or IPv6 hop limit. On encode 0 means 64.
	TTL uint8
	// ID is the IPv4 identification (for IPv6, of a fragment header).
	ID         uint16
	Flags      IPFlags // IPv4 only
	FragOffset uint16  // in 8-byte units
	FlowLabel  uint32  // IPv6 only
	// Protocol is the transport protocol (for IPv6 the last next-header,
	// after extension headers). On encode 0 means TCP.
	Protocol uint8
	// Options are IPv4 options, padded with zeros to 4 bytes on encode.
	Options []byte

	// Decode only.
	HeaderLen   int    // bytes of header, with IPv4 options or IPv6 extension headers
	TotalLength int    // the length the header claims for the whole packet
	Checksum    uint16 // IPv4 header checksum as on the wire
}

// ECN codepoints (RFC 3168), the low two bits of TOS.
const (
	ECNNotECT uint8 = 0
	ECNECT1   uint8 = 1
	ECNECT0   uint8 = 2
	ECNCE     uint8 = 3
)

// ECN returns the ECN codepoint.
func (ip *IP) ECN() uint8 { return ip.TOS & 3 }

// DF reports the don't-fragment flag (IPv4).
func (ip *IP) DF() bool { return ip.Flags&IPFlagDF != 0 }

// IsFragment reports whether the packet is part of a fragmented datagram.
func (ip *IP) IsFragment() bool { return ip.Flags&IPFlagMF != 0 || ip.FragOffset != 0 }

func (ip *IP) version() uint8 {
	if ip.Version != 0 {
		return ip.Version
	}
	if ip.Src.Is4() {
		return 4
	}
	return 6
}

func (ip *IP) protocol() uint8 {
	if ip.Protocol == 0 {
		return ProtocolTCP
	}
	return ip.Protocol
}

func (ip *IP) ttl() uint8 {
	if ip.TTL == 0 {
		return 64
	}
	return ip.TTL
}

// headerLen is the length encode writes.
func (ip *IP) headerLen() int {
	if ip.version() == 4 {
		return IPv4HeaderLen + (len(ip.Options)+3)&^3
	}
	return IPv6HeaderLen
}

func (ip *IP) check() error {
	v := ip.version()
	if v != 4 && v != 6 {
		return fmt.Errorf("encode ip: version %d", v)
	}
	if v == 4 && (!ip.Src.Is4() || !ip.Dst.Is4()) {
		return fmt.Errorf("encode ipv4: addresses %v > %v are not both IPv4", ip.Src, ip.Dst)
	}
	if v == 6 && (!ip.Src.Is6() || !ip.Dst.Is6() || ip.Src.Is4In6() || ip.Dst.Is4In6()) {
		return fmt.Errorf("encode ipv6: addresses %v > %v are not both IPv6", ip.Src, ip.Dst)
	}
	if len(ip.Options) > 40 {
		return fmt.Errorf("encode ipv4: %d bytes of options, at most 40 fit", len(ip.Options))
	}
	return nil
}

// appendHeader writes the header for a payload of payloadLen bytes; the IPv4
// checksum is left zero (see finishIPv4).
func (ip *IP) appendHeader(b []byte, payloadLen int) []byte {
	if ip.version() == 4 {
		hl := ip.headerLen()
		b = append(b, 0x40|uint8(hl/4), ip.TOS)
		b = binary.BigEndian.AppendUint16(b, uint16(hl+payloadLen))
		b = binary.BigEndian.AppendUint16(b, ip.ID)
		b = binary.BigEndian.AppendUint16(b, uint16(ip.Flags&7)<<13|ip.FragOffset&0x1fff)
		b = append(b, ip.ttl(), ip.protocol(), 0, 0)
		s, d := ip.Src.As4(), ip.Dst.As4()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
		b = append(b, ip.Options...)
		for i := len(ip.Options); i%4 != 0; i++ {
			b = append(b, 0)
		}
		return b
	}
	b = binary.BigEndian.AppendUint32(b, 6<<28|uint32(ip.TOS)<<20|ip.FlowLabel&0xfffff)
	b = binary.BigEndian.AppendUint16(b, uint16(payloadLen))
	b = append(b, ip.protocol(), ip.ttl())
	s, d := ip.Src.As16(), ip.Dst.As16()
	b = append(b, s[:]...)
	return append(b, d[:]...)
}

// IPv6 extension headers that decode skips to reach the transport header.
const (
	ipv6HopByHop = 0
	ipv6Routing  = 43
	ipv6Fragment = 44
	ipv6DestOpts = 60
	ipv6NoNext   = 59
)

// decode fills ip from data (starting at the IP header; off is its offset in
// the frame, for errors) and returns the header length and the bytes of the
// packet that were captured (trimmed to the total length, so that Ethernet
// padding is never read as payload). truncated is set when the capture holds
// less than the header claims.
func (ip *IP) decode(data []byte, off int, wantVersion uint8) (hl int, packet []byte, truncated bool, err error) {
	if len(data) < 1 {
		return 0, nil, false, decodeErr("ip", "version", off, ErrTruncated, "no bytes")
	}
	v := data[0] >> 4
	if wantVersion != 0 && v != wantVersion {
		return 0, nil, false, decodeErr(fmt.Sprintf("ipv%d", wantVersion), "version", off, ErrBadVersion, "got %d", v)
	}
	ip.Version = v
	switch v {
	case 4:
		return ip.decode4(data, off)
	case 6:
		return ip.decode6(data, off)
	}
	return 0, nil, false, decodeErr("ip", "version", off, ErrBadVersion, "got %d, want 4 or 6", v)
}

func (ip *IP) decode4(data []byte, off int) (int, []byte, bool, error) {
	if len(data) < IPv4HeaderLen {
		return 0, nil, false, decodeErr("ipv4", "header", off, ErrTruncated, "%d bytes, want at least %d", len(data), IPv4HeaderLen)
	}
	hl := int(data[0]&0x0f) * 4
	if hl < IPv4HeaderLen {
		return 0, nil, false, decodeErr("ipv4", "header length", off, ErrBadLength, "%d bytes, below the minimum of 20", hl)
	}
	ip.TOS = data[1]
	ip.TotalLength = int(binary.BigEndian.Uint16(data[2:]))
	ip.ID = binary.BigEndian.Uint16(data[4:])
	ff := binary.BigEndian.Uint16(data[6:])
	ip.Flags, ip.FragOffset = IPFlags(ff>>13), ff&0x1fff
	ip.TTL, ip.Protocol = data[8], data[9]
	ip.Checksum = binary.BigEndian.Uint16(data[10:])
	ip.Src = netip.AddrFrom4([4]byte(data[12:16]))
	ip.Dst = netip.AddrFrom4([4]byte(data[16:20]))
	ip.FlowLabel = 0
	ip.HeaderLen = hl
	if len(data) < hl {
		return 0, nil, false, decodeErr("ipv4", "options", off+IPv4HeaderLen, ErrTruncated, "header length %d, %d bytes captured", hl, len(data))
	}
	ip.Options = data[IPv4HeaderLen:hl]
	if ip.TotalLength < hl {
		return 0, nil, false, decodeErr("ipv4", "total length", off+2, ErrBadLength, "%d, below the header length %d", ip.TotalLength, hl)
	}
	if len(data) < ip.TotalLength {
		return hl, data, true, nil
	}
	return hl, data[:ip.TotalLength], false, nil
}

func (ip *IP) decode6(data []byte, off int) (int, []byte, bool, error) {
	if len(data) < IPv6HeaderLen {
		return 0, nil, false, decodeErr("ipv6", "header", off, ErrTruncated, "%d bytes, want at least %d", len(data), IPv6HeaderLen)
	}
	w := binary.BigEndian.Uint32(data)
	ip.TOS, ip.FlowLabel = uint8(w>>20), w&0xfffff
	ip.TotalLength = IPv6HeaderLen + int(binary.BigEndian.Uint16(data[4:]))
	ip.Protocol, ip.TTL = data[6], data[7]
	ip.Src = netip.AddrFrom16([16]byte(data[8:24]))
	ip.Dst = netip.AddrFrom16([16]byte(data[24:40]))
	ip.ID, ip.Flags, ip.FragOffset, ip.Checksum, ip.Options = 0, 0, 0, 0, nil
	packet, truncated := data, true
	if len(data) >= ip.TotalLength {
		packet, truncated = data[:ip.TotalLength], false
	}
	hl := IPv6HeaderLen
	for ext := 0; ext < 8; ext++ {
		switch ip.Protocol {
		case ipv6HopByHop, ipv6Routing, ipv6DestOpts, ipv6Fragment:
		default:
			ip.HeaderLen = hl
			return hl, packet, truncated, nil
		}
		if len(packet) < hl+8 {
			return 0, nil, false, decodeErr("ipv6", "extension header", off+hl, ErrTruncated, "next header %d needs 8 bytes, %d left", ip.Protocol, len(packet)-hl)
		}
		next := packet[hl]
		n := 8
		if ip.Protocol == ipv6Fragment {
			fo := binary.BigEndian.Uint16(packet[hl+2:])
			ip.FragOffset = fo >> 3
			if fo&1 != 0 {
				ip.Flags |= IPFlagMF
			}
			ip.ID = uint16(binary.BigEndian.Uint32(packet[hl+4:]))
		} else {
			n = (int(packet[hl+1]) + 1) * 8
		}
		if len(packet) < hl+n {
			return 0, nil, false, decodeErr("ipv6", "extension header", off+hl+1, ErrTruncated, "next header %d claims %d bytes, %d left", ip.Protocol, n, len(packet)-hl)
		}
		ip.Protocol = next
		hl += n
	}
	return 0, nil, false, decodeErr("ipv6", "extension header", off+hl, ErrBadLength, "more than 8 extension headers")
}

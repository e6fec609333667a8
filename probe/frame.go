package probe

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Layers says which headers a Frame holds.
type Layers uint8

const (
	LayerEthernet Layers = 1 << iota
	LayerIP
	LayerTCP
	LayerICMP
)

// Frame is an Ethernet frame (or a bare IP packet) and the headers in it.
//
// A Frame can be reused: decoding into the same Frame again reuses the
// capacity of TCP.Options, so that a reader in a loop allocates nothing.
// Decoded slices (payload, options, padding) point into the decoded bytes.
type Frame struct {
	Layers   Layers
	Ethernet Ethernet
	IP       IP
	TCP      TCP
	ICMP     ICMP
	// Padding holds the bytes after the IP packet (Ethernet padding up to
	// the 60-byte minimum). It is never payload; encode writes it back.
	Padding []byte

	// Decode only.
	IPChecksum ChecksumStatus
	// Checksum is the status of the TCP or ICMP checksum.
	Checksum ChecksumStatus
	// Truncated is set when the capture holds less than the IP header claims
	// (a snapshot length): the checksum is then unchecked.
	Truncated bool
}

// Has reports whether every layer of l is present.
func (f *Frame) Has(l Layers) bool { return f.Layers&l == l }

// Decode decodes an Ethernet frame. On error, f keeps what was decoded
// before the damage (a TCP segment with a broken header still has its
// ports and numbers when the fixed header was readable). Frames that carry
// neither IPv4 nor IPv6 decode to their Ethernet header alone.
func (f *Frame) Decode(data []byte) error {
	f.reset()
	n, err := f.Ethernet.decode(data)
	if err != nil {
		return err
	}
	f.Layers = LayerEthernet
	var v uint8
	switch f.Ethernet.Type {
	case EtherTypeIPv4:
		v = 4
	case EtherTypeIPv6:
		v = 6
	default:
		return nil
	}
	return f.decodeIP(data[n:], n, v)
}

// DecodeIP decodes a bare IPv4 or IPv6 packet (a raw-IP capture).
func (f *Frame) DecodeIP(data []byte) error {
	f.reset()
	return f.decodeIP(data, 0, 0)
}

func (f *Frame) reset() {
	opts := f.TCP.Options[:0]
	*f = Frame{}
	f.TCP.Options = opts
}

func (f *Frame) decodeIP(data []byte, off int, v uint8) error {
	hl, packet, truncated, err := f.IP.decode(data, off, v)
	if err != nil {
		return err
	}
	f.Layers |= LayerIP
	f.Truncated = truncated
	if !truncated && len(data) > len(packet) {
		f.Padding = data[len(packet):]
	}
	if f.IP.Version == 4 {
		f.IPChecksum = ChecksumInvalid
		if Checksum(data[:hl]) == 0 {
			f.IPChecksum = ChecksumValid
		}
	}
	if f.IP.FragOffset != 0 {
		return nil // a later fragment: no transport header here
	}
	seg := packet[hl:]
	segOff := off + hl
	switch {
	case f.IP.Protocol == ProtocolTCP:
		f.Layers |= LayerTCP
		if err := f.TCP.decode(seg, segOff); err != nil {
			if len(seg) < TCPHeaderLen {
				f.Layers &^= LayerTCP
			}
			if truncated {
				// The damage may be the snapshot length, not the sender.
				return nil
			}
			return err
		}
	case f.IP.Protocol == ProtocolICMP && f.IP.Version == 4, f.IP.Protocol == ProtocolICMPv6 && f.IP.Version == 6:
		if err := f.ICMP.decode(seg, segOff); err != nil {
			if truncated {
				return nil
			}
			return err
		}
		f.Layers |= LayerICMP
	default:
		return nil
	}
	if truncated || f.IP.IsFragment() {
		f.Checksum = ChecksumUnchecked
		return nil
	}
	var acc uint64
	if f.IP.Version == 6 || f.IP.Protocol == ProtocolTCP {
		acc = pseudoHeaderSum(f.IP.Src, f.IP.Dst, f.IP.Protocol, len(seg))
	}
	f.Checksum = ChecksumInvalid
	if fold(sum16(seg, acc)) == 0 {
		f.Checksum = ChecksumValid
	}
	return nil
}

// Field names a header field an Override rewrites after encoding.
type Field uint8

// Fields an Override can rewrite. After the rewrite, checksums are computed
// again over the rewritten header unless the checksum itself is overridden,
// so that a test lies about exactly one thing.
const (
	// FieldTCPChecksum sets the TCP (or ICMP) checksum to Value.
	FieldTCPChecksum Field = iota + 1
	// FieldTCPChecksumAdd adds Value to the correct checksum (mod 2^16);
	// any Value in 1..0xfffe gives a wrong one.
	FieldTCPChecksumAdd
	// FieldTCPDataOffset sets the 4-bit data offset.
	FieldTCPDataOffset
	// FieldIPChecksum sets the IPv4 header checksum to Value.
	FieldIPChecksum
	// FieldIPChecksumAdd adds Value to the correct IPv4 header checksum.
	FieldIPChecksumAdd
	// FieldIPTotalLength sets the IPv4 total length or IPv6 payload length.
	FieldIPTotalLength
	// FieldIPHeaderLength sets the IPv4 header length nibble (in words).
	FieldIPHeaderLength
	// FieldIPVersion sets the version nibble.
	FieldIPVersion
)

var fieldNames = map[Field]string{
	FieldTCPChecksum:    "tcp checksum",
	FieldTCPChecksumAdd: "tcp checksum delta",
	FieldTCPDataOffset:  "tcp data offset",
	FieldIPChecksum:     "ip checksum",
	FieldIPChecksumAdd:  "ip checksum delta",
	FieldIPTotalLength:  "ip total length",
	FieldIPHeaderLength: "ip header length",
	FieldIPVersion:      "ip version",
}

func (f Field) String() string {
	if s, ok := fieldNames[f]; ok {
		return s
	}
	return fmt.Sprintf("field %d", uint8(f))
}

// Override rewrites one header field after encoding.
type Override struct {
	Field Field
	Value uint32
}

// Encode encodes f as an Ethernet frame. See AppendEncode.
func (f *Frame) Encode(ov ...Override) ([]byte, error) {
	return f.AppendEncode(make([]byte, 0, 128+len(f.TCP.Payload)+len(f.ICMP.Body)), ov...)
}

// AppendEncode appends f as an Ethernet frame to b: Ethernet, IP, then TCP
// (or ICMP when IP.Protocol says so), then Padding. Lengths, the data
// offset and checksums are computed; Overrides are applied afterwards.
// Ethernet.Type is taken from the IP version.
func (f *Frame) AppendEncode(b []byte, ov ...Override) ([]byte, error) {
	e := f.Ethernet
	if f.IP.version() == 4 {
		e.Type = EtherTypeIPv4
	} else {
		e.Type = EtherTypeIPv6
	}
	start := len(b)
	b = e.append(b)
	b, err := f.appendIP(b, ov)
	if err != nil {
		return b[:start], err
	}
	return append(b, f.Padding...), nil
}

// EncodeIP encodes f as a bare IP packet (no Ethernet header, no padding).
func (f *Frame) EncodeIP(ov ...Override) ([]byte, error) {
	return f.appendIP(make([]byte, 0, 128+len(f.TCP.Payload)+len(f.ICMP.Body)), ov)
}

func (f *Frame) appendIP(b []byte, ov []Override) ([]byte, error) {
	if err := f.IP.check(); err != nil {
		return b, err
	}
	ipStart := len(b)
	isICMP := f.IP.Protocol == ProtocolICMP || f.IP.Protocol == ProtocolICMPv6
	var tl int
	var segLen int
	if isICMP {
		segLen = ICMPHeaderLen + len(f.ICMP.Body)
	} else {
		hl, err := f.TCP.headerLen()
		if err != nil {
			return b, err
		}
		tl = hl
		segLen = hl + len(f.TCP.Payload)
	}
	b = f.IP.appendHeader(b, segLen)
	segStart := len(b)
	if isICMP {
		b = f.ICMP.append(b)
	} else {
		b = f.TCP.append(b, tl)
	}
	seg := b[segStart:]
	ipHdr := b[ipStart:segStart]
	v6 := f.IP.version() == 6
	csumAt := 16 // TCP
	if isICMP {
		csumAt = 2
	}

	// The transport checksum always covers the segment as encoded: lies in
	// the IP header must not make it wrong by accident.
	tcpSet := false
	for _, o := range ov {
		if o.Field == FieldTCPDataOffset && !isICMP {
			seg[12] = seg[12]&0x0f | uint8(o.Value&0x0f)<<4
		}
	}
	var acc uint64
	if v6 || !isICMP {
		acc = pseudoHeaderSum(f.IP.Src, f.IP.Dst, f.IP.protocol(), len(seg))
	}
	sum := fold(sum16(seg, acc))
	for _, o := range ov {
		switch o.Field {
		case FieldTCPChecksum:
			sum, tcpSet = uint16(o.Value), true
		case FieldTCPChecksumAdd:
			if !tcpSet {
				sum += uint16(o.Value)
			}
		}
	}
	binary.BigEndian.PutUint16(seg[csumAt:], sum)

	var ipSum uint16
	ipSumSet := false
	for _, o := range ov {
		switch o.Field {
		case FieldIPTotalLength:
			if v6 {
				binary.BigEndian.PutUint16(ipHdr[4:], uint16(o.Value))
			} else {
				binary.BigEndian.PutUint16(ipHdr[2:], uint16(o.Value))
			}
		case FieldIPHeaderLength:
			if !v6 {
				ipHdr[0] = ipHdr[0]&0xf0 | uint8(o.Value&0x0f)
			}
		case FieldIPVersion:
			ipHdr[0] = ipHdr[0]&0x0f | uint8(o.Value&0x0f)<<4
		case FieldIPChecksum:
			ipSum, ipSumSet = uint16(o.Value), true
		}
	}
	if !v6 {
		if !ipSumSet {
			ipSum = Checksum(ipHdr)
			for _, o := range ov {
				if o.Field == FieldIPChecksumAdd {
					ipSum += uint16(o.Value)
				}
			}
		}
		binary.BigEndian.PutUint16(ipHdr[10:], ipSum)
	}
	return b, nil
}

// Src returns the frame's source address and port (port 0 without TCP).
func (f *Frame) Src() netip.AddrPort { return netip.AddrPortFrom(f.IP.Src, f.TCP.SrcPort) }

// Dst returns the frame's destination address and port (port 0 without TCP).
func (f *Frame) Dst() netip.AddrPort { return netip.AddrPortFrom(f.IP.Dst, f.TCP.DstPort) }

// String is a one-line summary in tcpdump's spirit.
func (f *Frame) String() string {
	switch {
	case f.Has(LayerTCP):
		return fmt.Sprintf("%v > %v: %v", f.Src(), f.Dst(), &f.TCP)
	case f.Has(LayerICMP):
		return fmt.Sprintf("%v > %v: %v", f.IP.Src, f.IP.Dst, &f.ICMP)
	case f.Has(LayerIP):
		return fmt.Sprintf("%v > %v: protocol %d", f.IP.Src, f.IP.Dst, f.IP.Protocol)
	case f.Has(LayerEthernet):
		return fmt.Sprintf("%v > %v: ethertype %v", f.Ethernet.Src, f.Ethernet.Dst, f.Ethernet.Type)
	}
	return "empty frame"
}

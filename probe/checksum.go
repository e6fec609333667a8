package probe

import (
	"encoding/binary"
	"net/netip"
)

// sum16 adds data to the running one's-complement sum acc, 16 bits at a time
// (big-endian, an odd last byte padded with zero). The result is not folded.
func sum16(data []byte, acc uint64) uint64 {
	for len(data) >= 8 {
		acc += uint64(binary.BigEndian.Uint32(data)) + uint64(binary.BigEndian.Uint32(data[4:]))
		data = data[8:]
	}
	for len(data) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(data))
		data = data[2:]
	}
	if len(data) == 1 {
		acc += uint64(data[0]) << 8
	}
	return acc
}

// fold reduces a running sum to the 16-bit one's-complement checksum value
// (already complemented, ready to be written into a header).
func fold(acc uint64) uint16 {
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return ^uint16(acc)
}

// Checksum returns the Internet checksum (RFC 1071) of data.
func Checksum(data []byte) uint16 { return fold(sum16(data, 0)) }

// pseudoHeaderSum is the running sum of the TCP/UDP/ICMPv6 pseudo-header.
func pseudoHeaderSum(src, dst netip.Addr, proto uint8, length int) uint64 {
	var acc uint64
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		acc = sum16(s[:], acc)
		acc = sum16(d[:], acc)
	} else {
		s, d := src.As16(), dst.As16()
		acc = sum16(s[:], acc)
		acc = sum16(d[:], acc)
	}
	return acc + uint64(proto) + uint64(length)
}

// ChecksumStatus is what decoding found out about a checksum.
type ChecksumStatus uint8

const (
	// ChecksumUnchecked: not verifiable (the capture is truncated or the
	// packet is a fragment).
	ChecksumUnchecked ChecksumStatus = iota
	ChecksumValid
	ChecksumInvalid
	// ChecksumNotFinal: invalid on the wire image, but the kernel said the
	// checksum is left to offload (TP_STATUS_CSUMNOTREADY): not a fault.
	ChecksumNotFinal
)

func (s ChecksumStatus) String() string {
	switch s {
	case ChecksumValid:
		return "valid"
	case ChecksumInvalid:
		return "invalid"
	case ChecksumNotFinal:
		return "not final (offloaded)"
	default:
		return "unchecked"
	}
}

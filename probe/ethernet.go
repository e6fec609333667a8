package probe

import (
	"encoding/binary"
	"fmt"
)

// EtherType is the protocol field of an Ethernet header.
type EtherType uint16

// EtherTypes synprobe knows.
const (
	EtherTypeIPv4 EtherType = 0x0800
	EtherTypeARP  EtherType = 0x0806
	EtherTypeVLAN EtherType = 0x8100 // 802.1Q
	EtherTypeIPv6 EtherType = 0x86dd
	EtherTypeQinQ EtherType = 0x88a8 // 802.1ad
	etherTypeQinQ EtherType = 0x9100 // pre-standard 802.1ad
)

func (t EtherType) String() string {
	switch t {
	case EtherTypeIPv4:
		return "IPv4"
	case EtherTypeARP:
		return "ARP"
	case EtherTypeVLAN:
		return "802.1Q"
	case EtherTypeIPv6:
		return "IPv6"
	case EtherTypeQinQ:
		return "802.1ad"
	}
	return fmt.Sprintf("0x%04x", uint16(t))
}

// EthernetHeaderLen is the length of an untagged Ethernet header.
const EthernetHeaderLen = 14

// Ethernet is an Ethernet II header.
type Ethernet struct {
	Dst, Src MAC
	// Type is the EtherType of the payload (after any VLAN tags).
	Type EtherType
	// VLAN is the VLAN ID of the outermost 802.1Q/802.1ad tag, when Tagged.
	// Decoding skips up to two tags; encoding writes one 802.1Q tag.
	VLAN   uint16
	Tagged bool
}

func (e *Ethernet) append(b []byte) []byte {
	b = append(b, e.Dst[:]...)
	b = append(b, e.Src[:]...)
	if e.Tagged {
		b = binary.BigEndian.AppendUint16(b, uint16(EtherTypeVLAN))
		b = binary.BigEndian.AppendUint16(b, e.VLAN&0x0fff)
	}
	return binary.BigEndian.AppendUint16(b, uint16(e.Type))
}

// decode fills e from data and returns the header length.
func (e *Ethernet) decode(data []byte) (int, error) {
	if len(data) < EthernetHeaderLen {
		return 0, decodeErr("ethernet", "header", 0, ErrTruncated, "%d bytes, want at least %d", len(data), EthernetHeaderLen)
	}
	copy(e.Dst[:], data[0:6])
	copy(e.Src[:], data[6:12])
	e.Type = EtherType(binary.BigEndian.Uint16(data[12:]))
	e.Tagged, e.VLAN = false, 0
	off := EthernetHeaderLen
	for tags := 0; tags < 2 && (e.Type == EtherTypeVLAN || e.Type == EtherTypeQinQ || e.Type == etherTypeQinQ); tags++ {
		if len(data) < off+4 {
			return 0, decodeErr("ethernet", "vlan tag", off-2, ErrTruncated, "tag needs 4 bytes, %d left", len(data)-off)
		}
		if !e.Tagged {
			e.Tagged, e.VLAN = true, binary.BigEndian.Uint16(data[off:])&0x0fff
		}
		e.Type = EtherType(binary.BigEndian.Uint16(data[off+2:]))
		off += 4
	}
	return off, nil
}

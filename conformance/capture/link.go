package capture

import (
	"encoding/binary"
	"fmt"

	"synprobe/probe"
	"synprobe/probe/pcap"
)

// Link-layer header lengths and the fields synprobe reads from them.
const (
	sllHeaderLen  = 16 // Linux cooked v1: protocol (EtherType) at byte 14
	sll2HeaderLen = 20 // Linux cooked v2: protocol at byte 0
	nullHeaderLen = 4  // BSD loopback: address family
)

// Address families of the BSD loopback header: AF_INET is 2 everywhere;
// AF_INET6 is 24 on NetBSD and OpenBSD, 28 on FreeBSD, 30 on Darwin, and
// 10 on Linux.
func afVersion(af uint32) uint8 {
	switch af {
	case 2:
		return 4
	case 10, 24, 28, 30:
		return 6
	}
	return 0
}

// linkError says why a link-layer header could not be taken apart.
type linkError struct {
	link   pcap.LinkType
	reason string
}

func (e *linkError) Error() string { return fmt.Sprintf("%v: %s", e.link, e.reason) }

// decodeLink decodes one captured packet of link type lt into f.
// supported is false for link types analyze cannot take apart. A packet
// that carries neither IPv4 nor IPv6 decodes with no IP layer and no error.
func decodeLink(f *probe.Frame, lt pcap.LinkType, data []byte) (supported bool, err error) {
	switch lt {
	case pcap.LinkTypeEthernet:
		return true, f.Decode(data)
	case pcap.LinkTypeRaw, pcap.LinkTypeIPv4, pcap.LinkTypeIPv6:
		return true, f.DecodeIP(data)
	case pcap.LinkTypeLinuxSLL:
		if len(data) < sllHeaderLen {
			return true, &linkError{lt, fmt.Sprintf("header: %d bytes, want %d", len(data), sllHeaderLen)}
		}
		return true, decodeEtherType(f, probe.EtherType(binary.BigEndian.Uint16(data[14:])), data[sllHeaderLen:])
	case pcap.LinkTypeLinuxSLL2:
		if len(data) < sll2HeaderLen {
			return true, &linkError{lt, fmt.Sprintf("header: %d bytes, want %d", len(data), sll2HeaderLen)}
		}
		return true, decodeEtherType(f, probe.EtherType(binary.BigEndian.Uint16(data)), data[sll2HeaderLen:])
	case pcap.LinkTypeNull, pcap.LinkTypeLoop:
		if len(data) < nullHeaderLen {
			return true, &linkError{lt, fmt.Sprintf("header: %d bytes, want %d", len(data), nullHeaderLen)}
		}
		// NULL is in the writer's byte order, which the file does not
		// say; address families are small, so the order that gives a
		// small number is the right one. LOOP is always big-endian.
		af := binary.BigEndian.Uint32(data)
		if lt == pcap.LinkTypeNull && af > 0xffff {
			af = binary.LittleEndian.Uint32(data)
		}
		switch afVersion(af) {
		case 4:
			return true, decodeEtherType(f, probe.EtherTypeIPv4, data[nullHeaderLen:])
		case 6:
			return true, decodeEtherType(f, probe.EtherTypeIPv6, data[nullHeaderLen:])
		}
		*f = probe.Frame{TCP: probe.TCP{Options: f.TCP.Options[:0]}}
		return true, nil
	}
	return false, nil
}

// decodeEtherType decodes an IP packet whose link header gave its
// EtherType; other protocols decode to nothing.
func decodeEtherType(f *probe.Frame, et probe.EtherType, data []byte) error {
	if et != probe.EtherTypeIPv4 && et != probe.EtherTypeIPv6 {
		*f = probe.Frame{TCP: probe.TCP{Options: f.TCP.Options[:0]}}
		return nil
	}
	err := f.DecodeIP(data)
	if err == nil && f.Has(probe.LayerIP) {
		want := uint8(4)
		if et == probe.EtherTypeIPv6 {
			want = 6
		}
		if f.IP.Version != want {
			f.Layers = 0
			return &probe.DecodeError{Layer: "ip", Field: "version", Err: probe.ErrBadVersion,
				Detail: fmt.Sprintf("the link header says IPv%d, the packet is IPv%d", want, f.IP.Version)}
		}
	}
	return err
}

package probe

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// ICMP message types synprobe sends or reads.
const (
	ICMPv4DestUnreachable uint8 = 3
	ICMPv4SourceQuench    uint8 = 4
	ICMPv4TimeExceeded    uint8 = 11
	ICMPv4ParamProblem    uint8 = 12

	ICMPv6DestUnreachable uint8 = 1
	ICMPv6PacketTooBig    uint8 = 2
	ICMPv6TimeExceeded    uint8 = 3
	ICMPv6ParamProblem    uint8 = 4
)

// ICMPHeaderLen is the length of the ICMP header before the body.
const ICMPHeaderLen = 8

// ICMP is an ICMP (or ICMPv6) message.
type ICMP struct {
	Type, Code uint8
	// Rest is the word after the checksum: unused, the next-hop MTU, or a
	// pointer, depending on the type.
	Rest uint32
	// Body follows the header: for error messages, the quoted datagram.
	Body []byte

	// Decode only.
	Checksum uint16
}

// IsError reports whether the message is an error that quotes a datagram.
func (c *ICMP) IsError(v6 bool) bool {
	if v6 {
		return c.Type < 128
	}
	switch c.Type {
	case ICMPv4DestUnreachable, ICMPv4SourceQuench, ICMPv4TimeExceeded, ICMPv4ParamProblem:
		return true
	}
	return false
}

// Quote is what an ICMP error says about the datagram that caused it: its
// addresses and the first eight bytes of its TCP header (RFC 792: the IP
// header and 64 bits of data).
type Quote struct {
	Protocol uint8
	Src, Dst netip.AddrPort
	Seq      Seq
}

// Quote decodes the datagram an ICMP error quotes. It needs the quoted IP
// header and the first eight bytes of the transport header.
func (c *ICMP) Quote() (Quote, error) {
	var ip IP
	hl, _, _, err := ip.decode(c.Body, 0, 0)
	if err != nil {
		return Quote{}, fmt.Errorf("icmp quote: %w", err)
	}
	if len(c.Body) < hl+8 {
		return Quote{}, fmt.Errorf("icmp quote: %d bytes after the quoted IP header, want 8", len(c.Body)-hl)
	}
	t := c.Body[hl:]
	return Quote{
		Protocol: ip.Protocol,
		Src:      netip.AddrPortFrom(ip.Src, binary.BigEndian.Uint16(t)),
		Dst:      netip.AddrPortFrom(ip.Dst, binary.BigEndian.Uint16(t[2:])),
		Seq:      Seq(binary.BigEndian.Uint32(t[4:])),
	}, nil
}

func (c *ICMP) append(b []byte) []byte {
	b = append(b, c.Type, c.Code, 0, 0)
	b = binary.BigEndian.AppendUint32(b, c.Rest)
	return append(b, c.Body...)
}

func (c *ICMP) decode(data []byte, off int) error {
	if len(data) < ICMPHeaderLen {
		return decodeErr("icmp", "header", off, ErrTruncated, "%d bytes, want at least %d", len(data), ICMPHeaderLen)
	}
	c.Type, c.Code = data[0], data[1]
	c.Checksum = binary.BigEndian.Uint16(data[2:])
	c.Rest = binary.BigEndian.Uint32(data[4:])
	c.Body = data[ICMPHeaderLen:]
	return nil
}

func (c *ICMP) String() string {
	return fmt.Sprintf("icmp type %d code %d", c.Type, c.Code)
}

package probe

import (
	"fmt"
)

// QuoteClass says how much of the offending datagram an ICMP error quotes.
type QuoteClass uint8

const (
	// QuoteNone: nothing of the TCP header could be read.
	QuoteNone QuoteClass = iota
	// QuoteRFC792: the IP header and the first 8 bytes of TCP (ports and
	// sequence number), as RFC 792 asks of a router.
	QuoteRFC792
	// QuotePartial: more than 8 bytes of TCP, but less than the datagram
	// (RFC 1812 routers quote up to 576 bytes; some stop at the header).
	QuotePartial
	// QuoteFull: every byte of the datagram, as its IP total length says.
	QuoteFull
)

func (c QuoteClass) String() string {
	switch c {
	case QuoteRFC792:
		return "rfc792"
	case QuotePartial:
		return "partial"
	case QuoteFull:
		return "full"
	}
	return "none"
}

// Offsets into a quoted TCP header: a field is known when the quote holds
// the bytes up to its end (QuotedPacket.Covers).
const (
	QuotedTCPPorts    = 4
	QuotedTCPSeq      = 8
	QuotedTCPAck      = 12
	QuotedTCPFlags    = 14 // data offset, reserved bits and flags
	QuotedTCPWindow   = 16
	QuotedTCPChecksum = 18
	QuotedTCPUrgent   = 20
)

// QuotedPacket is the datagram an ICMP error quotes, decoded as far as the
// quote goes: what a router saw when it dropped it, which is how trace
// sees the changes boxes make on the path.
type QuotedPacket struct {
	// IP is the quoted IP header. Its TTL is what the router saw (1 for
	// an expired IPv4 packet at a Linux router); TotalLength is what the
	// datagram claimed, which tells how much the quote lacks.
	IP IP
	// TCP holds the fields the quote covers (see Covers); Options hold
	// the options when the whole header is quoted (OptionsComplete), and
	// Payload the quoted data.
	TCP TCP
	// TCPLen is how many bytes of the TCP segment the quote holds.
	TCPLen int
	// OptionsComplete: the whole TCP header, options and all, is quoted.
	OptionsComplete bool
	Class           QuoteClass
	// Checksum is the quoted TCP checksum checked over the quoted bytes:
	// ChecksumUnchecked unless the quote is full.
	Checksum ChecksumStatus
}

// Covers reports whether the quote holds the TCP header up to byte end
// (one of the QuotedTCP offsets).
func (q *QuotedPacket) Covers(end int) bool { return q.TCPLen >= end }

// QuotedPacket decodes the datagram an ICMP error quotes, IP header and as
// much of TCP as is there. It fails only when the quoted IP header cannot
// be read or the quote is not TCP; a short TCP part is reported through
// Class and Covers, never as an error.
func (c *ICMP) QuotedPacket() (QuotedPacket, error) {
	var q QuotedPacket
	hl, packet, truncated, err := q.IP.decode(c.Body, ICMPHeaderLen, 0)
	if err != nil {
		return q, fmt.Errorf("icmp quote: %w", err)
	}
	if q.IP.Protocol != ProtocolTCP {
		return q, fmt.Errorf("icmp quote: protocol %d, not TCP", q.IP.Protocol)
	}
	seg := packet[hl:]
	q.TCPLen = len(seg)
	t := &q.TCP
	// A header cut short is decoded zero-filled, with no options: the
	// fields the quote lacks stay zero and Covers says they are unknown.
	full := len(seg) >= TCPHeaderLen && int(seg[12]>>4)*4 <= len(seg)
	if full {
		_ = t.decode(seg, ICMPHeaderLen+hl) // option damage is in OptionsErr
		q.OptionsComplete = true
	} else {
		var w [TCPHeaderLen]byte
		copy(w[:], seg)
		w[12] = 5<<4 | w[12]&0x0f
		_ = t.decode(w[:], ICMPHeaderLen+hl)
		if len(seg) <= 12 {
			t.DataOffset = 0
		} else {
			t.DataOffset = seg[12] >> 4
		}
		t.Options, t.OptionBytes, t.Payload = nil, nil, nil
	}
	switch {
	case len(seg) > QuotedTCPSeq:
		q.Class = QuotePartial
	case len(seg) == QuotedTCPSeq:
		q.Class = QuoteRFC792
	}
	if !truncated && !q.IP.IsFragment() && full {
		q.Class = QuoteFull
		acc := pseudoHeaderSum(q.IP.Src, q.IP.Dst, ProtocolTCP, len(seg))
		q.Checksum = ChecksumInvalid
		if fold(sum16(seg, acc)) == 0 {
			q.Checksum = ChecksumValid
		}
	}
	return q, nil
}

package probe

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// TCPHeaderLen is the length of a TCP header without options.
const TCPHeaderLen = 20

// Flags are the eight TCP control bits.
type Flags uint8

// TCP control bits (RFC 9293 3.1, RFC 3168).
const (
	FIN Flags = 1 << iota
	SYN
	RST
	PSH
	ACK
	URG
	ECE
	CWR
)

// Has reports whether every bit of g is set in f.
func (f Flags) Has(g Flags) bool { return f&g == g }

// flagChars are tcpdump's and packetdrill's letters, in tcpdump's order.
var flagChars = [8]struct {
	f Flags
	c byte
}{{FIN, 'F'}, {SYN, 'S'}, {RST, 'R'}, {PSH, 'P'}, {ACK, '.'}, {URG, 'U'}, {ECE, 'E'}, {CWR, 'W'}}

// String formats f as tcpdump and packetdrill do: "S", "S.", "F.", "R.",
// "P.", "."; no flags at all is "none".
func (f Flags) String() string {
	if f == 0 {
		return "none"
	}
	var b [8]byte
	n := 0
	for _, fc := range flagChars {
		if f&fc.f != 0 {
			b[n] = fc.c
			n++
		}
	}
	return string(b[:n])
}

// ParseFlags parses the letters String writes ("S.", "FP.", "R", "-" or
// "none" for no flags).
func ParseFlags(s string) (Flags, error) {
	if s == "-" || s == "none" {
		return 0, nil
	}
	var f Flags
	for i := 0; i < len(s); i++ {
		found := false
		for _, fc := range flagChars {
			if s[i] == fc.c {
				if f&fc.f != 0 {
					return 0, fmt.Errorf("flag %q given twice in %q", s[i], s)
				}
				f |= fc.f
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown flag %q in %q (flags are F S R P . U E W)", s[i], s)
		}
	}
	if s == "" {
		return 0, fmt.Errorf("empty flags (write - for none)")
	}
	return f, nil
}

// TCP is a TCP header and its payload.
type TCP struct {
	SrcPort, DstPort uint16
	Seq, Ack         Seq
	// DataOffset is the header length in 32-bit words. On encode, 0 means
	// "just long enough for the options"; a larger value pads the option area
	// with zeros. A smaller one is an error: use an Override to lie.
	DataOffset uint8
	// Reserved holds the four bits between the data offset and the flags
	// (the lowest is AccECN's AE, formerly NS); RFC 9293 says send zero.
	Reserved uint8
	Flags    Flags
	Window   uint16
	Urgent   uint16
	Options  []Option
	Payload  []byte

	// Decode only.
	Checksum    uint16 // as on the wire
	OptionBytes []byte // the option area as on the wire
	// OptionsErr says why the option area could not be parsed to its end;
	// Options holds what came before the damage.
	OptionsErr error
}

// Option returns the first option of kind k.
func (t *TCP) Option(k OptionKind) (Option, bool) {
	for _, o := range t.Options {
		if o.Kind == k && o.Wire == nil {
			return o, true
		}
	}
	return Option{}, false
}

// MSS returns the MSS option's value.
func (t *TCP) MSS() (uint16, bool) {
	o, ok := t.Option(OptionMSS)
	if !ok {
		return 0, false
	}
	return o.MSS()
}

// WScale returns the window scale option's shift.
func (t *TCP) WScale() (uint8, bool) {
	o, ok := t.Option(OptionWScale)
	if !ok {
		return 0, false
	}
	return o.WScale()
}

// Timestamps returns the timestamps option's TSval and TSecr.
func (t *TCP) Timestamps() (val, ecr uint32, ok bool) {
	o, ok := t.Option(OptionTimestamps)
	if !ok {
		return 0, 0, false
	}
	return o.Timestamps()
}

// SACKPermitted reports whether a SACK-permitted option is present.
func (t *TCP) SACKPermitted() bool {
	_, ok := t.Option(OptionSACKPermitted)
	return ok
}

// SeqLen is the sequence space the segment occupies: its payload, plus one
// for SYN and one for FIN.
func (t *TCP) SeqLen() uint32 {
	n := uint32(len(t.Payload))
	if t.Flags&SYN != 0 {
		n++
	}
	if t.Flags&FIN != 0 {
		n++
	}
	return n
}

// End is the sequence number after the segment: Seq + SeqLen.
func (t *TCP) End() Seq { return t.Seq.Add(t.SeqLen()) }

// optionsLen is the number of option bytes before padding.
func (t *TCP) optionsLen() int {
	n := 0
	for _, o := range t.Options {
		n += o.wireLen()
	}
	return n
}

// headerLen is the header length encode writes.
func (t *TCP) headerLen() (int, error) {
	need := TCPHeaderLen + (t.optionsLen()+3)&^3
	if t.DataOffset == 0 {
		return need, nil
	}
	hl := int(t.DataOffset) * 4
	if hl < need || t.DataOffset > 15 {
		return 0, fmt.Errorf("encode tcp: data offset %d (%d bytes) cannot hold the header and %d option bytes", t.DataOffset, hl, t.optionsLen())
	}
	return hl, nil
}

// append writes the header and payload with a zero checksum.
func (t *TCP) append(b []byte, hl int) []byte {
	b = binary.BigEndian.AppendUint16(b, t.SrcPort)
	b = binary.BigEndian.AppendUint16(b, t.DstPort)
	b = binary.BigEndian.AppendUint32(b, uint32(t.Seq))
	b = binary.BigEndian.AppendUint32(b, uint32(t.Ack))
	b = append(b, uint8(hl/4)<<4|t.Reserved&0x0f, uint8(t.Flags))
	b = binary.BigEndian.AppendUint16(b, t.Window)
	b = append(b, 0, 0)
	b = binary.BigEndian.AppendUint16(b, t.Urgent)
	start := len(b)
	for _, o := range t.Options {
		b = o.append(b)
	}
	for len(b)-start < hl-TCPHeaderLen {
		b = append(b, 0)
	}
	return append(b, t.Payload...)
}

// decode fills t from a segment; off is its offset in the frame. The fixed
// header is filled before any error is returned, so a damaged segment can
// still be matched to its connection.
func (t *TCP) decode(data []byte, off int) error {
	if len(data) < TCPHeaderLen {
		return decodeErr("tcp", "header", off, ErrTruncated, "%d bytes, want at least %d", len(data), TCPHeaderLen)
	}
	t.SrcPort = binary.BigEndian.Uint16(data)
	t.DstPort = binary.BigEndian.Uint16(data[2:])
	t.Seq = Seq(binary.BigEndian.Uint32(data[4:]))
	t.Ack = Seq(binary.BigEndian.Uint32(data[8:]))
	t.DataOffset = data[12] >> 4
	t.Reserved = data[12] & 0x0f
	t.Flags = Flags(data[13])
	t.Window = binary.BigEndian.Uint16(data[14:])
	t.Checksum = binary.BigEndian.Uint16(data[16:])
	t.Urgent = binary.BigEndian.Uint16(data[18:])
	t.Options, t.OptionBytes, t.OptionsErr, t.Payload = t.Options[:0], nil, nil, nil
	hl := int(t.DataOffset) * 4
	if hl < TCPHeaderLen {
		return decodeErr("tcp", "data offset", off+12, ErrBadLength, "%d words, below the minimum of 5", t.DataOffset)
	}
	if hl > len(data) {
		return decodeErr("tcp", "data offset", off+12, ErrTruncated, "%d words (%d bytes), but the segment has %d bytes", t.DataOffset, hl, len(data))
	}
	t.OptionBytes = data[TCPHeaderLen:hl]
	t.Options, t.OptionsErr = parseOptions(t.Options, t.OptionBytes, off+TCPHeaderLen)
	t.Payload = data[hl:]
	return nil
}

// String is a one-line summary in packetdrill's notation with absolute
// numbers: "S 8221822:8221822(0) win 8192 <mss 1460>".
func (t *TCP) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %d:%d(%d)", t.Flags, uint32(t.Seq), uint32(t.Seq.Add(uint32(len(t.Payload)))), len(t.Payload))
	if t.Flags&ACK != 0 {
		fmt.Fprintf(&sb, " ack %d", uint32(t.Ack))
	}
	fmt.Fprintf(&sb, " win %d", t.Window)
	if t.Flags&URG != 0 || t.Urgent != 0 {
		fmt.Fprintf(&sb, " urg %d", t.Urgent)
	}
	if len(t.Options) > 0 {
		sb.WriteByte(' ')
		sb.WriteString(FormatOptions(t.Options))
	}
	return sb.String()
}

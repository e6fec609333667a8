package probe

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// OptionKind is a TCP option kind.
type OptionKind uint8

// TCP option kinds (IANA registry).
const (
	OptionEOL           OptionKind = 0
	OptionNOP           OptionKind = 1
	OptionMSS           OptionKind = 2
	OptionWScale        OptionKind = 3
	OptionSACKPermitted OptionKind = 4
	OptionSACK          OptionKind = 5
	OptionTimestamps    OptionKind = 8
	OptionMD5           OptionKind = 19
	OptionUserTimeout   OptionKind = 28
	OptionAuth          OptionKind = 29
	OptionMPTCP         OptionKind = 30
	OptionFastOpen      OptionKind = 34
	// OptionAccECN0 and OptionAccECN1 are the Accurate ECN option
	// (draft-ietf-tcpm-accurate-ecn) in its two field orders: EE0B, ECEB,
	// EE1B for kind 172, EE1B, ECEB, EE0B for kind 174; each field is a
	// 24-bit byte counter.
	OptionAccECN0       OptionKind = 172
	OptionAccECN1       OptionKind = 174
	OptionExperimental1 OptionKind = 253
	OptionExperimental  OptionKind = 254
)

// ExIDFastOpen is the experiment ID of TCP Fast Open in kind 254 (RFC 7413
// section 4.1.1), used before kind 34 was assigned.
const ExIDFastOpen = 0xF989

// MaxWScale is the largest window scale shift RFC 7323 allows.
const MaxWScale = 14

func (k OptionKind) String() string {
	switch k {
	case OptionEOL:
		return "eol"
	case OptionNOP:
		return "nop"
	case OptionMSS:
		return "mss"
	case OptionWScale:
		return "wscale"
	case OptionSACKPermitted:
		return "sackOK"
	case OptionSACK:
		return "sack"
	case OptionTimestamps:
		return "TS"
	case OptionMD5:
		return "md5"
	case OptionUserTimeout:
		return "uto"
	case OptionAuth:
		return "tcp-ao"
	case OptionMPTCP:
		return "mptcp"
	case OptionFastOpen:
		return "FO"
	case OptionAccECN0, OptionAccECN1:
		return "ECN"
	}
	return "kind " + strconv.Itoa(int(k))
}

// Option is one TCP option.
type Option struct {
	Kind OptionKind
	// Data is what follows the kind and length bytes. For EOL it holds the
	// bytes after it to the end of the option area (padding, which RFC 9293
	// says is zero); they are written back verbatim on encode.
	Data []byte
	// Wire, when set, is written on encode instead of Kind and Data: the
	// option's exact bytes, legal or not (a tester must be able to lie).
	// Decoding never sets it.
	Wire []byte
}

// SACKBlock is one block of a SACK option: [Left, Right).
type SACKBlock struct{ Left, Right Seq }

// Option constructors.

// NOPOption returns a no-operation option.
func NOPOption() Option { return Option{Kind: OptionNOP} }

// EOLOption returns an end-of-option-list option.
func EOLOption() Option { return Option{Kind: OptionEOL} }

// MSSOption returns a maximum segment size option.
func MSSOption(mss uint16) Option {
	return Option{Kind: OptionMSS, Data: binary.BigEndian.AppendUint16(nil, mss)}
}

// WScaleOption returns a window scale option.
func WScaleOption(shift uint8) Option { return Option{Kind: OptionWScale, Data: []byte{shift}} }

// SACKPermittedOption returns a SACK-permitted option.
func SACKPermittedOption() Option { return Option{Kind: OptionSACKPermitted} }

// SACKOption returns a SACK option with the given blocks.
func SACKOption(blocks ...SACKBlock) Option {
	d := make([]byte, 0, 8*len(blocks))
	for _, b := range blocks {
		d = binary.BigEndian.AppendUint32(d, uint32(b.Left))
		d = binary.BigEndian.AppendUint32(d, uint32(b.Right))
	}
	return Option{Kind: OptionSACK, Data: d}
}

// TimestampsOption returns a timestamps option (RFC 7323).
func TimestampsOption(val, ecr uint32) Option {
	d := binary.BigEndian.AppendUint32(make([]byte, 0, 8), val)
	return Option{Kind: OptionTimestamps, Data: binary.BigEndian.AppendUint32(d, ecr)}
}

// FastOpenOption returns a Fast Open option (kind 34) carrying cookie; an
// empty cookie is a cookie request.
func FastOpenOption(cookie []byte) Option {
	return Option{Kind: OptionFastOpen, Data: append([]byte(nil), cookie...)}
}

// ExpFastOpenOption returns the experimental Fast Open option (kind 254,
// ExID 0xF989) carrying cookie.
func ExpFastOpenOption(cookie []byte) Option {
	d := binary.BigEndian.AppendUint16(nil, ExIDFastOpen)
	return Option{Kind: OptionExperimental, Data: append(d, cookie...)}
}

// AccECN field names as packetdrill writes them: bytes received with
// ECT(0), CE and ECT(1).
const (
	AccECNE0B = "e0b"
	AccECNCEB = "ceb"
	AccECNE1B = "e1b"
)

// AccECNOption returns an Accurate ECN option with the counters given, in
// order: 1 to 3 of them. firstE1B chooses kind 174 (EE1B first) over 172
// (EE0B first); the second counter is always ECEB.
func AccECNOption(firstE1B bool, counters ...uint32) Option {
	kind := OptionAccECN0
	if firstE1B {
		kind = OptionAccECN1
	}
	d := make([]byte, 0, 3*len(counters))
	for _, c := range counters {
		d = append(d, byte(c>>16), byte(c>>8), byte(c))
	}
	return Option{Kind: kind, Data: d}
}

// AccECNFields formats an Accurate ECN option's counters the way
// packetdrill writes them ("e0b 1 ceb 0 e1b 0"); ok is false when o is
// not one.
func (o Option) AccECNFields() (s string, ok bool) {
	if o.Kind != OptionAccECN0 && o.Kind != OptionAccECN1 || len(o.Data)%3 != 0 || len(o.Data) > 9 || o.Wire != nil {
		return "", false
	}
	names := [3]string{AccECNE0B, AccECNCEB, AccECNE1B}
	if o.Kind == OptionAccECN1 {
		names[0], names[2] = AccECNE1B, AccECNE0B
	}
	var sb strings.Builder
	for i := 0; i < len(o.Data)/3; i++ {
		if i > 0 {
			sb.WriteByte(' ')
		}
		v := uint32(o.Data[3*i])<<16 | uint32(o.Data[3*i+1])<<8 | uint32(o.Data[3*i+2])
		sb.WriteString(names[i] + " " + strconv.FormatUint(uint64(v), 10))
	}
	return sb.String(), true
}

// RawOption returns an option written exactly as wire on encode.
func RawOption(wire []byte) Option {
	o := Option{Wire: append([]byte(nil), wire...)}
	if len(wire) > 0 {
		o.Kind = OptionKind(wire[0])
	}
	return o
}

// Accessors. Each reports ok=false when the option is of another kind or its
// length is wrong for its kind.

// MSS returns the value of an MSS option.
func (o Option) MSS() (uint16, bool) {
	if o.Kind != OptionMSS || len(o.Data) != 2 || o.Wire != nil {
		return 0, false
	}
	return binary.BigEndian.Uint16(o.Data), true
}

// WScale returns the shift of a window scale option.
func (o Option) WScale() (uint8, bool) {
	if o.Kind != OptionWScale || len(o.Data) != 1 || o.Wire != nil {
		return 0, false
	}
	return o.Data[0], true
}

// Timestamps returns TSval and TSecr of a timestamps option.
func (o Option) Timestamps() (val, ecr uint32, ok bool) {
	if o.Kind != OptionTimestamps || len(o.Data) != 8 || o.Wire != nil {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(o.Data), binary.BigEndian.Uint32(o.Data[4:]), true
}

// NumSACKBlocks returns how many blocks a well-formed SACK option holds.
func (o Option) NumSACKBlocks() int {
	if o.Kind != OptionSACK || len(o.Data)%8 != 0 || o.Wire != nil {
		return 0
	}
	return len(o.Data) / 8
}

// SACKBlock returns block i of a SACK option (see NumSACKBlocks).
func (o Option) SACKBlock(i int) SACKBlock {
	d := o.Data[8*i:]
	return SACKBlock{Seq(binary.BigEndian.Uint32(d)), Seq(binary.BigEndian.Uint32(d[4:]))}
}

// FastOpenCookie returns the cookie of a Fast Open option, kind 34 or the
// experimental kind 254 with ExID 0xF989. An empty cookie is a request.
func (o Option) FastOpenCookie() (cookie []byte, ok bool) {
	if o.Wire != nil {
		return nil, false
	}
	switch {
	case o.Kind == OptionFastOpen:
		return o.Data, true
	case o.Kind == OptionExperimental && len(o.Data) >= 2 && binary.BigEndian.Uint16(o.Data) == ExIDFastOpen:
		return o.Data[2:], true
	}
	return nil, false
}

// IsExpFastOpen reports whether o is the experimental Fast Open option.
func (o Option) IsExpFastOpen() bool {
	return o.Kind == OptionExperimental && len(o.Data) >= 2 && binary.BigEndian.Uint16(o.Data) == ExIDFastOpen
}

// Validate checks the option's length against its kind (RFC 9293 3.1,
// RFC 7323, RFC 2018, RFC 7413).
func (o Option) Validate() error {
	if o.Wire != nil {
		return nil
	}
	n := len(o.Data) + 2
	bad := func(want string) error {
		return fmt.Errorf("%s option with length %d, want %s", o.Kind, n, want)
	}
	switch o.Kind {
	case OptionEOL, OptionNOP:
	case OptionMSS:
		if n != 4 {
			return bad("4")
		}
	case OptionWScale:
		if n != 3 {
			return bad("3")
		}
	case OptionSACKPermitted:
		if n != 2 {
			return bad("2")
		}
	case OptionTimestamps:
		if n != 10 {
			return bad("10")
		}
	case OptionSACK:
		if n < 10 || n > 34 || (n-2)%8 != 0 {
			return bad("2 + 8 per block, 1 to 4 blocks")
		}
	case OptionFastOpen:
		if c := len(o.Data); c != 0 && (c < 4 || c > 16 || c%2 != 0) {
			return bad("2 (cookie request) or 6 to 18 and even")
		}
	case OptionAccECN0, OptionAccECN1:
		if n != 2 && n != 5 && n != 8 && n != 11 {
			return bad("2, 5, 8 or 11 (up to three 3-byte counters)")
		}
	case OptionExperimental, OptionExperimental1:
		if n < 4 {
			return bad("at least 4 (kind, length, ExID)")
		}
		if o.IsExpFastOpen() {
			if c := len(o.Data) - 2; c != 0 && (c < 4 || c > 16 || c%2 != 0) {
				return bad("4 (cookie request) or 8 to 20 and even")
			}
		}
	}
	return nil
}

// wireLen is the number of bytes encode writes for o.
func (o Option) wireLen() int {
	switch {
	case o.Wire != nil:
		return len(o.Wire)
	case o.Kind == OptionEOL:
		return 1 + len(o.Data)
	case o.Kind == OptionNOP:
		return 1
	}
	return 2 + len(o.Data)
}

// Bytes returns the option as encode writes it.
func (o Option) Bytes() []byte { return o.append(make([]byte, 0, o.wireLen())) }

func (o Option) append(b []byte) []byte {
	switch {
	case o.Wire != nil:
		return append(b, o.Wire...)
	case o.Kind == OptionEOL:
		return append(append(b, 0), o.Data...)
	case o.Kind == OptionNOP:
		return append(b, 1)
	}
	return append(append(b, byte(o.Kind), byte(2+len(o.Data))), o.Data...)
}

// String formats o as packetdrill writes it: "mss 1460", "sackOK",
// "TS val 1 ecr 0", "wscale 7", "sack 1:2 3:4", "FO abcd", "FOEXP abcd";
// other kinds as "kind 99 len 4 0000" (data in hex).
func (o Option) String() string {
	if o.Wire != nil {
		return "raw " + hex.EncodeToString(o.Wire)
	}
	if o.Kind == OptionEOL || o.Kind == OptionNOP {
		return o.Kind.String()
	}
	if v, ok := o.MSS(); ok {
		return "mss " + strconv.Itoa(int(v))
	}
	if v, ok := o.WScale(); ok {
		return "wscale " + strconv.Itoa(int(v))
	}
	if o.Kind == OptionSACKPermitted && len(o.Data) == 0 {
		return "sackOK"
	}
	if v, e, ok := o.Timestamps(); ok {
		return fmt.Sprintf("TS val %d ecr %d", v, e)
	}
	if n := o.NumSACKBlocks(); n > 0 {
		var sb strings.Builder
		sb.WriteString("sack")
		for i := 0; i < n; i++ {
			b := o.SACKBlock(i)
			fmt.Fprintf(&sb, " %d:%d", uint32(b.Left), uint32(b.Right))
		}
		return sb.String()
	}
	if f, ok := o.AccECNFields(); ok && f != "" {
		return "ECN " + f
	}
	if c, ok := o.FastOpenCookie(); ok {
		name := "FO"
		if o.Kind != OptionFastOpen {
			name = "FOEXP"
		}
		if len(c) == 0 {
			return name
		}
		return name + " " + hex.EncodeToString(c)
	}
	s := fmt.Sprintf("kind %d len %d", uint8(o.Kind), len(o.Data)+2)
	if len(o.Data) > 0 {
		s += " " + hex.EncodeToString(o.Data)
	}
	return s
}

// FormatOptions formats a list the way packetdrill does: "<mss 1460,nop,wscale 7>".
func FormatOptions(opts []Option) string {
	var sb strings.Builder
	sb.WriteByte('<')
	for i, o := range opts {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(o.String())
	}
	sb.WriteByte('>')
	return sb.String()
}

// parseOptions appends the options in area to opts. off is the area's offset
// in the frame, for errors. Parsing stops at the first structural problem
// (a length below 2 or past the end), which is returned; the options before
// it are kept.
func parseOptions(opts []Option, area []byte, off int) ([]Option, error) {
	for i := 0; i < len(area); {
		k := OptionKind(area[i])
		switch k {
		case OptionEOL:
			return append(opts, Option{Kind: OptionEOL, Data: area[i+1:]}), nil
		case OptionNOP:
			opts = append(opts, Option{Kind: OptionNOP})
			i++
			continue
		}
		if i+1 >= len(area) {
			return opts, &OptionError{Kind: k, Offset: off + i, Reason: "length byte missing at the end of the option area"}
		}
		n := int(area[i+1])
		if n < 2 {
			return opts, &OptionError{Kind: k, Offset: off + i, Reason: fmt.Sprintf("length %d, below the minimum of 2", n)}
		}
		if i+n > len(area) {
			return opts, &OptionError{Kind: k, Offset: off + i, Reason: fmt.Sprintf("length %d runs past the end of the option area (%d bytes left)", n, len(area)-i)}
		}
		opts = append(opts, Option{Kind: k, Data: area[i+2 : i+n]})
		i += n
	}
	return opts, nil
}

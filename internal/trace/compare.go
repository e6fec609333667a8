package trace

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"

	"synprobe/probe"
)

// Change kinds (Change.Kind).
const (
	Modified    = "modified"
	Removed     = "removed"
	NOPReplaced = "nop-replaced"
	Added       = "added"
	Reordered   = "reordered"
	Translated  = "translated"
)

// Compare lists how a quoted packet differs from the probe as sent, field by
// field and option by option, for the fields the quote covers. The TTL and
// the IP header checksum are expected to differ and are never reported;
// the quoted TTL is checked by QuotedTTLNote. sentSumValid says whether the
// probe's TCP checksum was valid (badsum sends a wrong one on purpose).
func Compare(sent *probe.Frame, sentSumValid bool, q *probe.QuotedPacket) []Change {
	var cs []Change
	add := func(field, kind string, s, g any) {
		cs = append(cs, Change{Field: field, Sent: fmt.Sprint(s), Got: fmt.Sprint(g), Kind: kind})
	}
	si, qi := &sent.IP, &q.IP
	v4 := si.Src.Is4()
	if si.TOS>>2 != qi.TOS>>2 {
		add("ip.dscp", Modified, dscpString(si.TOS), dscpString(qi.TOS))
	}
	if si.ECN() != qi.ECN() {
		add("ip.ecn", Modified, ecnString(si.ECN()), ecnString(qi.ECN()))
	}
	sentLen := sentTotalLength(sent)
	if qi.TotalLength != sentLen {
		add("ip.length", Modified, sentLen, qi.TotalLength)
	}
	if v4 {
		if si.ID != qi.ID {
			add("ip.id", Modified, fmt.Sprintf("0x%04x", si.ID), fmt.Sprintf("0x%04x", qi.ID))
		}
		if si.DF() != qi.DF() {
			add("ip.df", Modified, si.DF(), qi.DF())
		}
		if si.Flags&probe.IPFlagMF != qi.Flags&probe.IPFlagMF || qi.FragOffset != 0 {
			add("ip.fragment", Modified, "not a fragment", fmt.Sprintf("mf %v offset %d", qi.Flags&probe.IPFlagMF != 0, qi.FragOffset))
		}
	} else if si.FlowLabel != qi.FlowLabel {
		add("ip.flowlabel", Modified, fmt.Sprintf("0x%05x", si.FlowLabel), fmt.Sprintf("0x%05x", qi.FlowLabel))
	}
	if si.Src != qi.Src {
		add("ip.src", Translated, si.Src, qi.Src)
	}
	if si.Dst != qi.Dst {
		add("ip.dst", Translated, si.Dst, qi.Dst)
	}
	st, qt := &sent.TCP, &q.TCP
	if q.Covers(probe.QuotedTCPPorts) {
		if st.SrcPort != qt.SrcPort {
			add("tcp.sport", Translated, st.SrcPort, qt.SrcPort)
		}
		if st.DstPort != qt.DstPort {
			add("tcp.dport", Translated, st.DstPort, qt.DstPort)
		}
	}
	if q.Covers(probe.QuotedTCPSeq) && st.Seq != qt.Seq {
		add("tcp.seq", Translated, uint32(st.Seq), uint32(qt.Seq))
	}
	if q.Covers(probe.QuotedTCPAck) && st.Ack != qt.Ack {
		add("tcp.ack", Translated, uint32(st.Ack), uint32(qt.Ack))
	}
	if q.Covers(probe.QuotedTCPFlags) {
		if sd := sentDataOffset(sent); sd != int(qt.DataOffset) {
			add("tcp.doff", Modified, sd, qt.DataOffset)
		}
		if st.Reserved != qt.Reserved {
			add("tcp.reserved", Modified, st.Reserved, qt.Reserved)
		}
		for _, f := range flagNames {
			if st.Flags&f.flag != qt.Flags&f.flag {
				add("tcp.flags."+f.name, Modified, onOff(st.Flags&f.flag != 0), onOff(qt.Flags&f.flag != 0))
			}
		}
	}
	if q.Covers(probe.QuotedTCPWindow) && st.Window != qt.Window {
		add("tcp.window", Modified, st.Window, qt.Window)
	}
	if q.Covers(probe.QuotedTCPUrgent) && st.Urgent != qt.Urgent {
		add("tcp.urgent", Modified, st.Urgent, qt.Urgent)
	}
	if q.OptionsComplete {
		cs = append(cs, CompareOptions(sentOptionBytes(sent), qt.OptionBytes)...)
	}
	if q.Class == probe.QuoteFull {
		if !bytes.Equal(st.Payload, qt.Payload) {
			switch {
			case len(st.Payload) != len(qt.Payload):
				add("tcp.payload", Modified, fmt.Sprintf("%d bytes", len(st.Payload)), fmt.Sprintf("%d bytes", len(qt.Payload)))
			default:
				add("tcp.payload", Modified, hex.EncodeToString(st.Payload), hex.EncodeToString(qt.Payload))
			}
		}
		valid := q.Checksum == probe.ChecksumValid
		if valid != sentSumValid {
			add("tcp.checksum", Modified, validString(sentSumValid), validString(valid))
		}
	}
	return cs
}

// QuotedTTLNote says what is wrong with a quoted TTL (hop limit): a router
// quotes the packet it dropped, which arrived with TTL 1 (some stacks quote
// it decremented, 0). Anything else is a hop that decrements by more than
// one, or a hidden hop. "" when the TTL is as expected.
func QuotedTTLNote(q *probe.QuotedPacket) string {
	if q.IP.TTL <= 1 {
		return ""
	}
	return fmt.Sprintf("quoted TTL %d, want 1: a hop decrements by more than one, or a hop before it is hidden", q.IP.TTL)
}

var flagNames = []struct {
	flag probe.Flags
	name string
}{
	{probe.FIN, "fin"}, {probe.SYN, "syn"}, {probe.RST, "rst"}, {probe.PSH, "psh"},
	{probe.ACK, "ack"}, {probe.URG, "urg"}, {probe.ECE, "ece"}, {probe.CWR, "cwr"},
}

// opt is one option of an option area, with where it sits.
type opt struct {
	kind probe.OptionKind
	off  int
	wire []byte // kind, length and data
}

// splitOptions cuts an option area into options (NOP and EOL included, EOL
// taking the rest). Damage ends the list.
func splitOptions(area []byte) []opt {
	var out []opt
	for i := 0; i < len(area); {
		k := probe.OptionKind(area[i])
		switch k {
		case probe.OptionEOL:
			return append(out, opt{k, i, area[i:]})
		case probe.OptionNOP:
			out = append(out, opt{k, i, area[i : i+1]})
			i++
			continue
		}
		if i+1 >= len(area) || area[i+1] < 2 || i+int(area[i+1]) > len(area) {
			return out
		}
		n := int(area[i+1])
		out = append(out, opt{k, i, area[i : i+n]})
		i += n
	}
	return out
}

// CompareOptions compares two option areas option by option: each option
// sent is found in the quote (modified when its value differs), replaced
// by NOPs (its bytes became kind 1, TCPOPTSTRIP's signature) or removed;
// options in the quote that were not sent are added; the same options in
// another order are reordered.
func CompareOptions(sent, got []byte) []Change {
	var cs []Change
	so, gotOpts := splitOptions(sent), splitOptions(got)
	used := make([]bool, len(gotOpts))
	var sentOrder, gotOrder []probe.OptionKind
	for _, s := range so {
		if s.kind == probe.OptionNOP || s.kind == probe.OptionEOL {
			continue
		}
		field := OptionField(s.kind)
		j := -1
		for i, g := range gotOpts {
			if !used[i] && g.kind == s.kind {
				j = i
				break
			}
		}
		if j >= 0 {
			used[j] = true
			sentOrder = append(sentOrder, s.kind)
			if !bytes.Equal(s.wire, gotOpts[j].wire) {
				cs = append(cs, Change{Field: field, Sent: optionValue(s.wire), Got: optionValue(gotOpts[j].wire), Kind: Modified})
			}
			continue
		}
		kind := Removed
		if s.off+len(s.wire) <= len(got) && allNOP(got[s.off:s.off+len(s.wire)]) {
			kind = NOPReplaced
		}
		cs = append(cs, Change{Field: field, Sent: optionValue(s.wire), Got: "", Kind: kind})
	}
	for i, g := range gotOpts {
		if g.kind == probe.OptionNOP || g.kind == probe.OptionEOL {
			continue
		}
		if used[i] {
			gotOrder = append(gotOrder, g.kind)
			continue
		}
		cs = append(cs, Change{Field: OptionField(g.kind), Sent: "", Got: optionValue(g.wire), Kind: Added})
	}
	for i := range sentOrder {
		if sentOrder[i] != gotOrder[i] {
			cs = append(cs, Change{Field: "tcp.options", Sent: kindsString(sentOrder), Got: kindsString(gotOrder), Kind: Reordered})
			break
		}
	}
	return cs
}

// OptionField names an option in a change: tcp.option.mss, .sack (SACK
// permitted), .sack-blocks, .ts, .ws, .tfo, or .kind-N for the others.
func OptionField(k probe.OptionKind) string {
	switch k {
	case probe.OptionMSS:
		return "tcp.option.mss"
	case probe.OptionSACKPermitted:
		return "tcp.option.sack"
	case probe.OptionSACK:
		return "tcp.option.sack-blocks"
	case probe.OptionTimestamps:
		return "tcp.option.ts"
	case probe.OptionWScale:
		return "tcp.option.ws"
	case probe.OptionFastOpen:
		return "tcp.option.tfo"
	}
	return "tcp.option.kind-" + strconv.Itoa(int(k))
}

func optionValue(wire []byte) string {
	var o probe.Option
	o.Kind = probe.OptionKind(wire[0])
	if len(wire) >= 2 {
		o.Data = wire[2:]
	}
	return o.String()
}

func kindsString(ks []probe.OptionKind) string {
	var b bytes.Buffer
	for i, k := range ks {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k.String())
	}
	return b.String()
}

func allNOP(b []byte) bool {
	for _, c := range b {
		if c != byte(probe.OptionNOP) {
			return false
		}
	}
	return len(b) > 0
}

func onOff(b bool) string {
	if b {
		return "set"
	}
	return "clear"
}

func validString(b bool) string {
	if b {
		return "valid"
	}
	return "invalid"
}

func dscpString(tos uint8) string { return fmt.Sprintf("0x%02x", tos>>2) }

func ecnString(e uint8) string {
	switch e {
	case probe.ECNECT0:
		return "ect0"
	case probe.ECNECT1:
		return "ect1"
	case probe.ECNCE:
		return "ce"
	}
	return "not-ect"
}

// sentTotalLength is the IP total length of the probe as sent (IPv6: the
// payload length plus the header, as QuotedPacket reports it).
func sentTotalLength(f *probe.Frame) int {
	if f.IP.TotalLength != 0 {
		return f.IP.TotalLength
	}
	hl := probe.IPv4HeaderLen
	if f.IP.Src.Is6() {
		hl = probe.IPv6HeaderLen
	}
	return hl + sentDataOffset(f)*4 + len(f.TCP.Payload)
}

// sentDataOffset is the data offset of the probe as sent, in words.
func sentDataOffset(f *probe.Frame) int {
	if f.TCP.DataOffset != 0 {
		return int(f.TCP.DataOffset)
	}
	return (probe.TCPHeaderLen + len(sentOptionBytes(f))) / 4
}

// sentOptionBytes is the option area as sent: as decoded from the wire
// image, or encoded from the options.
func sentOptionBytes(f *probe.Frame) []byte {
	if f.TCP.OptionBytes != nil {
		return f.TCP.OptionBytes
	}
	var b []byte
	for _, o := range f.TCP.Options {
		b = append(b, o.Bytes()...)
	}
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

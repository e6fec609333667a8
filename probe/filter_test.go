package probe

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/bpf"
)

// filterFamily holds the addresses of one IP version for the filter tests.
type filterFamily struct {
	name                         string
	local, remote, other, router netip.Addr
	icmp                         uint8   // ICMP or ICMPv6
	errorTypes                   []uint8 // ICMP errors the filter passes
	otherTypes                   []uint8 // ICMP messages it rejects
}

var (
	filterV4 = filterFamily{
		name:       "v4",
		local:      netip.MustParseAddr("192.0.2.1"),
		remote:     netip.MustParseAddr("192.0.2.2"),
		other:      netip.MustParseAddr("192.0.2.3"),
		router:     netip.MustParseAddr("198.51.100.1"),
		icmp:       ProtocolICMP,
		errorTypes: []uint8{ICMPv4DestUnreachable, ICMPv4SourceQuench, ICMPv4TimeExceeded, ICMPv4ParamProblem},
		otherTypes: []uint8{0, 5, 8, 13},
	}
	filterV6 = filterFamily{
		name:       "v6",
		local:      netip.MustParseAddr("2001:db8::1"),
		remote:     netip.MustParseAddr("2001:db8::2"),
		other:      netip.MustParseAddr("2001:db8::3"),
		router:     netip.MustParseAddr("2001:db8:ffff::1"),
		icmp:       ProtocolICMPv6,
		errorTypes: []uint8{ICMPv6DestUnreachable, ICMPv6PacketTooBig, ICMPv6TimeExceeded, ICMPv6ParamProblem},
		otherTypes: []uint8{0, 5, 128, 129, 135, 136},
	}
)

var filterPorts = PortRange{Lo: 40000, Hi: 40009}

// filterFrame is a frame under construction; edit functions change it before
// it is encoded.
type filterEdit func(*Frame)

func withIPOptions(opts ...byte) filterEdit { return func(f *Frame) { f.IP.Options = opts } }
func withProtocol(p uint8) filterEdit       { return func(f *Frame) { f.IP.Protocol = p } }
func withFragment(flags IPFlags, off uint16) filterEdit {
	return func(f *Frame) { f.IP.Flags, f.IP.FragOffset = flags, off }
}
func withVLAN(id uint16) filterEdit {
	return func(f *Frame) { f.Ethernet.Tagged, f.Ethernet.VLAN = true, id }
}

func tcpFrame(t testing.TB, src, dst netip.Addr, sport, dport uint16, edits ...filterEdit) []byte {
	t.Helper()
	f := &Frame{
		Ethernet: Ethernet{Dst: MAC{2, 0, 0, 0, 0, 2}, Src: MAC{2, 0, 0, 0, 0, 1}},
		IP:       IP{Src: src, Dst: dst},
		TCP:      TCP{SrcPort: sport, DstPort: dport, Seq: 1000, Flags: SYN, Window: 65535, Options: []Option{MSSOption(1460)}},
	}
	for _, e := range edits {
		e(f)
	}
	b, err := f.Encode()
	if err != nil {
		t.Fatalf("encode %v: %v", f, err)
	}
	return b
}

// quote is the start of a packet as an ICMP error quotes it: the IP header
// and the first eight bytes of the transport header.
func quote(t testing.TB, src, dst netip.Addr, sport, dport uint16, edits ...filterEdit) []byte {
	t.Helper()
	f := &Frame{
		IP:  IP{Src: src, Dst: dst},
		TCP: TCP{SrcPort: sport, DstPort: dport, Seq: 1000, Flags: SYN, Window: 65535},
	}
	for _, e := range edits {
		e(f)
	}
	b, err := f.EncodeIP()
	if err != nil {
		t.Fatalf("encode quote %v: %v", f, err)
	}
	return b[:f.IP.headerLen()+8]
}

func icmpFrame(t testing.TB, fam filterFamily, typ uint8, body []byte, edits ...filterEdit) []byte {
	t.Helper()
	f := &Frame{
		Ethernet: Ethernet{Dst: MAC{2, 0, 0, 0, 0, 1}, Src: MAC{2, 0, 0, 0, 0, 2}},
		IP:       IP{Src: fam.router, Dst: fam.local, Protocol: fam.icmp},
		ICMP:     ICMP{Type: typ, Body: body},
	}
	for _, e := range edits {
		e(f)
	}
	b, err := f.Encode()
	if err != nil {
		t.Fatalf("encode %v: %v", f, err)
	}
	return b
}

// withHopByHop inserts an empty IPv6 hop-by-hop options header before the
// transport header (the codec does not write extension headers).
func withHopByHop(frame []byte) []byte {
	const ip = EthernetHeaderLen
	out := append([]byte(nil), frame[:ip+IPv6HeaderLen]...)
	next := out[ip+6]
	out[ip+6] = ipv6HopByHop
	binary.BigEndian.PutUint16(out[ip+4:], binary.BigEndian.Uint16(out[ip+4:])+8)
	out = append(out, next, 0, 1, 4, 0, 0, 0, 0) // PadN of 4 bytes
	return append(out, frame[ip+IPv6HeaderLen:]...)
}

type filterCase struct {
	name  string
	frame []byte
	pass  bool
}

func filterCases(t testing.TB, fam filterFamily) []filterCase {
	local, remote, other := fam.local, fam.remote, fam.other
	lo, hi := filterPorts.Lo, filterPorts.Hi
	ourQuote := quote(t, local, remote, lo+3, 80)
	cases := []filterCase{
		{"arriving to lo", tcpFrame(t, remote, local, 80, lo), true},
		{"arriving to hi", tcpFrame(t, remote, local, 80, hi), true},
		{"arriving to lo-1", tcpFrame(t, remote, local, 80, lo-1), false},
		{"arriving to hi+1", tcpFrame(t, remote, local, 80, hi+1), false},
		{"leaving from lo", tcpFrame(t, local, remote, lo, 80), true},
		{"leaving from hi", tcpFrame(t, local, remote, hi, 80), true},
		{"leaving from lo-1", tcpFrame(t, local, remote, lo-1, 80), false},
		{"leaving from hi+1", tcpFrame(t, local, remote, hi+1, 80), false},
		// The port in range must be the local side's.
		{"arriving from a port in range to one outside", tcpFrame(t, remote, local, lo, 80), false},
		{"leaving to a port in range from one outside", tcpFrame(t, local, remote, 80, lo), false},
		{"arriving from another host", tcpFrame(t, other, local, 80, lo), false},
		{"leaving to another host", tcpFrame(t, local, other, lo, 80), false},
		{"between two other hosts", tcpFrame(t, other, fam.router, lo, lo), false},
		{"leaving from another local address", tcpFrame(t, other, remote, lo, 80), true},
		{"udp arriving", tcpFrame(t, remote, local, 80, lo, withProtocol(ProtocolUDP)), false},
		{"udp leaving", tcpFrame(t, local, remote, lo, 80, withProtocol(ProtocolUDP)), false},
		{"vlan tagged", tcpFrame(t, remote, local, 80, lo, withVLAN(7)), false},

		{"icmp error quoting another source port", icmpFrame(t, fam, fam.errorTypes[0], quote(t, local, remote, hi+1, 80)), false},
		{"icmp error quoting another remote", icmpFrame(t, fam, fam.errorTypes[0], quote(t, local, other, lo, 80)), false},
		{"icmp error quoting a udp flow", icmpFrame(t, fam, fam.errorTypes[0], quote(t, local, remote, lo, 80, withProtocol(ProtocolUDP))), false},
		{"icmp error quoting the reverse direction", icmpFrame(t, fam, fam.errorTypes[0], quote(t, remote, local, 80, lo)), false},
		{"icmp error quoting the whole packet", icmpFrame(t, fam, fam.errorTypes[0], tcpFrame(t, local, remote, lo, 80)[EthernetHeaderLen:]), true},
		{"icmp error from the target itself", icmpFrame(t, fam, fam.errorTypes[0], ourQuote, func(f *Frame) { f.IP.Src = remote }), true},
		{"icmp error quote cut before the port", icmpFrame(t, fam, fam.errorTypes[0], ourQuote[:len(ourQuote)-7]), false},
		{"icmp error with a quote of another version", icmpFrame(t, fam, fam.errorTypes[0], quote(t, otherFamily(fam).local, otherFamily(fam).remote, lo, 80)), false},
		{"icmp error without a quote", icmpFrame(t, fam, fam.errorTypes[0], nil), false},

		{"truncated ethernet", tcpFrame(t, remote, local, 80, lo)[:13], false},
		{"truncated ip header", tcpFrame(t, remote, local, 80, lo)[:EthernetHeaderLen+8], false},
		{"empty", nil, false},
		{"arp", arpFrame(fam.local, fam.remote), false},
		{"other ip version", tcpFrame(t, otherFamily(fam).remote, otherFamily(fam).local, 80, lo), false},
	}
	for _, typ := range fam.errorTypes {
		cases = append(cases, filterCase{"icmp error type " + strconv.Itoa(int(typ)) + " quoting our flow", icmpFrame(t, fam, typ, ourQuote), true})
	}
	for _, typ := range fam.otherTypes {
		cases = append(cases, filterCase{"icmp type " + strconv.Itoa(int(typ)) + " quoting our flow", icmpFrame(t, fam, typ, ourQuote), false})
	}
	// A frame cut just before the last byte of the port the filter reads.
	arriving := tcpFrame(t, remote, local, 80, lo)
	leaving := tcpFrame(t, local, remote, lo, 80)
	l4 := EthernetHeaderLen + IPv4HeaderLen
	if fam.remote.Is6() {
		l4 = EthernetHeaderLen + IPv6HeaderLen
	}
	cases = append(cases,
		filterCase{"arriving cut in the destination port", arriving[:l4+3], false},
		filterCase{"arriving cut after the destination port", arriving[:l4+4], true},
		filterCase{"leaving cut in the source port", leaving[:l4+1], false},
	)

	if fam.remote.Is4() {
		// Option bytes that look like a port in range (or out of it) prove
		// that the header length is honoured.
		inRange := []byte{byte(lo >> 8), byte(lo), byte(lo >> 8), byte(lo)}
		outside := []byte{0, 80, 0, 80, 1, 1, 1, 1}
		cases = append(cases,
			filterCase{"arriving with ip options", tcpFrame(t, remote, local, 80, lo, withIPOptions(outside...)), true},
			filterCase{"arriving with ip options, port outside", tcpFrame(t, remote, local, 80, hi+1, withIPOptions(inRange...)), false},
			filterCase{"leaving with ip options", tcpFrame(t, local, remote, hi, 80, withIPOptions(outside...)), true},
			filterCase{"leaving with 40 bytes of ip options", tcpFrame(t, local, remote, hi, 80, withIPOptions(make([]byte, 40)...)), true},
			filterCase{"leaving with ip options, port outside", tcpFrame(t, local, remote, hi+1, 80, withIPOptions(inRange...)), false},
			filterCase{"icmp with outer ip options", icmpFrame(t, fam, ICMPv4DestUnreachable, ourQuote, withIPOptions(inRange...)), true},
			filterCase{"icmp with quoted ip options", icmpFrame(t, fam, ICMPv4TimeExceeded, quote(t, local, remote, lo, 80, withIPOptions(outside...))), true},
			filterCase{"icmp with quoted ip options, port outside", icmpFrame(t, fam, ICMPv4TimeExceeded, quote(t, local, remote, hi+1, 80, withIPOptions(inRange...))), false},
			filterCase{"icmp with ip options outside and inside", icmpFrame(t, fam, ICMPv4ParamProblem, quote(t, local, remote, hi, 80, withIPOptions(make([]byte, 12)...)), withIPOptions(make([]byte, 36)...)), true},
			filterCase{"icmp with ip options outside and inside, port outside", icmpFrame(t, fam, ICMPv4ParamProblem, quote(t, local, remote, lo-1, 80, withIPOptions(inRange...)), withIPOptions(inRange...)), false},
			filterCase{"first fragment", tcpFrame(t, remote, local, 80, lo, withFragment(IPFlagMF, 0)), true},
			filterCase{"later fragment", tcpFrame(t, remote, local, 80, lo, withFragment(IPFlagMF, 1)), false},
			filterCase{"last fragment", tcpFrame(t, remote, local, 80, lo, withFragment(0, 185)), false},
			filterCase{"icmp error that is a later fragment", icmpFrame(t, fam, ICMPv4DestUnreachable, ourQuote, withFragment(0, 3)), false},
			filterCase{"icmp error quoting a later fragment", icmpFrame(t, fam, ICMPv4DestUnreachable, quote(t, local, remote, lo, 80, withFragment(0, 3))), false},
			filterCase{"header length below 20", mustEncode(t, remote, local, 80, lo, Override{Field: FieldIPHeaderLength, Value: 4}), false},
			filterCase{"version 6 in an IPv4 frame", mustEncode(t, remote, local, 80, lo, Override{Field: FieldIPVersion, Value: 6}), false},
			filterCase{"icmp error quoting a header length below 20", icmpFrame(t, fam, ICMPv4DestUnreachable, setByte(ourQuote, 0, 0x44)), false},
			filterCase{"icmp error quoting version 6", icmpFrame(t, fam, ICMPv4DestUnreachable, setByte(ourQuote, 0, 0x65)), false},
			filterCase{"outer ip options cut short", tcpFrame(t, remote, local, 80, lo, withIPOptions(make([]byte, 40)...))[:EthernetHeaderLen+40], false},
		)
	} else {
		cases = append(cases,
			filterCase{"arriving after a hop-by-hop header", withHopByHop(tcpFrame(t, remote, local, 80, lo)), false},
			filterCase{"leaving after a hop-by-hop header", withHopByHop(tcpFrame(t, local, remote, lo, 80)), false},
			filterCase{"icmp error after a hop-by-hop header", withHopByHop(icmpFrame(t, fam, ICMPv6DestUnreachable, ourQuote)), false},
			filterCase{"version 4 in an IPv6 frame", mustEncode(t, remote, local, 80, lo, Override{Field: FieldIPVersion, Value: 4}), false},
			filterCase{"icmp error quoting version 4", icmpFrame(t, fam, ICMPv6DestUnreachable, setByte(ourQuote, 0, 0x40)), false},
			filterCase{"icmp error with a quote cut in the address", icmpFrame(t, fam, ICMPv6DestUnreachable, ourQuote[:30]), false},
		)
	}
	return cases
}

func otherFamily(fam filterFamily) filterFamily {
	if fam.remote.Is4() {
		return filterV6
	}
	return filterV4
}

func mustEncode(t testing.TB, src, dst netip.Addr, sport, dport uint16, ov ...Override) []byte {
	t.Helper()
	f := &Frame{IP: IP{Src: src, Dst: dst}, TCP: TCP{SrcPort: sport, DstPort: dport, Flags: SYN}}
	b, err := f.Encode(ov...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func setByte(b []byte, i int, v byte) []byte {
	c := append([]byte(nil), b...)
	c[i] = v
	return c
}

func arpFrame(sender, target netip.Addr) []byte {
	b := (&Ethernet{Dst: BroadcastMAC, Src: MAC{2, 0, 0, 0, 0, 1}, Type: EtherTypeARP}).append(nil)
	b = append(b, 0, 1, 8, 0, 6, 4, 0, 1) // Ethernet, IPv4, request
	b = append(b, 2, 0, 0, 0, 0, 1)
	b = append(b, sender.AsSlice()[:4:4]...)
	b = append(b, 0, 0, 0, 0, 0, 0)
	b = append(b, target.AsSlice()[:4:4]...)
	return append(b, make([]byte, 18)...) // padding to 60 bytes
}

func runFilter(t testing.TB, prog []bpf.Instruction, frame []byte) bool {
	t.Helper()
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("bpf.NewVM: %v", err)
	}
	n, err := vm.Run(frame)
	if err != nil {
		t.Fatalf("run filter: %v", err)
	}
	if n != 0 && n != snapLen {
		t.Fatalf("filter returned %d, want 0 or %d", n, snapLen)
	}
	return n == snapLen
}

func TestFlowFilter(t *testing.T) {
	for _, fam := range []filterFamily{filterV4, filterV6} {
		ff := FlowFilter{Remote: fam.remote, LocalPorts: filterPorts}
		prog, err := ff.Program()
		if err != nil {
			t.Fatalf("%v: %v", ff, err)
		}
		for _, c := range filterCases(t, fam) {
			t.Run(fam.name+"/"+c.name, func(t *testing.T) {
				if got := runFilter(t, prog, c.frame); got != c.pass {
					t.Errorf("filter passes %d-byte frame: got %v, want %v", len(c.frame), got, c.pass)
				}
				if got := flowMatches(ff, c.frame); got != c.pass {
					t.Errorf("reference predicate: got %v, want %v", got, c.pass)
				}
			})
		}
	}
}

// The frames the table builds must be what their names say: the codec reads
// them back with the intended addresses, so that a filter verdict is about
// the filter and not about a broken test frame.
func TestFlowFilterFramesDecode(t *testing.T) {
	for _, fam := range []filterFamily{filterV4, filterV6} {
		var f Frame
		for _, c := range filterCases(t, fam) {
			if !c.pass {
				continue
			}
			if err := f.Decode(c.frame); err != nil {
				t.Errorf("%s/%s: decode: %v", fam.name, c.name, err)
				continue
			}
			if f.Truncated {
				continue // cut on purpose
			}
			switch {
			case f.Has(LayerTCP):
				if f.IP.Src != fam.remote && f.IP.Dst != fam.remote {
					t.Errorf("%s/%s: %v does not involve %v", fam.name, c.name, &f, fam.remote)
				}
			case f.Has(LayerICMP):
				q, err := f.ICMP.Quote()
				if err != nil {
					t.Errorf("%s/%s: %v", fam.name, c.name, err)
				} else if q.Dst.Addr() != fam.remote || !filterPorts.Contains(q.Src.Port()) || q.Protocol != ProtocolTCP {
					t.Errorf("%s/%s: quote %+v is not our flow", fam.name, c.name, q)
				}
			default:
				t.Errorf("%s/%s: neither TCP nor ICMP: %v", fam.name, c.name, &f)
			}
		}
	}
}

func TestFlowFilterPortRanges(t *testing.T) {
	for _, fam := range []filterFamily{filterV4, filterV6} {
		for _, r := range []PortRange{{0, 0xffff}, {0, 10}, {0xfff0, 0xffff}, {40000, 40000}} {
			ff := FlowFilter{Remote: fam.remote, LocalPorts: r}
			prog, err := ff.Program()
			if err != nil {
				t.Fatalf("%v: %v", ff, err)
			}
			for _, p := range []uint16{0, 1, 10, 11, 39999, 40000, 40001, 0xffef, 0xfff0, 0xffff} {
				want := r.Contains(p)
				if got := runFilter(t, prog, tcpFrame(t, fam.remote, fam.local, 80, p)); got != want {
					t.Errorf("%v: arriving to port %d: got %v, want %v", ff, p, got, want)
				}
				if got := runFilter(t, prog, tcpFrame(t, fam.local, fam.remote, p, 80)); got != want {
					t.Errorf("%v: leaving from port %d: got %v, want %v", ff, p, got, want)
				}
			}
		}
	}
}

func TestFlowFilterAssembles(t *testing.T) {
	for _, fam := range []filterFamily{filterV4, filterV6} {
		for _, r := range []PortRange{{0, 0xffff}, filterPorts} {
			ff := FlowFilter{Remote: fam.remote, LocalPorts: r}
			prog, err := ff.Program()
			if err != nil {
				t.Fatalf("%v: %v", ff, err)
			}
			raw, err := bpf.Assemble(prog)
			if err != nil {
				t.Fatalf("%v: assemble: %v", ff, err)
			}
			if len(raw) > maxFilterLen {
				t.Errorf("%v: %d instructions, the kernel takes at most %d", ff, len(raw), maxFilterLen)
			}
			// What the kernel gets must mean what the VM ran.
			back, ok := bpf.Disassemble(raw)
			if !ok {
				t.Errorf("%v: disassemble: not every instruction is known", ff)
			}
			if len(back) != len(prog) {
				t.Errorf("%v: disassembled %d instructions, want %d", ff, len(back), len(prog))
			}
			t.Logf("%v: %d instructions", ff, len(raw))
		}
	}
	if _, err := bpf.Assemble(rejectAll); err != nil {
		t.Errorf("reject-all program: %v", err)
	}
}

func TestFlowFilterErrors(t *testing.T) {
	for _, c := range []struct {
		ff   FlowFilter
		want string
	}{
		{FlowFilter{LocalPorts: filterPorts}, "no remote address"},
		{FlowFilter{Remote: filterV4.remote, LocalPorts: PortRange{2, 1}}, "low end above high end"},
		{FlowFilter{Remote: netip.MustParseAddr("::ffff:192.0.2.2"), LocalPorts: filterPorts}, "IPv4-mapped"},
		{FlowFilter{Remote: netip.MustParseAddr("fe80::1%eth0"), LocalPorts: filterPorts}, "zone"},
	} {
		_, err := c.ff.Program()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got error %v, want one containing %q", c.ff, err, c.want)
		}
	}
}

// flowMatches is the filter's specification in plain Go, checked against
// the BPF program by the table above and by FuzzFlowFilter.
func flowMatches(f FlowFilter, d []byte) bool {
	be16 := func(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
	if len(d) < EthernetHeaderLen {
		return false
	}
	et := EtherType(be16(d[12:]))
	ip := d[EthernetHeaderLen:]
	if f.Remote.Is4() {
		if et != EtherTypeIPv4 || len(ip) < IPv4HeaderLen || ip[0]>>4 != 4 || ip[0]&0xf < 5 || be16(ip[6:])&0x1fff != 0 {
			return false
		}
		hl := int(ip[0]&0xf) * 4
		l4 := ip[min(hl, len(ip)):]
		switch ip[9] {
		case ProtocolTCP:
			switch {
			case netip.AddrFrom4([4]byte(ip[12:16])) == f.Remote:
				return len(l4) >= 4 && f.LocalPorts.Contains(be16(l4[2:]))
			case netip.AddrFrom4([4]byte(ip[16:20])) == f.Remote:
				return len(l4) >= 2 && f.LocalPorts.Contains(be16(l4))
			}
		case ProtocolICMP:
			if len(l4) < ICMPHeaderLen || !(&ICMP{Type: l4[0]}).IsError(false) {
				return false
			}
			q := l4[ICMPHeaderLen:]
			if len(q) < IPv4HeaderLen || q[0]>>4 != 4 || q[0]&0xf < 5 || q[9] != ProtocolTCP ||
				netip.AddrFrom4([4]byte(q[16:20])) != f.Remote || be16(q[6:])&0x1fff != 0 {
				return false
			}
			qhl := int(q[0]&0xf) * 4
			return len(q) >= qhl+2 && (f.AnyQuotedPort || f.LocalPorts.Contains(be16(q[qhl:])))
		}
		return false
	}
	if et != EtherTypeIPv6 || len(ip) < IPv6HeaderLen || ip[0]>>4 != 6 {
		return false
	}
	l4 := ip[IPv6HeaderLen:]
	switch ip[6] {
	case ProtocolTCP:
		switch {
		case netip.AddrFrom16([16]byte(ip[8:24])) == f.Remote:
			return len(l4) >= 4 && f.LocalPorts.Contains(be16(l4[2:]))
		case netip.AddrFrom16([16]byte(ip[24:40])) == f.Remote:
			return len(l4) >= 2 && f.LocalPorts.Contains(be16(l4))
		}
	case ProtocolICMPv6:
		if len(l4) < ICMPHeaderLen || l4[0] < 1 || l4[0] > 4 {
			return false
		}
		q := l4[ICMPHeaderLen:]
		if len(q) < IPv6HeaderLen+2 || q[0]>>4 != 6 || q[6] != ProtocolTCP || netip.AddrFrom16([16]byte(q[24:40])) != f.Remote {
			return false
		}
		return f.AnyQuotedPort || f.LocalPorts.Contains(be16(q[IPv6HeaderLen:]))
	}
	return false
}

// FuzzFlowFilter checks the BPF program against its specification in Go on
// arbitrary frames, with and without AnyQuotedPort.
func FuzzFlowFilter(f *testing.F) {
	for _, fam := range []filterFamily{filterV4, filterV6} {
		for _, c := range filterCases(f, fam) {
			f.Add(fam.remote.Is6(), c.frame)
		}
	}
	type variant struct{ v6, anyPort bool }
	progs := map[variant][]bpf.Instruction{}
	for _, fam := range []filterFamily{filterV4, filterV6} {
		for _, anyPort := range []bool{false, true} {
			p, err := FlowFilter{Remote: fam.remote, LocalPorts: filterPorts, AnyQuotedPort: anyPort}.Program()
			if err != nil {
				f.Fatal(err)
			}
			progs[variant{fam.remote.Is6(), anyPort}] = p
		}
	}
	f.Fuzz(func(t *testing.T, v6 bool, frame []byte) {
		for _, anyPort := range []bool{false, true} {
			ff := FlowFilter{Remote: filterV4.remote, LocalPorts: filterPorts, AnyQuotedPort: anyPort}
			if v6 {
				ff.Remote = filterV6.remote
			}
			got := runFilter(t, progs[variant{v6, anyPort}], frame)
			if want := flowMatches(ff, frame); got != want {
				t.Errorf("%v on % x: filter passes %v, specification says %v", ff, frame, got, want)
			}
		}
	})
}

// TestFlowFilterAnyQuotedPort: the trace variant passes ICMP errors quoting
// any source port to the target, and nothing else the plain filter rejects.
func TestFlowFilterAnyQuotedPort(t *testing.T) {
	for _, fam := range []filterFamily{filterV4, filterV6} {
		ff := FlowFilter{Remote: fam.remote, LocalPorts: filterPorts, AnyQuotedPort: true}
		prog, err := ff.Program()
		if err != nil {
			t.Fatalf("%v: %v", ff, err)
		}
		rewritten := icmpFrame(t, fam, fam.errorTypes[0], quote(t, fam.local, fam.remote, filterPorts.Hi+1, 80))
		if !runFilter(t, prog, rewritten) {
			t.Errorf("%s: icmp error quoting port %d: got rejected, want passed", fam.name, filterPorts.Hi+1)
		}
		if runFilter(t, prog, tcpFrame(t, fam.remote, fam.local, 80, filterPorts.Hi+1)) {
			t.Errorf("%s: tcp to port %d outside the range: got passed, want rejected", fam.name, filterPorts.Hi+1)
		}
		for _, c := range filterCases(t, fam) {
			got, want := runFilter(t, prog, c.frame), flowMatches(ff, c.frame)
			if got != want {
				t.Errorf("%s/%s: got %v, specification says %v", fam.name, c.name, got, want)
			}
			if c.pass && !got {
				t.Errorf("%s/%s: the plain filter passes it, the trace filter rejects it", fam.name, c.name)
			}
		}
	}
}

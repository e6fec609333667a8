package trace

import (
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"synprobe/probe"
)

var (
	testSrc  = netip.MustParseAddr("10.79.1.1")
	testDst  = netip.MustParseAddr("10.79.3.1")
	testHop1 = netip.MustParseAddr("10.79.1.254")
	testHop2 = netip.MustParseAddr("10.79.2.254")
)

// testSYN is the syn family's probe with TTL ttl, as sent (decoded from its
// wire image, as Session.Send reports it).
func testSYN(t testing.TB, ttl int, edit func(f *probe.Frame), ov ...probe.Override) probe.Frame {
	t.Helper()
	f := probe.Frame{
		IP: probe.IP{Src: testSrc, Dst: testDst, TTL: uint8(ttl), ID: ipIDTag | uint16(ttl), Flags: probe.IPFlagDF},
		TCP: probe.TCP{SrcPort: 61234, DstPort: 8080, Seq: 1000, Flags: probe.SYN, Window: synWindow,
			Options: []probe.Option{probe.MSSOption(1460), probe.SACKPermittedOption(), probe.TimestampsOption(7, 0), probe.NOPOption(), probe.WScaleOption(7)}},
	}
	if edit != nil {
		edit(&f)
	}
	b, err := f.EncodeIP(ov...)
	if err != nil {
		t.Fatalf("encode %v: %v", &f, err)
	}
	var d probe.Frame
	if err := d.DecodeIP(b); err != nil {
		t.Fatalf("decode %v: %v", &f, err)
	}
	return d
}

// quoteOfBytes is what a router quotes of pkt (cut to n bytes; -1: all).
func testQuote(t testing.TB, sent probe.Frame, n int, edit func(b []byte), ov ...probe.Override) *probe.QuotedPacket {
	t.Helper()
	f := sent
	f.IP.TTL = 1
	b, err := f.EncodeIP(ov...)
	if err != nil {
		t.Fatalf("encode quote: %v", err)
	}
	if edit != nil {
		edit(b)
	}
	if n >= 0 && n < len(b) {
		b = b[:n]
	}
	c := probe.ICMP{Type: probe.ICMPv4TimeExceeded, Body: b}
	q, err := c.QuotedPacket()
	if err != nil {
		t.Fatalf("decode quote: %v", err)
	}
	return &q
}

// optArea returns the offset of the option area in an IPv4 packet.
const optArea = probe.IPv4HeaderLen + probe.TCPHeaderLen

func TestCompare(t *testing.T) {
	sent := testSYN(t, 2, nil)
	for _, tc := range []struct {
		name  string
		quote *probe.QuotedPacket
		want  []Change
	}{
		{"unchanged", testQuote(t, sent, -1, nil), nil},
		{"rfc792 quote of an unchanged packet", testQuote(t, sent, probe.IPv4HeaderLen+8, nil), nil},
		{"mss clamped (checksum fixed up)", testQuote(t, testSYN(t, 2, func(f *probe.Frame) { f.TCP.Options[0] = probe.MSSOption(1200) }), -1, nil),
			[]Change{{Field: "tcp.option.mss", Sent: "mss 1460", Got: "mss 1200", Kind: Modified}}},
		{"TS replaced by NOPs (TCPOPTSTRIP)", testQuote(t, sent, -1, func(b []byte) {
			for i := optArea + 6; i < optArea+16; i++ {
				b[i] = 1
			}
		}), []Change{{Field: "tcp.option.ts", Sent: "TS val 7 ecr 0", Kind: NOPReplaced}, {Field: "tcp.checksum", Sent: "valid", Got: "invalid", Kind: Modified}}},
		{"wscale removed", testQuote(t, testSYN(t, 2, func(f *probe.Frame) { f.TCP.Options = f.TCP.Options[:3] }), -1, nil),
			[]Change{{Field: "ip.length", Sent: "60", Got: "56", Kind: Modified}, {Field: "tcp.doff", Sent: "10", Got: "9", Kind: Modified},
				{Field: "tcp.option.ws", Sent: "wscale 7", Kind: Removed}}},
		{"ECE and CWR cleared", testQuote(t, testSYN(t, 2, func(f *probe.Frame) { f.TCP.Flags = probe.SYN }), -1, nil), nil},
		{"dscp and ecn", testQuote(t, testSYN(t, 2, func(f *probe.Frame) { f.IP.TOS = 0x28 | probe.ECNECT0 }), -1, nil),
			[]Change{{Field: "ip.dscp", Sent: "0x00", Got: "0x0a", Kind: Modified}, {Field: "ip.ecn", Sent: "not-ect", Got: "ect0", Kind: Modified}}},
		{"seq translated, port rewritten", testQuote(t, testSYN(t, 2, func(f *probe.Frame) { f.TCP.Seq, f.TCP.SrcPort = 5000, 1024 }), -1, nil),
			[]Change{{Field: "tcp.sport", Sent: "61234", Got: "1024", Kind: Translated}, {Field: "tcp.seq", Sent: "1000", Got: "5000", Kind: Translated}}},
		{"window and IP ID rewritten", testQuote(t, testSYN(t, 2, func(f *probe.Frame) { f.TCP.Window, f.IP.ID = 1000, 7 }), -1, nil),
			[]Change{{Field: "ip.id", Sent: "0x5302", Got: "0x0007", Kind: Modified}, {Field: "tcp.window", Sent: "64240", Got: "1000", Kind: Modified}}},
		{"rfc792 quote hides the options", testQuote(t, testSYN(t, 2, func(f *probe.Frame) { f.TCP.Options[0] = probe.MSSOption(1200) }), probe.IPv4HeaderLen+8, nil), nil},
		{"MSS added", testQuote(t, testSYN(t, 2, func(f *probe.Frame) {
			f.TCP.Options = append(f.TCP.Options, probe.MSSOption(536))
		}), -1, nil), []Change{{Field: "ip.length", Sent: "60", Got: "64", Kind: Modified}, {Field: "tcp.doff", Sent: "10", Got: "11", Kind: Modified},
			{Field: "tcp.option.mss", Got: "mss 536", Kind: Added}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Compare(&sent, true, tc.quote)
			if tc.name == "ECE and CWR cleared" {
				// The sent packet here has no ECE: compare the other way.
				ecn := testSYN(t, 2, func(f *probe.Frame) { f.TCP.Flags = probe.SYN | probe.ECE | probe.CWR })
				got = Compare(&ecn, true, tc.quote)
				tc.want = []Change{{Field: "tcp.flags.ece", Sent: "set", Got: "clear", Kind: Modified}, {Field: "tcp.flags.cwr", Sent: "set", Got: "clear", Kind: Modified}}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("changes:\n got  %+v\n want %+v", got, tc.want)
			}
		})
	}
}

func TestCompareChecksum(t *testing.T) {
	bad := []probe.Override{{Field: probe.FieldTCPChecksumAdd, Value: 0x5350}}
	sent := testSYN(t, 2, nil, bad...)
	if got := Compare(&sent, false, testQuote(t, sent, -1, nil, bad...)); len(got) != 0 {
		t.Errorf("bad checksum quoted as sent: got changes %+v, want none", got)
	}
	want := []Change{{Field: "tcp.checksum", Sent: "invalid", Got: "valid", Kind: Modified}}
	if got := Compare(&sent, false, testQuote(t, sent, -1, nil)); !reflect.DeepEqual(got, want) {
		t.Errorf("bad checksum made valid: got %+v, want %+v", got, want)
	}
}

func TestCompareOptions(t *testing.T) {
	mss := []byte{2, 4, 5, 0xb4}
	sack := []byte{4, 2}
	ws := []byte{3, 3, 7}
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	for _, tc := range []struct {
		name      string
		sent, got []byte
		want      []string // field kind
	}{
		{"same", cat(mss, sack, ws, []byte{1}), cat(mss, sack, ws, []byte{1}), nil},
		{"nop-replaced", cat(mss, sack, ws, []byte{1}), cat(mss, []byte{1, 1}, ws, []byte{1}), []string{"tcp.option.sack nop-replaced"}},
		{"removed", cat(mss, sack, ws), cat(mss, ws), []string{"tcp.option.sack removed"}},
		{"reordered", cat(mss, sack, ws), cat(ws, mss, sack), []string{"tcp.options reordered"}},
		{"added", cat(sack), cat(sack, mss), []string{"tcp.option.mss added"}},
		{"unknown stripped", cat(mss, []byte{253, 4, 0x53, 0x50}), cat(mss, []byte{1, 1, 1, 1}), []string{"tcp.option.kind-253 nop-replaced"}},
		{"damaged area ends the list", cat(mss, []byte{8, 40}), cat(mss), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, c := range CompareOptions(tc.sent, tc.got) {
				got = append(got, c.Field+" "+c.Kind)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAttribute(t *testing.T) {
	clamp := func(f *probe.Frame) { f.TCP.Options[0] = probe.MSSOption(1200) }
	hop := func(ttl int, from netip.Addr, quoted func(*probe.Frame), n int) HopQuote {
		sent := testSYN(t, ttl, nil)
		q := testQuote(t, testSYN(t, ttl, quoted), n, nil)
		return HopQuote{TTL: ttl, From: from, Sent: &sent, SumValid: true, Quote: q}
	}
	silent := func(ttl int) HopQuote {
		sent := testSYN(t, ttl, nil)
		return HopQuote{TTL: ttl, Sent: &sent, SumValid: true}
	}
	hop3 := netip.MustParseAddr("10.79.3.254")
	for _, tc := range []struct {
		name string
		hops []HopQuote
		want []string // "ttl field after-at"
	}{
		{"clamped between hop 1 and 2, seen again at 3", []HopQuote{hop(1, testHop1, nil, -1), hop(2, testHop2, clamp, -1), hop(3, hop3, clamp, -1)},
			[]string{"2 tcp.option.mss 1-2"}},
		{"before the first hop", []HopQuote{hop(1, testHop1, clamp, -1), hop(2, testHop2, clamp, -1)},
			[]string{"1 tcp.option.mss 0-1"}},
		{"silent hop widens the range", []HopQuote{hop(1, testHop1, nil, -1), silent(2), hop(3, hop3, clamp, -1)},
			[]string{"3 tcp.option.mss 1-3"}},
		{"an rfc792 quote does not cover options", []HopQuote{hop(1, testHop1, nil, -1), hop(2, testHop2, clamp, probe.IPv4HeaderLen+8), hop(3, hop3, clamp, -1)},
			[]string{"3 tcp.option.mss 1-3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			attr := Attribute(tc.hops, testSrc)
			for _, h := range tc.hops {
				for _, a := range attr[h.TTL] {
					got = append(got, strings.Join([]string{itoa(a.at), a.c.Field, itoa(a.after) + "-" + itoa(a.at)}, " "))
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestKindOf(t *testing.T) {
	for _, tc := range []struct {
		c    Change
		want Kind
	}{
		{Change{Field: "tcp.option.mss", Sent: "mss 1460", Got: "mss 1200", Kind: Modified}, MSSClamp},
		{Change{Field: "tcp.option.mss", Sent: "mss 1200", Got: "mss 1460", Kind: Modified}, MSSRaise},
		{Change{Field: "tcp.option.mss", Got: "mss 536", Kind: Added}, MSSAdded},
		{Change{Field: "tcp.option.ts", Sent: "TS val 1 ecr 0", Kind: NOPReplaced}, OptionStripped.With("ts")},
		{Change{Field: "tcp.option.sack", Sent: "sackOK", Kind: Removed}, OptionStripped.With("sack")},
		{Change{Field: "tcp.option.kind-253", Sent: "kind 253 len 4 5350", Kind: NOPReplaced}, OptionStripped.With("unknown")},
		{Change{Field: "tcp.option.tfo", Sent: "FO", Kind: Removed}, OptionStripped.With("tfo")},
		{Change{Field: "tcp.flags.ece", Sent: "set", Got: "clear", Kind: Modified}, ECNFlagsCleared},
		{Change{Field: "ip.ecn", Sent: "ect0", Got: "not-ect", Kind: Modified}, ECNBleached},
		{Change{Field: "ip.dscp", Sent: "0x0a", Got: "0x00", Kind: Modified}, DSCPRewrite},
		{Change{Field: "tcp.ack", Sent: "1", Got: "2", Kind: Translated}, SeqTranslation},
		{Change{Field: "tcp.sport", Sent: "1", Got: "2", Kind: Translated}, NAT},
		{Change{Field: "tcp.checksum", Sent: "invalid", Got: "valid", Kind: Modified}, ChecksumFixed},
		{Change{Field: "tcp.checksum", Sent: "valid", Got: "invalid", Kind: Modified}, ChecksumBroken},
		{Change{Field: "ip.df", Sent: "true", Got: "false", Kind: Modified}, HeaderRewrite.With("df")},
	} {
		if got, ev, ok := kindOf(tc.c); got != tc.want || !ok || ev == "" {
			t.Errorf("%+v: got %q (%q, %v), want %q", tc.c, got, ev, ok, tc.want)
		}
	}
	if _, _, ok := kindOf(Change{Field: "ip.length", Sent: "60", Got: "56"}); ok {
		t.Error("ip.length: got a finding, want none (it follows from the options)")
	}
}

func TestResultHas(t *testing.T) {
	r := &Result{Findings: []Finding{{Kind: OptionStripped.With("ts")}, {Kind: Drop.With("syndata")}}}
	for _, tc := range []struct {
		k    Kind
		want bool
	}{
		{OptionStripped, true}, {OptionStripped.With("ts"), true}, {OptionStripped.With("sack"), false},
		{Drop, true}, {MSSClamp, false},
	} {
		if got := r.Has(tc.k); got != tc.want {
			t.Errorf("Has(%s): got %v, want %v", tc.k, got, tc.want)
		}
	}
	if got := r.FindingsOf(Drop); len(got) != 1 || got[0].Kind != Drop.With("syndata") {
		t.Errorf("FindingsOf(drop): got %+v, want drop(syndata)", got)
	}
}

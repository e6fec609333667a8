package script

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"synprobe/probe"
)

func mustParse(t *testing.T, src string) *Script {
	t.Helper()
	s, err := Parse("t.pkt", []byte(src))
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	if s == nil {
		t.Fatalf("Parse(%q): nil script and nil error", src)
	}
	return s
}

// lastEvent parses src and returns its last event.
func lastEvent(t *testing.T, src string) Event {
	t.Helper()
	s := mustParse(t, src)
	if len(s.Events) == 0 {
		t.Fatalf("Parse(%q): no events", src)
	}
	return s.Events[len(s.Events)-1]
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func set(v uint32) Num { return Num{Set: true, Value: v} }

var anyNum = Num{Set: true, Any: true}

func opts(list ...OptionSpec) OptionList { return OptionList{Kind: Listed, List: list} }

func opt(o probe.Option) OptionSpec { return OptionSpec{Option: o} }

func TestTimes(t *testing.T) {
	tests := []struct {
		src  string
		want Time
	}{
		{"0 > . 1:1(0)", Time{Kind: Absolute}},
		{"0.100 > . 1:1(0)", Time{Kind: Absolute, Start: ms(100)}},
		{".1 > . 1:1(0)", Time{Kind: Absolute, Start: ms(100)}},
		{"2 > . 1:1(0)", Time{Kind: Absolute, Start: 2 * time.Second}},
		{"0.000001 > . 1:1(0)", Time{Kind: Absolute, Start: time.Microsecond}},
		{"+0 > . 1:1(0)", Time{Kind: Relative}},
		{"+.01 > . 1:1(0)", Time{Kind: Relative, Start: ms(10)}},
		{"+1.5 > . 1:1(0)", Time{Kind: Relative, Start: ms(1500)}},
		{"* > . 1:1(0)", Time{Kind: Any}},
		{"0.1~0.2 > . 1:1(0)", Time{Kind: Absolute, Start: ms(100), End: ms(200), Range: true}},
		{"+0~+.04 > . 1:1(0)", Time{Kind: Relative, End: ms(40), Range: true}},
		{"0~0 > . 1:1(0)", Time{Kind: Absolute, Range: true}},
		{"+0...0.100 read(4, ..., 2000) = 2000", Time{Kind: Relative, End: ms(100)}},
		{"+.1...0.200 read(4, ..., 2000) = 2000", Time{Kind: Relative, Start: ms(100), End: ms(200)}},
		{"0.1...0.2 read(4, ..., 2000) = 2000", Time{Kind: Absolute, Start: ms(100), End: ms(200)}},
		{"+0...0.000 read(4, ..., 2000) = 2000", Time{Kind: Relative}},
		{"* > icmp unreachable", Time{Kind: Any}},
	}
	for _, tt := range tests {
		ev := lastEvent(t, tt.src)
		if ev.Time != tt.want {
			t.Errorf("%q: time %+v, want %+v", tt.src, ev.Time, tt.want)
		}
	}
}

func TestPackets(t *testing.T) {
	hs := func(flags probe.Flags) Packet { return Packet{Dir: Inbound, Flags: flags, Win: set(1000)} }
	tests := []struct {
		name string
		src  string
		want Packet
	}{
		{"syn", "0 < S 0:0(0) win 1000", hs(probe.SYN)},
		{"syn-ack", "0 > S. 0:0(0) ack 1", Packet{Dir: Outbound, Flags: probe.SYN | probe.ACK, Ack: set(1)}},
		{"ack only", "0 > . 1:1(0) ack 1", Packet{Dir: Outbound, Flags: probe.ACK, Seq: 1, End: 1, Ack: set(1)}},
		{"all letters", "0 < FSRP.UEW 0:0(0) win 1000", hs(probe.FIN | probe.SYN | probe.RST | probe.PSH | probe.ACK | probe.URG | probe.ECE | probe.CWR)},
		{"AE letter", "0 < SA 0:0(0) win 1000", func() Packet { p := hs(probe.SYN); p.AE = true; return p }()},
		{"no flags", "0 < - 0:0(0) win 1000", hs(0)},
		{"syn rst", "0 < SR 0:0(0) win 1000", hs(probe.SYN | probe.RST)},
		{"AccECN digit 7", "0 < S.7 0:0(0) win 1000", func() Packet { p := hs(probe.SYN | probe.ACK | probe.CWR | probe.ECE); p.AE = true; return p }()},
		{"AccECN digit 5", "0 < .5 0:0(0) win 1000", func() Packet { p := hs(probe.ACK | probe.ECE); p.AE = true; return p }()},
		{"AccECN digit 2", "0 < S2 0:0(0) win 1000", hs(probe.SYN | probe.CWR)},
		{"AccECN digit 0", "0 < S0 0:0(0) win 1000", hs(probe.SYN)},
		{"data", "0 < P. 1:1001(1000) ack 1 win 257", Packet{Dir: Inbound, Flags: probe.PSH | probe.ACK, Seq: 1, End: 1001, Len: 1000, Ack: set(1), Win: set(257)}},
		{"hex numbers", "0 < . 0x10:0x20(0x10) ack 0xffffffff win 0xffff urg 0x1", Packet{Dir: Inbound, Flags: probe.ACK, Seq: 16, End: 32, Len: 16, Ack: set(0xffffffff), Win: set(0xffff), Urg: set(1)}},
		{"seq wraps", "0 < . 4294967295:9(10) win 1", Packet{Dir: Inbound, Flags: probe.ACK, Seq: 4294967295, End: 9, Len: 10, Win: set(1)}},
		{"urg", "0 < U. 1:2(1) ack 1 win 1 urg 1", Packet{Dir: Inbound, Flags: probe.URG | probe.ACK, Seq: 1, End: 2, Len: 1, Ack: set(1), Win: set(1), Urg: set(1)}},
		{"outbound win", "0 > R 0:0(0) win 0", Packet{Dir: Outbound, Flags: probe.RST, Win: set(0)}},
		{"spaces in seq", "0 < . 1 : 2 ( 1 ) win 1", Packet{Dir: Inbound, Flags: probe.ACK, Seq: 1, End: 2, Len: 1, Win: set(1)}},
		{"any options", "0 > S. 0:0(0) ack 1 <...>", Packet{Dir: Outbound, Flags: probe.SYN | probe.ACK, Ack: set(1), Options: OptionList{Kind: AnyOptions}}},
		{"any options spaced", "0 > S. 0:0(0) ack 1 < ... >", Packet{Dir: Outbound, Flags: probe.SYN | probe.ACK, Ack: set(1), Options: OptionList{Kind: AnyOptions}}},
		{"linux syn options", "0 < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>", Packet{Dir: Inbound, Flags: probe.SYN, Win: set(32792), Options: opts(
			opt(probe.MSSOption(1000)), opt(probe.SACKPermittedOption()), opt(probe.NOPOption()), opt(probe.NOPOption()), opt(probe.NOPOption()), opt(probe.WScaleOption(7)))}},
		{"stray spaces", "0 < S 0:0(0) win 1 <mss 1460 ,sackOK, nop,nop >", Packet{Dir: Inbound, Flags: probe.SYN, Win: set(1), Options: opts(
			opt(probe.MSSOption(1460)), opt(probe.SACKPermittedOption()), opt(probe.NOPOption()), opt(probe.NOPOption()))}},
		{"timestamps", "0 < S 0:0(0) win 1 <nop,nop,TS val 100 ecr 0>", Packet{Dir: Inbound, Flags: probe.SYN, Win: set(1), Options: opts(
			opt(probe.NOPOption()), opt(probe.NOPOption()), opt(probe.TimestampsOption(100, 0)))}},
		{"sack blocks", "0 < . 1:1(0) ack 1 win 1 <nop,nop,sack 1001:2001 3001:4001>", Packet{Dir: Inbound, Flags: probe.ACK, Seq: 1, End: 1, Ack: set(1), Win: set(1), Options: opts(
			opt(probe.NOPOption()), opt(probe.NOPOption()), opt(probe.SACKOption(probe.SACKBlock{Left: 1001, Right: 2001}, probe.SACKBlock{Left: 3001, Right: 4001})))}},
		{"eol", "0 < S 0:0(0) win 1 <mss 1460,eol,eol,eol,eol>", Packet{Dir: Inbound, Flags: probe.SYN, Win: set(1), Options: opts(
			opt(probe.MSSOption(1460)), opt(probe.EOLOption()), opt(probe.EOLOption()), opt(probe.EOLOption()), opt(probe.EOLOption()))}},
		{"fast open request", "0 < S 0:0(0) win 1 <FO,nop,nop>", Packet{Dir: Inbound, Flags: probe.SYN, Win: set(1), Options: opts(
			opt(probe.FastOpenOption(nil)), opt(probe.NOPOption()), opt(probe.NOPOption()))}},
		{"fast open cookie", "0 < S 0:0(0) win 1 <FO 0102030405060708,nop,nop>", Packet{Dir: Inbound, Flags: probe.SYN, Win: set(1), Options: opts(
			opt(probe.FastOpenOption([]byte{1, 2, 3, 4, 5, 6, 7, 8})), opt(probe.NOPOption()), opt(probe.NOPOption()))}},
		{"fast open exp cookie", "0 < S 0:0(0) win 1 <FOEXP abcdef01>", Packet{Dir: Inbound, Flags: probe.SYN, Win: set(1), Options: opts(
			opt(probe.ExpFastOpenOption([]byte{0xab, 0xcd, 0xef, 0x01})))}},
		{"md5", "0 < S 0:0(0) win 1 <md5 000102030405060708090a0b0c0d0e0f,nop,nop>", Packet{Dir: Inbound, Flags: probe.SYN, Win: set(1), Options: opts(
			opt(probe.Option{Kind: probe.OptionMD5, Data: []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}}), opt(probe.NOPOption()), opt(probe.NOPOption()))}},
		{"raw option", "0 < S 0:0(0) win 1 <raw 0x020405b4>", Packet{Dir: Inbound, Flags: probe.SYN, Win: set(1), Options: opts(
			opt(probe.RawOption([]byte{2, 4, 5, 0xb4})))}},
		{"raw option unpadded", "0 < S 0:0(0) win 1 <raw 0x0200>", Packet{Dir: Inbound, Flags: probe.SYN, Win: set(1), Options: opts(
			opt(probe.RawOption([]byte{2, 0})))}},
		{"unpadded with overrides", "0 < S 0:0(0) win 1 <mss 1460,nop> {doff 6}", Packet{Dir: Inbound, Flags: probe.SYN, Win: set(1), Options: opts(
			opt(probe.MSSOption(1460)), opt(probe.NOPOption())), Overrides: []probe.Override{{Field: probe.FieldTCPDataOffset, Value: 6}}}},
		{"unpadded outbound", "0 > S. 0:0(0) ack 1 <mss 1460,nop,wscale 7>", Packet{Dir: Outbound, Flags: probe.SYN | probe.ACK, Ack: set(1), Options: opts(
			opt(probe.MSSOption(1460)), opt(probe.NOPOption()), opt(probe.WScaleOption(7)))}},
		{"option wildcards", "0 > S. 0:0(0) ack 1 <mss *,sackOK,TS val * ecr 100,nop,wscale *>", Packet{Dir: Outbound, Flags: probe.SYN | probe.ACK, Ack: set(1), Options: opts(
			OptionSpec{Option: probe.MSSOption(0), AnyValue: true}, opt(probe.SACKPermittedOption()),
			OptionSpec{Option: probe.TimestampsOption(0, 100), AnyVal: true}, opt(probe.NOPOption()),
			OptionSpec{Option: probe.WScaleOption(0), AnyValue: true})}},
		{"TS ecr wildcard", "0 > . 1:1(0) ack 1 <nop,nop,TS val 5 ecr *>", Packet{Dir: Outbound, Flags: probe.ACK, Seq: 1, End: 1, Ack: set(1), Options: opts(
			opt(probe.NOPOption()), opt(probe.NOPOption()), OptionSpec{Option: probe.TimestampsOption(5, 0), AnyEcr: true})}},
		{"FO wildcard", "0 > S. 0:0(0) ack 1 <FO *,FOEXP *>", Packet{Dir: Outbound, Flags: probe.SYN | probe.ACK, Ack: set(1), Options: opts(
			OptionSpec{Option: probe.FastOpenOption(nil), AnyValue: true}, OptionSpec{Option: probe.ExpFastOpenOption(nil), AnyValue: true})}},
		{"field wildcards", "0 > . 1:1(0) ack * win * urg *", Packet{Dir: Outbound, Flags: probe.ACK, Seq: 1, End: 1, Ack: anyNum, Win: anyNum, Urg: anyNum}},
		{"any length", "0 > P. 1:*(*) ack 1", Packet{Dir: Outbound, Flags: probe.PSH | probe.ACK, Seq: 1, LenAny: true, Ack: set(1)}},
		{"silence", "0 > none", Packet{Dir: Outbound, Silence: true}},
		{"ecn", "0 < [ect0] S 0:0(0) win 1", Packet{Dir: Inbound, IP: IPSpec{ECN: ECNECT0}, Flags: probe.SYN, Win: set(1)}},
		{"ecn parens", "0 < (ce) S 0:0(0) win 1", Packet{Dir: Inbound, IP: IPSpec{ECN: ECNCE}, Flags: probe.SYN, Win: set(1)}},
		{"noecn", "0 < [noecn] S 0:0(0) win 1", Packet{Dir: Inbound, IP: IPSpec{ECN: ECNNotECT}, Flags: probe.SYN, Win: set(1)}},
		{"ect1", "0 < [ect1] S 0:0(0) win 1", Packet{Dir: Inbound, IP: IPSpec{ECN: ECNECT1}, Flags: probe.SYN, Win: set(1)}},
		{"ect01", "0 > [ect01] S. 0:0(0) ack 1", Packet{Dir: Outbound, IP: IPSpec{ECN: ECNECT01}, Flags: probe.SYN | probe.ACK, Ack: set(1)}},
		{"tos", "0 < [tos 0x10] S 0:0(0) win 1", Packet{Dir: Inbound, IP: IPSpec{TOS: set(0x10)}, Flags: probe.SYN, Win: set(1)}},
		{"ecn and flowlabel", "0 < [ect0, flowlabel 0x12345] S 0:0(0) win 1", Packet{Dir: Inbound, IP: IPSpec{ECN: ECNECT0, FlowLabel: set(0x12345)}, Flags: probe.SYN, Win: set(1)}},
		{"ttl", "0 < (ttl 3) S 0:0(0) win 1", Packet{Dir: Inbound, IP: IPSpec{TTL: set(3)}, Flags: probe.SYN, Win: set(1)}},
		{"synprobe ip info", "0 < [ttl 64, df, id 7, ect0] S 0:0(0) win 1", Packet{Dir: Inbound, IP: IPSpec{TTL: set(64), DF: set(1), ID: set(7), ECN: ECNECT0}, Flags: probe.SYN, Win: set(1)}},
		{"nodf", "0 < [nodf] S 0:0(0) win 1", Packet{Dir: Inbound, IP: IPSpec{DF: Num{Set: true}}, Flags: probe.SYN, Win: set(1)}},
		{"ip wildcards", "0 > [ttl *, id *, tos *, flowlabel *] . 1:1(0)", Packet{Dir: Outbound, IP: IPSpec{TTL: anyNum, ID: anyNum, TOS: anyNum, FlowLabel: anyNum}, Flags: probe.ACK, Seq: 1, End: 1}},
		{"payload string", `0 < P. 1:19(18) ack 1 win 257 "GET / HTTP/1.0\r\n\r\n"`, Packet{Dir: Inbound, Flags: probe.PSH | probe.ACK, Seq: 1, End: 19, Len: 18, Ack: set(1), Win: set(257), Payload: []byte("GET / HTTP/1.0\r\n\r\n")}},
		{"payload hex", "0 < P. 1:5(4) ack 1 win 257 0xdeadbeef", Packet{Dir: Inbound, Flags: probe.PSH | probe.ACK, Seq: 1, End: 5, Len: 4, Ack: set(1), Win: set(257), Payload: []byte{0xde, 0xad, 0xbe, 0xef}}},
		{"payload after options", `0 < P. 1:3(2) ack 1 win 257 <nop,nop,TS val 1 ecr 2> "hi"`, Packet{Dir: Inbound, Flags: probe.PSH | probe.ACK, Seq: 1, End: 3, Len: 2, Ack: set(1), Win: set(257), Options: opts(
			opt(probe.NOPOption()), opt(probe.NOPOption()), opt(probe.TimestampsOption(1, 2))), Payload: []byte("hi")}},
		{"empty payload", `0 < . 1:1(0) ack 1 win 257 ""`, Packet{Dir: Inbound, Flags: probe.ACK, Seq: 1, End: 1, Ack: set(1), Win: set(257), Payload: []byte{}}},
		{"outbound prefix", `0 > P. 1:*(*) ack 19 "HTTP/1.0 200"`, Packet{Dir: Outbound, Flags: probe.PSH | probe.ACK, Seq: 1, LenAny: true, Ack: set(19), Payload: []byte("HTTP/1.0 200")}},
		{"outbound prefix with length", `0 > P. 1:101(100) ack 19 "HTTP"`, Packet{Dir: Outbound, Flags: probe.PSH | probe.ACK, Seq: 1, End: 101, Len: 100, Ack: set(19), Payload: []byte("HTTP")}},
		{"overrides", "0 < . 1:1(0) ack 1 win 1 {tcpsum bad, ipsum 0x1234, doff 4, reserved 0x2, iplen 20, ihl 4, ipver 6}", Packet{Dir: Inbound, Flags: probe.ACK, Seq: 1, End: 1, Ack: set(1), Win: set(1), Reserved: 2,
			Overrides: []probe.Override{{Field: probe.FieldTCPChecksumAdd, Value: 1}, {Field: probe.FieldIPChecksum, Value: 0x1234}, {Field: probe.FieldTCPDataOffset, Value: 4},
				{Field: probe.FieldIPTotalLength, Value: 20}, {Field: probe.FieldIPHeaderLength, Value: 4}, {Field: probe.FieldIPVersion, Value: 6}}}},
		{"tcpsum value ipsum bad", "0 < . 1:1(0) ack 1 win 1 {tcpsum 0xbeef,ipsum bad}", Packet{Dir: Inbound, Flags: probe.ACK, Seq: 1, End: 1, Ack: set(1), Win: set(1),
			Overrides: []probe.Override{{Field: probe.FieldTCPChecksum, Value: 0xbeef}, {Field: probe.FieldIPChecksumAdd, Value: 1}}}},
		{"payload then overrides", `0 < P. 1:2(1) ack 1 win 1 "x" {tcpsum bad}`, Packet{Dir: Inbound, Flags: probe.PSH | probe.ACK, Seq: 1, End: 2, Len: 1, Ack: set(1), Win: set(1), Payload: []byte("x"),
			Overrides: []probe.Override{{Field: probe.FieldTCPChecksumAdd, Value: 1}}}},
		{"icmp frag needed", "0 < icmp unreachable frag_needed mtu 1200 [1:1461(1460)]", Packet{Dir: Inbound, ICMP: &ICMP{Type: "unreachable", Code: "frag_needed", MTU: set(1200), Echoed: &EchoedSegment{Seq: 1, End: 1461, Len: 1460}}}},
		{"icmp packet too big", "0 < icmp packet_too_big mtu 1280", Packet{Dir: Inbound, ICMP: &ICMP{Type: "packet_too_big", MTU: set(1280)}}},
		{"icmp v6 mtu above 16 bits", "0 < icmp packet_too_big mtu 70000", Packet{Dir: Inbound, ICMP: &ICMP{Type: "packet_too_big", MTU: set(70000)}}},
		{"icmp numbers", "0 < [ect0] icmp type_3 code_4 mtu 576 [0:0(0)]", Packet{Dir: Inbound, IP: IPSpec{ECN: ECNECT0}, ICMP: &ICMP{Type: "type_3", Code: "code_4", MTU: set(576), Echoed: &EchoedSegment{}}}},
		{"icmp port unreachable", "0 < icmp unreachable port_unreachable", Packet{Dir: Inbound, ICMP: &ICMP{Type: "unreachable", Code: "port_unreachable"}}},
		{"icmp v6 code", "0 < icmp unreachable admin_prohibited", Packet{Dir: Inbound, ICMP: &ICMP{Type: "unreachable", Code: "admin_prohibited"}}},
		{"icmp outbound", "0 > icmp unreachable port_unreachable", Packet{Dir: Outbound, ICMP: &ICMP{Type: "unreachable", Code: "port_unreachable"}}},
		{"icmp no code", "0 < icmp source_quench [1:1(0)]", Packet{Dir: Inbound, ICMP: &ICMP{Type: "source_quench", Echoed: &EchoedSegment{Seq: 1, End: 1}}}},
		{"icmp from a router with a quoted segment", "0 > icmp time_exceeded from 10.79.2.253 [S 0:0(0) win * <mss 1200,...>]", Packet{Dir: Outbound, ICMP: &ICMP{Type: "time_exceeded",
			From: netip.MustParseAddr("10.79.2.253"), Quote: &Packet{Dir: Outbound, Flags: probe.SYN, Win: anyNum,
				Options: OptionList{Kind: Listed, List: []OptionSpec{opt(probe.MSSOption(1200))}, More: true}}}}},
		{"icmp ip fields and quoted ip fields", "0 > [ttl *, tos 0x10] icmp time_exceeded exceeded_hop_limit from fd00::1 [(ttl 1, df, id *) S. 0:0(0) ack 1 <...>]", Packet{Dir: Outbound,
			IP: IPSpec{TOS: set(0x10), TTL: anyNum}, ICMP: &ICMP{Type: "time_exceeded", Code: "exceeded_hop_limit", From: netip.MustParseAddr("fd00::1"),
				Quote: &Packet{Dir: Outbound, IP: IPSpec{TTL: set(1), DF: set(1), ID: anyNum}, Flags: probe.SYN | probe.ACK, Ack: set(1), Options: OptionList{Kind: AnyOptions}}}}},
		{"icmp from mtu and quoted data", `0 > icmp unreachable frag_needed from ::ffff:10.1.2.3 mtu 1400 [P. 1:1461(1460) ack * "GET"]`, Packet{Dir: Outbound, ICMP: &ICMP{Type: "unreachable", Code: "frag_needed",
			From: netip.MustParseAddr("10.1.2.3"), MTU: set(1400), Quote: &Packet{Dir: Outbound, Flags: probe.PSH | probe.ACK, Seq: 1, End: 1461, Len: 1460, Ack: anyNum, Payload: []byte("GET")}}}},
		{"icmp outbound echoed", "0 > icmp time_exceeded from 10.0.0.1 [0:0(0)]", Packet{Dir: Outbound, ICMP: &ICMP{Type: "time_exceeded", From: netip.MustParseAddr("10.0.0.1"), Echoed: &EchoedSegment{}}}},
		{"icmp quoted any length", "0 > icmp time_exceeded [. 1:*(*) <nop,nop,TS val * ecr *>]", Packet{Dir: Outbound, ICMP: &ICMP{Type: "time_exceeded",
			Quote: &Packet{Dir: Outbound, Flags: probe.ACK, Seq: 1, LenAny: true, Options: OptionList{Kind: Listed, List: []OptionSpec{opt(probe.NOPOption()), opt(probe.NOPOption()), {Option: probe.TimestampsOption(0, 0), AnyVal: true, AnyEcr: true}}}}}}},
		{"options then any", "0 > S. 0:0(0) ack 1 <mss 1460,sackOK,...>", Packet{Dir: Outbound, Flags: probe.SYN | probe.ACK, Ack: set(1),
			Options: OptionList{Kind: Listed, List: []OptionSpec{opt(probe.MSSOption(1460)), opt(probe.SACKPermittedOption())}, More: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := lastEvent(t, tt.src)
			if ev.Packet == nil || ev.Syscall != nil {
				t.Fatalf("%q: Packet %v, Syscall %v; want a packet only", tt.src, ev.Packet, ev.Syscall)
			}
			if !reflect.DeepEqual(*ev.Packet, tt.want) {
				t.Errorf("%q:\n got %+v\nwant %+v", tt.src, *ev.Packet, tt.want)
			}
		})
	}
}

func TestSyscalls(t *testing.T) {
	tests := []struct {
		src  string
		want Syscall
	}{
		{"0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3", Syscall{Name: "socket", Args: "..., SOCK_STREAM, IPPROTO_TCP", Result: "3"}},
		{"0 close(4) = 0", Syscall{Name: "close", Args: "4", Result: "0"}},
		{"0 getpid() = 1", Syscall{Name: "getpid", Args: "", Result: "1"}},
		{"0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0", Syscall{Name: "setsockopt", Args: "3, SOL_SOCKET, SO_REUSEADDR, [1], 4", Result: "0"}},
		{"0 connect(3, ..., ...) = -1 ECONNREFUSED (Connection refused)", Syscall{Name: "connect", Args: "3, ..., ...", Result: "-1 ECONNREFUSED (Connection refused)"}},
		{`0 write(4, "abc"..., 3) = 3`, Syscall{Name: "write", Args: `4, "abc"..., 3`, Result: "3"}},
		{"0 setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0", Syscall{Name: "setsockopt", Args: "3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8", Result: "0"}},
		{"0 poll([{fd=4, events=POLLIN, revents=POLLIN}], 1, 0) = 1", Syscall{Name: "poll", Args: "[{fd=4, events=POLLIN, revents=POLLIN}], 1, 0", Result: "1"}},
		{"0 setsockopt(3,\n     SOL_SOCKET, SO_LINGER,\n     {onoff=1,   // on\n      linger=0}, 8) = 0", Syscall{Name: "setsockopt", Args: "3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8", Result: "0"}},
		{"+0...0.1 read(4, ..., 1000) = 1000", Syscall{Name: "read", Args: "4, ..., 1000", Result: "1000", Blocking: true}},
		{"0 ioctl(4, SIOCINQ, [0]) = 0 (ok here)", Syscall{Name: "ioctl", Args: "4, SIOCINQ, [0]", Result: "0 (ok here)"}},
	}
	for _, tt := range tests {
		ev := lastEvent(t, tt.src)
		if ev.Syscall == nil || ev.Packet != nil {
			t.Fatalf("%q: Syscall %v, Packet %v; want a syscall only", tt.src, ev.Syscall, ev.Packet)
		}
		if *ev.Syscall != tt.want {
			t.Errorf("%q:\n got %+v\nwant %+v", tt.src, *ev.Syscall, tt.want)
		}
	}
}

func TestAppActs(t *testing.T) {
	s := mustParse(t, "0 accept(3, ..., ...) = 4\n+0 write(4, ..., 10) = 10\n+0 close(4) = 0\n")
	got := []bool{s.Events[0].Syscall.AppActs(), s.Events[1].Syscall.AppActs(), s.Events[2].Syscall.AppActs()}
	if want := []bool{false, true, true}; !reflect.DeepEqual(got, want) {
		t.Errorf("AppActs = %v, want %v", got, want)
	}
}

func TestHeaderOptions(t *testing.T) {
	src := `--tolerance_usecs=10000
--tolerance_percent="25.5"
--ip_version=ipv4-mapped-ipv6
--mss=1000
--bind_port=8080 --connect_port=8080
--strict_segments
--define=PROTO=IPPROTO_TCP
--local_ip="192.168.0.1"
0 < S 0:0(0) win 1
`
	s := mustParse(t, src)
	wantCfg := Config{ToleranceUsecs: 10000, TolerancePercent: 25.5, IPVersion: 4, MSS: 1000}
	if s.Config != wantCfg {
		t.Errorf("Config = %+v, want %+v", s.Config, wantCfg)
	}
	wantOpts := []HeaderOption{
		{1, "tolerance_usecs", "10000"}, {2, "tolerance_percent", "25.5"}, {3, "ip_version", "ipv4-mapped-ipv6"}, {4, "mss", "1000"},
		{5, "bind_port", "8080"}, {5, "connect_port", "8080"}, {6, "strict_segments", ""}, {7, "define", "PROTO=IPPROTO_TCP"}, {8, "local_ip", "192.168.0.1"},
	}
	if !reflect.DeepEqual(s.Options, wantOpts) {
		t.Errorf("Options =\n %+v\nwant\n %+v", s.Options, wantOpts)
	}
	wantIgnored := []Note{
		{5, "--bind_port=8080", "packetdrill option --bind_port has no meaning for a remote target"},
		{5, "--connect_port=8080", "packetdrill option --connect_port has no meaning for a remote target"},
		{6, "--strict_segments", "packetdrill option --strict_segments is not used by synprobe"},
		{8, `--local_ip="192.168.0.1"`, "packetdrill option --local_ip has no meaning for a remote target"},
	}
	if !reflect.DeepEqual(s.Ignored, wantIgnored) {
		t.Errorf("Ignored =\n %+v\nwant\n %+v", s.Ignored, wantIgnored)
	}

	for _, tt := range []struct {
		value string
		want  int
	}{{"ipv4", 4}, {"ipv6", 6}, {"ipv4_mapped_ipv6", 4}, {`"ipv6"`, 6}} {
		s := mustParse(t, "--ip_version="+tt.value+"\n0 < S 0:0(0) win 1")
		if s.Config.IPVersion != tt.want {
			t.Errorf("--ip_version=%s: IPVersion %d, want %d", tt.value, s.Config.IPVersion, tt.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	s := mustParse(t, "0 < S 0:0(0) win 1")
	if want := (Config{ToleranceUsecs: 4000, TolerancePercent: 12.5}); s.Config != want {
		t.Errorf("Config = %+v, want %+v", s.Config, want)
	}
	if s.File != "t.pkt" || s.Meta.Name != "t" {
		t.Errorf("File %q, Meta.Name %q; want t.pkt, t", s.File, s.Meta.Name)
	}
	for _, tt := range []struct{ file, want string }{
		{"listen/ack.pkt", "ack"}, {"/a/b/c.pkt", "c"}, {"noext", "noext"}, {"x.txt", "x.txt"}, {"", ""},
	} {
		s, err := Parse(tt.file, []byte("0 < S 0:0(0) win 1"))
		if err != nil {
			t.Fatal(err)
		}
		if s.Meta.Name != tt.want {
			t.Errorf("Parse(%q): Meta.Name %q, want %q", tt.file, s.Meta.Name, tt.want)
		}
	}
}

func TestMeta(t *testing.T) {
	src := `// @name listen-ack-rst
// @description An ACK to a listener
//   @description   is answered with a RST.
// @rfc 9293  3.10.7.2
// @level should
// @needs open-port
// @needs ipv6 app-closes-on-eof
0 < . 1:1(0) ack 1 win 1 // @tags listen rst
/* @name not-metadata: only // comments carry it */
+0 > R 1:1(0)
`
	s := mustParse(t, src)
	want := Meta{
		Name:        "listen-ack-rst",
		Description: "An ACK to a listener is answered with a RST.",
		RFC:         "9293 3.10.7.2",
		Level:       "SHOULD",
		Needs:       []string{"open-port", "ipv6", "app-closes-on-eof"},
		Tags:        []string{"listen", "rst"},
	}
	if !reflect.DeepEqual(s.Meta, want) {
		t.Errorf("Meta =\n %+v\nwant\n %+v", s.Meta, want)
	}
	for _, lv := range []struct{ in, want string }{{"MUST", "MUST"}, {"must", "MUST"}, {"SHOULD", "SHOULD"}, {"info", "info"}, {"INFO", "info"}} {
		s := mustParse(t, "// @level "+lv.in+"\n0 < S 0:0(0) win 1")
		if s.Meta.Level != lv.want {
			t.Errorf("@level %s: Level %q, want %q", lv.in, s.Meta.Level, lv.want)
		}
	}
}

func TestIgnoredCommands(t *testing.T) {
	src := "`./defaults.sh`\n" +
		"0 < S 0:0(0) win 1\n" +
		"+0 `sysctl -q net.ipv4.tcp_timestamps=0`\n" +
		"+.1 %{ assert tcpi_state == 1\n   print(1) }%\n" +
		"+0 > S. 0:0(0) ack 1\n" +
		"`echo cleanup\n  done`\n"
	s := mustParse(t, src)
	want := []Note{
		{1, "`./defaults.sh`", ignoredReason},
		{3, "+0 `sysctl -q net.ipv4.tcp_timestamps=0`", ignoredReason},
		{4, "+.1 %{ assert tcpi_state == 1 print(1) }%", ignoredReason},
		{7, "`echo cleanup done`", ignoredReason},
	}
	if !reflect.DeepEqual(s.Ignored, want) {
		t.Errorf("Ignored =\n %+v\nwant\n %+v", s.Ignored, want)
	}
	if len(s.Events) != 2 {
		t.Fatalf("%d events, want 2", len(s.Events))
	}
}

// TestIgnoredTimeKept: a timed command that is dropped still takes its
// time, so the events after it happen when packetdrill would run them.
func TestIgnoredTimeKept(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want Time // of the last event
	}{
		{"relative after relative", "0 < S 0:0(0) win 1\n+.2 `true`\n+.1 > S. 0:0(0) ack 1", Time{Kind: Relative, Start: ms(300)}},
		{"two commands", "0 < S 0:0(0) win 1\n+.2 `true`\n+.3 %{ x }%\n+.1 > S. 0:0(0) ack 1", Time{Kind: Relative, Start: ms(600)}},
		{"relative range", "0 < S 0:0(0) win 1\n+.2 `true`\n+0~+.1 > S. 0:0(0) ack 1", Time{Kind: Relative, Start: ms(200), End: ms(300), Range: true}},
		{"absolute command", "0 < S 0:0(0) win 1\n1.5 `true`\n+.1 > S. 0:0(0) ack 1", Time{Kind: Absolute, Start: ms(1600)}},
		{"absolute command then relative blocking call", "0 < S 0:0(0) win 1\n1 `true`\n+.1...0.2 read(4, ..., 1) = 1", Time{Kind: Absolute, Start: ms(1100), End: ms(1200)}},
		{"absolute event resets", "0 < S 0:0(0) win 1\n+.2 `true`\n0.5 > S. 0:0(0) ack 1", Time{Kind: Absolute, Start: ms(500)}},
		{"any time resets", "0 < S 0:0(0) win 1\n+.2 `true`\n* > S. 0:0(0) ack 1\n+.1 > . 1:1(0)", Time{Kind: Relative, Start: ms(100)}},
		{"zero time changes nothing", "0 < S 0:0(0) win 1\n+0 `true`\n+.1 > S. 0:0(0) ack 1", Time{Kind: Relative, Start: ms(100)}},
	}
	for _, tt := range tests {
		ev := lastEvent(t, tt.src)
		if ev.Time != tt.want {
			t.Errorf("%s: time %+v, want %+v", tt.name, ev.Time, tt.want)
		}
	}
}

func TestMultiLine(t *testing.T) {
	src := `0 < S 0:0(0) win 65535 <mss 1460,
                        sackOK,     // the usual
                        TS val 100 ecr 0,
                        nop, wscale 7>
+0 > S. 0:0(0) /* a comment
   that spans lines */ ack 1 <...>
+0 < [ttl 64,
      df] . 1:1(0) ack 1 win 257 {tcpsum bad,
                                  doff 5}
+0 poll([{fd=4,
          events=POLLIN}], 1, 0) = 1
+0 > none
`
	s := mustParse(t, src)
	want := []struct {
		line int
		text string
	}{
		{1, "0 < S 0:0(0) win 65535 <mss 1460, sackOK, TS val 100 ecr 0, nop, wscale 7>"},
		{5, "+0 > S. 0:0(0) ack 1 <...>"},
		{7, "+0 < [ttl 64, df] . 1:1(0) ack 1 win 257 {tcpsum bad, doff 5}"},
		{10, "+0 poll([{fd=4, events=POLLIN}], 1, 0) = 1"},
		{12, "+0 > none"},
	}
	if len(s.Events) != len(want) {
		t.Fatalf("%d events, want %d", len(s.Events), len(want))
	}
	for i, w := range want {
		if ev := s.Events[i]; ev.Line != w.line || ev.Text != w.text {
			t.Errorf("event %d: line %d text %q, want line %d text %q", i, ev.Line, ev.Text, w.line, w.text)
		}
	}
	if n := len(s.Events[0].Packet.Options.List); n != 5 {
		t.Errorf("first event has %d options, want 5", n)
	}
}

// TestEventText: an event's Text is its line without comments, every gap
// one space; tokens written together stay together.
func TestEventText(t *testing.T) {
	tests := []struct{ src, want string }{
		{"  +0   <  S  0:0(0)  win 1  ", "+0 < S 0:0(0) win 1"},
		{"\t+.1\t>\tS.\t0:0(0)\tack\t1\t// trailing", "+.1 > S. 0:0(0) ack 1"},
		{"0 < S 0:0(0) win 1 <mss 1460 ,sackOK,nop,nop>", "0 < S 0:0(0) win 1 <mss 1460 ,sackOK,nop,nop>"},
		{"0 /* why */ < S 0:0(0) win 1", "0 < S 0:0(0) win 1"},
		{`0 < P. 1:3(2) ack 1 win 1 "a  b"[:2]`, ""}, // error: see below
		{`0 < P. 1:5(4) ack 1 win 1 "a  b"`, `0 < P. 1:5(4) ack 1 win 1 "a  b"`},
		{"0 write(4,   ...,   10)   =   10", "0 write(4, ..., 10) = 10"},
	}
	for _, tt := range tests {
		s, err := Parse("t.pkt", []byte(tt.src))
		if tt.want == "" {
			if err == nil {
				t.Errorf("%q: no error", tt.src)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.src, err)
			continue
		}
		if got := s.Events[0].Text; got != tt.want {
			t.Errorf("%q: Text %q, want %q", tt.src, got, tt.want)
		}
	}
}

func TestErrorsAs(t *testing.T) {
	_, err := Parse("a.pkt", []byte("0 < S 0:0(0)\n"))
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 1 {
		t.Fatalf("errors.As(ErrorList) failed or wrong length: %v", err)
	}
	var se *SyntaxError
	if !errors.As(err, &se) || se.Line != 1 || se.File != "a.pkt" {
		t.Fatalf("errors.As(*SyntaxError) = %v, %+v", errors.As(err, &se), se)
	}
}

func TestSyntaxErrorFormat(t *testing.T) {
	tests := []struct {
		e    SyntaxError
		want string
	}{
		{SyntaxError{File: "a.pkt", Line: 3, Col: 5, Msg: "bad", Source: "0 < X"}, "a.pkt:3:5: bad\n    0 < X\n        ^"},
		{SyntaxError{File: "a.pkt", Line: 1, Col: 3, Msg: "bad", Source: "\t\tX"}, "a.pkt:1:3: bad\n    \t\tX\n    \t\t^"},
		{SyntaxError{File: "a.pkt", Line: 1, Col: 3, Msg: "bad", Source: "éaX"}, "a.pkt:1:3: bad\n    éaX\n      ^"},
		{SyntaxError{Line: 1, Col: 1, Msg: "bad", Source: "X"}, "1:1: bad\n    X\n    ^"},
		{SyntaxError{File: "a.pkt", Line: 1, Col: 4, Msg: "past the end", Source: "ab"}, "a.pkt:1:4: past the end\n    ab\n       ^"},
		{SyntaxError{File: "a.pkt", Line: 1, Col: 1, Msg: "empty file"}, "a.pkt:1:1: empty file"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() =\n%s\nwant\n%s", got, tt.want)
		}
	}
	// A real one, end to end: caret under the offending token.
	_, err := Parse("t.pkt", []byte("0 < S 0:0(0) win 1\n  +0 > S. 0:0(0) ack 1 <mss 1460,wscale 300>\n"))
	want := "t.pkt:2:41: wscale 300 is out of range (0 to 255)\n      +0 > S. 0:0(0) ack 1 <mss 1460,wscale 300>\n    " + strings.Repeat(" ", 40) + "^"
	if err == nil || err.Error() != want {
		t.Errorf("error =\n%v\nwant\n%s", err, want)
	}
}

func TestErrorListOrderAndCap(t *testing.T) {
	// Errors from the lexer (metadata, '#') and the parser come out in
	// source order.
	src := "0 < S 0:0(0)\n// @level maybe\n# shell comment\n+0 > X 0:0(0)\n"
	_, err := Parse("t.pkt", []byte(src))
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("not an ErrorList: %v", err)
	}
	var lines []int
	for _, e := range list {
		lines = append(lines, e.Line)
	}
	if want := []int{1, 2, 3, 4}; !reflect.DeepEqual(lines, want) {
		t.Errorf("error lines %v, want %v:\n%v", lines, want, err)
	}

	var b strings.Builder
	for range 100 {
		b.WriteString("0 < S 0:0(0)\n")
	}
	_, err = Parse("t.pkt", []byte(b.String()))
	if !errors.As(err, &list) {
		t.Fatalf("not an ErrorList: %v", err)
	}
	if len(list) != maxErrors+1 || list[maxErrors].Msg != "too many errors; stopping here" || list[maxErrors].Line != maxErrors+1 {
		t.Errorf("%d errors, last %+v; want %d, the last 'too many errors' on line %d", len(list), list[len(list)-1], maxErrors+1, maxErrors+1)
	}
}

// TestRecoversPerStatement: one bad line does not hide the next.
func TestRecoversPerStatement(t *testing.T) {
	src := "0 < S 0:0(0) wn 1\n+0 > S. 0:0(0) ack 1\n+0 < . 1:1(0) ack 1 win 99999\n"
	_, err := Parse("t.pkt", []byte(src))
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 2 || list[0].Line != 1 || list[1].Line != 3 {
		t.Fatalf("want errors on lines 1 and 3, got %v", err)
	}
}

func TestLineEndingsAndBOM(t *testing.T) {
	src := "\xef\xbb\xbf// @name crlf\r\n--mss=1000\r\n0 < S 0:0(0) win 1\r\n+0 > S. 0:0(0) ack 1 // reply\r\n"
	s := mustParse(t, src)
	if s.Meta.Name != "crlf" || s.Config.MSS != 1000 || len(s.Events) != 2 || s.Events[1].Text != "+0 > S. 0:0(0) ack 1" {
		t.Errorf("got Meta.Name %q, MSS %d, %d events, last %q", s.Meta.Name, s.Config.MSS, len(s.Events), s.Events[len(s.Events)-1].Text)
	}
	_, err := Parse("t.pkt", []byte("0 < S 0:0(0) wn 1\r\n"))
	var se *SyntaxError
	if !errors.As(err, &se) || se.Source != "0 < S 0:0(0) wn 1" {
		t.Errorf("error source %q, want the line without its \\r", se.Source)
	}
}

func TestQuotedPartOfOptionValue(t *testing.T) {
	s := mustParse(t, "--define=CC=\"reno cubic\" --define=X=1\n0 < S 0:0(0) win 1")
	want := []HeaderOption{{1, "define", `CC="reno cubic"`}, {1, "define", "X=1"}}
	if !reflect.DeepEqual(s.Options, want) {
		t.Errorf("Options = %+v, want %+v", s.Options, want)
	}
}

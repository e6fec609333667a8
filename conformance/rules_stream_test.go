package conformance

import (
	"strings"
	"testing"

	"synprobe/conformance/report"
	"synprobe/probe"
)

// ruleCase is one call of a rule: the problems it returns must be exactly
// the rules named in want (in order), each with a text containing text.
type ruleCase struct {
	name string
	got  Problems
	want []string // rule names
	text string   // part of the first problem's text
}

func checkRules(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		var rules []string
		for _, p := range tc.got {
			rules = append(rules, p.Rule)
		}
		if strings.Join(rules, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: problems %q, want rules %q", tc.name, tc.got.Texts(), tc.want)
			continue
		}
		if tc.text != "" && !strings.Contains(tc.got[0].Text, tc.text) {
			t.Errorf("%s: problem %q, want it to contain %q", tc.name, tc.got[0].Text, tc.text)
		}
	}
}

func seg(flags probe.Flags, seq, ack probe.Seq, data int, opts ...probe.Option) *probe.TCP {
	return &probe.TCP{Flags: flags, Seq: seq, Ack: ack, Window: 1000, Payload: make([]byte, data), Options: opts}
}

func TestHandshakeACK(t *testing.T) {
	syn := seg(probe.SYN, 100, 0, 0)
	synack := seg(probe.SYN|probe.ACK, 500, 101, 0)
	tfo := seg(probe.SYN, 100, 0, 10, probe.FastOpenOption([]byte{1, 2, 3, 4}))
	checkRules(t, []ruleCase{
		{"correct", HandshakeACK(syn, synack, seg(probe.ACK, 101, 501, 0)), nil, ""},
		{"with data", HandshakeACK(syn, synack, seg(probe.ACK|probe.PSH, 101, 501, 10)), nil, ""},
		{"SYN unknown", HandshakeACK(nil, synack, seg(probe.ACK, 101, 501, 0)), nil, ""},
		{"no ACK bit", HandshakeACK(syn, synack, seg(probe.PSH, 101, 501, 0)), []string{"hs-ack-flags"}, "want the ACK bit"},
		{"wrong ack", HandshakeACK(syn, synack, seg(probe.ACK, 101, 500, 0)), []string{"hs-ack-ack"}, "want the SYN-ACK's ISN+1 (501), got 500 (ISN+0)"},
		{"wrong seq", HandshakeACK(syn, synack, seg(probe.ACK, 100, 501, 0)), []string{"hs-ack-seq"}, "want what the SYN-ACK acknowledged (101), got 100"},
		{"fast open data accepted", HandshakeACK(tfo, seg(probe.SYN|probe.ACK, 500, 111, 0), seg(probe.ACK, 111, 501, 0)), nil, ""},
		{"fast open data not accepted", HandshakeACK(tfo, synack, seg(probe.ACK, 101, 501, 10)), nil, ""},
		{"seq past the SYN's data", HandshakeACK(tfo, synack, seg(probe.ACK, 112, 501, 0)), []string{"hs-ack-seq"}, ""},
	})
}

func TestMSSSane(t *testing.T) {
	syn := func(mss uint16) *probe.TCP { return seg(probe.SYN, 1, 0, 0, probe.MSSOption(mss)) }
	checkRules(t, []ruleCase{
		{"1460", MSSSane(syn(1460), false), nil, ""},
		{"536", MSSSane(syn(536), false), nil, ""},
		{"no MSS", MSSSane(seg(probe.SYN, 1, 0, 0), false), nil, ""},
		{"0", MSSSane(syn(0), false), []string{"mss-zero"}, "MSS 0"},
		{"tiny", MSSSane(syn(40), false), []string{"mss-tiny"}, "MSS 40 is tiny"},
		{"small v4", MSSSane(syn(500), false), []string{"mss-small"}, "below the default of 536 for IPv4"},
		{"small v6", MSSSane(syn(1200), true), []string{"mss-small"}, "below the default of 1220 for IPv6"},
		{"not a SYN", MSSSane(seg(probe.ACK, 1, 0, 0, probe.MSSOption(0)), false), nil, ""},
	})
	if v := MSSSane(syn(0), false).Verdict(); v != report.Fail {
		t.Errorf("MSS 0: verdict %s, want fail", v)
	}
	if v := MSSSane(syn(500), false).Verdict(); v != report.Info {
		t.Errorf("MSS 500: verdict %s, want info", v)
	}
}

func TestWScaleUse(t *testing.T) {
	checkRules(t, []ruleCase{
		{"in a SYN", WScaleUse(seg(probe.SYN, 1, 0, 0, probe.WScaleOption(7))), nil, ""},
		{"14", WScaleUse(seg(probe.SYN|probe.ACK, 1, 0, 0, probe.WScaleOption(14))), nil, ""},
		{"none", WScaleUse(seg(probe.ACK, 1, 0, 0)), nil, ""},
		{"15", WScaleUse(seg(probe.SYN, 1, 0, 0, probe.WScaleOption(15))), []string{"wscale-max"}, "shift 15 exceeds the maximum of 14"},
		{"outside SYN", WScaleUse(seg(probe.ACK, 1, 0, 0, probe.WScaleOption(7))), []string{"wscale-not-syn"}, "without SYN"},
	})
}

func TestAckSent(t *testing.T) {
	checkRules(t, []ruleCase{
		{"acks all", AckSent(seg(probe.ACK, 1, 200, 0), 200), nil, ""},
		{"acks part", AckSent(seg(probe.ACK, 1, 150, 0), 200), nil, ""},
		{"no ACK bit", AckSent(seg(probe.SYN, 1, 900, 0), 200), nil, ""},
		{"across the wrap", AckSent(seg(probe.ACK, 1, 5, 0), 0xfffffff0), []string{"ack-unsent"}, "acknowledges 21 octets the peer never sent (its SND.NXT is 4294967280)"},
		{"beyond", AckSent(seg(probe.ACK, 1, 300, 0), 200), []string{"ack-unsent"}, "ack 300 acknowledges 100 octets"},
	})
}

func TestFINAck(t *testing.T) {
	cases := []struct {
		name  string
		t     *probe.TCP
		acked bool
		rules []string
	}{
		{"exact", seg(probe.ACK, 1, 101, 0), true, nil},
		{"not yet", seg(probe.ACK, 1, 100, 0), false, nil},
		{"no ACK bit", seg(probe.FIN, 1, 101, 0), false, nil},
		{"past the FIN", seg(probe.ACK, 1, 105, 0), true, []string{"fin-ack"}},
	}
	for _, tc := range cases {
		acked, ps := FINAck(100, tc.t)
		if acked != tc.acked {
			t.Errorf("%s: acked %v, want %v", tc.name, acked, tc.acked)
		}
		checkRules(t, []ruleCase{{tc.name, ps, tc.rules, ""}})
	}
}

func TestAfterFIN(t *testing.T) {
	// The FIN occupies seq 100: everything after starts at 101.
	checkRules(t, []ruleCase{
		{"ACK after the FIN", AfterFIN(100, seg(probe.ACK, 101, 1, 0)), nil, ""},
		{"FIN again", AfterFIN(100, seg(probe.FIN|probe.ACK, 100, 1, 0)), nil, ""},
		{"FIN again with its data", AfterFIN(100, seg(probe.FIN|probe.ACK, 90, 1, 10)), nil, ""},
		{"data before the FIN again", AfterFIN(100, seg(probe.ACK, 90, 1, 10)), nil, ""},
		{"RST", AfterFIN(100, seg(probe.RST, 300, 0, 0)), nil, ""},
		{"FIN not counted", AfterFIN(100, seg(probe.ACK, 100, 1, 0)), []string{"fin-seq"}, "want 101 (the FIN takes one sequence number), got 100"},
		{"seq past the end", AfterFIN(100, seg(probe.ACK, 105, 1, 0)), []string{"fin-seq"}, "4 past the end"},
		{"data after the FIN", AfterFIN(100, seg(probe.ACK, 101, 1, 10)), []string{"data-after-fin"}, "10 octets of data after the FIN"},
		{"a second FIN", AfterFIN(100, seg(probe.FIN|probe.ACK, 101, 1, 5)), []string{"fin-moved"}, "a second FIN at seq 106"},
	})
}

func TestRSTAcceptable(t *testing.T) {
	rcv := RcvWindow{NXT: 1000, WND: 500}
	cases := []struct {
		name  string
		seq   probe.Seq
		rcv   RcvWindow
		class RSTClass
		rules []string
		text  string
	}{
		{"exact", 1000, rcv, RSTExact, nil, ""},
		{"in flight", 1050, RcvWindow{NXT: 1000, InFlight: 100, WND: 500}, RSTExact, nil, ""},
		{"in window", 1001, rcv, RSTInWindow, []string{"rst-inexact"}, "RST seq 1001 is in the receiver's window [1000, 1500) but not RCV.NXT 1000"},
		{"last of the window", 1499, rcv, RSTInWindow, []string{"rst-inexact"}, ""},
		{"just past the window", 1500, rcv, RSTOutOfWindow, []string{"rst-out-of-window"}, "RCV.NXT+500"},
		{"before RCV.NXT", 999, rcv, RSTOutOfWindow, []string{"rst-out-of-window"}, "RCV.NXT-1"},
		{"zero window", 1001, RcvWindow{NXT: 1000}, RSTOutOfWindow, []string{"rst-out-of-window"}, ""},
		{"across the wrap", 4, RcvWindow{NXT: 0xfffffffc, WND: 100}, RSTInWindow, []string{"rst-inexact"}, ""},
	}
	for _, tc := range cases {
		class, ps := RSTAcceptable(seg(probe.RST, tc.seq, 0, 0), tc.rcv)
		if class != tc.class {
			t.Errorf("%s: class %v, want %v", tc.name, class, tc.class)
		}
		checkRules(t, []ruleCase{{tc.name, ps, tc.rules, tc.text}})
	}
	if v := func() report.Verdict { _, ps := RSTAcceptable(seg(probe.RST, 1001, 0, 0), rcv); return ps.Verdict() }(); v != report.Warn {
		t.Errorf("in-window RST: verdict %s, want warn", v)
	}
}

func TestRSTForSegment(t *testing.T) {
	ack := seg(probe.ACK, 100, 700, 0)
	syn := seg(probe.SYN, 100, 0, 0)
	checkRules(t, []ruleCase{
		{"for an ACK", RSTForSegment(ack, seg(probe.RST, 700, 0, 0)), nil, ""},
		{"for an ACK, wrong seq", RSTForSegment(ack, seg(probe.RST, 701, 0, 0)), []string{"rst-seq"}, "want the segment's ack (700), got 701 (+1)"},
		{"for an ACK, with FIN", RSTForSegment(ack, seg(probe.RST|probe.FIN, 700, 0, 0)), []string{"rst-flags"}, ""},
		{"for a SYN", RSTForSegment(syn, seg(probe.RST|probe.ACK, 0, 101, 0)), nil, ""},
		{"for a SYN, wrong ack", RSTForSegment(syn, seg(probe.RST|probe.ACK, 0, 100, 0)), []string{"rst-ack"}, ""},
	})
}

func TestTSUse(t *testing.T) {
	on := TSFlow{Known: true, Negotiated: true, OwnLast: 100, OwnAny: true, PeerMax: 500, PeerAny: true}
	off := TSFlow{Known: true}
	tsSeg := func(val, ecr uint32) *probe.TCP { return seg(probe.ACK, 1, 1, 0, probe.TimestampsOption(val, ecr)) }
	checkRules(t, []ruleCase{
		{"in step", TSUse(on, tsSeg(101, 500)), nil, ""},
		{"echoes an older TSval", TSUse(on, tsSeg(101, 450)), nil, ""},
		{"same TSval", TSUse(on, tsSeg(100, 500)), nil, ""},
		{"RST without", TSUse(on, seg(probe.RST, 1, 0, 0)), nil, ""},
		{"unknown negotiation", TSUse(TSFlow{}, seg(probe.ACK, 1, 1, 0)), nil, ""},
		{"not negotiated, none", TSUse(off, seg(probe.ACK, 1, 1, 0)), nil, ""},
		{"missing", TSUse(on, seg(probe.ACK, 1, 1, 0)), []string{"ts-present"}, "no timestamps option"},
		{"not negotiated", TSUse(off, tsSeg(1, 0)), []string{"ts-not-negotiated"}, "were not negotiated"},
		{"backwards", TSUse(on, tsSeg(99, 500)), []string{"ts-monotonic"}, "TSval went backwards: 99 after 100"},
		{"echo from the future", TSUse(on, tsSeg(101, 501)), []string{"ts-echo"}, "TSecr 501 echoes no TSval the peer sent: its newest was 500"},
		{"across the wrap", TSUse(TSFlow{Known: true, Negotiated: true, OwnLast: 0xffffffff, OwnAny: true, PeerMax: 3, PeerAny: true}, tsSeg(2, 1)), nil, ""},
	})
}

func TestWindowShrink(t *testing.T) {
	win := func(ack probe.Seq, w uint16) *probe.TCP {
		s := seg(probe.ACK, 1, ack, 0)
		s.Window = w
		return s
	}
	checkRules(t, []ruleCase{
		{"same edge", WindowShrink(2000, win(1000, 1000), 0), nil, ""},
		{"edge moves right", WindowShrink(2000, win(1500, 1000), 0), nil, ""},
		{"window closes as data arrives", WindowShrink(2000, win(2000, 0), 0), nil, ""},
		{"rounding of a scaled window", WindowShrink(1000+65160, win(1000, 509), 7), nil, ""},
		{"shrinks", WindowShrink(2000, win(1000, 900), 0), []string{"window-shrink"}, "right edge 1900, 100 octets left of the 2000 offered before"},
		{"shrinks by a scale unit", WindowShrink(1000+65280, win(1000, 509), 7), []string{"window-shrink"}, ""},
		{"RST", WindowShrink(2000, seg(probe.RST|probe.ACK, 1, 1, 0), 0), nil, ""},
	})
	if e := RightEdge(seg(probe.SYN|probe.ACK, 1, 10, 0), 7); e != 1010 {
		t.Errorf("RightEdge of a SYN-ACK with window 1000: %d, want 1010 (never scaled)", e)
	}
}

package capture

import (
	"strings"
	"testing"

	"synprobe/conformance/report"
	"synprobe/probe"
)

func ts(val, ecr uint32) []probe.Option {
	return []probe.Option{probe.NOPOption(), probe.NOPOption(), probe.TimestampsOption(val, ecr)}
}

func abs(s probe.Seq) *probe.Seq { return &s }

func cat(parts ...[]seg) []seg {
	var out []seg
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func with(g seg, f func(*seg)) seg { f(&g); return g }

// tsHandshake negotiates timestamps: client TSvals 100.., server 500..
func tsHandshake() []seg {
	return []seg{
		cSYN(append([]probe.Option{probe.MSSOption(1460)}, ts(100, 0)...)...),
		sSYNACK(append([]probe.Option{probe.MSSOption(1460)}, ts(500, 100)...)...),
		cACK(1, 1, ts(101, 500)...),
	}
}

// checkCase is one connection built segment by segment, and what the
// analysis must say of it: the verdict of its first result, a problem
// text some step must carry (at packet line, when set), notes it must
// have, and how many results the capture gives.
type checkCase struct {
	name    string
	segs    []seg
	verdict report.Verdict
	problem string
	line    int
	notes   []string
	results int
}

var checkCases = []checkCase{
	// Handshake.
	{name: "handshake and four-segment close", segs: cat(handshake(), close4(0, 0)), verdict: report.Pass,
		notes: []string{"client closed first (active close)", "four-segment close"}},
	{name: "SYN-ACK ack not ISN+1", segs: []seg{cSYN(), with(sSYNACK(), func(g *seg) { g.ack = 2 }), cACK(1, 1)},
		verdict: report.Fail, problem: "ack: want ISN+1 (1001), got 1002", line: 2},
	{name: "SYN retransmitted", segs: cat([]seg{cSYN(probe.MSSOption(1460))}, handshake(), close4(0, 0)), verdict: report.Pass,
		notes: []string{"client sent its SYN 1 time more (retransmitted)"}},
	{name: "SYN-ACK retransmitted", segs: cat(handshake()[:2], handshake()[1:], close4(0, 0)), verdict: report.Pass,
		notes: []string{"server sent its SYN-ACK 1 time more (retransmitted)"}},
	{name: "simultaneous open", segs: cat([]seg{
		cSYN(probe.MSSOption(1460)),
		{fromServer: true, flags: probe.SYN, win: 65160, opts: []probe.Option{probe.MSSOption(1460)}},
		{flags: probe.SYN | probe.ACK, ack: 1, win: 64240, opts: []probe.Option{probe.MSSOption(1460)}},
		sSYNACK(probe.MSSOption(1460)),
	}, close4(0, 0)), verdict: report.Pass, notes: []string{"simultaneous open: both sides sent a SYN"}},
	{name: "SYN-ACK carries window scale the SYN did not offer", segs: []seg{cSYN(probe.MSSOption(1460)), sSYNACK(probe.MSSOption(1460), probe.WScaleOption(7)), cACK(1, 1)},
		verdict: report.Fail, problem: "window scale in the SYN-ACK, but the SYN offered none", line: 2},
	{name: "SYN-ACK carries the options offered", segs: []seg{
		cSYN(probe.MSSOption(1460), probe.SACKPermittedOption(), probe.TimestampsOption(100, 0), probe.NOPOption(), probe.WScaleOption(7)),
		sSYNACK(probe.MSSOption(1460), probe.SACKPermittedOption(), probe.TimestampsOption(500, 100), probe.NOPOption(), probe.WScaleOption(7)),
		cACK(1, 1, ts(101, 500)...)}, verdict: report.Pass},
	{name: "SYN-ACK echoes the wrong TSval", segs: []seg{tsHandshake()[0], sSYNACK(ts(500, 99)...), cACK(1, 1, ts(101, 500)...)},
		verdict: report.Fail, problem: "TSecr: want 100", line: 2},
	{name: "MSS 0", segs: cat([]seg{cSYN(probe.MSSOption(0))}, handshake()[1:]), verdict: report.Fail, problem: "MSS 0", line: 1},
	{name: "tiny MSS", segs: cat(handshake()[:1], []seg{sSYNACK(probe.MSSOption(40))}, handshake()[2:]), verdict: report.Warn, problem: "MSS 40 is tiny", line: 2},
	{name: "handshake ACK acks the wrong ISN", segs: cat(handshake()[:2], []seg{cACK(1, 2)}), verdict: report.Fail,
		problem: "ack: want the SYN-ACK's ISN+1 (5001), got 5002", line: 3},
	{name: "handshake ACK with the wrong seq", segs: cat(handshake()[:2], []seg{cACK(0, 1)}), verdict: report.Fail,
		problem: "seq: want what the SYN-ACK acknowledged (1001), got 1000", line: 3},
	{name: "SYN-ACK without its SYN", segs: cat(handshake()[1:], close4(0, 0)), verdict: report.Pass,
		notes: []string{"handshake partly in the capture: the SYN is not, server's SYN-ACK is"}},

	// Teardown.
	{name: "ACK of a FIN past the FIN", segs: cat(handshake(), []seg{cFIN(1, 1), sACK(1, 3)}), verdict: report.Fail,
		problem: "ack: want the FIN's seq+1 (1002), got 1003", line: 5},
	{name: "FIN not counted in the sequence space", segs: cat(handshake(), []seg{cFIN(1, 1), sFIN(1, 2), cACK(1, 2)}), verdict: report.Fail,
		problem: "seq: want 1002 (the FIN takes one sequence number), got 1001", line: 6},
	{name: "data after FIN", segs: cat(handshake(), []seg{cFIN(1, 1), sACK(1, 2), cData(2, 1, 10)}), verdict: report.Fail,
		problem: "10 octets of data after the FIN", line: 6},
	{name: "three-segment close", segs: cat(handshake(), []seg{cFIN(1, 1), sFIN(1, 2), cACK(2, 2)}), verdict: report.Pass,
		notes: []string{"three-segment close: server's FIN carried the ACK of client's FIN"}},
	{name: "simultaneous close", segs: cat(handshake(), []seg{cFIN(1, 1), sFIN(1, 1), cACK(2, 2), sACK(2, 2)}), verdict: report.Pass,
		notes: []string{"simultaneous close: each side sent its FIN before it had the other's"}},
	{name: "half close", segs: cat(handshake(), []seg{cFIN(1, 1), sACK(1, 2), sData(1, 2, 100), cACK(2, 101), sFIN(101, 2), cACK(2, 102)}),
		verdict: report.Pass, notes: []string{"half close: server sent 100 octets after client's FIN", "four-segment close: FIN, ACK, FIN, ACK"}},
	{name: "server closes first", segs: cat(handshake(), []seg{sFIN(1, 1), cACK(1, 2), cFIN(1, 2), sACK(2, 2)}), verdict: report.Pass,
		notes: []string{"server closed first (active close)"}},
	{name: "no close", segs: cat(handshake(), []seg{cData(1, 1, 10), sACK(1, 11)}), verdict: report.Pass, notes: []string{"no close in the capture"}},
	{name: "only one side closed", segs: cat(handshake(), []seg{cFIN(1, 1), sACK(1, 2)}), verdict: report.Pass,
		notes: []string{"no close in the capture: client closed its side, server did not"}},

	// Resets.
	{name: "exact RST from the server", segs: cat(handshake(), []seg{cData(1, 1, 10), sACK(1, 11), sRST(1)}), verdict: report.Pass,
		notes: []string{"reset by server"}},
	{name: "RST in window but not exact", segs: cat(handshake(), []seg{cData(1, 1, 10), sACK(1, 11), sRST(101), cACK(11, 1)}), verdict: report.Warn,
		problem: "answers with a challenge ACK", line: 6, notes: []string{"client answered the RST of packet 6 with a challenge ACK"}},
	{name: "RST out of window", segs: cat(handshake(), []seg{sRST(100000)}), verdict: report.Fail, problem: "outside the receiver's window", line: 4},
	{name: "RST while data is in flight", segs: cat(handshake(), []seg{cData(1, 1, 100), cRST(101)}), verdict: report.Pass, notes: []string{"reset by client"}},
	{name: "RST in SYN-RECEIVED", segs: cat(handshake()[:2], []seg{cRST(1)}), verdict: report.Pass, notes: []string{"reset by client"}},
	{name: "closed port", segs: []seg{cSYN(), {fromServer: true, flags: probe.RST | probe.ACK, absSeq: abs(0), ack: 1}}, verdict: report.Pass,
		notes: []string{"connection refused: server answered the SYN with RST (port closed)"}},
	{name: "closed port, RST acks the wrong number", segs: []seg{cSYN(), {fromServer: true, flags: probe.RST | probe.ACK, absSeq: abs(0), ack: 0}}, verdict: report.Fail,
		problem: "ack: want ISN+1 (1001), got 1000", line: 2},
	{name: "RST for a segment of no connection", segs: []seg{cACK(1, 1), sRST(1)}, verdict: report.Pass},
	{name: "RST for a segment of no connection, wrong seq", segs: []seg{cACK(1, 1), sRST(2)}, verdict: report.Fail,
		problem: "seq: want the segment's ack (5001), got 5002", line: 2},

	// Ongoing.
	{name: "ack of data never sent", segs: cat(handshake(), []seg{cData(1, 1, 100), sACK(1, 501)}), verdict: report.Fail,
		problem: "acknowledges 400 octets the peer never sent", line: 5},
	{name: "ack of data the capture missed", segs: cat(handshake(), []seg{cData(1, 1, 100), sACK(1, 201), cData(201, 1, 100), sACK(1, 301)}),
		verdict: report.Pass, notes: []string{"packet 5 acknowledged data of client the capture did not show (capture loss), not judged"}},
	{name: "timestamps kept up", segs: cat(tsHandshake(), []seg{cData(1, 1, 10, ts(102, 500)...), sACK(1, 11, ts(501, 102)...)}), verdict: report.Pass},
	{name: "timestamps missing after negotiation", segs: cat(tsHandshake(), []seg{cData(1, 1, 10)}), verdict: report.Fail,
		problem: "no timestamps option, but timestamps were negotiated", line: 4},
	{name: "timestamps without negotiation", segs: cat(handshake(), []seg{cData(1, 1, 10, ts(5, 0)...)}), verdict: report.Warn,
		problem: "timestamps were not negotiated", line: 4},
	{name: "TSval goes backwards", segs: cat(tsHandshake(), []seg{cData(1, 1, 10, ts(90, 500)...)}), verdict: report.Fail,
		problem: "TSval went backwards: 90 after 101", line: 4},
	{name: "PAWS: data with an old TSval dropped", segs: cat(tsHandshake(), []seg{cData(1, 1, 10, ts(102, 500)...), sACK(1, 11, ts(501, 102)...),
		cData(11, 1, 10, ts(90, 501)...), sACK(1, 11, ts(502, 102)...)}), verdict: report.Fail, problem: "TSval went backwards: 90 after 102", line: 6},
	{name: "PAWS: data with an old TSval taken", segs: cat(tsHandshake(), []seg{cData(1, 1, 10, ts(102, 500)...), sACK(1, 11, ts(501, 102)...),
		cData(11, 1, 10, ts(90, 501)...), sACK(1, 21, ts(502, 102)...)}), verdict: report.Fail,
		problem: "that came with a TSval older than one already received: PAWS drops such a segment", line: 7},
	{name: "TSecr echoes a TSval never sent", segs: cat(tsHandshake(), []seg{cData(1, 1, 10, ts(102, 500)...), sACK(1, 11, ts(501, 200)...)}), verdict: report.Fail,
		problem: "TSecr 200 echoes no TSval the peer sent: its newest was 102", line: 5},
	{name: "window scale outside SYN", segs: cat(handshake(), []seg{cACK(1, 1, probe.WScaleOption(7))}), verdict: report.Warn,
		problem: "window scale option in a segment without SYN", line: 4},
	{name: "window scale beyond 14", segs: []seg{cSYN(probe.WScaleOption(15)), sSYNACK(probe.WScaleOption(7)), cACK(1, 1)}, verdict: report.Warn,
		problem: "shift 15 exceeds the maximum of 14", line: 1},
	{name: "window shrinks", segs: cat(handshake(), []seg{with(sACK(1, 1), func(g *seg) { g.win = 1000 })}), verdict: report.Warn,
		problem: "window shrank", line: 4},
	{name: "scaled window within rounding", segs: []seg{
		cSYN(probe.WScaleOption(7)), with(sSYNACK(probe.WScaleOption(7)), func(g *seg) { g.win = 65160 }), cACK(1, 1),
		with(sACK(1, 1), func(g *seg) { g.win = 509 }), // 509<<7 = 65152: 8 octets left of 65160, within 128
	}, verdict: report.Pass},
	{name: "checksums bad on every segment of one side", segs: func() []seg {
		var out []seg
		for _, g := range cat(handshake(), close4(0, 0)) {
			if !g.fromServer {
				g.ov = []probe.Override{{Field: probe.FieldTCPChecksumAdd, Value: 1}}
			}
			out = append(out, g)
		}
		return out
	}(), verdict: report.Info, problem: "possibly offloaded", line: 1},
	{name: "checksum bad on one segment", segs: cat(handshake(), []seg{with(sData(1, 1, 10), func(g *seg) { g.ov = []probe.Override{{Field: probe.FieldTCPChecksumAdd, Value: 1}} })}, close4(0, 10)),
		verdict: report.Fail, problem: "bad checksums from 192.0.2.2", line: 4},
	{name: "malformed segment", segs: cat(handshake(), []seg{with(cData(1, 1, 10), func(g *seg) { g.ov = []probe.Override{{Field: probe.FieldTCPDataOffset, Value: 3}} })}),
		verdict: report.Fail, problem: "malformed: tcp: data offset", line: 4},
	{name: "connection seen from its middle", segs: cat([]seg{cData(1, 1, 10), sACK(1, 11)}, close4(10, 0)), verdict: report.Pass,
		notes: []string{"handshake not in the capture"}},
	{name: "retransmitted FIN after the close", segs: cat(handshake(), close4(0, 0), []seg{sFIN(1, 2), cACK(2, 2)}), verdict: report.Pass},
	{name: "new SYN with another ISN", segs: cat(handshake(), []seg{with(cSYN(), func(g *seg) { g.absSeq = abs(90000) })}), verdict: report.Pass,
		results: 2, notes: []string{"no close in the capture: a SYN with a new ISN started another connection on the 4-tuple"}},
}

func TestChecks(t *testing.T) {
	for _, tc := range checkCases {
		t.Run(tc.name, func(t *testing.T) {
			cv := newConv(t).add(tc.segs...)
			rep := mustAnalyze(t, pcapOf(t, 1, cv.frames...), Options{})
			want := tc.results
			if want == 0 {
				want = 1
			}
			if len(rep.Results) != want {
				t.Fatalf("%d results, want %d:\n%s", len(rep.Results), want, textOf(rep))
			}
			r := rep.Results[0]
			if r.Verdict != tc.verdict {
				t.Errorf("verdict %s (%s), want %s", r.Verdict, r.Reason, tc.verdict)
			}
			if tc.problem != "" {
				found := false
				for _, s := range r.Steps {
					for _, p := range s.Problems {
						if strings.Contains(p, tc.problem) && (tc.line == 0 || s.Line == tc.line) {
							found = true
						}
					}
				}
				if !found {
					t.Errorf("no step at packet %d has a problem with %q", tc.line, tc.problem)
				}
			} else {
				for _, s := range r.Steps {
					if len(s.Problems) > 0 {
						t.Errorf("step at packet %d: problems %q, want none", s.Line, s.Problems)
					}
				}
			}
			for _, n := range tc.notes {
				found := false
				for _, got := range r.Notes {
					if strings.Contains(got, n) {
						found = true
					}
				}
				if !found {
					t.Errorf("notes lack %q", n)
				}
			}
			if t.Failed() {
				t.Log("\n" + textOf(rep))
			}
		})
	}
}

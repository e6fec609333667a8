package conformance

import (
	"testing"
	"time"

	"synprobe/conformance/report"
	"synprobe/internal/lab"
	"synprobe/internal/labtest"
	"synprobe/probe"
)

// TestTSRecentGap: duplicate ACKs for segments beyond a gap echo the
// TSval of the last in-order segment, which RFC 7323 4.3 makes TS.Recent;
// real stacks pass the script.
func TestTSRecentGap(t *testing.T) {
	s := loadRunnerScript(t, "ts-recent-gap.pkt")
	for _, stack := range labtest.Stacks(t) {
		t.Run(string(stack), func(t *testing.T) {
			res := runScripts(t, stack, s)[0]
			if res.Verdict != report.Pass {
				t.Errorf("got %s %q, want pass\n%s", res.Verdict, res.Reason, dump(res))
			}
		})
	}
}

// TestTSRecentGapFaulty: a stack that echoes the TSval of a segment
// beyond a gap (it took TS.Recent from it) fails the rule, although that
// TSval is the last synprobe sent.
func TestTSRecentGapFaulty(t *testing.T) {
	seen := 0
	tamper := &lab.Tamper{ToProbe: labtest.TamperTCP(func(f *probe.Frame) bool {
		// The second and third ACKs that echo 300 (the duplicate ACKs)
		// echo the TSval of the segment beyond the gap instead.
		t := &f.TCP
		if val, ecr, ok := t.Timestamps(); ok && ecr == 300 {
			seen++
			if seen > 1 {
				for i, o := range t.Options {
					if o.Kind == probe.OptionTimestamps {
						t.Options[i] = probe.TimestampsOption(val, 300+100*uint32(seen-1))
					}
				}
			}
		}
		return true
	})}
	res := runTampered(t, tamper, time.Second, loadRunnerScript(t, "ts-recent-gap.pkt"))
	wantFail(t, res, "fail at line 14: TSecr: want 200 or 300 ", "got 400")
}

// TestTSRecentUpdate: which segments synprobe sends update the target's
// TS.Recent, and what it may echo after them.
func TestTSRecentUpdate(t *testing.T) {
	var ts TSState
	ts.SentSegment(100, TSMust, 0, 1) // SYN
	ts.Received(&probe.TCP{})
	ts.SentSegment(200, TSMust, 1, 1) // in order, at the last ACK
	ts.SentSegment(300, TSNever, 11, 21)
	ts.SentSegment(400, TSNever, 31, 41) // beyond a gap
	ack := func(ecr uint32) *probe.TCP {
		return &probe.TCP{Flags: probe.ACK, Options: []probe.Option{probe.TimestampsOption(7, ecr)}}
	}
	ts.Enabled = true
	for _, tt := range []struct {
		ecr uint32
		ok  bool
	}{{200, true}, {100, true}, {300, false}, {400, false}} {
		if ps := TSEcho(ts, ack(tt.ecr)); (len(ps) == 0) != tt.ok {
			t.Errorf("ecr %d: got %q, want ok=%v", tt.ecr, ps.Texts(), tt.ok)
		}
	}
	ts.Received(ack(200))
	if ps := TSEcho(ts, ack(100)); len(ps) == 0 {
		t.Errorf("ecr 100 after an ACK that echoed 200 and no change: accepted, want a problem")
	}
	// An ACK of the SYN's sequence number shows the SYN was processed:
	// TS.Recent then held its TSval or a later one.
	synACK := ack(100)
	synACK.Ack = 1
	if ps := TSEcho(TSState{Enabled: true, hist: []tsPoint{{end: 1, data: true, recent: []uint32{100}}}}, synACK); len(ps) > 0 {
		t.Errorf("the SYN's TSval echoed: %q", ps.Texts())
	}
	// A segment that may update (the target may have acknowledged more):
	// either value; PAWS: an older TSval is never taken.
	ts.SentSegment(500, TSMay, 1, 1)
	ts.SentSegment(450, TSMust, 1, 1)
	for _, tt := range []struct {
		ecr uint32
		ok  bool
	}{{200, true}, {500, true}, {450, true}, {300, false}} {
		if ps := TSEcho(ts, ack(tt.ecr)); (len(ps) == 0) != tt.ok {
			t.Errorf("after may 500, must 450: ecr %d: got %q, want ok=%v", tt.ecr, ps.Texts(), tt.ok)
		}
	}
}

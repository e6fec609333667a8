package conformance

import (
	"context"
	"strings"
	"testing"
	"time"

	"synprobe/conformance/report"
	"synprobe/internal/lab"
	"synprobe/internal/labtest"
	"synprobe/probe"
)

// TestLateReply: real stacks answer a segment beyond a gap at once, within
// the tolerance and the round trip; a responder that holds the duplicate
// ACK back 25 ms fails the line on timing, where a 50 ms floor hid it.
func TestLateReply(t *testing.T) {
	s := loadRunnerScript(t, "late-reply.pkt")
	for _, stack := range labtest.Stacks(t) {
		t.Run(string(stack), func(t *testing.T) {
			res := runScripts(t, stack, s)[0]
			if res.Verdict != report.Pass {
				t.Errorf("got %s %q, want pass\n%s", res.Verdict, res.Reason, dump(res))
			}
		})
	}
	t.Run("SYN sent again", func(t *testing.T) {
		// A busy listener drops the first SYN: the SYN-ACK answers the
		// one synprobe sent again a second later, and is not late.
		dropped := false
		tamper := &lab.Tamper{ToTarget: labtest.TamperTCP(func(f *probe.Frame) bool {
			if f.TCP.Flags == probe.SYN && !dropped {
				dropped = true
				return false
			}
			return true
		})}
		tg, p := labTarget(t, lab.StackGVisor, tamper, probe.DialConfig{})
		r := NewRunner(p, RunConfig{Target: tg.Open, Rate: -1, Timeout: 500 * time.Millisecond})
		res := r.RunScript(context.Background(), s)
		again := false
		for _, n := range res.Notes {
			again = again || strings.Contains(n, "synprobe sent it 1 more time(s)")
		}
		if res.Verdict != report.Pass || !again {
			t.Errorf("got %s %q (notes %q), want pass after the SYN was sent again\n%s", res.Verdict, res.Reason, res.Notes, dump(res))
		}
	})
	t.Run("held back", func(t *testing.T) {
		tamper := &lab.Tamper{ToProbe: labtest.TamperTCP(func(f *probe.Frame) bool {
			if t := &f.TCP; t.Flags == probe.ACK && len(t.Payload) == 0 {
				time.Sleep(25 * time.Millisecond)
			}
			return true
		})}
		tg, p := labTarget(t, lab.StackGVisor, tamper, probe.DialConfig{})
		r := NewRunner(p, RunConfig{Target: tg.Open, Rate: -1, Timeout: time.Second})
		wantFail(t, r.RunScript(context.Background(), s), "fail at line 11: timing: expected by")
		// The user says the path's round trip varies that much: the same
		// delay is the path's, and the line passes.
		r = NewRunner(p, RunConfig{Target: tg.Open, Rate: -1, Timeout: time.Second, Jitter: 50 * time.Millisecond})
		if res := r.RunScript(context.Background(), s); res.Verdict != report.Pass {
			t.Errorf("with Jitter 50ms: got %s %q, want pass\n%s", res.Verdict, res.Reason, dump(res))
		}
	})
}

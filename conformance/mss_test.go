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

// TestLongSegmentWhole: a segment longer than the path's MTU reaches the
// target's TCP whole (as IP fragments), as packetdrill delivers it, so the
// target answers it once: Linux with the one DSACK block the script
// describes. gVisor sends no DSACK (RFC 2883 is optional): the script,
// info level, says what it observed instead.
func TestLongSegmentWhole(t *testing.T) {
	s := loadRunnerScript(t, "mss-one-segment.pkt")
	for _, stack := range labtest.Stacks(t) {
		t.Run(string(stack), func(t *testing.T) {
			res := runScripts(t, stack, s)[0]
			checkWhole(t, stack, res)
		})
		t.Run(string(stack)+"/ipv6", func(t *testing.T) {
			tg := labtest.Start(t, stack, nil)
			p := labtest.Dial(t, tg, tg.Open6.Addr(), probe.DialConfig{})
			r := NewRunner(p, RunConfig{Target: tg.Open6, Rate: -1, Timeout: time.Second})
			checkWhole(t, stack, r.RunScript(context.Background(), s))
		})
	}
}

// checkWhole checks the result of mss-one-segment.pkt on stack.
func checkWhole(t *testing.T, stack lab.Stack, res report.Result) {
	t.Helper()
	want := "as the script describes: . 1:1(0) ack 5001"
	if stack == lab.StackGVisor {
		want = "observed . 1:1(0) ack 5001"
	}
	if res.Verdict != report.Info || !strings.Contains(res.Reason, want) {
		t.Errorf("got %s %q, want info with %q\n%s", res.Verdict, res.Reason, want, dump(res))
	}
	fragmented := false
	for _, n := range res.Notes {
		fragmented = fragmented || strings.Contains(n, "as 4 IP fragments")
	}
	if !fragmented {
		t.Errorf("no note of the fragments: %q", res.Notes)
	}
}

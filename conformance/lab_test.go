package conformance

import (
	"context"
	"strings"
	"testing"
	"time"

	"synprobe/conformance/report"
	"synprobe/conformance/script"
	"synprobe/internal/lab"
	"synprobe/internal/labtest"
	"synprobe/probe"
)

// stacks are the real TCP stacks the tests run against.
var stacks = []lab.Stack{lab.StackGVisor, lab.StackLinux}

// labTarget starts a lab (or a faulty gVisor lab when tamper is set) and a
// prober on its probe side to the IPv4 target. Both are closed when the
// test ends.
func labTarget(t testing.TB, stack lab.Stack, tamper *lab.Tamper, cfg probe.DialConfig) (*lab.Target, *probe.Prober) {
	t.Helper()
	tg := labtest.Start(t, stack, tamper)
	return tg, labtest.Dial(t, tg, tg.Open.Addr(), cfg)
}

// runTampered runs s once against a gVisor lab whose frames to synprobe
// pass through tamper: a faulty stack, to show a check can fail.
func runTampered(t testing.TB, tamper *lab.Tamper, timeout time.Duration, s *script.Script) report.Result {
	t.Helper()
	tg, p := labTarget(t, lab.StackGVisor, tamper, probe.DialConfig{})
	return NewRunner(p, RunConfig{Target: tg.Open, Rate: -1, Timeout: timeout}).RunScript(context.Background(), s)
}

// wantFail checks that res failed with every one of wants in its reason.
func wantFail(t testing.TB, res report.Result, wants ...string) {
	t.Helper()
	ok := res.Verdict == report.Fail
	for _, w := range wants {
		ok = ok && strings.Contains(res.Reason, w)
	}
	if !ok {
		t.Errorf("got %s %q, want fail with %q\n%s", res.Verdict, res.Reason, wants, dump(res))
	}
}

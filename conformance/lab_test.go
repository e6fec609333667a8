package conformance

import (
	"testing"

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

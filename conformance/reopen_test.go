package conformance

import (
	"strings"
	"testing"
	"time"

	"synprobe/conformance/report"
	"synprobe/internal/lab"
	"synprobe/internal/labtest"
	"synprobe/probe"
)

// TestSecondConnection: a script that listens again opens its second
// connection from a new port, as packetdrill does, and real stacks pass
// it; both ports show in the run.
func TestSecondConnection(t *testing.T) {
	s := loadRunnerScript(t, "second-connection.pkt")
	for _, stack := range labtest.Stacks(t) {
		t.Run(string(stack), func(t *testing.T) {
			res := runScripts(t, stack, s)[0]
			if res.Verdict != report.Pass {
				t.Errorf("got %s %q, want pass\n%s", res.Verdict, res.Reason, dump(res))
			}
			found := false
			for _, n := range res.Notes {
				found = found || strings.Contains(n, "a new connection from port")
			}
			if !found {
				t.Errorf("no note of the second connection: %q", res.Notes)
			}
		})
	}
}

// TestSecondConnectionFaulty: the second connection is judged: a stack
// whose second SYN-ACK acknowledges the wrong number fails there.
func TestSecondConnectionFaulty(t *testing.T) {
	var first uint16
	tamper := &lab.Tamper{ToProbe: labtest.TamperTCP(func(f *probe.Frame) bool {
		if t := &f.TCP; t.Flags.Has(probe.SYN | probe.ACK) {
			if first == 0 {
				first = t.DstPort
			}
			if t.DstPort != first {
				t.Ack++
			}
		}
		return true
	})}
	res := runTampered(t, tamper, time.Second, loadRunnerScript(t, "second-connection.pkt"))
	wantFail(t, res, "fail at line 25: ack: expected 1001 (abs 1001) got 1002")
}

package conformance

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"synprobe/conformance/report"
	"synprobe/internal/lab"
	"synprobe/internal/labtest"
	"synprobe/probe"
)

func runHandshake(t *testing.T, p *probe.Prober, target string, timeout time.Duration) report.Result {
	t.Helper()
	s, err := p.Open(probe.SessionConfig{Remote: mustAddrPort(target)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return Handshake(context.Background(), s, HandshakeOptions{Timeout: timeout})
}

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// checkSteps compares each step's verdict with want, and that the first
// problem of each step contains the given text.
func checkSteps(t *testing.T, res report.Result, want []report.Verdict, problems map[int]string) {
	t.Helper()
	if len(res.Steps) != len(want) {
		t.Fatalf("got %d steps, want %d:\n%s", len(res.Steps), len(want), dump(res))
	}
	for i, s := range res.Steps {
		if s.Verdict != want[i] {
			t.Errorf("step %d: got %s, want %s\n%s", i+1, s.Verdict, want[i], dump(res))
		}
	}
	for i, text := range problems {
		s := res.Steps[i-1]
		if !strings.Contains(strings.Join(s.Problems, " | "), text) {
			t.Errorf("step %d problems: got %q, want one containing %q", i, s.Problems, text)
		}
	}
}

func dump(res report.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s\n", res.Name, res.Verdict, res.Reason)
	for _, s := range res.Steps {
		fmt.Fprintf(&b, "  %d %s %s  expected %q actual %q problems %q\n", s.Index, s.Direction, s.Verdict, s.Expected, s.Actual, s.Problems)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	return b.String()
}

var (
	allPass   = []report.Verdict{report.Pass, report.Pass, report.Pass, report.Pass, report.Pass, report.Pass, report.Pass}
	failAt2   = []report.Verdict{report.Pass, report.Fail, report.Skip, report.Skip, report.Skip, report.Skip, report.Skip}
	skipAt2   = []report.Verdict{report.Pass, report.Skip, report.Skip, report.Skip, report.Skip, report.Skip, report.Skip}
	halfClose = []report.Verdict{report.Pass, report.Pass, report.Pass, report.Pass, report.Pass, report.Skip, report.Skip}
)

func TestHandshakeAgainstRealStacks(t *testing.T) {
	for _, stack := range stacks {
		for _, v6 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/ipv6=%v", stack, v6), func(t *testing.T) {
				tg := labtest.Start(t, stack, nil)
				open := tg.Open
				if v6 {
					open = tg.Open6
				}
				p := labtest.Dial(t, tg, open.Addr(), probe.DialConfig{})
				res := runHandshake(t, p, open.String(), 2*time.Second)
				checkSteps(t, res, allPass, nil)
				if res.Verdict != report.Pass {
					t.Errorf("verdict %s, want pass\n%s", res.Verdict, dump(res))
				}
			})
		}
	}
}

// TestHandshakeClosedPort: step 2 is skipped as "port closed" (nothing
// listens: not the stack's fault) and the RST itself is right (seq 0, ack
// ISN+1), so no other problem is listed.
func TestHandshakeClosedPort(t *testing.T) {
	for _, stack := range stacks {
		t.Run(string(stack), func(t *testing.T) {
			tg, p := labTarget(t, stack, nil, probe.DialConfig{})
			res := runHandshake(t, p, tg.Closed.String(), 2*time.Second)
			checkSteps(t, res, skipAt2, map[int]string{2: "port closed: R.", 3: "the port is closed"})
			if n := len(res.Steps[1].Problems); n != 1 {
				t.Errorf("the closed port's RST is right, yet step 2 lists %d problems: %q", n, res.Steps[1].Problems)
			}
			for _, n := range res.Notes {
				if strings.Contains(n, "earlier run") {
					t.Errorf("note %q on a closed port: nothing shows a connection left by an earlier run", n)
				}
			}
			if res.Verdict != report.Skip || res.Cause != report.CauseAppNotAccepting || !strings.HasPrefix(res.Reason, "port closed: R.") {
				t.Errorf("got %s [%s] %q, want skip [%s] \"port closed: R. ...\"", res.Verdict, res.Cause, res.Reason, report.CauseAppNotAccepting)
			}
		})
	}
}

// The faulty responders below are gVisor with its frames rewritten: each
// proves that a check fails on the fault it exists for.

func TestHandshakeSilentTarget(t *testing.T) {
	drop := lab.Tamper{ToProbe: func([]byte) [][]byte { return nil }}
	tg, p := labTarget(t, lab.StackGVisor, &drop, probe.DialConfig{})
	res := runHandshake(t, p, tg.Open.String(), 300*time.Millisecond)
	checkSteps(t, res, skipAt2, map[int]string{2: "nothing answered it"})
	if res.Cause != report.CauseAppNotAccepting {
		t.Errorf("cause %q, want %q: silence is never the stack's fault", res.Cause, report.CauseAppNotAccepting)
	}
}

func TestHandshakeFaultyRST(t *testing.T) {
	// A closed port whose RST carries a wrong ack and a non-zero seq.
	bad := lab.Tamper{ToProbe: labtest.TamperTCP(func(f *probe.Frame) bool {
		if f.TCP.Flags&probe.RST != 0 {
			f.TCP.Seq, f.TCP.Ack = 7, f.TCP.Ack+1
		}
		return true
	})}
	tg, p := labTarget(t, lab.StackGVisor, &bad, probe.DialConfig{})
	res := runHandshake(t, p, tg.Closed.String(), 2*time.Second)
	checkSteps(t, res, failAt2, map[int]string{2: "port closed"})
	all := strings.Join(res.Steps[1].Problems, " | ")
	for _, want := range []string{"seq: want 0, got 7", "ack: want ISN+1"} {
		if !strings.Contains(all, want) {
			t.Errorf("step 2 problems %q lack %q", res.Steps[1].Problems, want)
		}
	}
}

func TestHandshakeFaultySYNACK(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(f *probe.Frame)
		want   string
	}{
		{"ack off by one", func(f *probe.Frame) { f.TCP.Ack-- }, "ack: want ISN+1"},
		{"no SYN bit", func(f *probe.Frame) { f.TCP.Flags &^= probe.SYN }, "flags: want S."},
		{"bad TSecr", func(f *probe.Frame) {
			for i, o := range f.TCP.Options {
				if v, e, ok := o.Timestamps(); ok {
					f.TCP.Options[i] = probe.TimestampsOption(v, e+5)
				}
			}
		}, "TSecr"},
		{"reserved bits", func(f *probe.Frame) { f.TCP.Reserved = 0x4 }, "reserved bits set"},
		{"CWR in SYN-ACK", func(f *probe.Frame) { f.TCP.Flags |= probe.CWR }, "CWR in a SYN-ACK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := lab.Tamper{ToProbe: labtest.TamperTCP(func(f *probe.Frame) bool {
				if f.TCP.Flags.Has(probe.SYN | probe.ACK) {
					tt.tamper(f)
				}
				return true
			})}
			tg, p := labTarget(t, lab.StackGVisor, &bad, probe.DialConfig{})
			res := runHandshake(t, p, tg.Open.String(), 500*time.Millisecond)
			if res.Steps[1].Verdict != report.Fail {
				t.Fatalf("step 2: got %s, want fail\n%s", res.Steps[1].Verdict, dump(res))
			}
			if !strings.Contains(strings.Join(res.Steps[1].Problems, " | "), tt.want) {
				t.Errorf("step 2 problems %q lack %q", res.Steps[1].Problems, tt.want)
			}
			if res.Verdict != report.Fail {
				t.Errorf("verdict: got %s, want fail", res.Verdict)
			}
		})
	}
}

func TestHandshakeFaultyClose(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(f *probe.Frame) bool
		want   []report.Verdict
		step   int
		text   string
	}{
		{"ACK of our FIN acks too little", func(f *probe.Frame) bool {
			if f.TCP.Flags == probe.ACK || f.TCP.Flags == probe.FIN|probe.ACK {
				f.TCP.Ack--
			}
			return true
		}, nil, 5, "ack: want synprobe's FIN seq+1"},
		{"FIN with a wrong seq", func(f *probe.Frame) bool {
			if f.TCP.Flags&probe.FIN != 0 {
				f.TCP.Seq += 3
			}
			return true
		}, nil, 6, "seq: want 1"},
		{"application keeps its half open", func(f *probe.Frame) bool {
			return f.TCP.Flags&probe.FIN == 0
		}, halfClose, 6, "did not close its side"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := lab.Tamper{ToProbe: labtest.TamperTCP(tt.tamper)}
			tg, p := labTarget(t, lab.StackGVisor, &bad, probe.DialConfig{})
			res := runHandshake(t, p, tg.Open.String(), 400*time.Millisecond)
			if tt.want != nil {
				checkSteps(t, res, tt.want, map[int]string{tt.step: tt.text})
				return
			}
			if len(res.Steps) < tt.step || res.Steps[tt.step-1].Verdict != report.Fail {
				t.Fatalf("step %d: want fail\n%s", tt.step, dump(res))
			}
			if !strings.Contains(strings.Join(res.Steps[tt.step-1].Problems, " | "), tt.text) {
				t.Errorf("step %d problems %q lack %q", tt.step, res.Steps[tt.step-1].Problems, tt.text)
			}
		})
	}
}

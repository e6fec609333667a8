package capture

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"synprobe/conformance"
	"synprobe/conformance/report"
	"synprobe/internal/lab"
	"synprobe/internal/labtest"
	"synprobe/probe"
	"synprobe/probe/pcap"
	"synprobe/scenarios"
)

// recorded runs live against a lab (a faulty gVisor one when tamper is set)
// with every frame recorded, and returns the capture.
func recorded(t *testing.T, stack lab.Stack, tamper *lab.Tamper, run func(p *probe.Prober, tg *lab.Target)) []byte {
	t.Helper()
	tg := labtest.Start(t, stack, tamper)
	var buf bytes.Buffer
	w, err := pcap.NewWriter(&buf, pcap.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	p := labtest.Dial(t, tg, tg.Open.Addr(), probe.DialConfig{Recorder: w})
	run(p, tg)
	// Closed now, not when the test ends: then nothing writes to w any
	// more, and Close reports what failed to be recorded.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func analyze(t *testing.T, capture []byte) *report.Report {
	t.Helper()
	rep, err := Analyze(context.Background(), bytes.NewReader(capture), "lab.pcap", Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// targetProblems lists the problems the analysis found in segments the
// target sent.
func targetProblems(rep *report.Report, target string) []string {
	var out []string
	for _, r := range rep.Results {
		for _, s := range r.Steps {
			if s.From == target && s.Verdict != report.Pass {
				out = append(out, s.Verdict.String()+": "+strings.Join(s.Problems, "; "))
			}
		}
	}
	return out
}

func liveHandshake(t *testing.T, p *probe.Prober, to string) report.Result {
	s, err := p.Open(probe.SessionConfig{Remote: mustAddrPort(to)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return conformance.Handshake(context.Background(), s, conformance.HandshakeOptions{Timeout: time.Second})
}

// TestCapturesAgreeWithLiveRuns: captures recorded from the labs are judged
// as the live runs that made them judged the target.
func TestCapturesAgreeWithLiveRuns(t *testing.T) {
	for _, stack := range []lab.Stack{lab.StackGVisor, lab.StackLinux} {
		t.Run(string(stack)+"/handshake", func(t *testing.T) {
			var live report.Result
			capt := recorded(t, stack, nil, func(p *probe.Prober, tg *lab.Target) { live = liveHandshake(t, p, tg.Open.String()) })
			rep := analyze(t, capt)
			if live.Verdict != report.Pass || rep.Summary[report.Pass] != 1 || len(rep.Results) != 1 {
				t.Errorf("live %s, capture %s: want one passing connection both ways", live.Verdict, rep.Summary.Counts())
			}
		})
		t.Run(string(stack)+"/closed port", func(t *testing.T) {
			var live report.Result
			capt := recorded(t, stack, nil, func(p *probe.Prober, tg *lab.Target) { live = liveHandshake(t, p, tg.Closed.String()) })
			rep := analyze(t, capt)
			// Live, the check wanted an open port ("port closed"), but the
			// RST itself was right; the capture judges only the RST.
			if got := live.Steps[1].Problems; len(got) != 1 || !strings.HasPrefix(got[0], "port closed") {
				t.Errorf("live step 2 problems %q: want only \"port closed\"", got)
			}
			// The handshake sends its SYN again from another ISN before it
			// believes a RST at a port it was told listens (a half-open
			// connection an earlier run left could have sent it).
			if len(rep.Results) == 0 || rep.Summary[report.Pass] != len(rep.Results) {
				t.Errorf("capture: got %s, want every refused connection to pass (its RST was right)", rep.Summary.Counts())
			}
		})
		t.Run(string(stack)+"/audit", func(t *testing.T) {
			all, err := scenarios.Suite()
			if err != nil {
				t.Fatal(err)
			}
			var live *report.Report
			var target string
			capt := recorded(t, stack, nil, func(p *probe.Prober, tg *lab.Target) {
				target = tg.Open.String()
				live = scenarios.Run(context.Background(), p, scenarios.RunConfig{Target: tg.Open, ClosedPort: lab.ClosedPort, Rate: 200}, all)
			})
			rep := analyze(t, capt)
			got := targetProblems(rep, target)
			failed := map[string]bool{}
			for _, r := range live.Results {
				if r.Verdict == report.Fail {
					failed[r.Name] = true
				}
			}
			// The capture judges both ends: synprobe's deliberate lies (old
			// TSvals, inexact RSTs, bad checksums) are the client's problems,
			// not the target's. Of the target, it must say what the live
			// run said where a capture can tell: PAWS (a taken segment with
			// an old TSval shows in the ack). A missing answer (no ACK for an
			// ACK above SND.NXT) cannot be told from a frame the capture
			// lost, so analysis does not judge it.
			var want []string
			if failed["established-paws"] {
				want = append(want, "PAWS drops such a segment")
			}
			if len(got) != len(want) {
				t.Fatalf("the capture blames the target for %q; the live run failed %v", got, failed)
			}
			for i := range want {
				if !strings.Contains(got[i], want[i]) {
					t.Errorf("capture problem %q lacks %q", got[i], want[i])
				}
			}
			if stack == lab.StackGVisor && !failed["established-paws"] {
				t.Error("the live audit of gVisor found no PAWS failure: this test proves less than it should")
			}
		})
	}
	t.Run("faulty SYN-ACK", func(t *testing.T) {
		bad := lab.Tamper{ToProbe: func(b []byte) [][]byte {
			var f probe.Frame
			if f.Decode(b) == nil && f.Has(probe.LayerTCP) && f.TCP.Flags.Has(probe.SYN|probe.ACK) {
				f.TCP.Ack++
				b, _ = f.Encode()
			}
			return [][]byte{b}
		}}
		var live report.Result
		var target string
		capt := recorded(t, lab.StackGVisor, &bad, func(p *probe.Prober, tg *lab.Target) {
			target = tg.Open.String()
			live = liveHandshake(t, p, target)
		})
		got := targetProblems(analyze(t, capt), target)
		if live.Verdict != report.Fail || !strings.Contains(live.Reason, "ack: want ISN+1") {
			t.Errorf("live: got %s %q, want fail on the SYN-ACK's ack", live.Verdict, live.Reason)
		}
		if len(got) == 0 || !strings.Contains(got[0], "ack: want ISN+1") {
			t.Errorf("capture: target problems %q, want the SYN-ACK's ack", got)
		}
	})
}

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

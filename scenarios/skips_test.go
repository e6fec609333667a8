package scenarios

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"synprobe/conformance/report"
	"synprobe/internal/lab"
	"synprobe/internal/labtest"
	"synprobe/internal/serverlab"
	"synprobe/probe"
)

// skipCase pairs a reason for skipping with a scenario it applies to: a
// target where the premise does not hold (or the application, or the path,
// decides) makes the scenario skip with that cause; a stack where it holds
// and that has the fault the scenario exists for makes the same scenario
// fail (or warn, or observe it). The skip never hides the fault.
type skipCase struct {
	cause    report.Cause
	scenario string
	// skipped runs the scenario where the premise does not hold: a gVisor
	// lab with this fault, or a real server of a bed (bedApp, with
	// bedPreset).
	skipped   *fault
	bedApp    string
	bedPreset string
	// faulty names the faulty responder of faultCases where the premise
	// holds ("" : the untampered gVisor lab, which has the fault).
	faulty string
}

var skipCases = []skipCase{
	{cause: report.CausePremiseTimestamps, scenario: "established-paws",
		skipped: onSYNACK(func(s *seg) { s.TCP.Options = withoutOption(s.TCP.Options, probe.OptionTimestamps) })},
	{cause: report.CausePremiseSACK, scenario: "options-sack-blocks",
		skipped: onSYNACK(func(s *seg) { s.TCP.Options = withoutOption(s.TCP.Options, probe.OptionSACKPermitted) }),
		faulty:  "the duplicate ACK after a gap carries no SACK block"},
	{cause: report.CausePremiseWScale, scenario: "options-wscale-over-14",
		skipped: onSYNACK(func(s *seg) { s.TCP.Options = withoutOption(s.TCP.Options, probe.OptionWScale) }),
		faulty:  "synprobe's window of 1 reaches the stack as 2: what a shift of 15 makes of it"},
	{cause: report.CausePremiseClosedPort, scenario: "closed-syn",
		// The closed port is filtered: nothing comes back from it.
		skipped: &fault{toProbe: func(_ *responder, _ *connState, s *seg) { s.drop = s.TCP.SrcPort == lab.ClosedPort }},
		faulty:  "the RST does not count the SYN (ack = ISN)"},
	{cause: report.CausePathICMP, scenario: "listen-handshake",
		skipped: &fault{raw: icmpForSYNACK},
		faulty:  "the SYN-ACK does not count the SYN (ack = ISN)"},
	{cause: report.CausePremiseSYNCookies, scenario: "established-rst-exact",
		bedApp: "nginx", bedPreset: "syncookies-always",
		faulty: "a RST at RCV.NXT is ignored"},
	{cause: report.CauseAppNotAccepting, scenario: "listen-handshake",
		bedApp: "full-backlog",
		faulty: "the SYN-ACK does not count the SYN (ack = ISN)"},
	{cause: report.CauseAppClosed, scenario: "established-rst-out-of-window",
		bedApp: "daytime",
		faulty: "a RST far out of the window resets the connection"},
	{cause: report.CauseAppReset, scenario: "timer-zero-window",
		bedApp: "sshd",
		faulty: "no window probes"},
	{cause: report.CauseAppNoData, scenario: "timer-zero-window",
		bedApp: "discard",
		faulty: "no window probes"},
}

// icmpForSYNACK answers for the path: where the stack sends a SYN-ACK, a
// router's host unreachable quoting synprobe's SYN comes instead.
func icmpForSYNACK(b []byte) [][]byte {
	var f probe.Frame
	if err := f.Decode(b); err != nil || !f.Has(probe.LayerTCP) || !f.TCP.Flags.Has(probe.SYN|probe.ACK) || f.IP.Version != 4 {
		return [][]byte{b}
	}
	quoted := probe.Frame{
		IP:  probe.IP{Src: f.IP.Dst, Dst: f.IP.Src, Protocol: probe.ProtocolTCP, TTL: 63},
		TCP: probe.TCP{SrcPort: f.TCP.DstPort, DstPort: f.TCP.SrcPort, Seq: f.TCP.Ack - 1, Flags: probe.SYN, Window: 1000},
	}
	body, err := quoted.EncodeIP()
	if err != nil {
		panic(err)
	}
	icmp := probe.Frame{
		Ethernet: f.Ethernet,
		IP:       probe.IP{Src: netip.MustParseAddr("192.0.2.254"), Dst: f.IP.Dst, Protocol: probe.ProtocolICMP, TTL: 64},
		ICMP:     probe.ICMP{Type: 3, Code: 1, Body: body},
	}
	out, err := icmp.Encode()
	if err != nil {
		panic(err)
	}
	return [][]byte{out}
}

// TestSkipsHideNoFault checks every skip reason the suite gives against a
// faulty stack whose premise holds.
func TestSkipsHideNoFault(t *testing.T) {
	all, err := Suite()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Scenario{}
	for _, s := range all {
		byName[s.Name] = s
	}
	for _, sc := range skipCases {
		t.Run(fmt.Sprintf("%s/%s", sc.cause, sc.scenario), func(t *testing.T) {
			t.Parallel()
			s, ok := byName[sc.scenario]
			if !ok {
				t.Fatalf("no scenario %s", sc.scenario)
			}
			// Where the premise does not hold: skip, with the cause.
			var skipped report.Result
			if sc.bedApp != "" {
				skipped = runOnBed(t, s, sc.bedApp, sc.bedPreset)
			} else {
				skipped, err = runAgainst(s, sc.skipped, lab.StackGVisor)
				if err != nil {
					t.Fatal(err)
				}
			}
			if skipped.Verdict != report.Skip || skipped.Cause != sc.cause {
				t.Errorf("where the premise does not hold: got %s [%s], want skip [%s]\n%s", skipped.Verdict, skipped.Cause, sc.cause, describeResult(skipped))
			}
			// Where it holds and the stack has the fault: the fault shows.
			fc, f := faultFor(t, sc.scenario, sc.faulty)
			faulty, err := runAgainst(s, f, lab.StackGVisor)
			if err != nil {
				t.Fatal(err)
			}
			if !gives(faulty, fc.verdict, fc.because) || faulty.Cause != report.CauseStack {
				t.Errorf("against the faulty stack (%s): got %s [%s], want %s [stack] with %q\n%s", fc.fault, faulty.Verdict, faulty.Cause, fc.verdict, fc.because, describeResult(faulty))
			}
		})
	}
}

// faultFor finds the fault case of faultCases named fault for scenario;
// "" is the untampered gVisor lab's own fault (a finding).
func faultFor(t *testing.T, scenario, name string) (faultCase, *fault) {
	t.Helper()
	for _, fc := range faultCases {
		if fc.scenario != scenario {
			continue
		}
		if name == "" && fc.f == nil || name != "" && fc.fault == name {
			return fc, fc.f
		}
	}
	t.Fatalf("no fault case %q for %s", name, scenario)
	return faultCase{}, nil
}

// runOnBed runs one scenario, with the application profile an audit
// takes, against an app of a server bed (root only).
func runOnBed(t *testing.T, sc Scenario, app, preset string) report.Result {
	t.Helper()
	b := serverlab.New(t, serverlab.Config{Apps: []string{app}, Preset: preset})
	target := netip.AddrPortFrom(serverlab.Target4, b.Port(app))
	p := labtest.DialBed(t, b, target.Addr(), probe.DialConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep := Run(ctx, p, RunConfig{Target: target, ClosedPort: serverlab.ClosedPort, Profile: true}, []Scenario{sc})
	return rep.Results[0]
}

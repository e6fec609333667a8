package conformance

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"synprobe/conformance/report"
	"synprobe/conformance/script"
	"synprobe/internal/pathlab"
	"synprobe/internal/pathlab/pathlabtest"
	"synprobe/probe"
)

// TestICMPLinesOnRealRouters runs "> icmp" lines and "> none" through two
// Linux routers (internal/pathlab): r2's time exceeded quotes the SYN as
// the MSS clamp on r1 left it, and r1's time exceeded for a TTL-1 SYN does
// not break a silence.
func TestICMPLinesOnRealRouters(t *testing.T) {
	bed := pathlabtest.Start(t, pathlab.Config{IPv6: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if len(bed.Hops) < 2 || len(bed.Hops6) < 2 {
		t.Fatalf("bed.Hops = %v, Hops6 = %v, want r1 and r2 at least", bed.Hops, bed.Hops6)
	}
	dial := func(target netip.AddrPort) *probe.Prober {
		p, err := probe.Dial(ctx, target.Addr(), probe.DialConfig{NetNS: bed.NSFD(pathlab.Client)})
		if err != nil {
			t.Fatalf("dial %v from the client namespace: %v", target.Addr(), err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	p4, p6 := dial(bed.Target), dial(bed.Target6)

	const clampQuestion = `
0  < [ttl 2] S 0:0(0) win 65535 <mss 1460>
+0 > icmp time_exceeded from R2 [(ttl 1) S 0:0(0) win * <mss 1200,...>]
`
	tests := []struct {
		name    string
		v6      bool
		box     pathlab.Box
		src     string
		verdict report.Verdict
		reason  string
		note    string
	}{
		{"r2 quotes the mss r1 clamped", false, pathlab.BoxMSSClamp, clampQuestion, report.Pass, "", ""},
		{"no box: r2 quotes mss 1460", false, pathlab.BoxNone, clampQuestion, report.Fail,
			"quote from router " + bed.Hops[1].String() + ": options: expected <mss 1200,...> got <mss 1460>", ""},
		{"ipv6: r2 quotes the mss r1 clamped", true, pathlab.BoxMSSClamp, clampQuestion, report.Pass, "", ""},
		{"ipv6: no box", true, pathlab.BoxNone, clampQuestion, report.Fail,
			"quote from router " + bed.Hops6[1].String() + ": options: expected <mss 1200,...> got <mss 1460>", ""},
		{"r1's time exceeded does not break a silence", false, pathlab.BoxNone, `
0    < [ttl 1] S 0:0(0) win 65535 <mss 1460>
+0.3 > none
`, report.Pass, "", "ignored ICMP type 11 code 0 from " + bed.Hops[0].String()},
		{"ipv6: r1's time exceeded does not break a silence", true, pathlab.BoxNone, `
0    < [ttl 1] S 0:0(0) win 65535 <mss 1460>
+0.3 > none
`, report.Pass, "", "ignored ICMP type 3 code 0 from " + bed.Hops6[0].String()},
		{"r1 answers, not r2", false, pathlab.BoxNone, `
0  < [ttl 1] S 0:0(0) win 65535 <mss 1460>
+0 > icmp time_exceeded from R2
`, report.Fail, "icmp from: expected " + bed.Hops[1].String() + " got router " + bed.Hops[0].String(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := bed.SetBox(tt.box, pathlab.First); err != nil {
				t.Fatalf("SetBox(%s): %v", tt.box, err)
			}
			p, target, hops := p4, bed.Target, bed.Hops
			if tt.v6 {
				p, target, hops = p6, bed.Target6, bed.Hops6
			}
			defines := map[string]string{"R1": hops[0].String(), "R2": hops[1].String()}
			s, err := script.ParseWith("path.pkt", []byte(tt.src), script.ParseConfig{Defines: defines})
			if err != nil {
				t.Fatal(err)
			}
			r := NewRunner(p, RunConfig{Target: target, Rate: -1, Timeout: 2 * time.Second})
			res := r.RunScript(ctx, s)
			if res.Verdict != tt.verdict || !strings.Contains(res.Reason, tt.reason) {
				t.Errorf("got %s %q, want %s with %q\n%s", res.Verdict, res.Reason, tt.verdict, tt.reason, dump(res))
			}
			if tt.note != "" && !containsNote(res.Notes, tt.note) {
				t.Errorf("notes %q, want one with %q", res.Notes, tt.note)
			}
		})
	}
}

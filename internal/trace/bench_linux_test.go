package trace

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"synprobe/internal/pathlab"
	"synprobe/probe"
)

// BenchmarkTraceQuick is the quick walk (syn and the alt port) to the bed's
// server three hops away, default flags but for the hops cap; ICMP rate
// limits are lifted on the bed's routers. Goal: well under 3 s.
func BenchmarkTraceQuick(b *testing.B) {
	bed := startBed(b, pathlab.Config{})
	ctx := context.Background()
	p, err := probe.Dial(ctx, bed.Target.Addr(), probe.DialConfig{NetNS: bed.NSFD(pathlab.Client), AnyQuotedPort: true})
	if err != nil {
		b.Fatalf("dial: %v", err)
	}
	defer p.Close()
	cfg := Config{Target: bed.Target, AltPort: bed.AltPort, Families: QuickFamilies}
	for b.Loop() {
		r, err := Run(ctx, p, cfg)
		if err != nil {
			b.Fatal(err)
		}
		if r.Verdict != "pass" {
			b.Fatalf("got verdict %s, want pass", r.Verdict)
		}
	}
}

// TestTraceVsTraceroute runs synprobe trace (quick and full) and
// traceroute -T in the bed's client namespace, side by side, and prints
// their wall times. scripts/bench-trace.sh runs it with SYNPROBE set to a
// built binary; without it, it skips.
func TestTraceVsTraceroute(t *testing.T) {
	bin := os.Getenv("SYNPROBE")
	if bin == "" {
		t.Skip("SYNPROBE is not set (scripts/bench-trace.sh sets it)")
	}
	tr, err := exec.LookPath("traceroute")
	if err != nil {
		t.Skip("no traceroute (Debian package traceroute)")
	}
	bed := startBed(t, pathlab.Config{})
	runs := 3
	target := bed.Target.String()
	port := fmt.Sprint(bed.Target.Port())
	type tool struct {
		name string
		args []string
	}
	tools := []tool{
		{"synprobe trace --probes syn", []string{bin, "trace", "--netns", bed.ClientNS, "--probes", "syn", target}},
		{"synprobe trace --probes syn --rate 0", []string{bin, "trace", "--netns", bed.ClientNS, "--probes", "syn", "--rate", "0", target}},
		{"synprobe trace (all families)", []string{bin, "trace", "--netns", bed.ClientNS, target}},
		{"traceroute -T -n -p " + port, []string{"ip", "netns", "exec", bed.ClientNS, tr, "-T", "-n", "-p", port, bed.Target.Addr().String()}},
		{"traceroute -T -n -q 1 -p " + port, []string{"ip", "netns", "exec", bed.ClientNS, tr, "-T", "-n", "-q", "1", "-p", port, bed.Target.Addr().String()}},
	}
	for _, at := range []struct {
		box pathlab.Box
		at  pathlab.Position
	}{{pathlab.BoxNone, pathlab.First}, {pathlab.BoxMSSClamp, pathlab.First}, {pathlab.BoxDropSYNData, pathlab.First}} {
		if err := bed.SetBox(at.box, at.at); err != nil {
			t.Fatalf("set box: %v", err)
		}
		for _, tl := range tools {
			best := time.Duration(1 << 62)
			var out []byte
			for i := 0; i < runs; i++ {
				start := time.Now()
				cmd := exec.Command(tl.args[0], tl.args[1:]...)
				out, err = cmd.CombinedOutput()
				if d := time.Since(start); d < best {
					best = d
				}
				if err != nil {
					t.Errorf("%s: %v\n%s", tl.name, err, out)
					break
				}
			}
			fmt.Printf("box %-14s %-34s best of %d: %7.0f ms\n", at.box, tl.name, runs, float64(best.Microseconds())/1000)
			if os.Getenv("VERBOSE") != "" {
				fmt.Println(strings.TrimSpace(string(out)))
			}
		}
	}
}

package conformance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"synprobe/conformance/report"
	"synprobe/conformance/script"
	"synprobe/internal/lab"
	"synprobe/internal/labtest"
	"synprobe/probe"
)

func mustParse(t testing.TB, name, src string) *script.Script {
	t.Helper()
	s, err := script.Parse(name, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runScripts runs scripts against a lab target with no SYN pacing.
func runScripts(t testing.TB, stack lab.Stack, scripts ...*script.Script) []report.Result {
	t.Helper()
	tg, p := labTarget(t, stack, nil, probe.DialConfig{})
	r := NewRunner(p, RunConfig{Target: tg.Open, ClosedPort: tg.Closed.Port(), Rate: -1, Timeout: time.Second})
	return r.Run(context.Background(), scripts)
}

// TestPublishedScripts: scripts in packetdrill's published style that need
// only a listening socket and an application that closes on end of stream
// run unchanged: they pass against the Linux lab, and gVisor's real
// difference shows as a failure naming the field.
func TestPublishedScripts(t *testing.T) {
	files, err := filepath.Glob("script/testdata/packetdrill/*.pkt")
	if err != nil || len(files) < 8 {
		t.Fatalf("found %d published-style scripts (%v)", len(files), err)
	}
	sort.Strings(files)
	var scripts []*script.Script
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		scripts = append(scripts, mustParse(t, filepath.Base(f), string(src)))
	}
	gvisorFails := map[string]string{
		// gVisor acknowledges the data of a data+FIN segment before the
		// FIN; Linux acknowledges both at once. Both are legal TCP; the
		// script was written for Linux.
		"close-no-rst": "ack: expected 1002 (abs 1002) got 1001",
	}
	for _, stack := range stacks {
		t.Run(string(stack), func(t *testing.T) {
			for _, res := range runScripts(t, stack, scripts...) {
				want, fails := gvisorFails[res.Name]
				switch {
				case stack == lab.StackGVisor && fails:
					if res.Verdict != report.Fail || !strings.Contains(res.Reason, want) {
						t.Errorf("%s: got %s %q, want fail with %q", res.Name, res.Verdict, res.Reason, want)
					}
				case res.Verdict != report.Pass:
					t.Errorf("%s: got %s: %s\n%s", res.Name, res.Verdict, res.Reason, dump(res))
				}
			}
		})
	}
}

// TestScriptVerdicts: what the runner makes of scripts with deliberate
// mistakes, missing application actions and unmet needs, against a real
// stack.
func TestScriptVerdicts(t *testing.T) {
	tests := []struct {
		name, src string
		verdict   report.Verdict
		reason    string
	}{
		{"wrong ack", `
0  < S 0:0(0) win 1000 <mss 1460>
+0 > S. 0:0(0) ack 2 <...>`, report.Fail, "ack: expected 2 (abs 2) got 1"},
		{"wrong flags", `
0  < S 0:0(0) win 1000 <mss 1460>
+0 > R. 0:0(0) ack 1`, report.Fail, "flags: expected R. got S."},
		{"options checked in order", `
0  < S 0:0(0) win 1000 <mss 1460,nop,nop,sackOK>
+0 > S. 0:0(0) ack 1 <nop,nop,sackOK,mss 1460>`, report.Fail, "options: expected <nop,nop,sackOK,mss 1460> got"},
		{"wildcards", `
0  < S 0:0(0) win 1000 <mss 1460,nop,wscale 7>
+0 > S. 0:0(0) ack 1 win * <mss *,nop,wscale *>`, report.Pass, ""},
		{"ip fields", `
0  < [ttl 64, df] S 0:0(0) win 1000 <mss 1460>
+0 > [ttl 32] S. 0:0(0) ack 1 <...>`, report.Fail, "ttl: expected 32 got 64"},
		{"silence broken", `
0    < S 0:0(0) win 1000 <mss 1460>
+0.2 > none`, report.Fail, "expected silence until"},
		{"application does not write", `
0  < S 0:0(0) win 1000 <mss 1460>
+0 > S. 0:0(0) ack 1 <...>
+0 < . 1:1(0) ack 1 win 1000
+0 accept(3, ..., ...) = 4
+0 write(4, ..., 10) = 10
+0 > P. 1:11(10) ack 1`, report.Skip, "the target application did not write (line 6)"},
		{"payload to the application and back", `
0  < S 0:0(0) win 1000 <mss 1460>
+0 > S. 0:0(0) ack 1 <...>
+0 < . 1:1(0) ack 1 win 1000
+0 < P. 1:21(20) ack 1 win 1000 "GET /10 HTTP/1.0\r\n\r\n"
+0~+0.5 > . 1:1(0) ack 21
+0~+0.5 > P. 1:*(*) ack 21 "HTTP/1.0 200 OK"`, report.Pass, ""},
		{"segment longer than the MTU, sent as fragments", `
0  < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 1 <...>
+0 < . 1:1(0) ack 1 win 65535
+0 < P. 1:4001(4000) ack 1 win 65535
+0~+0.5 > . 1:1(0) ack 4001`, report.Pass, ""},
		{"closed port needed but none known", `
// @needs closed-port
0 < S 0:0(0) win 1000`, report.Skip, "needs a closed port"},
		{"ipv6 needed", `
--ip_version=ipv6
0 < S 0:0(0) win 1000`, report.Skip, "needs an IPv6 target"},
	}
	for _, stack := range stacks {
		t.Run(string(stack), func(t *testing.T) {
			tg, p := labTarget(t, stack, nil, probe.DialConfig{})
			var scripts []*script.Script
			for _, tt := range tests {
				scripts = append(scripts, mustParse(t, tt.name+".pkt", tt.src))
			}
			// ClosedPort 0: the script needing one must skip.
			r := NewRunner(p, RunConfig{Target: tg.Open, Rate: -1, Timeout: time.Second})
			for i, res := range r.Run(context.Background(), scripts) {
				tt := tests[i]
				if res.Verdict != tt.verdict || !strings.Contains(res.Reason, tt.reason) {
					t.Errorf("%s: got %s %q, want %s with %q\n%s", tt.name, res.Verdict, res.Reason, tt.verdict, tt.reason, dump(res))
				}
			}
		})
	}
}

// TestRunInterrupted: a run stopped midway still reports: what was running
// says it was interrupted (error), what had not started is skipped.
func TestRunInterrupted(t *testing.T) {
	tg, p := labTarget(t, lab.StackGVisor, nil, probe.DialConfig{})
	slow := mustParse(t, "slow.pkt", "0 < S 0:0(0) win 1000 <mss 1460>\n+0 > S. 0:0(0) ack 1 <...>\n+2 > none\n")
	scripts := []*script.Script{slow, slow, slow}
	r := NewRunner(p, RunConfig{Target: tg.Open, Jobs: 1, Rate: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := r.Run(ctx, scripts)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the run went on for %v after it was stopped", d)
	}
	if res[0].Verdict != report.Error || res[0].Reason != "interrupted" {
		t.Errorf("running script: got %s %q, want error: interrupted", res[0].Verdict, res[0].Reason)
	}
	for _, x := range res[1:] {
		if x.Verdict != report.Skip || !strings.Contains(x.Reason, "interrupted") {
			t.Errorf("script not started: got %s %q, want skip: not run: interrupted", x.Verdict, x.Reason)
		}
	}
}

// BenchmarkRunHandshakeScripts runs a four-line handshake script b.N times
// against the Linux lab (gVisor without root), concurrently and unpaced,
// and reports scripts per second and CPU per script. Goal: 300 scripts/s
// on a 2-core machine, every one passing.
func BenchmarkRunHandshakeScripts(b *testing.B) {
	ctx := context.Background()
	tg, p := labTarget(b, lab.StackAuto, nil, probe.DialConfig{})
	hs := mustParse(b, "handshake.pkt", `
0  < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 1 <...>
+0 < . 1:1(0) ack 1 win 65535
+0 < R. 1:1(0) ack 1 win 0
`)
	scripts := make([]*script.Script, b.N)
	for i := range scripts {
		scripts[i] = hs
	}
	r := NewRunner(p, RunConfig{Target: tg.Open, Jobs: 64, Rate: -1, Timeout: 2 * time.Second})
	c0 := labtest.CPUTime()
	b.ResetTimer()
	start := time.Now()
	res := r.Run(ctx, scripts)
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := labtest.CPUTime() - c0
	for _, x := range res {
		if x.Verdict != report.Pass {
			b.Fatalf("a spurious %s: %s\n%s", x.Verdict, x.Reason, dump(x))
		}
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "scripts/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/script")
}

// firstPort hands out port first, once, then ports from 40000 up: a run
// that meets on its first port what an earlier run left behind.
type firstPort struct {
	mu    sync.Mutex
	first uint16
	next  uint16
}

func (f *firstPort) Allocate() (uint16, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.first != 0 {
		p := f.first
		f.first = 0
		return p, nil
	}
	f.next++
	return 40000 + f.next, nil
}
func (f *firstPort) Reserve(uint16) error { return nil }
func (f *firstPort) Release(uint16)       {}

// TestStaleConnectionRetried: a script whose source port meets a
// connection an earlier run left established at the target (a challenge
// ACK answers its SYN) resets it and runs again on a fresh port, and is
// judged only there.
func TestStaleConnectionRetried(t *testing.T) {
	tg := labtest.Start(t, lab.StackGVisor, nil)
	const port = 45678
	p := probe.NewProber(probe.ProberConfig{Link: tg.Probe.Link, Path: tg.Probe.Path4, Ports: &firstPort{first: port}})
	t.Cleanup(func() { p.Close() })
	// The earlier run: a connection on port, established and left.
	s, err := p.Open(probe.SessionConfig{Remote: tg.Open, LocalPort: port})
	if err != nil {
		t.Fatal(err)
	}
	c := NewConn(s)
	syn := probe.Frame{IP: c.IPv4(), TCP: probe.TCP{Seq: 7000, Flags: probe.SYN, Window: 1000, Options: []probe.Option{probe.MSSOption(1460)}}}
	if _, err := c.Send(&syn); err != nil {
		t.Fatal(err)
	}
	r, err := c.Recv(context.Background(), time.Now().Add(2*time.Second))
	if err != nil || !r.Frame.TCP.Flags.Has(probe.SYN|probe.ACK) {
		t.Fatalf("earlier run: no SYN-ACK (%v)", err)
	}
	c.Observe(&r.Frame.TCP)
	ack := probe.Frame{IP: c.IPv4(), TCP: probe.TCP{Seq: 7001, Ack: c.RCVNXT, Flags: probe.ACK, Window: 1000}}
	if _, err := c.Send(&ack); err != nil {
		t.Fatal(err)
	}
	s.Close()

	runner := NewRunner(p, RunConfig{Target: tg.Open, Rate: -1, Timeout: time.Second})
	res := runner.RunScript(context.Background(), mustParse(t, "handshake.pkt", `0 < S 0:0(0) win 1000 <mss 1460>
+0 > S. 0:0(0) ack 1 <...>
+0 < . 1:1(0) ack 1 win 1000
+0 < P. 1:11(10) ack 1 win 1000
+0~+0.5 > . 1:1(0) ack 11
`))
	if res.Verdict != report.Pass {
		t.Errorf("got %s [%s] %s, want pass on a fresh port", res.Verdict, res.Cause, res.Reason)
	}
	stale := false
	for _, n := range res.Notes {
		stale = stale || strings.Contains(n, fmt.Sprintf("port %d met a connection an earlier run left", port))
	}
	if !stale {
		t.Errorf("no note of the stale connection on port %d: %q", port, res.Notes)
	}
	for _, st := range res.Steps {
		if st.Verdict != report.Pass {
			t.Errorf("step %d %s: %s %q: the stale attempt must not be judged", st.Index, st.Direction, st.Verdict, st.Problems)
		}
	}
}

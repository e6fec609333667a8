package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"synprobe/internal/pathlab"
	"synprobe/internal/pathlab/pathlabtest"
	"synprobe/internal/reflector"
	"synprobe/internal/trace"
)

// TestTraceBedExitCodes: synprobe trace on the path bed passes (exit 0)
// with no box, and fails (exit 1) when TS is stripped from data after the
// handshake negotiated it; the JSON says where.
func TestTraceBedExitCodes(t *testing.T) {
	b := pathlabtest.Start(t, pathlab.Config{})
	target := b.Target.String()

	code, out, errOut := synprobe(t, "trace", "--netns", b.ClientNS, "--probes", "syn", target)
	if code != exitOK || !strings.Contains(out, "verdict: pass") {
		t.Errorf("no box: exit %d, want 0 and a pass\n%s%s", code, out, errOut)
	}

	if err := b.SetBox(pathlab.BoxStripTSData, pathlab.First); err != nil {
		t.Fatalf("set box: %v", err)
	}
	code, out, errOut = synprobe(t, "trace", "--netns", b.ClientNS, "--probes", "conn", "--format", "json", target)
	var r trace.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("strip-ts-data: %v\n%s%s", err, out, errOut)
	}
	fs := r.FindingsOf(trace.OptionStripped)
	if code != exitFail || r.Verdict != "fail" || len(fs) == 0 || fs[0].Where.AfterHop != 1 || fs[0].Where.AtHop != 2 {
		t.Errorf("strip-ts-data: exit %d, verdict %s, findings %+v; want exit 1, fail, option-stripped(ts) between hop 1 and hop 2", code, r.Verdict, r.Findings)
	}
}

// TestTraceReflectorCommands: synprobe reflect in the bed's server
// namespace (listening on a port of its own) and synprobe trace
// --reflector in the client's, with the MSS clamped on the last router:
// the JSON places the clamp after hop 2, before the target, seen by the
// reflector, and says the reverse path was observed.
func TestTraceReflectorCommands(t *testing.T) {
	b := pathlabtest.Start(t, pathlab.Config{})
	listen := netip.AddrPortFrom(b.Target.Addr(), 9000)
	report := netip.AddrPortFrom(b.Target.Addr(), 9001)

	rctx, stop := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var rout, rerr bytes.Buffer
	go func() {
		done <- run(rctx, []string{"synprobe", "reflect", "--netns", b.ServerNS, "--listen", listen.String(), "--allow", pathlab.Client4.String()}, &rout, &rerr)
	}()
	t.Cleanup(func() {
		stop()
		if code := <-done; code != exitOK {
			t.Errorf("synprobe reflect: exit %d, want 0\n%s", code, rerr.String())
		}
	})
	// Ready when it answers a query from the client.
	cl := reflector.Client{NetNS: b.NSFD(pathlab.Client), Timeout: time.Second}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := cl.Ask(context.Background(), report, reflector.Request{}); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("synprobe reflect does not answer on %v: %v", report, err)
		}
	}

	if err := b.SetBox(pathlab.BoxMSSClamp, pathlab.Last); err != nil {
		t.Fatalf("set box: %v", err)
	}
	code, out, errOut := synprobe(t, "trace", "--netns", b.ClientNS, "--reflector", report.String(), "--probes", "syn", "--wait", "500ms", "--format", "json", listen.String())
	var r trace.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("exit %d: %v\n%s%s", code, err, out, errOut)
	}
	fs := r.FindingsOf(trace.MSSClamp)
	if code != exitOK || len(fs) != 1 || !fs[0].Where.Reflector || fs[0].Where.AfterHop != 2 || fs[0].Where.AtHop != 3 {
		t.Errorf("exit %d, findings %+v; want exit 0 and mss-clamp after hop 2, at hop 3, seen by the reflector\n%s", code, r.Findings, out)
	}
	if r.Has(trace.Unobserved) {
		t.Errorf("got unobserved findings, want none with a reflector: %+v", r.Findings)
	}
	if cov := strings.Join(r.Coverage, "\n"); !strings.Contains(cov, "reverse path observed") || !strings.Contains(cov, "blind segment observed by the reflector") {
		t.Errorf("coverage does not say the blind segment and the reverse path were observed:\n%s", cov)
	}

	// A reflector that refuses this client: the trace still reports, and
	// says why the reflector did not help.
	code, out, errOut = synprobe(t, "trace", "--netns", b.ClientNS, "--reflector", netip.AddrPortFrom(b.Target.Addr(), 9).String(), "--probes", "syn", "--wait", "500ms", "--format", "json", listen.String())
	r = trace.Result{}
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != exitOK || !strings.Contains(strings.Join(r.Coverage, "\n"), "reflector 10.79.3.1:9") {
		t.Errorf("reflector not there: exit %d (%v), coverage %q; want 0 and a coverage line naming it\n%s", code, err, r.Coverage, errOut)
	}
}

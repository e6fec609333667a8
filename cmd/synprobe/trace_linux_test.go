package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"synprobe/internal/pathlab"
	"synprobe/internal/trace"
)

// TestTraceBedExitCodes: synprobe trace on the path bed passes (exit 0)
// with no box, and fails (exit 1) when TS is stripped from data after the
// handshake negotiated it; the JSON says where.
func TestTraceBedExitCodes(t *testing.T) {
	if ok, why := pathlab.Available(); !ok {
		t.Skip(why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := pathlab.Start(ctx, pathlab.Config{})
	if err != nil {
		t.Fatalf("start the path bed: %v", err)
	}
	t.Cleanup(func() { b.Close() })
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

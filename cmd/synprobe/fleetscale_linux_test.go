//go:build linux

package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"synprobe/internal/netns"
	"synprobe/internal/scalelab"
)

// servedScaleLab starts a scale lab of prefix whose port 80 is served by
// an application (Plan.Serve), for a test that audits n of its targets;
// it skips without root or under -short.
func servedScaleLab(t *testing.T, prefix string, n int) *scalelab.Lab {
	t.Helper()
	if os.Geteuid() == 0 && testing.Short() {
		t.Skipf("-short: audits %d targets", n)
	}
	return startScaleLab(t, prefix, true)
}

// startScaleLab starts a scale lab of prefix with port 80 open, served by
// an application when serve is set (Plan.Serve); it skips without root.
func startScaleLab(t *testing.T, prefix string, serve bool) *scalelab.Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces and sends on AF_PACKET")
	}
	plan, err := scalelab.NewPlan(netip.MustParsePrefix(prefix), []uint16{80})
	if err != nil {
		t.Fatalf("NewPlan: %v", err)
	}
	plan.Serve = serve
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lab, err := scalelab.Start(ctx, plan)
	if err != nil {
		t.Fatalf("scalelab.Start: %v", err)
	}
	t.Cleanup(func() { lab.Close() })
	return lab
}

// TestTargetsAuditEqualsAlone audits 24 addresses of a scale lab served
// by one kernel (scalelab Plan.Serve) with --targets, all at once, and
// three of them alone: each of the three has the same verdict for every
// result either way, and the target's kernel sent no SYN cookie. A
// loaded host can make a timing check differ; a differing run is done
// again, twice at most, before the test fails.
func TestTargetsAuditEqualsAlone(t *testing.T) {
	lab := servedScaleLab(t, "10.93.0.0/24", 27)
	targetNS, err := netns.Open(filepath.Join("/var/run/netns", lab.TargetNS))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Close(targetNS) })

	// The first two eighths of the /24 are plain hosts: .1 to .24.
	dir := t.TempDir()
	list := filepath.Join(dir, "targets.txt")
	var b strings.Builder
	for i := 1; i <= 24; i++ {
		fmt.Fprintf(&b, "10.93.0.%d:80\n", i)
	}
	if err := os.WriteFile(list, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	sample := []string{"10.93.0.1:80", "10.93.0.12:80", "10.93.0.24:80"}
	cookies0 := syncookiesSent(t, targetNS)
	var diffs []string
	for attempt := 1; attempt <= 3; attempt++ {
		out := filepath.Join(dir, "run.jsonl")
		code, errOut := fleetRunJudged(t, out, "audit", "--netns", lab.ProbeNS, "--targets", list, "--shard", "0/1", "--concurrency", "24")
		if code != exitOK && code != exitFail {
			t.Fatalf("audit --targets: exit %d\n%s", code, errOut)
		}
		run := verdictsOf(t, out)
		if len(run) != 24 {
			t.Fatalf("audit --targets wrote %d targets, want 24", len(run))
		}
		diffs = nil
		for _, target := range sample {
			alone := filepath.Join(dir, "alone.jsonl")
			code, errOut := fleetRun(t, "audit", "--netns", lab.ProbeNS, "-f", "jsonl", "-o", alone, target)
			if code != exitOK && code != exitFail {
				t.Fatalf("audit %s: exit %d\n%s", target, code, errOut)
			}
			want := verdictsOf(t, alone)[target]
			if len(want) == 0 {
				t.Fatalf("audit %s alone wrote no results", target)
			}
			got := run[target]
			for name, v := range want {
				if got[name] != v {
					diffs = append(diffs, fmt.Sprintf("%s %s: %q in the run, %q alone", target, name, got[name], v))
				}
			}
			for name, v := range got {
				if _, ok := want[name]; !ok {
					diffs = append(diffs, fmt.Sprintf("%s %s: %q in the run, missing alone", target, name, v))
				}
			}
		}
		if len(diffs) == 0 {
			break
		}
		t.Logf("attempt %d: verdicts differ (run again):\n%s", attempt, strings.Join(diffs, "\n"))
	}
	if len(diffs) > 0 {
		t.Errorf("the sample's verdicts in audit --targets differ from auditing each alone, in 3 attempts:\n%s", strings.Join(diffs, "\n"))
	}
	if n := syncookiesSent(t, targetNS) - cookies0; n != 0 {
		t.Errorf("the target's kernel sent %d SYN cookies, want 0", n)
	}
}

// syncookiesSent reads TcpExt SyncookiesSent of the namespace ns.
func syncookiesSent(t *testing.T, ns int) int {
	t.Helper()
	var data []byte
	if err := netns.Do(ns, func() (err error) {
		data, err = os.ReadFile("/proc/thread-self/net/netstat")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	for i := 0; i+1 < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "TcpExt:") || !strings.HasPrefix(lines[i+1], "TcpExt:") {
			continue
		}
		keys, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j, k := range keys {
			if k == "SyncookiesSent" && j < len(vals) {
				n, err := strconv.Atoi(vals[j])
				if err != nil {
					t.Fatalf("TcpExt SyncookiesSent %q: %v", vals[j], err)
				}
				return n
			}
		}
	}
	t.Fatal("no TcpExt SyncookiesSent in /proc/net/netstat")
	return 0
}

// TestTargetsAuditFilteredBlocks audits one address of every block of a
// scale lab: plain hosts, a clamped MSS, stripped options, and ports a
// filter on the target host resets, drops, or rejects with ICMP port
// unreachable or admin prohibited. A filter is never the stack: no result
// of any block fails, and none of the filtered blocks warns (an ICMP
// error from the target's own address is path:icmp; silence from a host
// that sent no TCP segment at all is not judged). Both used to fail
// dozens of checks with cause stack.
func TestTargetsAuditFilteredBlocks(t *testing.T) {
	lab := servedScaleLab(t, "10.93.1.0/24", 8)
	plan := lab.Plan
	dir := t.TempDir()
	list := filepath.Join(dir, "targets.txt")
	var b strings.Builder
	behaviour := map[string]scalelab.Behaviour{}
	for _, bl := range plan.Blocks {
		target := netip.AddrPortFrom(bl.Prefix.Addr().Next(), 80).String()
		behaviour[target] = bl.Behaviour
		fmt.Fprintln(&b, target)
	}
	if err := os.WriteFile(list, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run.jsonl")
	code, errOut := fleetRunJudged(t, out, "audit", "--netns", lab.ProbeNS, "--targets", list, "--shard", "0/1")
	if code == exitFail || code == exitUsage {
		t.Errorf("audit --targets: exit %d, want 0 (or 3 on a host too busy)\n%s", code, errOut)
	}
	got := verdictsOf(t, out)
	if len(got) != len(plan.Blocks) {
		t.Fatalf("%d targets written, want %d", len(got), len(plan.Blocks))
	}
	for target, results := range got {
		filtered := behaviour[target] != scalelab.Host && behaviour[target] != scalelab.MSS && behaviour[target] != scalelab.Strip
		for name, v := range results {
			if v == "fail" || filtered && v == "warn" {
				t.Errorf("%s (%s block): %s is %s", target, behaviour[target], name, v)
			}
		}
	}
}

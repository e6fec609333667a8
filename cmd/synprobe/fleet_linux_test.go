package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"synprobe/conformance/report"
	"synprobe/internal/netns"
	"synprobe/internal/summary"
	"synprobe/internal/veth"
	"synprobe/internal/veth/vethtest"
)

// fleetBed is three targets on one stock Linux kernel in a namespace of
// the test's own (10.77.0.2-4, port 80 open, 81 closed, 8080 open with an
// application that never closes), reached from a probe namespace; it
// returns that namespace as --netns takes it.
func fleetBed(t testing.TB) string {
	t.Helper()
	pfx := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, p := range s {
			out = append(out, netip.MustParsePrefix(p))
		}
		return out
	}
	pair := vethtest.New(t, veth.Config{
		Probe:  veth.End{Name: "fl-probe", Addrs: pfx("10.77.0.1/24")},
		Target: veth.End{Name: "fl-target", Addrs: pfx("10.77.0.2/24", "10.77.0.3/24", "10.77.0.4/24")},
	})
	var ln, holder net.Listener
	if err := netns.Do(pair.Target.NS, func() (err error) {
		if ln, err = net.Listen("tcp4", "0.0.0.0:80"); err != nil {
			return err
		}
		holder, err = net.Listen("tcp4", "0.0.0.0:8080")
		return err
	}); err != nil {
		t.Fatalf("listen in the target namespace: %v", err)
	}
	// Port 8080 accepts and never closes: a handshake waits there for
	// the target's FIN until its --timeout.
	held := make(chan struct{})
	serve(t, holder, func(c net.Conn) { <-held; c.Close() })
	serve(t, ln, readToEnd(30*time.Second))
	t.Cleanup(func() { close(held) }) // runs before the listeners' cleanups
	return fmt.Sprintf("/proc/self/fd/%d", pair.Probe.NS)
}

// serve accepts on ln until it is closed and runs handle on each
// connection; the test's cleanup closes ln and waits for every handler.
func serve(t testing.TB, ln net.Listener, handle func(net.Conn)) {
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); handle(c) }()
		}
	}()
}

// readToEnd is an application that reads to the end of the stream, then
// closes (a handshake's step 6 sees the target's FIN), or after d.
func readToEnd(d time.Duration) func(net.Conn) {
	return func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(d))
		io.Copy(io.Discard, c)
	}
}

// fleetBedNS is fleetBed's probe namespace descriptor, from its path.
func fleetBedNS(path string) int {
	var fd int
	fmt.Sscanf(path, "/proc/self/fd/%d", &fd)
	return fd
}

// fleetRun runs synprobe with args and returns exit code and stderr.
func fleetRun(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, append([]string{"synprobe"}, args...), &out, &errb)
	if out.Len() > 0 {
		t.Errorf("synprobe %v wrote to stdout with -o: %q", args, out.String())
	}
	return code, errb.String()
}

// fleetRunJudged is fleetRun for a run whose verdicts a test compares: a
// run in which this host failed a target (exit 3: a neighbour that did not
// answer in time, frames the socket dropped while every test package runs
// at once) is run again, up to twice, after logging what failed; out is
// the run's -o file, started afresh each time.
func fleetRunJudged(t *testing.T, out string, args ...string) (int, string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		os.Remove(out)
		code, errOut := fleetRun(t, append(args, "-o", out)...)
		if code != exitEnv || attempt == 3 {
			return code, errOut
		}
		b, _ := os.ReadFile(out)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, `"error"`) {
				t.Logf("attempt %d: a target had an error (run again): %.600s", attempt, l)
			}
		}
	}
}

// verdictsOf reads a JSONL output: target -> result name -> verdict.
func verdictsOf(t *testing.T, files ...string) map[string]map[string]string {
	t.Helper()
	got := map[string]map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if l == "" {
				continue
			}
			var rep struct {
				Target      struct{ Address string }
				Results     []struct{ Name, Verdict string }
				Interrupted bool
			}
			if err := json.Unmarshal([]byte(l), &rep); err != nil {
				t.Fatalf("%s:%d: not JSON: %v", f, i+1, err)
			}
			if _, dup := got[rep.Target.Address]; dup {
				t.Errorf("%s: %s appears twice across %v", f, rep.Target.Address, files)
			}
			got[rep.Target.Address] = map[string]string{}
			for _, r := range rep.Results {
				got[rep.Target.Address][r.Name] = r.Verdict
			}
		}
	}
	return got
}

// summaryOf is synprobe summarize of files, finished.
func summaryOf(t *testing.T, files ...string) *summary.Summary {
	t.Helper()
	s := summary.New()
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Read(fh, f); err != nil {
			t.Fatal(err)
		}
		fh.Close()
	}
	s.Finish()
	return s
}

func summarizeJSON(t *testing.T, files ...string) string {
	t.Helper()
	s := summaryOf(t, files...)
	s.Files, s.Lines = 0, 0
	var b bytes.Buffer
	s.WriteJSON(&b)
	// Timings differ between runs; the tables hold none but the examples
	// of causes, which name no time either.
	return b.String()
}

// TestTargetsShardsMerge: an audit and a handshake over the bed's targets
// with --targets write one JSON line per target; excluded targets are
// counted and never probed; two shards hold every target exactly once
// with the verdicts of the unsharded run, and summarize gives the same
// tables for them.
func TestTargetsShardsMerge(t *testing.T) {
	ns := fleetBed(t)
	dir := t.TempDir()
	list := filepath.Join(dir, "targets.txt")
	// Loopback and documentation lines must be excluded, never probed.
	os.WriteFile(list, []byte("# the bed\n10.77.0.2:80\n10.77.0.3\nopen tcp 80 10.77.0.4 1700000000\n10.77.0.4:81\n127.0.0.1:80\n192.0.2.9:80\n"), 0o644)

	for _, cmd := range [][]string{
		{"handshake", "--timeout", "1s"},
		{"audit", "--only", "listen-*", "--only", "closed-*", "--closed-port", "81"},
	} {
		t.Run(cmd[0], func(t *testing.T) {
			base := append(append([]string{}, cmd...), "--netns", ns, "--targets", list, "--port", "80")
			all := filepath.Join(dir, cmd[0]+"-all.jsonl")
			// --shard 0/1: a batch system's environment must not shard it.
			code, errOut := fleetRunJudged(t, all, append(base, "--shard", "0/1")...)
			if code != exitOK && code != exitFail {
				t.Fatalf("unsharded: exit %d\n%s", code, errOut)
			}
			for _, want := range []string{"4 targets checked", "excluded 2 (", "1 loopback", "1 documentation range"} {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
			whole := verdictsOf(t, all)
			if len(whole) != 4 {
				t.Fatalf("unsharded run wrote %d targets, want 4: %v", len(whole), whole)
			}
			if cmd[0] == "handshake" && (whole["10.77.0.2:80"]["handshake"] != "pass" || whole["10.77.0.4:81"]["handshake"] != "skip") {
				t.Errorf("handshake verdicts %v; want pass on port 80, skip on the closed port", whole)
			}
			var shards []string
			for i := range 2 {
				f := filepath.Join(dir, fmt.Sprintf("%s-%d.jsonl", cmd[0], i))
				if code, errOut := fleetRunJudged(t, f, append(base, "--shard", fmt.Sprintf("%d/2", i))...); code != exitOK && code != exitFail {
					t.Fatalf("shard %d: exit %d\n%s", i, code, errOut)
				}
				if len(verdictsOf(t, f)) == 0 {
					t.Errorf("shard %d/2 is empty: the test shows nothing (the bed's targets hash 3 to shard 0, 1 to shard 1)", i)
				}
				shards = append(shards, f)
			}
			merged := verdictsOf(t, shards...)
			if fmt.Sprint(sorted(merged)) != fmt.Sprint(sorted(whole)) {
				t.Errorf("shards merged:\n%v\nunsharded:\n%v", sorted(merged), sorted(whole))
			}
			if a, b := summarizeJSON(t, shards...), summarizeJSON(t, all); a != b {
				t.Errorf("summarize of the shards:\n%s\nof the unsharded run:\n%s", a, b)
			}
		})
	}
}

func sorted(m map[string]map[string]string) []string {
	var out []string
	for target, rs := range m {
		for name, v := range rs {
			out = append(out, target+" "+name+" "+v)
		}
	}
	sort.Strings(out)
	return out
}

// TestTargetsResume: --resume with the output file appends only the
// targets not done yet, after cutting a line a killed run left half
// written.
func TestTargetsResume(t *testing.T) {
	ns := fleetBed(t)
	dir := t.TempDir()
	list := filepath.Join(dir, "targets.txt")
	os.WriteFile(list, []byte("10.77.0.2:80\n10.77.0.3:80\n10.77.0.4:80\n"), 0o644)
	out := filepath.Join(dir, "out.jsonl")
	args := []string{"handshake", "--netns", ns, "--targets", list, "--shard", "0/1", "--resume", out, "-o", out}
	if code, errOut := fleetRun(t, args...); code != exitOK {
		t.Fatalf("first run (no file to resume yet): exit %d\n%s", code, errOut)
	}
	// A run killed while writing: the last line is cut short.
	b, _ := os.ReadFile(out)
	lines := strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("first run wrote %d lines, want 3", len(lines))
	}
	// The second target's line is one this host could not check (an
	// error, as when no neighbour answered): resumed, it is checked again.
	var rep map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &rep); err != nil {
		t.Fatal(err)
	}
	second := rep["target"].(map[string]any)["address"].(string)
	errLine, _ := json.Marshal(fleetErrorReport("handshake", netip.MustParseAddrPort(second), errors.New("no neighbour (test)")))
	os.WriteFile(out, []byte(lines[0]+string(errLine)+"\n"+lines[2][:40]), 0o644)
	code, errOut := fleetRun(t, args...)
	if code != exitOK || !strings.Contains(errOut, "2 targets checked") || !strings.Contains(errOut, "1 done before (--resume)") {
		t.Errorf("resumed run: exit %d, stderr:\n%s\nwant 2 targets checked (the cut one and the error), 1 done before", code, errOut)
	}
	b, _ = os.ReadFile(out)
	if n := strings.Count(string(b), "\n"); n != 4 {
		t.Errorf("after resuming: %d lines, want 4 (the error line stays, its target's new line follows)", n)
	}
	s := summaryOf(t, out)
	if s.Targets != 3 || s.Duplicates != 0 || s.Worst[report.Error] != 0 {
		t.Errorf("summarize after resuming: %d targets, %d duplicates, %d errors; want 3, 0, 0 (the new line counts, not the error)", s.Targets, s.Duplicates, s.Worst[report.Error])
	}
	code, errOut = fleetRun(t, args...)
	if code != exitOK || !strings.Contains(errOut, "0 targets checked") || !strings.Contains(errOut, "3 done before") {
		t.Errorf("nothing left: exit %d, stderr:\n%s", code, errOut)
	}
}

// benchmarkTargetsRSS runs synprobe handshake --targets as a process of
// its own over a list of n targets (the bed's three addresses, ports 1
// up: a RST, or on port 80 a handshake) of which it probes those in shard
// 0 of shards, and reports the process's peak RSS: a run's memory must
// not grow with the number of targets it reads, nor with those it probes.
func benchmarkTargetsRSS(b *testing.B, n, shards int) {
	ns := fleetBed(b)
	dir := b.TempDir()
	var list bytes.Buffer
	for i := range n {
		fmt.Fprintf(&list, "10.77.0.%d:%d\n", 2+i%3, 1+i/3)
	}
	file := filepath.Join(dir, "targets.txt")
	os.WriteFile(file, list.Bytes(), 0o644)
	fd, err := unix.Dup(fleetBedNS(ns))
	if err != nil {
		b.Fatal(err)
	}
	nsFile := os.NewFile(uintptr(fd), "netns")
	defer nsFile.Close()
	b.ResetTimer()
	for range b.N {
		cmd := exec.Command(os.Args[0], "handshake", "--netns", "/proc/self/fd/3", "--timeout", "200ms", "--concurrency", "16",
			"--targets", file, "--shard", fmt.Sprintf("0/%d", shards), "-o", filepath.Join(dir, "out.jsonl"))
		cmd.Env = append(os.Environ(), subprocessEnv+"=1")
		cmd.ExtraFiles = []*os.File{nsFile}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil && cmd.ProcessState.ExitCode() != exitEnv {
			b.Fatalf("%v\n%s", err, stderr.String())
		}
		out, _ := os.ReadFile(filepath.Join(dir, "out.jsonl"))
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, `"verdict":"error"`) {
				var rep struct {
					Target  struct{ Address string }
					Results []struct{ Reason string }
				}
				json.Unmarshal([]byte(l), &rep)
				b.Logf("error: %s: %+v", rep.Target.Address, rep.Results)
			}
		}
		b.ReportMetric(float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss), "maxRSS-KB")
		b.Logf("%s", strings.TrimSpace(stderr.String()))
	}
	b.ReportMetric(float64(n), "targets-read")
	b.ReportMetric(float64(n/shards), "targets-probed~")
}

func BenchmarkTargetsRSS1kProbe1k(b *testing.B)   { benchmarkTargetsRSS(b, 1000, 1) }
func BenchmarkTargetsRSS100kProbe1k(b *testing.B) { benchmarkTargetsRSS(b, 100_000, 100) }
func BenchmarkTargetsRSS10kProbe10k(b *testing.B) { benchmarkTargetsRSS(b, 10_000, 1) }

// TestTargetsInterrupted: Ctrl-C (the end of the run's context) stops a
// --targets run: the targets running are written marked interrupted, none
// starts after, every line is whole, and a resumed run does the
// interrupted ones again.
func TestTargetsInterrupted(t *testing.T) {
	ns := fleetBed(t)
	dir := t.TempDir()
	list := filepath.Join(dir, "targets.txt")
	os.WriteFile(list, []byte("10.77.0.2:8080\n10.77.0.3:8080\n10.77.0.4:8080\n10.77.0.2:80\n"), 0o644)
	out := filepath.Join(dir, "out.jsonl")
	args := []string{"synprobe", "handshake", "--netns", ns, "--targets", list, "--shard", "0/1", "--concurrency", "2", "--timeout", "20s", "--resume", out, "-o", out}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(time.Second, cancel)
	var stdout, stderr bytes.Buffer
	if code := run(ctx, args, &stdout, &stderr); code != 130 || !strings.Contains(stderr.String(), "synprobe: interrupted") {
		t.Errorf("interrupted run: exit %d, stderr:\n%s\nwant 130 and 'interrupted'", code, stderr.String())
	}
	b, _ := os.ReadFile(out)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want the 2 targets running:\n%s", len(lines), b)
	}
	for _, l := range lines {
		var rep struct {
			Target      struct{ Address string }
			Interrupted bool
		}
		if err := json.Unmarshal([]byte(l), &rep); err != nil || !rep.Interrupted || !strings.HasSuffix(rep.Target.Address, ":8080") {
			t.Errorf("line %.120s: %v; want an interrupted target on port 8080", l, err)
		}
	}
	// Resumed with a short timeout: every target is done, the two
	// interrupted ones again.
	args[len(args)-5] = "1s" // --timeout
	code, errOut := fleetRun(t, args[1:]...)
	if code != exitOK || !strings.Contains(errOut, "4 targets checked") {
		t.Errorf("resumed: exit %d, stderr:\n%s\nwant all 4 targets checked", code, errOut)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"synprobe/internal/netns"
	"synprobe/internal/trace"
	"synprobe/internal/veth"
	"synprobe/internal/veth/vethtest"
)

// traceBed is three targets on one stock Linux kernel in a namespace of
// the test's own (10.95.0.2-5, port 80 open, 81 closed), reached from a
// probe namespace, with an nftables table (sptrace) in the target's
// namespace that strips sackOK from the SYNs to 10.95.0.4 as they arrive
// (the target's SYN-ACK then lacks it: what trace reports "unobserved",
// there being no router to quote a change), drops everything to port 84
// (the alt port answers: a drop) and all TCP to 10.95.0.5 (nothing
// answers). It returns the probe namespace as --netns takes it.
func traceBed(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs the nft program (Debian package nftables)")
	}
	pfx := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, p := range s {
			out = append(out, netip.MustParsePrefix(p))
		}
		return out
	}
	pair := vethtest.New(t, veth.Config{
		Probe:  veth.End{Name: "sptrace-probe", Addrs: pfx("10.95.0.1/24")},
		Target: veth.End{Name: "sptrace-target", Addrs: pfx("10.95.0.2/24", "10.95.0.3/24", "10.95.0.4/24", "10.95.0.5/24")},
	})
	const rules = `table inet sptrace {
	chain prerouting {
		type filter hook prerouting priority -300; policy accept;
		ip daddr 10.95.0.4 tcp flags & (syn | ack) == syn reset tcp option sack-perm
		tcp dport 84 drop
		ip daddr 10.95.0.5 meta l4proto tcp drop
	}
}
`
	var ln net.Listener
	if err := netns.Do(pair.Target.NS, func() error {
		// The child is forked from this thread, in the target's namespace.
		cmd := exec.Command("nft", "-f", "-")
		cmd.Stdin = strings.NewReader(rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("nft: %v: %s", err, out)
		}
		var err error
		ln, err = net.Listen("tcp4", "0.0.0.0:80")
		return err
	}); err != nil {
		t.Fatalf("target namespace: %v", err)
	}
	t.Cleanup(func() {
		// The table goes with the namespace; deleting it first says so if
		// it cannot be.
		netns.Do(pair.Target.NS, func() error { return exec.Command("nft", "delete", "table", "inet", "sptrace").Run() })
	})
	serve(t, ln, readToEnd(10*time.Second))
	return fmt.Sprintf("/proc/self/fd/%d", pair.Probe.NS)
}

// traceLine is what the test reads of a trace --targets line.
type traceLine struct {
	Command string
	Target  struct {
		Address string
		Source  string
	}
	Results []struct {
		Name, Verdict, Cause, Reason string
	}
	Path *trace.Check
}

func readTraceLines(t *testing.T, files ...string) map[string]traceLine {
	t.Helper()
	got := map[string]traceLine{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if l == "" {
				continue
			}
			var tl traceLine
			if err := json.Unmarshal([]byte(l), &tl); err != nil {
				t.Fatalf("%s:%d: not JSON: %v", f, i+1, err)
			}
			if _, dup := got[tl.Target.Address]; dup {
				t.Errorf("%s: %s appears twice across %v", f, tl.Target.Address, files)
			}
			got[tl.Target.Address] = tl
		}
	}
	return got
}

// TestTraceTargets: trace --targets over the bed writes one JSON line per
// target, synprobe's report with the path object audit --path-check
// writes; a target whose SYN loses sackOK on its own host has the
// finding "unobserved" (info), a port that drops SYNs "drop(syn)" (warn:
// exit 0 still), a host that answers nothing is skip; the excluded
// line is counted and never traced; two shards merge to the whole run;
// summarize counts the findings by kind.
func TestTraceTargets(t *testing.T) {
	ns := traceBed(t)
	dir := t.TempDir()
	list := filepath.Join(dir, "targets.txt")
	os.WriteFile(list, []byte("10.95.0.2:80\n10.95.0.3:81\n10.95.0.4\n10.95.0.3:84\n10.95.0.5:80\n127.0.0.1:80\n"), 0o644)
	base := []string{"trace", "--netns", ns, "--probes", "syn", "--wait", "500ms", "--targets", list, "--port", "80"}
	all := filepath.Join(dir, "all.jsonl")
	code, errOut := fleetRunJudged(t, all, append(base, "--shard", "0/1")...)
	if code != exitOK {
		t.Fatalf("trace --targets: exit %d, want 0 (findings of info only)\n%s", code, errOut)
	}
	t.Logf("%s", errOut)
	for _, want := range []string{"trace: 5 targets checked", "excluded 1 (", "1 loopback"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	// internal/summary/testdata/trace.jsonl is such a run's lines:
	// SPTRACE_DUMP=that/file go test -run TestTraceTargets writes them anew.
	if b, _ := os.ReadFile(all); os.Getenv("SPTRACE_DUMP") != "" {
		os.WriteFile(os.Getenv("SPTRACE_DUMP"), b, 0o644)
	}
	lines := readTraceLines(t, all)
	want := map[string]struct{ verdict, cause string }{
		"10.95.0.2:80": {"pass", ""},
		"10.95.0.3:81": {"pass", ""},
		"10.95.0.4:80": {"info", "path:unobserved"},
		"10.95.0.3:84": {"warn", "path:drop(syn)"},
		"10.95.0.5:80": {"skip", "premise:nothing-to-judge"},
	}
	if len(lines) != len(want) {
		t.Errorf("%d lines, want one per target (%d)", len(lines), len(want))
	}
	for addr, w := range want {
		l, ok := lines[addr]
		if !ok {
			t.Errorf("%s: no line", addr)
			continue
		}
		if l.Command != "trace" || l.Target.Source != "10.95.0.1" || len(l.Results) != 1 || l.Path == nil {
			t.Errorf("%s: command %q, source %q, %d results, path %v; want trace from 10.95.0.1, one result and a path object", addr, l.Command, l.Target.Source, len(l.Results), l.Path)
			continue
		}
		r := l.Results[0]
		if r.Name != "trace" || r.Verdict != w.verdict || r.Cause != w.cause {
			t.Errorf("%s: result %s %s (cause %q, %s); want trace %s (cause %q)", addr, r.Name, r.Verdict, r.Cause, r.Reason, w.verdict, w.cause)
		}
		if l.Path.Mode != trace.ModeTrace || len(l.Path.Families) != 2 || len(l.Path.Coverage) == 0 {
			t.Errorf("%s: path mode %q, families %v, coverage %q; want mode trace, syn and alt, and coverage", addr, l.Path.Mode, l.Path.Families, l.Path.Coverage)
		}
		var kinds []string
		for _, f := range l.Path.Findings {
			kinds = append(kinds, string(f.Kind))
		}
		if wantKinds := strings.TrimPrefix(w.cause, "path:"); strings.Join(kinds, ",") != wantKinds && w.verdict != "skip" || w.verdict == "skip" && len(kinds) > 0 {
			t.Errorf("%s: findings %v; want [%s]", addr, kinds, wantKinds)
		}
	}

	// One target with --format jsonl writes the line of a --targets run.
	var one bytes.Buffer
	if code := run(t.Context(), []string{"synprobe", "trace", "--netns", ns, "--probes", "syn", "--format", "jsonl", "10.95.0.4:80"}, &one, io.Discard); code != exitOK {
		t.Errorf("trace --format jsonl of one target: exit %d", code)
	}
	var single traceLine
	if err := json.Unmarshal(one.Bytes(), &single); err != nil || strings.Count(one.String(), "\n") != 1 || len(single.Results) != 1 || single.Results[0].Cause != "path:unobserved" || single.Path == nil {
		t.Errorf("trace --format jsonl of one target: %v\n%s\nwant one line like the --targets run's", err, one.String())
	}
	// Resumed from its own output, the run has nothing left to do.
	if code, errOut := fleetRun(t, append(base, "--shard", "0/1", "--resume", all, "-o", all)...); code != exitOK || !strings.Contains(errOut, "0 targets checked") || !strings.Contains(errOut, "5 done before (--resume)") {
		t.Errorf("resumed: exit %d, stderr:\n%s\nwant 0 targets checked, 5 done before", code, errOut)
	}

	var shards []string
	for i := range 2 {
		f := filepath.Join(dir, fmt.Sprintf("shard%d.jsonl", i))
		if code, errOut := fleetRunJudged(t, f, append(base, "--shard", fmt.Sprintf("%d/2", i))...); code != exitOK {
			t.Fatalf("shard %d/2: exit %d\n%s", i, code, errOut)
		}
		shards = append(shards, f)
	}
	merged := readTraceLines(t, shards...)
	if len(merged) != len(lines) {
		t.Errorf("shards hold %d targets, the whole run %d", len(merged), len(lines))
	}
	for addr, l := range lines {
		if m, ok := merged[addr]; !ok || m.Results[0].Verdict != l.Results[0].Verdict {
			t.Errorf("%s: in the shards %+v, in the whole run %+v", addr, m.Results, l.Results)
		}
	}

	s := summaryOf(t, shards...)
	var paths []string
	for _, p := range s.Paths {
		paths = append(paths, fmt.Sprintf("%s %s %d", p.Kind, p.Verdict, p.Count))
	}
	if s.Commands["trace"] != 5 || strings.Join(paths, "; ") != "drop(syn) warn 1; unobserved info 1" {
		t.Errorf("summarize: commands %v, path findings %q; want 5 traces, drop(syn) on 1 and unobserved on 1", s.Commands, paths)
	}
	var text bytes.Buffer
	s.WriteText(&text)
	t.Logf("summarize:\n%s", text.String())
}

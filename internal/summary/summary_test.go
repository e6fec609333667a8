package summary

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"synprobe/conformance/report"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func readFiles(t *testing.T, names ...string) *Summary {
	t.Helper()
	s := New()
	for _, n := range names {
		f, err := os.Open(filepath.Join("testdata", n))
		if err != nil {
			t.Fatal(err)
		}
		err = s.Read(f, n)
		f.Close()
		if err != nil {
			t.Fatalf("read %s: %v", n, err)
		}
	}
	s.Finish()
	return s
}

// TestSummaryCounts: two shards and a sweep; a duplicate counts once, an
// interrupted line only when nothing finished came, a last line cut short
// is skipped.
func TestSummaryCounts(t *testing.T) {
	s := readFiles(t, "shard0.jsonl", "shard1.jsonl", "sweep.jsonl")
	checks := []struct {
		what      string
		got, want int
	}{
		{"targets", s.Targets, 4 + 1 + 4}, // audits 10.0.0.1-4, handshake .5, four swept ports
		{"duplicates", s.Duplicates, 1},   // 10.0.0.1 again in shard1
		{"interrupted", s.Interrupted, 1}, // 10.0.0.6 only interrupted
		{"audits", s.Commands["audit"], 4},
		{"handshakes", s.Commands["handshake"], 1},
		{"swept", s.Commands["sweep"], 4},
		{"worst fail", s.Worst[report.Fail], 1},
		{"worst warn", s.Worst[report.Warn], 3},
		{"worst pass", s.Worst[report.Pass], 1},
		{"sweep open", s.Sweep["open"], 2},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %d, want %d", c.what, c.got, c.want)
		}
	}
	var synFin *Scenario
	for _, sc := range s.Scenarios {
		if sc.Name == "listen-syn-fin" {
			synFin = sc
		}
	}
	if synFin == nil || synFin.Targets != 4 || synFin.Counts[report.Fail] != 1 || synFin.Counts[report.Info] != 3 {
		t.Fatalf("listen-syn-fin: %+v; want 4 targets, 1 fail, 3 info", synFin)
	}
	if c := synFin.Causes; len(c) != 2 || c[0].Verdict != report.Info || c[0].Count != 3 || c[1].Cause != report.CauseStack || c[1].Example == "" {
		t.Errorf("listen-syn-fin causes: %+v; want info 3 then fail 1 with its reason", c)
	}
	if len(s.Fingerprints) != 3 || s.Fingerprints[0].Count != 3 || s.Fingerprints[0].Options != "M,S,T,N,W8" || s.Fingerprints[0].Timestamps != "1kHz, offset per 4-tuple" {
		t.Errorf("fingerprints %+v; want 3 clusters, the Linux one (M,S,T,N,W8, 1kHz, offset per 4-tuple) with 3 targets", s.Fingerprints)
	}
	if len(s.Paths) != 2 || s.Paths[0].Kind != "mss-clamp" || s.Paths[0].Count != 2 {
		t.Errorf("paths %+v; want mss-clamp on 2 targets, option-stripped(ts) on 1", s.Paths)
	}
}

// TestSummaryShardsEqualWhole: the shards summarised together give the
// tables of their lines in one file.
func TestSummaryShardsEqualWhole(t *testing.T) {
	var whole bytes.Buffer
	for _, n := range []string{"shard0.jsonl", "shard1.jsonl"} {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			t.Fatal(err)
		}
		// The cut last line of shard1 would not be last in one file.
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			b = b[:i+1]
		}
		whole.Write(b)
	}
	one := New()
	if err := one.Read(&whole, "whole"); err != nil {
		t.Fatal(err)
	}
	one.Finish()
	shards := readFiles(t, "shard0.jsonl", "shard1.jsonl")
	var a, b bytes.Buffer
	one.Files, shards.Files = 0, 0
	one.Lines, shards.Lines = 0, 0
	one.WriteJSON(&a)
	shards.WriteJSON(&b)
	if a.String() != b.String() {
		t.Errorf("shards summarised apart differ from together:\n%s\nvs\n%s", b.String(), a.String())
	}
}

func TestSummaryGolden(t *testing.T) {
	s := readFiles(t, "shard0.jsonl", "shard1.jsonl", "sweep.jsonl", "trace.jsonl")
	for _, f := range []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{"summary.txt", func(b *bytes.Buffer) error { return s.WriteText(b) }},
		{"summary.csv", func(b *bytes.Buffer) error { return s.WriteCSV(b) }},
		{"summary.json", func(b *bytes.Buffer) error { return s.WriteJSON(b) }},
	} {
		var b bytes.Buffer
		if err := f.write(&b); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", f.name)
		if *update {
			os.WriteFile(path, b.Bytes(), 0o644)
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if b.String() != string(want) {
			t.Errorf("%s differs (go test -update to accept):\ngot:\n%s\nwant:\n%s", f.name, b.String(), want)
		}
	}
	var j map[string]any
	b, _ := os.ReadFile("testdata/summary.json")
	if err := json.Unmarshal(b, &j); err != nil {
		t.Errorf("summary.json is not JSON: %v", err)
	}
}

func TestSummaryBadLines(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"{\"command\":\"audit\",\"target\":\"10.0.0.1:80\"}\nnot json\n{}\n", "f:2: not a JSON line of synprobe"},
		{"{\"x\":1}\n", "f:1: neither a report (command, target) nor a sweep line (addr, state)"},
		{"{\"command\":\"audit\",\"target\":{\"address\":\"h\"}}\n", `f:1: target "h" is not ADDRESS:PORT`},
		{"{\"addr\":\"x\",\"port\":1,\"state\":\"open\"}\n", `f:1: sweep line: addr "x" port 1 is not a target`},
	} {
		if err := New().Read(strings.NewReader(tt.in), "f"); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v; want %q", tt.in, err, tt.want)
		}
	}
}

func TestLayouts(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"<mss 1460,sackOK,TS val 1 ecr 2,nop,wscale 7>", "M,S,T,N,W7"},
		{"<mss 536>", "M"},
		{"", "-"},
		{"<mss 1460,nop,nop,sackOK,eol>", "M,N,N,S,E"},
	} {
		if got := layoutOfText(tt.in); got != tt.want {
			t.Errorf("layoutOfText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := layoutOfList("M1460,S,T,N,W7"); got != "M,S,T,N,W7" {
		t.Errorf("layoutOfList = %q, want M,S,T,N,W7", got)
	}
	for in, want := range map[int]int{62: 64, 64: 64, 1: 32, 120: 128, 200: 255} {
		if got := initialTTL(in); got != want {
			t.Errorf("initialTTL(%d) = %d, want %d", in, got, want)
		}
	}
}

// TestSummaryCommandsApart: an audit and a sweep of one HOST:PORT are two
// lines to count (the README's recipe sweeps, then audits what answered);
// two audits of it are one target.
func TestSummaryCommandsApart(t *testing.T) {
	lines := `{"command":"audit","target":{"address":"10.0.0.1:80"},"results":[{"name":"closed-syn","verdict":"pass"}]}
{"addr":"10.0.0.1","port":80,"state":"open"}
{"command":"audit","target":{"address":"10.0.0.1:80"},"results":[{"name":"closed-syn","verdict":"pass"}]}
`
	s := New()
	if err := s.Read(strings.NewReader(lines), "mixed.jsonl"); err != nil {
		t.Fatal(err)
	}
	s.Finish()
	if s.Commands["audit"] != 1 || s.Commands["sweep"] != 1 || s.Sweep["open"] != 1 || s.Duplicates != 1 {
		t.Errorf("got commands %v, sweep %v, %d duplicates; want audit 1, sweep 1 (open 1), 1 duplicate", s.Commands, s.Sweep, s.Duplicates)
	}
}

// TestSummaryErrorLinesRedone: a target this host could not check (a line
// with an error and no fail) that a resumed run checked again counts once,
// with the later line; one checked only with an error counts as error.
func TestSummaryErrorLinesRedone(t *testing.T) {
	lines := `{"command":"audit","target":{"address":"10.0.0.1:80"},"results":[{"name":"audit","verdict":"error","cause":"local-host:failure","reason":"no neighbour"}]}
{"command":"audit","target":{"address":"10.0.0.2:80"},"results":[{"name":"audit","verdict":"error","cause":"local-host:failure","reason":"no neighbour"}]}
{"command":"audit","target":{"address":"10.0.0.1:80"},"results":[{"name":"closed-syn","verdict":"pass"}]}
{"command":"audit","target":{"address":"10.0.0.3:80"},"results":[{"name":"closed-syn","verdict":"fail","cause":"stack"},{"name":"listen-syn-fin","verdict":"error","cause":"local-host:drops"}]}
{"command":"audit","target":{"address":"10.0.0.3:80"},"results":[{"name":"closed-syn","verdict":"pass"}]}
`
	s := New()
	if err := s.Read(strings.NewReader(lines), "resumed.jsonl"); err != nil {
		t.Fatal(err)
	}
	s.Finish()
	checks := []struct {
		what      string
		got, want int
	}{
		{"targets", s.Targets, 3},
		{"duplicates", s.Duplicates, 1}, // 10.0.0.3's second line: its first had a fail
		{"worst pass", s.Worst[report.Pass], 1},
		{"worst error", s.Worst[report.Error], 2},
	}
	for _, sc := range s.Scenarios {
		if sc.Name == "closed-syn" {
			checks = append(checks, struct {
				what      string
				got, want int
			}{"closed-syn pass", sc.Counts[report.Pass], 1}, struct {
				what      string
				got, want int
			}{"closed-syn fail", sc.Counts[report.Fail], 1})
		}
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %d, want %d", c.what, c.got, c.want)
		}
	}
	if len(checks) != 6 {
		t.Errorf("no closed-syn row in %+v", s.Scenarios)
	}
}

// TestSummaryPathFindings: path findings are counted by kind from audit
// --path-check lines and trace --targets lines alike (trace.jsonl is the
// lines of a run against a real kernel: one target's SYNs lose sackOK on
// its host, "unobserved"; one port drops SYNs, "drop(syn)"; one host
// answers nothing); a trace's verdict is the path's and stays out of the
// targets' worst verdicts.
func TestSummaryPathFindings(t *testing.T) {
	s := readFiles(t, "shard0.jsonl", "shard1.jsonl", "trace.jsonl")
	got := map[string]int{}
	for _, p := range s.Paths {
		got[p.Kind+" "+p.Verdict] = p.Count
	}
	want := map[string]int{"mss-clamp info": 2, "option-stripped(ts) warn": 1, "unobserved info": 1, "drop(syn) warn": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("path findings %v; want %v", got, want)
	}
	checks := []struct {
		what      string
		got, want int
	}{
		{"traces", s.Commands["trace"], 5},
		{"paths walked", s.PathWalked, 2 + 5}, // two audits with --path-check, five traces
		{"paths clean", s.PathClean, 2},       // the traces of 10.95.0.2:80 and 10.95.0.3:81
		{"worst, audits and handshakes only", s.Worst[report.Pass] + s.Worst[report.Fail] + s.Worst[report.Warn] + s.Worst[report.Info] + s.Worst[report.Skip], 5},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %d, want %d", c.what, c.got, c.want)
		}
	}
	var tr *Scenario
	for _, sc := range s.Scenarios {
		if sc.Name == "trace" {
			tr = sc
		}
	}
	if tr == nil || tr.Targets != 5 || tr.Counts[report.Pass] != 2 || tr.Counts[report.Warn] != 1 || tr.Counts[report.Info] != 1 || tr.Counts[report.Skip] != 1 {
		t.Fatalf("scenario trace: %+v; want 5 targets: 2 pass, 1 warn, 1 info, 1 skip", tr)
	}
	for _, c := range tr.Causes {
		if c.Cause.Kind() == "stack" {
			t.Errorf("trace cause %+v: a path finding is never the stack's", c)
		}
	}
}

// TestClocks: the ISN and timestamp clocks of a cluster, from the
// fingerprint's measures.
func TestClocks(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	b := func(v bool) *bool { return &v }
	for _, tt := range []struct {
		name    string
		fp      fingerprint
		isn, ts string
	}{
		{"nothing measured", fingerprint{}, "-", "-"},
		{"linux", func() (fp fingerprint) {
			fp.ISN.Adjacent.RandomBits, fp.ISN.OneTuple.RateHz = f(31.3), f(15624940)
			fp.Timestamps.Answered, fp.Timestamps.NominalHz, fp.Timestamps.PerTuple = b(true), 1000, b(true)
			return
		}(), "random, 15.6MHz per 4-tuple", "1kHz, offset per 4-tuple"},
		{"one counter, one TS clock", func() (fp fingerprint) {
			fp.ISN.Adjacent.RandomBits, fp.ISN.OneTuple.RateHz = f(2), f(250000)
			fp.Timestamps.RateHz, fp.Timestamps.PerTuple = f(100.4), b(false)
			return
		}(), "predictable (2 random bits), 250kHz per 4-tuple", "~100Hz, one offset"},
		{"no timestamps", func() (fp fingerprint) {
			fp.Timestamps.Answered = b(false)
			return
		}(), "-", "none"},
	} {
		if got := isnClock(&tt.fp); got != tt.isn {
			t.Errorf("%s: ISN clock %q, want %q", tt.name, got, tt.isn)
		}
		if got := tsClock(&tt.fp); got != tt.ts {
			t.Errorf("%s: TS clock %q, want %q", tt.name, got, tt.ts)
		}
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"synprobe/internal/lab"
	"synprobe/internal/trace"
)

func TestTraceFlagsRefused(t *testing.T) {
	const target = "192.0.2.9:80" // never reached: the flags are refused first
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"trace"}, "trace needs one HOST:PORT"},
		{[]string{"trace", "--max-hops", "0", target}, "--max-hops 0: want 1 to 255"},
		{[]string{"trace", "--max-hops", "300", target}, "--max-hops 300"},
		{[]string{"trace", "--first-hop", "9", "--max-hops", "5", target}, "--first-hop 9: want 1 to 5"},
		{[]string{"trace", "--tries", "0", target}, "--tries 0"},
		{[]string{"trace", "--wait", "0s", target}, "--wait 0s"},
		{[]string{"trace", "--rate", "NaN", target}, "--rate NaN"},
		{[]string{"trace", "--probes", "syn,bogus", target}, `no family "bogus"`},
		{[]string{"trace", "--probes", "alt", target}, `no family "alt"`},
		{[]string{"trace", "--probes", "", target}, `--probes "": no family given; want a comma-separated list of syn, ecn, exotic, syndata, badsum, conn or all`},
		{[]string{"trace", "--probes", " ", target}, `no family given`},
		{[]string{"trace", "--probes", "syn,,ecn", target}, `--probes "syn,,ecn": an empty family between commas`},
		{[]string{"trace", "--alt-port", "70000", target}, "--alt-port 70000"},
		{[]string{"trace", "--format", "junit", target}, `--format "junit"`},
		{[]string{"trace", "--reflector", "nohost", target}, "--reflector"},
		{[]string{"trace", "--reflector", "[fd00::1]:9001", target}, "want an address of the target's family"},
	} {
		refused(t, tt.args, tt.want)
	}
}

// TestTraceTargetsFlagsRefused: trace --targets refuses what it cannot
// honour before anything is read or sent: --reflector (one target's),
// another format than jsonl, a --pcap, the flags of a bad trace; the
// --targets flags need --targets.
func TestTraceTargetsFlagsRefused(t *testing.T) {
	list := filepath.Join(t.TempDir(), "targets.txt")
	os.WriteFile(list, []byte("10.95.9.2:80\n"), 0o644)
	const target = "192.0.2.9:80" // never reached: the flags are refused first
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"trace", "--targets", list, "--reflector", "10.95.9.2:9001"}, "trace: --reflector 10.95.9.2:9001 answers for one target"},
		{[]string{"trace", "--targets", list, "--format", "json"}, "trace: --targets writes --format jsonl"},
		{[]string{"trace", "--targets", list, "--pcap", "x.pcap"}, "--pcap records one target"},
		{[]string{"trace", "--targets", list, target}, `trace: --targets names the targets; drop the argument "192.0.2.9:80"`},
		{[]string{"trace", "--targets", list, "--probes", "bogus"}, `no family "bogus"`},
		{[]string{"trace", "--targets", list, "--rate", "-1"}, "--rate -1"},
		{[]string{"trace", "--targets", list, "--pps", "1e9"}, "--pps 1e+09"},
		{[]string{"trace", "--shard", "0/2", target}, "--shard needs --targets"},
		{[]string{"trace", "--concurrency", "2", target}, "--concurrency needs --targets"},
	} {
		refused(t, tt.args, tt.want)
	}
}

func TestParseFamilies(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []trace.Family
	}{
		{"all", trace.Families},
		{"syn", trace.QuickFamilies},
		{"ecn, syn,ecn", []trace.Family{trace.FamilyECN, trace.FamilySYN, trace.FamilyAlt}},
		{"conn", []trace.Family{trace.FamilyConn}},
	} {
		got, err := parseFamilies(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseFamilies(%q): got %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

// TestLabTrace: synprobe lab trace (no router between: the target is hop
// 1) writes JSON with probes, hops, findings and coverage, records a pcap,
// and passes.
func TestLabTrace(t *testing.T) {
	if ok, why := lab.LinuxAvailable(); !ok {
		t.Skip("linux lab unavailable: " + why)
	}
	pcapFile := filepath.Join(t.TempDir(), "trace.pcap")
	code, out, errOut := synprobe(t, "lab", "--stack", "linux", "trace", "--probes", "syn,ecn", "--format", "json", "--pcap", pcapFile)
	var r trace.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("lab trace: %v\n%s%s", err, out, errOut)
	}
	if code != exitOK || r.Verdict != "pass" || len(r.Probes) != 3 || len(r.Coverage) == 0 {
		t.Errorf("lab trace: exit %d, verdict %s, %d probes, coverage %q; want exit 0, pass, 3 probes (syn, alt, ecn) and coverage\n%s", code, r.Verdict, len(r.Probes), r.Coverage, errOut)
	}
	if len(r.Probes) > 0 && (r.Probes[0].Destination == nil || r.Probes[0].Destination.Hop != 1) {
		t.Errorf("lab trace: syn destination %+v, want the target at hop 1", r.Probes[0].Destination)
	}
	if st, err := os.Stat(pcapFile); err != nil || st.Size() < 200 {
		t.Errorf("pcap: %v, %v; want the frames recorded", st, err)
	}
	code, out, _ = synprobe(t, "lab", "--stack", "linux", "trace", "--probes", "syn")
	if code != exitOK || !strings.Contains(out, "probe syn:") || !strings.Contains(out, "verdict: pass") {
		t.Errorf("lab trace text: exit %d\n%s", code, out)
	}
}

// TestLabTraceReflectorNamespace: under 'synprobe lab' the reflector's
// query leaves from the lab's probe side, as the probes do, never from
// this process's own namespace (where the lab's address may be a real
// host's): asked of a port with no reflector, the lab's target refuses it;
// the in-process gVisor lab, which no kernel socket reaches, refuses
// --reflector before anything is sent.
func TestLabTraceReflectorNamespace(t *testing.T) {
	if ok, why := lab.LinuxAvailable(); !ok {
		t.Skip("linux lab unavailable: " + why)
	}
	code, out, errOut := synprobe(t, "lab", "--stack", "linux", "trace", "--probes", "syn", "--wait", "300ms", "--format", "json", "--reflector=192.0.2.2:9")
	var r trace.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("lab trace --reflector: %v\n%s%s", err, out, errOut)
	}
	cov := strings.Join(r.Coverage, "\n")
	if code != exitOK || !strings.Contains(cov, "connection refused") || strings.Contains(cov, "assign requested address") {
		t.Errorf("lab trace --reflector: exit %d, coverage:\n%s\nwant exit 0 and the lab target's refusal (asked from the lab's probe side)", code, cov)
	}
	code, _, errOut = synprobe(t, "lab", "--stack", "gvisor", "trace", "--probes", "syn", "--reflector=192.0.2.2:9")
	if code != exitUsage || !strings.Contains(errOut, "--reflector") {
		t.Errorf("gvisor lab trace --reflector: exit %d, %q; want %d naming --reflector", code, errOut, exitUsage)
	}
}

// TestLabArgsFlagValues: under 'synprobe lab' a flag's value that looks
// like HOST:PORT (--reflector 192.0.2.2:9001) stays the flag's, and the
// lab's target is still added.
func TestLabArgsFlagValues(t *testing.T) {
	got, err := labArgs("trace", []string{"--reflector", "192.0.2.2:9001", "--probes", "syn"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--closed-port", fmt.Sprint(lab.ClosedPort), "--reflector", "192.0.2.2:9001", "--probes", "syn", netip.AddrPortFrom(lab.TargetAddr4, lab.OpenPort).String()}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("labArgs: got %q, want %q", got, want)
	}
}

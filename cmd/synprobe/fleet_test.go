package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"synprobe/internal/fleet"
)

// TestTargetsFlagsRefused: a --targets run with flags it cannot honour is
// refused with one line, before anything is read or sent.
func TestTargetsFlagsRefused(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "targets.txt")
	os.WriteFile(list, []byte("10.77.9.2:80\n"), 0o644)
	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte("10.77.9.2:80\n# fine\nnot a target line\n"), 0o644)
	out := filepath.Join(dir, "out.jsonl")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"audit", "--targets", list, "10.77.9.3:80"}, `audit: --targets names the targets; drop the argument "10.77.9.3:80"`},
		{[]string{"handshake", "--targets", list, "--format", "json"}, "--targets writes --format jsonl"},
		{[]string{"handshake", "--shard", "0/2", "10.77.9.3:80"}, "--shard needs --targets"},
		{[]string{"audit", "--port", "80", "10.77.9.3:80"}, "--port needs --targets"},
		{[]string{"handshake", "--fail-exit-code", "0", "10.77.9.3:80"}, "--fail-exit-code needs --targets"},
		{[]string{"handshake", "--targets", list, "--fail-exit-code", "2"}, "--fail-exit-code 2: want 0 to 255 but not 2 or 3, which mean bad input and a failed environment"},
		{[]string{"audit", "--targets", list, "--fail-exit-code", "3"}, "--fail-exit-code 3: want 0 to 255 but not 2 or 3"},
		{[]string{"audit", "--targets", list, "--fail-exit-code", "256"}, "--fail-exit-code 256: want 0 to 255"},
		{[]string{"audit", "--targets", list, "--fail-exit-code", "-1"}, "--fail-exit-code -1: want 0 to 255"},
		{[]string{"handshake", "--targets", list, "--shard", "2/2"}, `--shard "2/2": I must be a number from 0 to 1`},
		{[]string{"handshake", "--targets", list, "--shard", "x"}, `--shard "x": want I/N`},
		{[]string{"handshake", "--targets", list, "--pcap", "x.pcap"}, "--pcap records one target"},
		{[]string{"handshake", "--targets", list, "--pps", "-1"}, "--pps -1: want 0.01 to"},
		{[]string{"handshake", "--targets", list, "--concurrency", "0"}, "--concurrency 0: want 1 to 4096"},
		{[]string{"handshake", "--targets", list, "--port", "70000"}, "--port 70000: want 1 to 65535"},
		{[]string{"handshake", "--targets", list, "--source-port", "4000"}, "--source-port with --targets"},
		{[]string{"handshake", "--rate", "NaN", "10.77.9.3:80"}, "--rate NaN: want a number"},
		{[]string{"handshake", "--targets", list, "--rate", "1e-9"}, "--rate 1e-09: below 0.01"},
		{[]string{"audit", "--targets", list, "--exclude", filepath.Join(dir, "none")}, "--exclude"},
		{[]string{"handshake", "--targets", filepath.Join(dir, "missing.txt")}, "--targets"},
		{[]string{"handshake", "--targets", bad, "-o", out}, "--targets " + bad + ":3: \"not a target line\" is not HOST:PORT"},
	}
	for _, tt := range tests {
		code, stdout, stderr := synprobe(t, isolated(t, tt.args...)...)
		if code != exitUsage || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q; want exit %d and nothing", tt.args, code, stdout, exitUsage)
		}
		oneErrorLine(t, stderr, tt.want)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a refused run created its output %s", out)
	}
}

// TestRunExitCode: --fail-exit-code replaces the exit code of a failed
// check; with 0, a target with an error still exits 3.
func TestRunExitCode(t *testing.T) {
	tests := []struct {
		st       fleet.Stats
		failCode int
		want     int
	}{
		{fleet.Stats{Done: 3}, 1, 0},
		{fleet.Stats{Done: 3}, 0, 0},
		{fleet.Stats{Done: 3, Failed: 1}, 1, 1},
		{fleet.Stats{Done: 3, Failed: 1}, 0, 0},
		{fleet.Stats{Done: 3, Failed: 1}, 42, 42},
		{fleet.Stats{Done: 3, Errored: 1}, 1, 3},
		{fleet.Stats{Done: 3, Errored: 1}, 0, 3},
		{fleet.Stats{Done: 3, Failed: 1, Errored: 1}, 1, 1},
		{fleet.Stats{Done: 3, Failed: 1, Errored: 1}, 0, 3},
	}
	for _, tt := range tests {
		if got := runExitCode(tt.st, tt.failCode); got != tt.want {
			t.Errorf("runExitCode(%+v, --fail-exit-code %d) = %d, want %d", tt.st, tt.failCode, got, tt.want)
		}
	}
}

// TestTargetsShardFromEnv: a Slurm array task's index that does not fit
// its count is refused; --shard overrides the environment.
func TestTargetsShardFromEnv(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "targets.txt")
	// Only excluded targets: nothing is ever sent.
	os.WriteFile(list, []byte("127.0.0.1:80\n192.0.2.1:80\n[ff02::1]:80\n"), 0o644)
	t.Setenv("SLURM_ARRAY_TASK_ID", "5")
	t.Setenv("SLURM_ARRAY_TASK_MIN", "1")
	t.Setenv("SLURM_ARRAY_TASK_COUNT", "4")
	code, _, stderr := synprobe(t, isolated(t, "handshake", "--targets", list)...)
	if code != exitUsage {
		t.Errorf("exit %d, want %d", code, exitUsage)
	}
	oneErrorLine(t, stderr, "shard from the environment: array task 5 of Slurm (from 1, 4 tasks): shard 4: want 0 to 3")
	code, stdout, stderr := synprobe(t, isolated(t, "handshake", "--targets", list, "--shard", "0/1", "-o", filepath.Join(dir, "out.jsonl"))...)
	if code != exitOK || stdout != "" || !strings.Contains(stderr, "0 targets checked") || !strings.Contains(stderr, "excluded 3 (1 documentation range") {
		t.Errorf("with --shard: exit %d, stdout %q, stderr:\n%s\nwant exit 0, 0 targets, 3 excluded", code, stdout, stderr)
	}
}

func TestSummarizeCommand(t *testing.T) {
	fixtures := filepath.Join("..", "..", "internal", "summary", "testdata")
	code, stdout, stderr := synprobe(t, "summarize", "--format", "csv", filepath.Join(fixtures, "shard0.jsonl"), filepath.Join(fixtures, "shard1.jsonl"))
	if code != exitOK || !strings.HasPrefix(stdout, "table,scenario,verdict,cause,") || !strings.Contains(stdout, "path,,info,,,,,,,mss-clamp,,2") {
		t.Errorf("exit %d, stderr %q, csv:\n%s", code, stderr, stdout)
	}
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(bad, []byte("{\"command\":\"audit\",\"target\":\"10.0.0.1:80\"}\n{oops\n{}\n"), 0o644)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"summarize", bad}, bad + ":2: not a JSON line of synprobe"},
		{[]string{"summarize"}, "summarize needs at least one FILE"},
		{[]string{"summarize", "--format", "xml", bad}, `--format "xml": want one of text, json, csv`},
	} {
		code, _, stderr := synprobe(t, tt.args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d", tt.args, code, exitUsage)
		}
		oneErrorLine(t, stderr, tt.want)
	}
}

// TestFleetProgress: to a buffer (not a terminal) the line writes
// nothing; its end says the errors so far and the last target.
func TestFleetProgress(t *testing.T) {
	var b strings.Builder
	app := &cli.App{ErrWriter: &b}
	c := cli.NewContext(app, nil, nil)
	p := newFleetProgress(c, "audit", 200)
	p.show(fleet.Progress{Done: 50, Errored: 1, Elapsed: 10 * time.Second, Last: netip.MustParseAddrPort("10.0.0.1:80")})
	if want := "1 error, last 10.0.0.1:80"; p.extra() != want {
		t.Errorf("extra %q, want %q", p.extra(), want)
	}
	p.show(fleet.Progress{Done: 51, Errored: 3, Elapsed: 11 * time.Second, Last: netip.MustParseAddrPort("10.0.0.2:22")})
	if want := "3 errors, last 10.0.0.2:22"; p.extra() != want {
		t.Errorf("extra %q, want %q", p.extra(), want)
	}
	p.end()
	if b.String() != "" {
		t.Errorf("progress to a buffer wrote %q, want nothing", b.String())
	}
}

//go:build linux

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"synprobe/internal/sweep"
)

// TestSweepExcludeScaleLab sweeps the scale lab through the command line
// with exclusions (a CIDR and a zmap blocklist file): the excluded
// addresses get no probe, the run counts them, every other probe is
// classified as planned.
func TestSweepExcludeScaleLab(t *testing.T) {
	lab := startScaleLab(t, "10.200.0.0/24", false)
	blocklist := filepath.Join(t.TempDir(), "blocklist.conf")
	if err := os.WriteFile(blocklist, []byte("# zmap format\n10.200.0.128/26  # a comment\n10.200.0.200\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := synprobe(t, "sweep", "--netns", lab.ProbeNS, "--ports", "80,81", "--retries", "1", "--wait", "200ms",
		"--exclude", "10.200.0.0/25", "--exclude", blocklist, "10.200.0.0/24")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	wantLine := "sweep: excluded 193 addresses: 128 excluded by --exclude 10.200.0.0/25, 65 excluded by " + blocklist
	if !strings.Contains(errOut, wantLine) {
		t.Errorf("stderr lacks %q:\n%s", wantLine, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 63*2 {
		t.Errorf("%d result lines, want %d (63 addresses x 2 ports)", len(lines), 63*2)
	}
	for _, l := range lines {
		var r sweep.Result
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		b := r.Addr.As4()
		if b[3] < 192 || b[3] == 200 {
			t.Errorf("%v was probed, but it is excluded", r.Addr)
		}
		if e := lab.Plan.Expect(r.Addr, r.Port); string(r.State) != e.State {
			t.Errorf("%v:%d: %s, want %s", r.Addr, r.Port, r.State, e.State)
		}
	}
}

// TestLabSweep: under synprobe lab, sweep probes the lab's target, its open
// and its closed port (a documentation address: allowed under the lab),
// and nothing outside the lab.
func TestLabSweep(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the linux lab")
	}
	code, out, errOut := synprobe(t, "lab", "--stack", "linux", "sweep")
	want := []string{`{"addr":"192.0.2.2","port":80,"state":"open"`, `{"addr":"192.0.2.2","port":81,"state":"closed"`}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 0 and two lines", code, out, errOut)
	}
	for _, w := range want {
		if !strings.HasPrefix(lines[0], w) && !strings.HasPrefix(lines[1], w) {
			t.Errorf("stdout %q lacks a line starting %s", out, w)
		}
	}
	refused(t, []string{"lab", "--stack", "linux", "sweep", "10.0.0.1"}, "not in the lab")
}

package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"synprobe/internal/exclude"
	"synprobe/internal/lab"
)

// TestLabArgsTargets: with --targets the file names the targets, so the
// lab adds none (audit and trace still get the lab's closed port).
func TestLabArgsTargets(t *testing.T) {
	closed := fmt.Sprint(lab.ClosedPort)
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"handshake", []string{"--targets", "t.txt"}, []string{"--targets", "t.txt"}},
		{"handshake", []string{"--targets=t.txt", "--concurrency", "4"}, []string{"--targets=t.txt", "--concurrency", "4"}},
		{"audit", []string{"--targets", "-"}, []string{"--closed-port", closed, "--targets", "-"}},
	} {
		got, err := labArgs(tc.name, tc.args)
		if err != nil {
			t.Errorf("labArgs(%s, %q): %v", tc.name, tc.args, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("labArgs(%s, %q) = %q, want %q", tc.name, tc.args, got, tc.want)
		}
	}
	// A target given beside --targets is refused, not dropped silently.
	if _, err := labArgs("audit", []string{"--targets", "t.txt", "192.0.2.2:81"}); err == nil || !strings.Contains(err.Error(), `drop the argument "192.0.2.2:81"`) {
		t.Errorf("labArgs(audit --targets t.txt 192.0.2.2:81): %v, want the argument refused", err)
	}
}

// TestExcludeOutsideLab: every address but the lab target's is excluded.
func TestExcludeOutsideLab(t *testing.T) {
	list := &exclude.List{}
	excludeOutsideLab(list)
	for _, tc := range []struct {
		addr     string
		excluded bool
	}{
		{lab.TargetAddr4.String(), false},
		{lab.TargetAddr6.String(), false},
		{"192.0.2.3", true},
		{"192.0.2.1", true},
		{"10.0.0.1", true},
		{"255.255.255.255", true},
		{"0.0.0.0", true},
		{"2001:db8::3", true},
		{"::", true},
	} {
		_, got := list.Match(netip.MustParseAddr(tc.addr))
		if got != tc.excluded {
			t.Errorf("%s excluded = %v, want %v", tc.addr, got, tc.excluded)
		}
	}
}

// TestLabHandshakeTargets: 'synprobe lab handshake --targets FILE' checks
// the lines that name the lab's target and excludes the others, saying
// why; it used to fail, the lab adding its target as an argument. The
// targets run one after another on the in-process lab's one link, each
// prober with a handle of its own (closing one closed the link for the
// next).
func TestLabHandshakeTargets(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "targets.txt")
	lines := fmt.Sprintf("%v\n%v\n10.94.0.9:80\n%v\n", netip.AddrPortFrom(lab.TargetAddr4, lab.OpenPort), netip.AddrPortFrom(lab.TargetAddr6, lab.OpenPort), netip.AddrPortFrom(lab.TargetAddr4, lab.ClosedPort))
	if err := os.WriteFile(list, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := synprobe(t, "lab", "--stack", "gvisor", "handshake", "--targets", list)
	if code != 0 {
		t.Fatalf("exit %d, want 0\n%s%s", code, out, errOut)
	}
	if n := strings.Count(out, "\n"); n != 3 || strings.Contains(out, `"verdict":"error"`) {
		t.Errorf("%d lines, want 3 without an error (the lab's target, IPv4 and IPv6, and its closed port):\n%s", n, out)
	}
	if want := "excluded 1 (1 not in the lab"; !strings.Contains(errOut, want) {
		t.Errorf("stderr %q, want %q", errOut, want)
	}
}

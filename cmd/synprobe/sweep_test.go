package main

import (
	"strings"
	"testing"
)

func TestSweepBadFlags(t *testing.T) {
	const target = "10.200.0.0/24" // never reached: the flags are refused first
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"sweep", target}, "--ports is required"},
		{[]string{"sweep", "--ports", "0", target}, `"0" in port list`},
		{[]string{"sweep", "--ports", "90-80", target}, "runs backwards"},
		{[]string{"sweep", "--ports", "http", target}, `"http" in port list`},
		{[]string{"sweep", "--ports", "80,", target}, "port list"},
		{[]string{"sweep", "--ports", "80", "--rate", "0", target}, "--rate 0"},
		{[]string{"sweep", "--ports", "80", "--rate", "20000000", target}, "--rate 20000000"},
		{[]string{"sweep", "--ports", "80", "--retries", "11", target}, "--retries 11"},
		{[]string{"sweep", "--ports", "80", "--wait", "-1s", target}, "--wait -1s"},
		{[]string{"sweep", "--ports", "80", "--progress", "sometimes", target}, `--progress "sometimes"`},
		{[]string{"sweep", "--ports", "80", "--source", "2001:db8::1", target}, "not an IPv4 address"},
		{[]string{"sweep", "--ports", "80"}, "no targets"},
		{[]string{"sweep", "--ports", "80", "host.example"}, `"host.example" is not an address`},
		{[]string{"sweep", "--ports", "80", "10.0.0.0/40"}, `"10.0.0.0/40" is not an address`},
		{[]string{"sweep", "--ports", "80", "2001:db8::/64"}, "IPv4 only"},
		{[]string{"sweep", "--ports", "80", "--exclude", "/nonexistent/blocklist", target}, `--exclude "/nonexistent/blocklist"`},
	}
	for _, tt := range tests {
		refused(t, tt.args, tt.want)
	}
}

// TestSweepAllExcluded: targets that are all excluded are refused, after
// the line that says why.
func TestSweepAllExcluded(t *testing.T) {
	code, out, errOut := synprobe(t, "sweep", "--ports", "80", "127.0.0.0/30", "192.0.2.1")
	want := "sweep: excluded 5 addresses: 4 loopback, 1 documentation range (--allow-documentation to sweep it)\nsynprobe: sweep: every target is excluded\n"
	if code != exitUsage || out != "" || errOut != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, nothing, %q", code, out, errOut, exitUsage, want)
	}
}

func TestSweepHelp(t *testing.T) {
	code, out, _ := synprobe(t, "sweep", "--help")
	if code != 0 {
		t.Fatalf("sweep --help: exit %d, want 0", code)
	}
	for _, want := range []string{"Examples:", "--ports", "--exclude", "silent", "filtered", "--targets", "zmap"} {
		if !strings.Contains(out, want) {
			t.Errorf("sweep --help lacks %q", want)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"synprobe/internal/veth/vethtest"
)

// isolated puts a probing command (handshake, run, audit) in an empty
// network namespace of the test's own when the test runs as root: should
// the check under test not stop it, it finds no route instead of sending
// on this host's network. Without root nothing can be sent anyway.
func isolated(t *testing.T, args ...string) []string {
	t.Helper()
	if len(args) == 0 || os.Geteuid() != 0 {
		return args
	}
	switch args[0] {
	case "handshake", "run", "audit", "trace", "sweep":
		ns := vethtest.Namespace(t)
		return append([]string{args[0], "--netns", fmt.Sprintf("/proc/self/fd/%d", ns)}, args[1:]...)
	}
	return args
}

// oneErrorLine checks that stderr is one line "synprobe: ..." containing
// want, and nothing on a terminal could act on.
func oneErrorLine(t *testing.T, stderr, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "synprobe: ") || !strings.Contains(lines[0], want) {
		t.Errorf("stderr %q: want one line 'synprobe: ...' containing %q", stderr, want)
	}
	if i := strings.IndexFunc(strings.TrimSuffix(stderr, "\n"), func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		t.Errorf("stderr %q: control character at byte %d", stderr, i)
	}
}

// TestFlagBounds: numeric flags that cannot be honoured are refused before
// anything is sent (issue 10: --rate NaN, Inf or 1e-10 switched the rate
// limit off).
func TestFlagBounds(t *testing.T) {
	const target = "192.0.2.9:80" // never reached: the flags are refused first
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--target", target, "--rate", "NaN", "listen-rst"}, "--rate NaN: want a number of SYNs per second"},
		{[]string{"run", "--target", target, "--rate", "Inf", "listen-rst"}, "--rate +Inf: want a number"},
		{[]string{"run", "--target", target, "--rate", "-Inf", "listen-rst"}, "--rate -Inf: want a number"},
		{[]string{"run", "--target", target, "--rate", "-0.5", "listen-rst"}, "--rate -0.5"},
		{[]string{"run", "--target", target, "--rate", "1e-10", "listen-rst"}, "--rate 1e-10: below 0.01 SYNs per second"},
		{[]string{"run", "--target", target, "--rate", "1e300", "listen-rst"}, "caps nothing; 0 for no limit"},
		{[]string{"audit", "--rate", "nan", target}, "--rate NaN"},
		{[]string{"audit", "--rate", "0.001", target}, "below 0.01"},
		{[]string{"audit", "--timeout", "0s", target}, "--timeout 0s: want a duration from 1ms to 1h0m0s"},
		{[]string{"audit", "--timeout", "-2s", target}, "--timeout -2s"},
		{[]string{"run", "--target", target, "--timeout", "500us", "listen-rst"}, "--timeout 500µs"},
		{[]string{"run", "--target", target, "--timeout", "1000h", "listen-rst"}, "--timeout 1000h0m0s"},
		{[]string{"audit", "--jitter", "-1ms", target}, "--jitter -1ms: want a duration from 0 to 10s"},
		{[]string{"run", "--target", target, "--jitter", "1m", "listen-rst"}, "--jitter 1m0s"},
		{[]string{"audit", "--path-check", "on", target}, `--path-check "on": want auto, off or full`},
		{[]string{"run", "--target", target, "--path-check", "", "listen-rst"}, `--path-check "": want auto, off or full`},
		{[]string{"handshake", "--path-check", "Full", target}, `--path-check "Full": want auto, off or full`},
		{[]string{"handshake", "--timeout", "1ns", target}, "--timeout 1ns"},
		{[]string{"handshake", "--timeout", "2h", target}, "--timeout 2h0m0s"},
		{[]string{"handshake", "--source-port", "70000", target}, "--source-port 70000"},
		{[]string{"audit", "--closed-port", "65536", target}, "--closed-port 65536"},
		{[]string{"audit", "--jobs", "-3", target}, "--jobs -3"},
		{[]string{"lab", "--stack", "gvisor", "run", "--rate", "NaN", "listen-rst"}, "--rate NaN"},
		{[]string{"analyze", "--max-open", "0", "-"}, "--max-open 0: want 1 to 16777216"},
		{[]string{"analyze", "--max-open", "100000000", "-"}, "--max-open 100000000"},
		{[]string{"analyze", "--max-steps", "-1", "-"}, "--max-steps -1: want 1 to 65536"},
	}
	for _, tt := range tests {
		refused(t, tt.args, tt.want)
	}
}

// TestCheckRate covers the edges of the accepted rates.
func TestCheckRate(t *testing.T) {
	for _, tt := range []struct {
		rate float64
		ok   bool
	}{
		{0, true}, {minRate, true}, {20, true}, {maxRate, true},
		{minRate / 2, false}, {maxRate * 2, false}, {-1, false},
	} {
		if err := checkRate(tt.rate); (err == nil) != tt.ok {
			t.Errorf("checkRate(%v) = %v, want ok %v", tt.rate, err, tt.ok)
		}
	}
}

// TestTargetForms: every form of a bad target is bad input (2), one line
// naming it; a name the resolver says does not exist too, while a resolver
// that fails is the environment (3). Nothing here sends a packet: the
// zone is looked up before the next hop is.
func TestTargetForms(t *testing.T) {
	tests := []struct {
		target string
		code   int
		want   string
	}{
		{"192.0.2.9", exitUsage, "want HOST:PORT"},
		{"192.0.2.9:", exitUsage, `port "" is not a number from 1 to 65535`},
		{"192.0.2.9:0", exitUsage, `port "0" is not a number`},
		{"192.0.2.9:65536", exitUsage, `port "65536" is not a number`},
		{"192.0.2.9:-1", exitUsage, `port "-1"`},
		{"192.0.2.9:http", exitUsage, `port "http"`},
		{":80", exitUsage, "no host before the port"},
		{"[fe80::1%i10k-nosuch]:80", exitUsage, `zone "i10k-nosuch" names no interface here`},
		{"[fe80::1%999999]:80", exitUsage, `zone "999999" names no interface here`},
		{"2001:db8::1:80", exitUsage, "want HOST:PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			code, out, errOut := synprobe(t, isolated(t, "handshake", tt.target)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout %q\nstderr %q", code, tt.code, out, errOut)
			}
			oneErrorLine(t, errOut, tt.want)
		})
	}
}

// TestParseTargetResolver: the resolver's answer decides the exit code.
func TestParseTargetResolver(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code int
		want string
	}{
		{"no such host", &net.DNSError{Err: "no such host", Name: "nosuch.example", IsNotFound: true}, exitUsage, `cannot resolve "nosuch.example": no such host`},
		{"resolver timeout", &net.DNSError{Err: "i/o timeout", Name: "nosuch.example", IsTimeout: true}, exitEnv, "the resolver failed"},
		{"server failure", &net.DNSError{Err: "server misbehaving", Name: "nosuch.example", IsTemporary: true}, exitEnv, "the resolver failed"},
		{"no address", nil, exitUsage, "has no address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := lookupFunc(func(context.Context, string, string) ([]netip.Addr, error) { return nil, tt.err })
			ctx := context.WithValue(context.Background(), lookupKey{}, lookup)
			_, err := parseTarget(ctx, "nosuch.example:80")
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != tt.code || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseTarget: %v, want exit %d and %q", err, tt.code, tt.want)
			}
		})
	}
	lookup := lookupFunc(func(context.Context, string, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("2001:db8::7"), netip.MustParseAddr("::ffff:192.0.2.7")}, nil
	})
	got, err := parseTarget(context.WithValue(context.Background(), lookupKey{}, lookup), "two.example:443")
	if want := netip.MustParseAddrPort("192.0.2.7:443"); err != nil || got != want {
		t.Errorf("parseTarget(two.example:443) = %v, %v; want %v (IPv4 first, unmapped)", got, err, want)
	}
}

// TestOutputCheckedFirst: a report that cannot be written is found before
// anything is sent (issue 10: it was found after the run), and a run that
// never starts leaves an existing file as it was and no new one.
func TestOutputCheckedFirst(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "old.txt")
	if err := os.WriteFile(existing, []byte("an earlier report\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(dir, "new.txt")
	pcapFile := filepath.Join(dir, "run.pcap")
	tests := []struct {
		args []string
		want string
	}{
		// --pcap would be made after --output, and records every frame sent.
		{[]string{"lab", "--stack", "gvisor", "handshake", "--pcap", pcapFile, "-o", filepath.Join(dir, "missing", "r.txt")}, `--output "` + filepath.Join(dir, "missing", "r.txt") + `": no such file or directory (no directory`},
		{[]string{"lab", "--stack", "gvisor", "run", "-o", filepath.Join(dir, "missing", "r.json"), "--format", "json", "listen-rst"}, "no such file or directory"},
		{[]string{"lab", "--stack", "gvisor", "audit", "-o", dir}, "is a directory"},
		{[]string{"handshake", "--pcap", filepath.Join(dir, "missing", "p.pcap"), "192.0.2.9:80"}, `--pcap "`},
		{[]string{"analyze", "-o", filepath.Join(dir, "missing", "a.txt"), "-"}, "no such file or directory"},
		// The output opens, then the run cannot start: nothing is left.
		{[]string{"handshake", "-o", existing, "--interface", "i10k-nosuch", "192.0.2.9:80"}, "no such interface"},
		{[]string{"handshake", "-o", fresh, "--interface", "i10k-nosuch", "192.0.2.9:80"}, "no such interface"},
	}
	for _, tt := range tests {
		refused(t, tt.args, tt.want)
	}
	// analyze -o onto its own capture would empty it before reading it.
	capFile := kbCapture(t)
	want, err := os.ReadFile(capFile)
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut := synprobe(t, "analyze", "-o", capFile, capFile)
	if code != exitUsage {
		t.Errorf("analyze -o onto its capture: exit %d, want %d", code, exitUsage)
	}
	oneErrorLine(t, errOut, "is the capture itself")
	if got, _ := os.ReadFile(capFile); !bytes.Equal(got, want) {
		t.Errorf("analyze -o onto its capture changed the capture: %d bytes, want %d", len(got), len(want))
	}
	if _, err := os.Stat(pcapFile); err == nil {
		t.Errorf("%s was made: --pcap was opened before --output was checked", pcapFile)
	}
	if b, err := os.ReadFile(existing); err != nil || string(b) != "an earlier report\n" {
		t.Errorf("the existing report after a run that did not start: %q, %v; want it unchanged", b, err)
	}
	if _, err := os.Stat(fresh); err == nil {
		t.Errorf("%s was left behind by a run that did not start", fresh)
	}

	// A shorter report replaces a longer file entirely.
	long := filepath.Join(dir, "long.json")
	if err := os.WriteFile(long, []byte(strings.Repeat("x", 1<<20)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := synprobe(t, "lab", "--stack", "gvisor", "handshake", "--format", "json", "-o", long); code != 0 {
		t.Fatalf("lab handshake -o: exit %d\n%s", code, errOut)
	}
	if b, _ := os.ReadFile(long); len(b) == 0 || len(b) >= 1<<20 || strings.Contains(string(b), "xxx") {
		t.Errorf("the report did not replace the old file: %d bytes", len(b))
	}
}

// TestUnprivileged runs synprobe as nobody: a namespace it may not enter
// and a report it may not write are the environment (3), found before
// anything is sent; a namespace that does not exist is bad input (2)
// (issue 10: --netns without permission exited 2).
func TestUnprivileged(t *testing.T) {
	ns := vethtest.Namespace(t) // skips without root
	bin := nobodyCopy(t)
	locked := filepath.Join(filepath.Dir(bin), "locked")
	if err := os.Mkdir(locked, 0o555); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"namespace not permitted", []string{"handshake", "--netns", "/proc/self/fd/3", "192.0.2.9:80"}, exitEnv, `--netns "/proc/self/fd/3": not permitted: entering a network namespace needs root`},
		{"another's namespace", []string{"handshake", "--netns", "/proc/1/ns/net", "192.0.2.9:80"}, exitEnv, "not permitted"},
		{"missing namespace", []string{"handshake", "--netns", "i10k-nosuch", "192.0.2.9:80"}, exitUsage, `--netns "i10k-nosuch": no such network namespace`},
		{"not a namespace", []string{"handshake", "--netns", bin, "192.0.2.9:80"}, exitUsage, "is not a network namespace"},
		{"report not permitted", []string{"handshake", "-o", filepath.Join(locked, "r.txt"), "192.0.2.9:80"}, exitEnv, "permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, tt.args...)
			cmd.Env = append(os.Environ(), subprocessEnv+"=1")
			// A duplicate: the *os.File closes its descriptor (on Close or
			// when collected), and ns stays the namespace's until cleanup.
			fd, err := unix.Dup(ns)
			if err != nil {
				t.Fatal(err)
			}
			nsFile := os.NewFile(uintptr(fd), "netns")
			defer nsFile.Close()
			cmd.ExtraFiles = []*os.File{nsFile}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err = cmd.Run()
			var xe *exec.ExitError
			if !errors.As(err, &xe) || xe.ExitCode() != tt.code {
				t.Errorf("%v: %v, want exit %d\nstderr %q", tt.args, err, tt.code, stderr.String())
			}
			oneErrorLine(t, stderr.String(), tt.want)
		})
	}
}

// nobodyCopy copies the test binary where user nobody can run it.
func nobodyCopy(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "synprobe.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// withoutLabLines drops the lines synprobe lab writes about its target
// before the command runs.
func withoutLabLines(errOut string) string {
	for strings.HasPrefix(errOut, "lab: ") {
		_, errOut, _ = strings.Cut(errOut, "\n")
	}
	return errOut
}

// refused runs synprobe with args (isolated) in a subtest and checks that it
// exits 2 with one error line containing want. A lab says what it started
// before its command refuses a flag: those lines are not counted.
func refused(t *testing.T, args []string, want string) {
	t.Helper()
	t.Run(strings.Join(args, " "), func(t *testing.T) {
		code, out, errOut := synprobe(t, isolated(t, args...)...)
		if code != exitUsage {
			t.Errorf("exit %d, want %d\nstdout %q", code, exitUsage, out)
		}
		oneErrorLine(t, withoutLabLines(errOut), want)
	})
}

// TestDirectoryForFile: a directory where a file is read is bad input
// (exit 2) said once, naming the flag and the path; it was exit 3 with the
// read error twice. The --targets runs go under the in-process lab, so
// that nothing could leave this host even if they were not refused.
func TestDirectoryForFile(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "targets.txt")
	if err := os.WriteFile(list, []byte("192.0.2.2:80\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		what string
	}{
		{[]string{"lab", "--stack", "gvisor", "handshake", "--targets", dir}, "--targets"},
		{[]string{"lab", "--stack", "gvisor", "handshake", "--targets", list, "--resume", dir}, "--resume"},
		{[]string{"lab", "--stack", "gvisor", "handshake", "--targets", list, "--exclude", dir}, "--exclude"},
		{[]string{"analyze", dir}, "capture"},
		{[]string{"summarize", dir}, "summarize"},
	} {
		code, out, errOut := synprobe(t, tc.args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d\n%s%s", tc.args, code, exitUsage, out, errOut)
		}
		errOut = strings.TrimPrefix(errOut, "lab: gvisor target 192.0.2.2 (port 80 open, port 81 closed)\n")
		oneErrorLine(t, errOut, fmt.Sprintf("%s %q: is a directory", tc.what, dir))
	}
}

// TestFlagMeaningsInHelp: flags whose names match across commands but
// whose meanings differ say so in --help: trace --tries counts the first
// send, sweep --retries only those after it; --rate 0 is no limit except
// for sweep, which refuses it; each --wait gives its bounds.
func TestFlagMeaningsInHelp(t *testing.T) {
	for _, tc := range []struct {
		command string
		want    []string
	}{
		{"trace", []string{"up to N times in all, the first send included", "sweep's --retries counts only the sends after the first", "0: no limit", "1ms to 1h"}},
		{"sweep", []string{"after the first (0 to 10; trace's --tries counts the first send too)", "0 is refused, unlike the --rate of audit, run and handshake", "(0 to 1m;"}},
		{"audit", []string{"SYNs per second to the target (0: no limit)"}},
		{"run", []string{"SYNs per second to the target (0: no limit)"}},
		{"handshake", []string{"SYNs per second to a target (0: no limit)"}},
	} {
		code, out, errOut := synprobe(t, tc.command, "--help")
		if code != 0 {
			t.Fatalf("%s --help: exit %d\n%s", tc.command, code, errOut)
		}
		out = strings.Join(strings.Fields(out), " ")
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s --help lacks %q", tc.command, w)
			}
		}
	}
}

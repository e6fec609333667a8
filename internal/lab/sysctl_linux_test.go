package lab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"synprobe/internal/netns"
)

// readSysctl reads a setting in namespace ns, with its whitespace made
// single spaces (the kernel prints tcp_rmem with tabs).
func readSysctl(t *testing.T, ns int, name string) string {
	t.Helper()
	var got string
	err := netns.Do(ns, func() error {
		b, err := os.ReadFile(filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/")))
		got = strings.Join(strings.Fields(string(b)), " ")
		return err
	})
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return got
}

// TestLinuxLabSysctls: a lab started with packetdrill's defaults has each
// of them in the target namespace, or a note that says why not; a stock
// lab keeps what a fresh namespace has.
func TestLinuxLabSysctls(t *testing.T) {
	skipUnlessLinuxLab(t)
	fresh, err := netns.New()
	if err != nil {
		t.Fatalf("new namespace: %v", err)
	}
	defer netns.Close(fresh)

	withDefaults, err := StartWith(context.Background(), StackLinux, Options{Sysctls: PacketdrillDefaults})
	if err != nil {
		t.Fatalf("StartWith: %v", err)
	}
	defer withDefaults.Close()
	notes := strings.Join(withDefaults.Notes, "\n")
	for _, s := range PacketdrillDefaults {
		got := readSysctl(t, withDefaults.TargetNetNS(), s.Name)
		switch {
		case got == s.Value:
		case strings.Contains(notes, "sysctl "+s.Name+"=") && strings.Contains(notes, "not set"):
			t.Logf("%s: %s (not set, noted)", s.Name, got)
		default:
			t.Errorf("%s: got %q, want %q or a note saying why not\nnotes:\n%s", s.Name, got, s.Value, notes)
		}
	}
	if !strings.Contains(notes, "target sysctls: ") || !strings.Contains(notes, "net.ipv4.tcp_ecn=0") {
		t.Errorf("notes do not list what was set:\n%s", notes)
	}

	stock, err := Start(context.Background(), StackLinux)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer stock.Close()
	if len(stock.Notes) != 0 {
		t.Errorf("stock lab notes: %q, want none", stock.Notes)
	}
	for _, name := range []string{"net.ipv4.tcp_ecn", "net.ipv4.tcp_fastopen", "net.ipv4.tcp_slow_start_after_idle"} {
		if got, want := readSysctl(t, stock.TargetNetNS(), name), readSysctl(t, fresh, name); got != want {
			t.Errorf("stock lab %s: got %q, want %q as in a fresh namespace", name, got, want)
		}
	}
}

// TestSetSysctlsMissing: a setting the namespace does not have is left out
// with a note, never written elsewhere.
func TestSetSysctlsMissing(t *testing.T) {
	skipUnlessLinuxLab(t)
	ns, err := netns.New()
	if err != nil {
		t.Fatalf("new namespace: %v", err)
	}
	defer netns.Close(ns)
	var notes []string
	netns.Do(ns, func() error {
		notes = setSysctls([]Sysctl{{"net.ipv4.tcp_no_such_knob", "1"}, {"net.ipv4.tcp_ecn", "0"}})
		return nil
	})
	want := []string{"target sysctls: net.ipv4.tcp_ecn=0", "sysctl net.ipv4.tcp_no_such_knob not set: not a setting of the target's network namespace on this kernel"}
	if strings.Join(notes, "\n") != strings.Join(want, "\n") {
		t.Errorf("notes: got %q, want %q", notes, want)
	}
	if got := readSysctl(t, ns, "net.ipv4.tcp_ecn"); got != "0" {
		t.Errorf("tcp_ecn: got %q, want 0", got)
	}
}

package main

import (
	"encoding/json"
	"strings"
	"testing"

	"synprobe/internal/lab"
)

// synWithECN asks for ECN on a SYN (ECE and CWR) and wants a SYN-ACK that
// does not agree to it: what a target with packetdrill's defaults.sh
// (tcp_ecn=0) sends. A stock Linux (tcp_ecn=2) answers S.E.
const synWithECN = `// @name syn-ecn-setup
0  < SEW 0:0(0) win 1000 <mss 1460>
+0 > S. 0:0(0) ack 1 <...>
`

// TestLabSysctlsForRunOnly: 'lab run' gets the sysctls of packetdrill's
// Linux selftests (ECN off, seen on the wire) and names them in the
// report; 'lab audit' judges a stock kernel (its fingerprint finds ECN on).
func TestLabSysctlsForRunOnly(t *testing.T) {
	if ok, why := lab.LinuxAvailable(); !ok {
		t.Skip("linux lab unavailable: " + why)
	}
	script := writeScript(t, t.TempDir(), "ecn.pkt", synWithECN)

	code, out, errOut := synprobe(t, "lab", "--stack", "linux", "run", "--format", "json", script)
	var run struct {
		Results []struct{ Verdict, Reason string }
		Notes   []string
	}
	if err := json.Unmarshal([]byte(out), &run); err != nil {
		t.Fatalf("lab run: %v\n%s%s", err, out, errOut)
	}
	if code != exitOK || len(run.Results) != 1 || run.Results[0].Verdict != "pass" {
		t.Errorf("lab run: exit %d, results %+v; want exit 0 and a pass (tcp_ecn=0 answers S.)\n%s", code, run.Results, errOut)
	}
	notes := strings.Join(run.Notes, "\n")
	for _, want := range []string{"target sysctls:", "net.ipv4.tcp_ecn=0", "net.ipv4.tcp_fastopen=3"} {
		if !strings.Contains(notes, want) {
			t.Errorf("lab run: notes lack %q:\n%s", want, notes)
		}
	}

	code, out, errOut = synprobe(t, "lab", "--stack", "linux", "audit", "--only", "closed-syn", "--format", "json")
	var audit struct {
		Fingerprint struct {
			ECN struct {
				Supported bool
				Detail    string
			}
		}
		Notes []string
	}
	if err := json.Unmarshal([]byte(out), &audit); err != nil {
		t.Fatalf("lab audit: %v\n%s%s", err, out, errOut)
	}
	if code != exitOK || !audit.Fingerprint.ECN.Supported {
		t.Errorf("lab audit: exit %d, ecn %+v; want exit 0 and ECN on, as a stock kernel has it", code, audit.Fingerprint.ECN)
	}
	if notes := strings.Join(audit.Notes, "\n"); strings.Contains(notes, "sysctl") || strings.Contains(errOut, "sysctl") {
		t.Errorf("lab audit: sysctls set for an audit:\n%s\n%s", notes, errOut)
	}
}

func TestLabOptions(t *testing.T) {
	for _, tt := range []struct {
		command string
		want    int
	}{
		{"run", len(lab.PacketdrillDefaults)},
		{"audit", 0},
		{"handshake", 0},
	} {
		if got := len(labOptions(tt.command).Sysctls); got != tt.want {
			t.Errorf("labOptions(%q): %d sysctls, want %d", tt.command, got, tt.want)
		}
	}
}

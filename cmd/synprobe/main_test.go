package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"synprobe/internal/labtest"
	"synprobe/probe"
	"synprobe/probe/pcap"
)

// subprocessEnv makes the test binary run synprobe's main instead of the
// tests: what must run as separate processes (concurrent audits, as users
// run them) runs the test binary with it set.
const subprocessEnv = "SYNPROBE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(subprocessEnv) == "1" {
		main()
	}
	os.Exit(m.Run())
}

// synprobe runs the CLI in-process and returns the exit code and output.
func synprobe(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code = run(ctx, append([]string{"synprobe"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestLabHandshakeJSON(t *testing.T) {
	for _, stack := range labtest.Stacks(t) {
		t.Run(string(stack), func(t *testing.T) {
			code, out, errOut := synprobe(t, "lab", "--stack", string(stack), "handshake", "--format", "json")
			if code != 0 {
				t.Fatalf("exit %d, want 0\n%s\n%s", code, out, errOut)
			}
			var rep struct {
				Command string `json:"command"`
				Target  struct {
					Address, Lab string
				} `json:"target"`
				Results []struct {
					Name    string `json:"name"`
					Verdict string `json:"verdict"`
					Steps   []struct {
						Index     int      `json:"index"`
						Direction string   `json:"direction"`
						Verdict   string   `json:"verdict"`
						RTT       *float64 `json:"rtt_us"`
					} `json:"steps"`
				} `json:"results"`
				Summary map[string]int `json:"summary"`
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out)
			}
			if rep.Command != "handshake" || rep.Target.Address != "192.0.2.2:80" || rep.Target.Lab != string(stack) {
				t.Errorf("header: got %+v", rep)
			}
			if len(rep.Results) != 1 || len(rep.Results[0].Steps) != 7 || rep.Results[0].Verdict != "pass" || rep.Summary["pass"] != 1 {
				t.Fatalf("got %+v", rep)
			}
			for _, s := range rep.Results[0].Steps {
				if s.Verdict != "pass" {
					t.Errorf("step %d: %s", s.Index, s.Verdict)
				}
				if s.Index == 2 && (s.RTT == nil || *s.RTT <= 0) {
					t.Errorf("step 2 has no round-trip time")
				}
			}
		})
	}
}

func TestLabHandshakeClosedPortExitCode(t *testing.T) {
	for _, stack := range labtest.Stacks(t) {
		t.Run(string(stack), func(t *testing.T) {
			code, out, _ := synprobe(t, "lab", "--stack", string(stack), "handshake", "192.0.2.2:81")
			if code != 0 {
				t.Fatalf("exit %d, want 0 (a closed port is not the stack's fault: skip)\n%s", code, out)
			}
			for _, want := range []string{"SKIP", "port closed: R.", "[cause application:not-accepting]"} {
				if !strings.Contains(out, want) {
					t.Errorf("text report lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestPcapOpensInTcpdump: --pcap records every frame both ways, in a file
// tcpdump reads.
func TestPcapOpensInTcpdump(t *testing.T) {
	for _, stack := range labtest.Stacks(t) {
		t.Run(string(stack), func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "hs.pcap")
			// Without the path check, whose probes the capture would
			// hold too: the handshake's frames alone.
			if code, out, errOut := synprobe(t, "lab", "--stack", string(stack), "handshake", "--path-check", "off", "--pcap", file); code != 0 {
				t.Fatalf("exit %d\n%s%s", code, out, errOut)
			}
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r, err := pcap.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			var rec pcap.Record
			var flags []string
			for r.Next(&rec) == nil {
				var fr probe.Frame
				if fr.Decode(rec.Data) == nil && fr.Has(probe.LayerTCP) {
					flags = append(flags, fr.TCP.Flags.String())
				}
			}
			// Six frames when the target's FIN also acknowledges ours.
			if got := strings.Join(flags, " "); len(flags) < 6 || !strings.HasPrefix(got, "S S. . F.") || !strings.Contains(got[9:], "F.") {
				t.Errorf("the capture holds %q, want the whole exchange, both directions", got)
			}
			tcpdump, err := exec.LookPath("tcpdump")
			if err != nil {
				t.Skip("tcpdump not installed (CI installs it): checked the file with synprobe's reader only")
			}
			out, err := exec.Command(tcpdump, "-r", file, "-nn").CombinedOutput()
			if err != nil {
				t.Fatalf("tcpdump -r: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "Flags [S]") || !strings.Contains(string(out), "Flags [F.]") {
				t.Errorf("tcpdump output lacks the SYN or the FIN:\n%s", out)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no address", []string{"handshake"}, "needs one HOST:PORT"},
		{"not host:port", []string{"handshake", "192.0.2.1"}, `want HOST:PORT`},
		{"port out of range", []string{"handshake", "192.0.2.1:70000"}, "not a number from 1 to 65535"},
		{"port zero", []string{"handshake", "192.0.2.1:0"}, "not a number from 1 to 65535"},
		{"two addresses", []string{"handshake", "192.0.2.1:80", "192.0.2.1:81"}, "got 2 arguments"},
		{"bad format", []string{"handshake", "--format", "xml", "192.0.2.1:80"}, `--format "xml"`},
		{"bad timeout", []string{"handshake", "--timeout", "-1s", "192.0.2.1:80"}, "--timeout"},
		{"bad source", []string{"handshake", "--source", "nope", "192.0.2.1:80"}, `--source "nope"`},
		{"unknown flag", []string{"handshake", "--bogus", "192.0.2.1:80"}, "bogus"},
		{"unresolvable name", []string{"handshake", "no-such-host.invalid:80"}, "cannot resolve"},
		{"bad lab stack", []string{"lab", "--stack", "bsd"}, `unknown lab stack "bsd"`},
		{"address outside the lab", []string{"lab", "handshake", "198.51.100.7:80"}, "is not in the lab"},
		{"lab in a lab", []string{"lab", "lab"}, "cannot run lab inside a lab"},
		{"unknown lab command", []string{"lab", "frobnicate"}, `unknown command "frobnicate"`},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag in a lab command", []string{"lab", "handshake", "--bogus"}, "handshake: flag provided but not defined: -bogus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := synprobe(t, isolated(t, tt.args...)...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, exitUsage, out, errOut)
			}
			// One error line; a lab may have said what it started before.
			var errs []string
			for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
				if !strings.HasPrefix(l, "lab: ") {
					errs = append(errs, l)
				}
			}
			if len(errs) != 1 || !strings.HasPrefix(errs[0], "synprobe: ") || !strings.Contains(errs[0], tt.want) {
				t.Errorf("stderr: got %q, want one line 'synprobe: ...' containing %q", errOut, tt.want)
			}
			if out != "" {
				t.Errorf("stdout should be empty on bad input, got %q", out)
			}
		})
	}
}

// TestLabRunVerbosePass: with every step shown, a passing script prints
// no packetdrill error line (it printed "error handling packet:" with
// nothing after it).
func TestLabRunVerbosePass(t *testing.T) {
	code, out, errOut := synprobe(t, "lab", "--stack", "gvisor", "run", "-v", "listen-rst")
	if code != 0 || !strings.Contains(out, "PASS  listen-rst") {
		t.Fatalf("exit %d, want 0 and a pass\n%s%s", code, out, errOut)
	}
	if strings.Contains(out, "handling packet") {
		t.Errorf("a passing script's verbose report has a packetdrill error line:\n%s", out)
	}
}

// TestLabHelp: a command's help under lab is its help (the lab's target
// after --help made it "No help topic for '192.0.2.2:80'"), and no lab is
// made for it.
func TestLabHelp(t *testing.T) {
	for _, cmd := range []string{"handshake", "audit", "run"} {
		code, out, errOut := synprobe(t, "lab", cmd, "--help")
		if code != 0 || !strings.Contains(out, "synprobe "+cmd+" - ") || errOut != "" {
			t.Errorf("lab %s --help: exit %d, stdout %.80q, stderr %q; want exit 0, the help, nothing on stderr", cmd, code, out, errOut)
		}
	}
}

func TestHelpTeaches(t *testing.T) {
	code, out, _ := synprobe(t, "handshake", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"KB 172983", "port closed", "--pcap", "--timeout", "Examples:"} {
		if !strings.Contains(out, want) {
			t.Errorf("handshake --help lacks %q", want)
		}
	}
}

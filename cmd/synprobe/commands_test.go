package main

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"synprobe/conformance/report"
	"synprobe/internal/kbframes"
	"synprobe/internal/labtest"
)

func writeScript(t *testing.T, dir, name, src string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const passing = `// @name handshake-ok
0  < S 0:0(0) win 1000 <mss 1460>
+0 > S. 0:0(0) ack 1 <...>
`

const failing = `// @name wrong-ack
0  < S 0:0(0) win 1000 <mss 1460>
+0 > S. 0:0(0) ack 5 <...>
`

func TestLabRunFormats(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, dir, "ok.pkt", passing)
	writeScript(t, dir, "bad.pkt", failing)
	for _, stack := range labtest.Stacks(t) {
		t.Run(string(stack), func(t *testing.T) {
			code, out, errOut := synprobe(t, "lab", "--stack", string(stack), "run", dir, "closed-syn")
			if code != exitFail {
				t.Fatalf("exit %d, want %d (one script fails)\n%s%s", code, exitFail, out, errOut)
			}
			for _, want := range []string{"PASS  handshake-ok", "FAIL  wrong-ack", "bad.pkt:3: error handling packet: ack: expected 5 (abs 5) got 1",
				"script packet:  > S. 0:0(0) ack 5 <...>", "PASS  closed-syn"} {
				if !strings.Contains(out, want) {
					t.Errorf("text report lacks %q:\n%s", want, out)
				}
			}

			code, out, _ = synprobe(t, "lab", "--stack", string(stack), "run", "--format", "json", dir)
			var rep struct {
				Command string `json:"command"`
				Results []struct {
					Name, Verdict, File string
					Steps               []struct {
						Line     int      `json:"line"`
						Problems []string `json:"problems"`
					} `json:"steps"`
				} `json:"results"`
				Summary map[string]int `json:"summary"`
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("JSON: %v\n%s", err, out)
			}
			if code != exitFail || rep.Command != "run" || len(rep.Results) != 2 || rep.Summary["fail"] != 1 || rep.Summary["pass"] != 1 {
				t.Errorf("JSON report: exit %d, %+v", code, rep)
			}

			code, out, _ = synprobe(t, "lab", "--stack", string(stack), "run", "--format", "junit", dir)
			var ju struct {
				Suites []struct {
					Tests    int `xml:"tests,attr"`
					Failures int `xml:"failures,attr"`
					Cases    []struct {
						Name    string `xml:"name,attr"`
						Failure *struct {
							Message string `xml:"message,attr"`
						} `xml:"failure"`
					} `xml:"testcase"`
				} `xml:"testsuite"`
			}
			if err := xml.Unmarshal([]byte(out), &ju); err != nil {
				t.Fatalf("JUnit: %v\n%s", err, out)
			}
			if code != exitFail || len(ju.Suites) != 1 || ju.Suites[0].Tests != 2 || ju.Suites[0].Failures != 1 {
				t.Fatalf("JUnit: exit %d, %+v", code, ju)
			}
			for _, c := range ju.Suites[0].Cases {
				if c.Name == "wrong-ack" && (c.Failure == nil || !strings.Contains(c.Failure.Message, "ack: expected 5")) {
					t.Errorf("the failing case's message does not name the field: %+v", c.Failure)
				}
			}
		})
	}
}

// TestLabRunDirectory: in a directory run, an unparsable script is an
// error result (cause input:script, with file:line:col) and the others
// run; a script a black box cannot honour is skip (premise:black-box);
// -D symbols reach the scripts; JSON never has "steps": null.
func TestLabRunDirectory(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, dir, "ok.pkt", passing)
	writeScript(t, dir, "broken.pkt", "0 < S 0:0(0) win 1000\n+0 > Q. 0:0(0) ack 1\n")
	writeScript(t, dir, "encap.pkt", "0 < S 0:0(0) win 1000\n+0 > S. 0:0(0) ack 1 <...>\n+0 < encap psp spi 7 . 1:1(0) ack 1 win 50000\n")
	writeScript(t, dir, "symbols.pkt", "// @name symbols\n0 < S 0:0(0) win WIN <mss MSS>\n+0 > S. 0:0(0) ack 1 <...>\n")
	for _, stack := range labtest.Stacks(t) {
		t.Run(string(stack), func(t *testing.T) {
			code, out, errOut := synprobe(t, "lab", "--stack", string(stack), "run", "--format", "json", "-D", "MSS=1460", "--define", "WIN=1000", dir)
			if code != exitEnv {
				t.Errorf("exit %d, want %d (an error result)\n%s", code, exitEnv, errOut)
			}
			if strings.Contains(out, `"steps": null`) {
				t.Errorf("JSON has \"steps\": null:\n%s", out)
			}
			var rep report.Report
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("JSON: %v\n%s", err, out)
			}
			got := map[string]report.Result{}
			for _, r := range rep.Results {
				got[r.Name] = r
			}
			want := []struct {
				name    string
				verdict report.Verdict
				cause   report.Cause
				reason  string
			}{
				{"broken", report.Error, report.CauseInputScript, "broken.pkt:2:6: invalid TCP flag 'Q'"},
				{"encap", report.Skip, report.CausePremiseBlackBox, "not supported by a remote black box: an encapsulated segment ('encap psp'): synprobe sends and sees plain TCP (line 3)"},
				{"handshake-ok", report.Pass, "", ""},
				{"symbols", report.Pass, "", ""},
			}
			if len(rep.Results) != len(want) {
				t.Errorf("%d results, want %d:\n%s", len(rep.Results), len(want), out)
			}
			for _, w := range want {
				r := got[w.name]
				if r.Verdict != w.verdict || r.Cause != w.cause || !strings.Contains(r.Reason, w.reason) {
					t.Errorf("%s: %s %s %q, want %s %s %q", w.name, r.Verdict, r.Cause, r.Reason, w.verdict, w.cause, w.reason)
				}
			}
		})
	}
}

func TestRunBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := writeScript(t, dir, "bad.pkt", "0 < S 0:0(0) win 1000\n+0 > Q. 0:0(0) ack 1\n")
	ok := writeScript(t, dir, "ok.pkt", passing)
	mss := writeScript(t, dir, "mss.pkt", "0 < S 0:0(0) win 1000 <mss MSS>\n")
	// A directory of which no script parses: nothing to run.
	brokenDir := filepath.Join(dir, "broken")
	if err := os.Mkdir(brokenDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeScript(t, brokenDir, "bad.pkt", "0 < S 0:0(0) win 1000\n+0 > Q. 0:0(0) ack 1\n")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"run", bad}, "run needs --target"},
		{[]string{"run", "--target", "192.0.2.9:80"}, "at least one script"},
		{[]string{"run", "--target", "192.0.2.9:80", bad}, "bad.pkt:2:6: invalid TCP flag 'Q'"},
		{[]string{"run", "--target", "192.0.2.9:80", filepath.Join(dir, "missing.pkt")}, "no such script, directory or built-in scenario"},
		{[]string{"run", "--target", "192.0.2.9:80", "--rate", "-1", bad}, "--rate -1"},
		{[]string{"run", "--target", "192.0.2.9:80", "--jobs", "0", bad}, "--jobs 0"},
		{[]string{"lab", "run", "--target", "192.0.2.2:80", bad}, "the lab supplies the target"},
		{[]string{"run", "--target", "192.0.2.9:80", "/dev/zero"}, "/dev/zero: not a regular file (a character device)"},
		{[]string{"run", "--target", "192.0.2.9:80", "--max-script-size", "10", ok}, "larger than the limit of 10 bytes"},
		{[]string{"run", "--target", "192.0.2.9:80", "--max-events", "0", ok}, "--max-events 0"},
		{[]string{"run", "--target", "192.0.2.9:80", "-D", "NOVALUE", ok}, `bad definition "NOVALUE": want NAME=VALUE`},
		{[]string{"run", "--target", "192.0.2.9:80", "--define", "A-B=1", ok}, `bad symbol name "A-B"`},
		{[]string{"run", "--target", "192.0.2.9:80", mss}, "undefined symbol 'MSS'"},
		{[]string{"run", "--target", "192.0.2.9:80", ok, bad}, "bad.pkt:2:6: invalid TCP flag 'Q'"},
		{[]string{"run", "--target", "192.0.2.9:80", brokenDir}, "bad.pkt:2:6: invalid TCP flag 'Q'"},
		{[]string{"audit", "--level", "loud", "192.0.2.9:80"}, `unknown level "loud"`},
		{[]string{"audit", "--only", "zzz*", "192.0.2.9:80"}, "no scenario matches"},
		{[]string{"audit"}, "audit needs one HOST:PORT"},
		{[]string{"analyze"}, "analyze needs one capture file"},
		{[]string{"analyze", filepath.Join(dir, "none.pcap")}, "no such file"},
		{[]string{"scenarios", "--format", "xml"}, `--format "xml"`},
	}
	for _, tt := range tests {
		code, out, errOut := synprobe(t, isolated(t, tt.args...)...)
		if code != exitUsage || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q (stdout %q)", tt.args, code, errOut, exitUsage, tt.want, out)
		}
	}
}

func TestLabAuditJSON(t *testing.T) {
	code, out, errOut := synprobe(t, "lab", "--stack", "gvisor", "audit", "--only", "listen-*", "--only", "closed", "--format", "json")
	var rep struct {
		Command     string          `json:"command"`
		Fingerprint json.RawMessage `json:"fingerprint"`
		Results     []struct {
			Name, Verdict, Level, RFC string
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("exit %d: %v\n%s%s", code, err, out, errOut)
	}
	if code != exitOK || rep.Command != "audit" || len(rep.Fingerprint) < 100 || len(rep.Results) < 15 {
		t.Fatalf("exit %d, %d results, fingerprint %d bytes", code, len(rep.Results), len(rep.Fingerprint))
	}
	for _, r := range rep.Results {
		if !strings.HasPrefix(r.Name, "listen-") && !strings.HasPrefix(r.Name, "closed-") || r.Level == "" || r.RFC == "" {
			t.Errorf("result %+v: outside the selection or without level and RFC", r)
		}
	}
}

func TestScenariosList(t *testing.T) {
	code, out, _ := synprobe(t, "scenarios")
	if code != 0 || !strings.Contains(out, "closed-syn") || !strings.Contains(out, "timer-zero-window") || !strings.Contains(out, " scenarios") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	code, out, _ = synprobe(t, "scenarios", "--format", "json")
	var list []struct{ Name, Level, RFC, Description, Kind string }
	if err := json.Unmarshal([]byte(out), &list); err != nil || code != 0 || len(list) < 45 {
		t.Errorf("exit %d, %d scenarios, %v", code, len(list), err)
	}
}

func kbCapture(t *testing.T) string {
	t.Helper()
	frames, err := kbframes.ReadFile("../../testdata/kb172983-frames.txt")
	if err != nil {
		t.Fatal(err)
	}
	data, err := kbframes.Pcap(frames)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "kb.pcap")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestAnalyzeKB: the seven KB 172983 frames are two connections (the
// article says one): a handshake with no close in the capture, and a
// four-segment close whose handshake is not in it.
func TestAnalyzeKB(t *testing.T) {
	file := kbCapture(t)
	code, out, errOut := synprobe(t, "analyze", "--verbose", file)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"131.107.2.214:1037 > 131.107.2.211:139", "192.94.222.123:2337 > 192.94.222.87:1352",
		"no close in the capture", "handshake not in the capture", "summary: 2 pass"} {
		if !strings.Contains(out, want) {
			t.Errorf("analyze output lacks %q:\n%s", want, out)
		}
	}
	// Standard input works too.
	in, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	r, w, _ := os.Pipe()
	os.Stdin = r
	go func() { w.Write(in); w.Close() }()
	code, out, _ = synprobe(t, "analyze", "--format", "json", "-")
	os.Stdin = old
	var rep struct {
		Target struct {
			Address string `json:"address"`
		} `json:"target"`
		Results []struct {
			Name, Verdict string
		} `json:"results"`
		Summary map[string]int `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || rep.Target.Address != "standard input" || len(rep.Results) != 2 || rep.Summary["pass"] != 2 {
		t.Errorf("analyze -: exit %d, %v, %+v\n%s", code, err, rep, out)
	}
}

// TestAnalyzeDamaged: a capture cut short reports what was read, then the
// damage with its byte offset, and exits 2.
func TestAnalyzeDamaged(t *testing.T) {
	file := kbCapture(t)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.pcap")
	if err := os.WriteFile(cut, data[:len(data)-20], 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := synprobe(t, "analyze", cut)
	if code != exitUsage || !strings.Contains(errOut, "byte") || !strings.Contains(out, "summary:") {
		t.Errorf("exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	notCapture := writeScript(t, t.TempDir(), "x.pcap", "this is not a capture at all\n")
	code, _, errOut = synprobe(t, "analyze", notCapture)
	if code != exitUsage || !strings.Contains(errOut, "not a") {
		t.Errorf("not a capture: exit %d, stderr %q", code, errOut)
	}
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  string
	}{
		{`GET /big HTTP/1.0\r\n\r\n`, "GET /big HTTP/1.0\r\n\r\n", ""},
		{`\x00\x01 a\\b "quoted"`, "\x00\x01 a\\b \"quoted\"", ""},
		{`\u00e9`, "é", ""},
		{`a\q`, "", "not a string with Go escapes"},
		{`ends\`, "", "not a string with Go escapes"},
		{``, "", "empty"},
	}
	for _, tt := range tests {
		got, err := parseRequest(tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("parseRequest(%q): error %v, want one containing %q", tt.in, err, tt.err)
		case tt.err == "" && (err != nil || string(got) != tt.want):
			t.Errorf("parseRequest(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestRequestBadInput: a bad --request is one line and exit 2, before
// anything is sent.
func TestRequestBadInput(t *testing.T) {
	for _, cmd := range [][]string{
		{"audit", "--request", `a\q`, "192.0.2.1:80"},
		{"run", "--target", "192.0.2.1:80", "--request", "", "listen-ack"},
	} {
		code, out, errOut := synprobe(t, cmd...)
		if code != 2 || !strings.Contains(errOut, "--request") || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q (stdout %q): want exit 2 and one line naming --request", cmd, code, errOut, out)
		}
	}
}

func TestScenariosCauses(t *testing.T) {
	code, out, _ := synprobe(t, "scenarios", "--causes", "--format", "json")
	var causes []struct{ Cause, Kind, Meaning string }
	if code != 0 || json.Unmarshal([]byte(out), &causes) != nil || len(causes) != len(report.Causes) {
		t.Fatalf("exit %d, %d causes, want %d:\n%s", code, len(causes), len(report.Causes), out)
	}
	for _, c := range causes {
		if c.Meaning == "" || !strings.HasPrefix(c.Cause, c.Kind) {
			t.Errorf("cause %+v", c)
		}
	}
}

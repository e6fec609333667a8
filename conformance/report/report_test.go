package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"strings"
	"testing"
	"time"
)

func sample() *Report {
	rtt := RTT(84 * time.Microsecond)
	rep := &Report{
		Command: "handshake",
		Target:  Target{Address: "192.0.2.2:80", Source: "192.0.2.1:61000", Interface: "veth0"},
		Started: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC),
		Results: []Result{
			{Name: "handshake", Steps: []Step{
				{Index: 1, Direction: Send, Verdict: Pass, Expected: "S 0:0(0) win 64240", Actual: "S 0:0(0) win 64240"},
				{Index: 2, Direction: Expect, Verdict: Fail, Expected: "S. 0:0(0) ack 1", Actual: "S. 0:0(0) ack 0", Problems: []string{"ack: want ISN+1 (8221823), got 8221822"}, RTTMicros: rtt},
				{Index: 3, Direction: Expect, Verdict: Skip, Expected: "F.", Problems: []string{"the target application did not close"}},
			}},
			{Name: "closed", Verdict: Error, Reason: "disturbed by the local host"},
			{Name: "observed", Steps: []Step{{Index: 1, Direction: Observe, Verdict: Info, Problems: []string{"SYN+FIN dropped"}}}},
		},
	}
	rep.Finish()
	return rep
}

func TestJudge(t *testing.T) {
	tests := []struct {
		steps  []Verdict
		want   Verdict
		reason string
	}{
		{[]Verdict{Pass, Pass}, Pass, ""},
		{[]Verdict{Pass, Skip}, Pass, ""},
		{[]Verdict{Skip, Skip}, Skip, "skip at step 1"},
		{[]Verdict{Pass, Warn, Fail}, Fail, "fail at step 3"},
		{[]Verdict{Info, Pass}, Info, "info at step 1"},
		{[]Verdict{Fail, Error}, Error, "error at step 2"},
		{nil, Skip, "nothing was judged"},
	}
	for _, tt := range tests {
		r := Result{}
		for i, v := range tt.steps {
			r.Steps = append(r.Steps, Step{Index: i + 1, Verdict: v})
		}
		r.Judge()
		if r.Verdict != tt.want || r.Reason != tt.reason {
			t.Errorf("%v: got %s %q, want %s %q", tt.steps, r.Verdict, r.Reason, tt.want, tt.reason)
		}
	}
}

func TestReportSummaryAndExit(t *testing.T) {
	rep := sample()
	if got := rep.Summary.Counts(); got != "1 fail, 1 info, 1 error" {
		t.Errorf("summary: got %q", got)
	}
	if rep.Results[0].Reason != "fail at step 2: ack: want ISN+1 (8221823), got 8221822" {
		t.Errorf("reason: got %q", rep.Results[0].Reason)
	}
	if rep.ExitCode() != 1 {
		t.Errorf("exit: got %d, want 1 (a check failed)", rep.ExitCode())
	}
	rep.Results = rep.Results[1:]
	rep.Finish()
	if rep.ExitCode() != 3 {
		t.Errorf("exit with only an error: got %d, want 3", rep.ExitCode())
	}
	rep.Results = rep.Results[1:]
	rep.Finish()
	if rep.ExitCode() != 0 {
		t.Errorf("exit with only info: got %d, want 0", rep.ExitCode())
	}
}

// TestJSONShape checks the shape later commands and users rely on.
func TestJSONShape(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Target struct {
			Address string `json:"address"`
		} `json:"target"`
		Results []struct {
			Name    string `json:"name"`
			Verdict string `json:"verdict"`
			Reason  string `json:"reason"`
			Steps   []struct {
				Index     int      `json:"index"`
				Direction string   `json:"direction"`
				Verdict   string   `json:"verdict"`
				Expected  string   `json:"expected"`
				Actual    string   `json:"actual"`
				Problems  []string `json:"problems"`
				RTT       *float64 `json:"rtt_us"`
			} `json:"steps"`
		} `json:"results"`
		Summary map[string]int `json:"summary"`
	}
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Target.Address != "192.0.2.2:80" || len(doc.Results) != 3 {
		t.Fatalf("got %+v", doc)
	}
	s := doc.Results[0].Steps[1]
	if s.Index != 2 || s.Direction != "expect" || s.Verdict != "fail" || s.RTT == nil || *s.RTT != 84 || len(s.Problems) != 1 {
		t.Errorf("step 2: got %+v", s)
	}
	for _, v := range Verdicts {
		if _, ok := doc.Summary[string(v)]; !ok {
			t.Errorf("summary lacks %q", v)
		}
	}
	if doc.Summary["fail"] != 1 || doc.Summary["error"] != 1 || doc.Summary["pass"] != 0 {
		t.Errorf("summary: got %v", doc.Summary)
	}
}

func TestJUnit(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		XMLName xml.Name `xml:"testsuites"`
		Tests   int      `xml:"tests,attr"`
		Suites  []struct {
			Failures int `xml:"failures,attr"`
			Errors   int `xml:"errors,attr"`
			Cases    []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
					Text    string `xml:",chardata"`
				} `xml:"failure"`
				Error     *struct{} `xml:"error"`
				SystemOut string    `xml:"system-out"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, buf.String())
	}
	if doc.Tests != 3 || len(doc.Suites) != 1 || doc.Suites[0].Failures != 1 || doc.Suites[0].Errors != 1 {
		t.Fatalf("counts: got %+v", doc)
	}
	c := doc.Suites[0].Cases[0]
	if c.Failure == nil || !strings.Contains(c.Failure.Message, "ack: want ISN+1") || !strings.Contains(c.Failure.Text, "S. 0:0(0) ack 0") {
		t.Errorf("failing case: got %+v", c.Failure)
	}
	if doc.Suites[0].Cases[1].Error == nil {
		t.Error("error case has no <error>")
	}
	if !strings.HasPrefix(doc.Suites[0].Cases[2].SystemOut, "INFO") {
		t.Errorf("info case: got system-out %q", doc.Suites[0].Cases[2].SystemOut)
	}
}

func TestText(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteText(&buf, sample(), TextOptions{}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"synprobe handshake 192.0.2.2:80 (from 192.0.2.1:61000, via veth0)",
		"FAIL  handshake",
		"got S. 0:0(0) ack 0",
		"rtt 84 us",
		"- ack: want ISN+1 (8221823), got 8221822",
		"summary: 1 fail, 1 info, 1 error",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colour codes without Color")
	}
}

// TestTextVerbosePacketdrillLines: with every step shown, only a result
// that failed, warned or erred gets packetdrill's "error handling packet"
// line (issue 10: a PASS printed one with no message), and an error whose
// deciding step names no problem says the result's reason.
func TestTextVerbosePacketdrillLines(t *testing.T) {
	step := func(v Verdict, problems ...string) Step {
		return Step{Index: 1, Line: 5, Direction: Expect, Verdict: v, Expected: "> . 1:1(0) ack 1", Actual: ". 1:1(0) ack 1", Problems: problems}
	}
	tests := []struct {
		name string
		res  Result
		want string // "" when no packetdrill line may appear
	}{
		{"pass", Result{Name: "p", File: "p.pkt", Verdict: Pass, Steps: []Step{step(Pass)}}, ""},
		{"skip", Result{Name: "s", File: "s.pkt", Verdict: Skip, Reason: "the target application did not write", Steps: []Step{step(Skip, "the target application did not write")}}, ""},
		{"info", Result{Name: "i", File: "i.pkt", Verdict: Info, Steps: []Step{step(Info, "observed")}}, ""},
		{"fail", Result{Name: "f", File: "f.pkt", Verdict: Fail, Steps: []Step{step(Fail, "ack: expected 1 got 2")}}, "f.pkt:5: error handling packet: ack: expected 1 got 2"},
		{"warn", Result{Name: "w", File: "w.pkt", Verdict: Warn, Steps: []Step{step(Warn, "late")}}, "w.pkt:5: warning handling packet: late"},
		{"error without problems", Result{Name: "e", File: "e.pkt", Verdict: Error, Reason: "the local kernel reset the connection", Steps: []Step{step(Error)}},
			"e.pkt:5: error handling packet: the local kernel reset the connection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := &Report{Command: "run", Results: []Result{tt.res}}
			rep.Finish()
			var buf bytes.Buffer
			if err := WriteText(&buf, rep, TextOptions{Steps: true, Passes: true}); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			if tt.want == "" {
				if strings.Contains(out, "handling packet") {
					t.Errorf("a %s result got a packetdrill error line:\n%s", tt.res.Verdict, out)
				}
				return
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("text lacks %q:\n%s", tt.want, out)
			}
		})
	}
}

// TestStream: a streamed report says what the whole one says.
func TestStream(t *testing.T) {
	rep := sample()
	for _, format := range []string{"json", "junit", "text"} {
		var whole, streamed bytes.Buffer
		var err error
		switch format {
		case "json":
			err = WriteJSON(&whole, rep)
		case "junit":
			err = WriteJUnit(&whole, rep)
		default:
			err = WriteText(&whole, rep, TextOptions{Passes: true})
		}
		if err != nil {
			t.Fatal(err)
		}
		st := NewStream(&streamed, format, rep, TextOptions{Passes: true})
		for _, r := range rep.Results {
			if err := st.Result(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Finish(rep); err != nil {
			t.Fatal(err)
		}
		switch format {
		case "json":
			var a, b map[string]any
			if err := json.Unmarshal(whole.Bytes(), &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(streamed.Bytes(), &b); err != nil {
				t.Fatalf("streamed JSON: %v\n%s", err, streamed.String())
			}
			for _, k := range []string{"command", "target", "results", "summary", "notes"} {
				if x, y := fmt.Sprint(a[k]), fmt.Sprint(b[k]); x != y {
					t.Errorf("json %s: whole %s, streamed %s", k, x, y)
				}
			}
		default:
			if whole.String() != streamed.String() {
				t.Errorf("%s: streamed differs:\n%s\n---\n%s", format, whole.String(), streamed.String())
			}
		}
	}
}

// TestCauses: every cause of the vocabulary is valid, has a kind of the
// four sources (or a premise, or the input) and a meaning; a result judged from its
// steps takes the deciding step's cause, a fail with none is the stack's,
// and a step skipped for a cause makes the result skip.
func TestCauses(t *testing.T) {
	kinds := map[string]bool{"stack": true, "application": true, "premise": true, "path": true, "local-host": true, "input": true}
	for _, c := range Causes {
		if !c.Valid() || !kinds[c.Kind()] || c.Meaning() == "" {
			t.Errorf("cause %q: valid %v, kind %q, meaning %q", c, c.Valid(), c.Kind(), c.Meaning())
		}
	}
	if Cause("application:bored").Valid() {
		t.Error("a cause outside the vocabulary is valid")
	}
	tests := []struct {
		name   string
		steps  []Step
		want   Verdict
		cause  Cause
		reason string
	}{
		{"a fail names the stack", []Step{{Verdict: Pass}, {Verdict: Fail, Problems: []string{"ack: expected 1"}}}, Fail, CauseStack, "fail at step 0: ack: expected 1"},
		{"the deciding step's cause", []Step{{Verdict: Pass}, {Verdict: Error, Cause: CauseLocalDrops, Problems: []string{"dropped 3"}}}, Error, CauseLocalDrops, "error at step 0: dropped 3"},
		{"a step skipped for a cause", []Step{{Verdict: Pass}, {Verdict: Skip, Cause: CauseAppNotAccepting, Problems: []string{"no SYN-ACK"}}}, Skip, CauseAppNotAccepting, "no SYN-ACK"},
		{"steps not reached decide nothing", []Step{{Verdict: Pass}, {Verdict: Skip, Problems: []string{"not reached"}}}, Pass, "", ""},
	}
	for _, tt := range tests {
		r := Result{Steps: tt.steps}
		r.Judge()
		if r.Verdict != tt.want || r.Cause != tt.cause || r.Reason != tt.reason {
			t.Errorf("%s: got %s [%s] %q, want %s [%s] %q", tt.name, r.Verdict, r.Cause, r.Reason, tt.want, tt.cause, tt.reason)
		}
	}
	// Decide: a cause explains a result, it never hides a failure before it.
	r := Result{Steps: []Step{{Verdict: Fail, Problems: []string{"seq"}}}}
	r.Decide(Skip, CauseAppClosed, "the application closed")
	if r.Verdict == Skip {
		t.Error("Decide turned a failed result into a skip")
	}
}

// TestJSONStepsNeverNull: a result decided before any step (an early
// skip, a script that did not parse) has "steps": [] in JSON, not null.
func TestJSONStepsNeverNull(t *testing.T) {
	rep := &Report{Results: []Result{{Name: "early", Verdict: Skip, Cause: CausePremiseBlackBox, Reason: "not supported"}}}
	var b strings.Builder
	if err := WriteJSON(&b, rep); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), `"steps": null`) || !strings.Contains(b.String(), `"steps": []`) {
		t.Errorf("JSON:\n%s\nwant \"steps\": []", b.String())
	}
}

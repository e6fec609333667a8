package trace

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"synprobe/conformance/fingerprint"
	"synprobe/conformance/report"
)

var (
	exHop1 = netip.MustParseAddr("10.79.1.254")
	exHop2 = netip.MustParseAddr("10.79.2.254")
)

// exBetween is where a finding seen first at hop 2 is.
var exBetween = Where{AfterHop: 1, AtHop: 2, Between: []netip.Addr{exHop1, exHop2}}

func exFinding(k Kind) Finding {
	probes := []string{"syn"}
	switch k.Base() {
	case Drop, Unobserved:
		// Made by every walk that could (Explain asks which made it).
		probes = []string{"syn", connData, connOutOfWin, connAckAbove, connNoConn, connFIN, connNull, connSYNACK}
	}
	return Finding{Kind: k, Verdict: VerdictOf(k), Where: exBetween, Probes: probes}
}

// exFailed is a result whose deciding step broke rules fields.
func exFailed(name string, v report.Verdict, expected, actual string, fields ...string) report.Result {
	return report.Result{Name: name, Verdict: v, Cause: report.CauseStack, Reason: "the stack did it",
		Steps: []report.Step{
			{Index: 1, Direction: report.Send, Verdict: report.Pass},
			{Index: 2, Direction: report.Expect, Verdict: v, Expected: expected, Actual: actual, Fields: fields, Problems: []string{"problem"}},
		}}
}

func exWithProblem(r report.Result, text string) report.Result {
	r.Steps[1].Problems = []string{text}
	return r
}

func TestExplainTable(t *testing.T) {
	tests := []struct {
		name    string
		finding Kind
		result  report.Result
		want    report.Cause // "": keeps its verdict
	}{
		{"ts stripped explains options-ts-echo", OptionStripped.With("ts"),
			exFailed("options-ts-echo", report.Fail, "S. 0:0(0) ack 1 <TS val 1 ecr 100>", "S. 0:0(0) ack 1 <mss 1460>", "options"), report.CausePathTSStripped},
		{"ts stripped explains established-paws (data accepted)", OptionStripped.With("ts"),
			exFailed("established-paws", report.Fail, ". 1:1(0) ack 1", ". 1:1(0) ack 9", "ack"), report.CausePathTSStripped},
		{"ts stripped does not explain a bad checksum in options-ts-echo", OptionStripped.With("ts"),
			exFailed("options-ts-echo", report.Fail, "S. 0:0(0) ack 1 <TS val 1 ecr 100>", "S. 0:0(0) ack 1", "tcp-checksum"), ""},
		{"ts stripped does not explain listen-rst", OptionStripped.With("ts"),
			exFailed("listen-rst", report.Fail, "R 1:1(0)", "nothing", "reply"), ""},
		{"ts stripped explains a user's script expecting TS", OptionStripped.With("ts"),
			exFailed("my-script", report.Fail, "S. 0:0(0) ack 1 <mss 1460,TS val 1 ecr 0>", "S. 0:0(0) ack 1 <mss 1460>", "options"), report.CausePathTSStripped},
		{"ts stripped does not explain a user's script whose options lack something else", OptionStripped.With("ts"),
			exFailed("my-script", report.Fail, "S. 0:0(0) ack 1 <mss 1460,TS val 1 ecr 0>", "S. 0:0(0) ack 1 <TS val 5 ecr 1>", "options"), ""},
		{"ts stripped from data explains a check that finds TS missing in the connection", OptionStripped.With("ts"),
			exFailed("established-close-sequence", report.Fail, ". 1:1(0) ack 1", ". 1:1(0) ack 1", "ts-present"), report.CausePathTSStripped},
		{"ts stripped does not explain a wrong TS echo in a check it does not name", OptionStripped.With("ts"),
			exFailed("established-close-sequence", report.Fail, ". 1:1(0) ack 1", ". 1:1(0) ack 1", "ts-echo"), ""},
		{"ts stripped explains a timestamps premise skip", OptionStripped.With("ts"),
			report.Result{Name: "options-ts-on-every-segment", Verdict: report.Skip, Cause: report.CausePremiseTimestamps}, report.CausePathTSStripped},
		{"sack stripped explains options-sack-blocks", OptionStripped.With("sack"),
			exFailed("options-sack-blocks", report.Fail, ". 1:1(0) ack 1 <sack 5:9>", ". 1:1(0) ack 1", "options"), report.CausePathSACKStripped},
		{"ws stripped explains options-wscale-only-if-offered", OptionStripped.With("ws"),
			exFailed("options-wscale-only-if-offered", report.Fail, "S. 0:0(0) ack 1", "S. 0:0(0) ack 1 <wscale 7>", "wscale-offered"), report.CausePathWSStripped},
		{"ws stripped does not explain a seq fault there", OptionStripped.With("ws"),
			exFailed("options-wscale-only-if-offered", report.Fail, "S. 0:0(0) ack 1", "S. 0:0(0) ack 2", "ack"), ""},
		{"drop(syndata) explains listen-syn-data unanswered", Drop.With("syndata"),
			exFailed("listen-syn-data", report.Fail, "S. 0:0(0) ack 1", "nothing", "reply"), report.CausePathDropSYNData},
		{"drop(syndata) explains closed-syn-data unanswered", Drop.With("syndata"),
			exFailed("closed-syn-data", report.Fail, "R. 0:0(0) ack 11", "nothing", "reply"), report.CausePathDropSYNData},
		{"drop(syndata) does not explain a wrong ack", Drop.With("syndata"),
			exFailed("listen-syn-data", report.Fail, "S. 0:0(0) ack 1", "S. 0:0(0) ack 11", "ack"), ""},
		{"drop(exotic) explains options-unknown-ignored unanswered", Drop.With("exotic"),
			exFailed("options-unknown-ignored", report.Fail, "S. 0:0(0) ack 1", "nothing", "reply"), report.CausePathDropExotic},
		{"option-stripped(unknown) explains options-fast-open-cookie (info)", OptionStripped.With("unknown"),
			exFailed("options-fast-open-cookie", report.Info, "S. 0:0(0) ack 1 <FO>", "S. 0:0(0) ack 1", "tfo-offered"), report.CausePathUnknownStripped},
		{"drop(no-connection) explains closed-ack unanswered", Drop.With("no-connection"),
			exFailed("closed-ack", report.Fail, "R 1000:1000(0)", "nothing", "reply"), report.CausePathDropNoConn},
		{"drop(out-of-window) explains established-out-of-window-data", Drop.With("out-of-window"),
			exFailed("established-out-of-window-data", report.Fail, ". 1:1(0) ack 1", "nothing", "reply"), report.CausePathDropOutOfWindow},
		{"drop(no-connection) does not explain a RST with the wrong seq", Drop.With("no-connection"),
			exFailed("closed-ack", report.Fail, "R 1000:1000(0)", "R 999:999(0)", "seq"), ""},
		{"drop(no-connection) does not explain closed-syn", Drop.With("no-connection"),
			exFailed("closed-syn", report.Fail, "R. 0:0(0) ack 1", "nothing", "reply"), ""},
		{"nat-leak explains established-ack-above-sndnxt answered by a RST", NATLeak,
			exFailed("established-ack-above-sndnxt", report.Fail, ". 1:1(0) ack 1", "R 1000:1000(0)", "flags", "seq"), report.CausePathNATLeak},
		{"ecn-flags-cleared explains the ECN premise", ECNFlagsCleared,
			report.Result{Name: "options-ecn-negotiation", Verdict: report.Skip, Cause: report.CausePremiseECN}, report.CausePathECNCleared},
		{"mss-clamp explains an MSS mismatch", MSSClamp,
			exWithProblem(exFailed("my-script", report.Fail, "S. 0:0(0) ack 1 <mss 1460>", "S. 0:0(0) ack 1 <mss 1200>", "options"),
				"options: expected <mss 1460> got <mss 1200> (mss: expected mss 1460 got mss 1200)"), report.CausePathMSSClamp},
		{"mss-clamp does not explain another option mismatch", MSSClamp,
			exWithProblem(exFailed("my-script", report.Fail, "S. 0:0(0) ack 1 <mss 1460,sackOK>", "S. 0:0(0) ack 1 <mss 1460>", "options"),
				"options: expected <mss 1460,sackOK> got <mss 1460>"), ""},
		{"mss-clamp explains nothing in listen-synack", MSSClamp,
			exFailed("listen-synack", report.Fail, "R 1:1(0)", "nothing", "reply"), ""},
		{"a pass stays a pass", OptionStripped.With("ts"),
			report.Result{Name: "options-ts-echo", Verdict: report.Pass}, ""},
		{"a failure with no step is not explained", Drop.With("syndata"),
			report.Result{Name: "listen-syn-data", Verdict: report.Fail, Reason: "decided without a step"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.result
			was := r.Verdict
			res := &Result{Findings: []Finding{exFinding(tc.finding)}}
			got := ExplainResult(&r, res)
			if tc.want == "" {
				if got || r.Verdict != was {
					t.Fatalf("explained: %v, verdict %s (cause %s); want the verdict kept: %s", got, r.Verdict, r.Cause, was)
				}
				return
			}
			if !got || r.Verdict != report.Skip || r.Cause != tc.want {
				t.Fatalf("got explained %v, %s cause %q; want skip cause %q", got, r.Verdict, r.Cause, tc.want)
			}
			if !r.Cause.Valid() {
				t.Errorf("cause %q is not in the vocabulary", r.Cause)
			}
			wantReason := "between hop 1 10.79.1.254 and hop 2 10.79.2.254"
			if !strings.HasPrefix(r.Reason, "path: ") || !strings.Contains(r.Reason, wantReason) {
				t.Errorf("reason %q: want it to start with \"path: \" and say %q", r.Reason, wantReason)
			}
		})
	}
}

// A finding explains the results its table row names and never hides
// another failure of the same report.
// A blind finding (seen only in the target's answer) explains, and its
// reason says the target itself cannot be ruled out.
// TestExplainByWalk: a drop explains only the scenarios whose segment its
// walk sent: a box that drops a bare ACK of no connection says nothing of a
// FIN to a closed port.
func TestExplainByWalk(t *testing.T) {
	f := Finding{Kind: Drop.With("no-connection"), Verdict: report.Warn, Where: exBetween, Probes: []string{connNoConn}}
	res := &Result{Findings: []Finding{f}}
	fin := exFailed("closed-fin", report.Fail, "R. 0:0(0) ack 1", "nothing", "reply")
	if ExplainResult(&fin, res) {
		t.Errorf("drop of a bare ACK explained closed-fin: %s [%s] %s", fin.Verdict, fin.Cause, fin.Reason)
	}
	ack := exFailed("closed-ack", report.Fail, "R 1000:1000(0)", "nothing", "reply")
	if !ExplainResult(&ack, res) || ack.Cause != report.CausePathDropNoConn {
		t.Errorf("drop of a bare ACK: closed-ack got %s [%s], want skip [%s]", ack.Verdict, ack.Cause, report.CausePathDropNoConn)
	}
	f.Probes = append(f.Probes, connFIN)
	fin = exFailed("closed-fin", report.Fail, "R. 0:0(0) ack 1", "nothing", "reply")
	if !ExplainResult(&fin, &Result{Findings: []Finding{f}}) {
		t.Errorf("drop of the FIN walk did not explain closed-fin: %s [%s]", fin.Verdict, fin.Cause)
	}
}

// TestExplainUnobservedTS: TS missing from the target's data ACKs where no
// router quotes (a box after the last router, or the target) explains a TS
// result as skip, naming both; a symptom of the SYN-ACK does not.
func TestExplainUnobservedTS(t *testing.T) {
	blind := Where{AfterHop: 2, Blind: true, Between: []netip.Addr{exHop2}}
	data := Finding{Kind: Unobserved, Verdict: report.Info, Where: blind, Probes: []string{connData},
		Evidence: []string{"the target's . 1:1(0) ack 9 carries no TS though TS was negotiated (the target's choice, or a box after hop 2)"}}
	r := exFailed("options-ts-on-every-segment", report.Fail, ". 1:1(0) ack 9 <nop,nop,TS val * ecr *>", ". 1:1(0) ack 9", "ts-present")
	if !ExplainResult(&r, &Result{Findings: []Finding{data}}) || r.Verdict != report.Skip || !strings.Contains(r.Reason, "the target's choice, or a box") {
		t.Errorf("got %s [%s] %q; want skip naming the target or a box", r.Verdict, r.Cause, r.Reason)
	}
	syn := data
	syn.Probes = []string{"syn"}
	r = exFailed("options-ts-on-every-segment", report.Fail, ". 1:1(0) ack 9 <nop,nop,TS val * ecr *>", ". 1:1(0) ack 9", "ts-present")
	if ExplainResult(&r, &Result{Findings: []Finding{syn}}) {
		t.Errorf("a SYN-ACK symptom explained TS missing from data: %s [%s]", r.Verdict, r.Cause)
	}
}

func TestExplainBlind(t *testing.T) {
	r := exFailed("listen-ack", report.Fail, "R 1:1(0)", "nothing", "reply")
	f := Finding{Kind: Drop.With("no-connection"), Verdict: report.Warn, Where: Where{AfterHop: 2, Blind: true, Between: []netip.Addr{exHop2}}, Probes: []string{connNoConn}}
	if !ExplainResult(&r, &Result{Findings: []Finding{f}}) || r.Verdict != report.Skip {
		t.Fatalf("got %s [%s]; want skip", r.Verdict, r.Cause)
	}
	want := "path: segments of no connection dropped beyond hop 2 10.79.2.254, where no router quotes (blind): the target itself or a box after the last router"
	if !strings.HasPrefix(r.Reason, want) {
		t.Errorf("reason %q: want it to start %q", r.Reason, want)
	}
}

func TestExplainNeverHides(t *testing.T) {
	rep := &report.Report{Results: []report.Result{
		exFailed("listen-syn-data", report.Fail, "S. 0:0(0) ack 1", "nothing", "reply"),
		exFailed("closed-syn", report.Fail, "R. 0:0(0) ack 1", "R. 0:0(0) ack 2", "ack"),
		exFailed("listen-rst", report.Warn, "R 1:1(0)", "nothing", "reply"),
	}}
	res := &Result{Findings: []Finding{exFinding(Drop.With("syndata")), exFinding(OptionStripped.With("ts")), exFinding(MSSClamp)}}
	n, box := Explain(rep, res, "10.79.3.1")
	if n != 1 || box != "" {
		t.Fatalf("Explain: %d explained, answered by %q; want 1 and none", n, box)
	}
	rep.Finish()
	want := []report.Verdict{report.Skip, report.Fail, report.Warn}
	for i, r := range rep.Results {
		if r.Verdict != want[i] {
			t.Errorf("%s: got %s, want %s", r.Name, r.Verdict, want[i])
		}
	}
	if rep.ExitCode() != 1 {
		t.Errorf("exit code %d, want 1 (closed-syn still fails)", rep.ExitCode())
	}
}

func TestExplainProxy(t *testing.T) {
	for _, k := range []Kind{TerminatingProxy, SYNProxy} {
		t.Run(string(k), func(t *testing.T) {
			rep := &report.Report{Results: []report.Result{
				exFailed("listen-synack", report.Fail, "R 1:1(0)", "nothing", "reply"),
				exFailed("closed-syn", report.Pass, "R. 0:0(0) ack 1", "R. 0:0(0) ack 1"),
				exFailed("options-wscale-only-if-offered", report.Warn, "S. 0:0(0) ack 1", "S. 0:0(0) ack 1 <wscale 7>", "wscale-offered"),
				exFailed("listen-handshake", report.Pass, "S. 0:0(0) ack 1", "S. 0:0(0) ack 1"),
			}, Fingerprint: &fingerprint.Fingerprint{}}
			f := Finding{Kind: k, Verdict: report.Warn, Where: Where{AfterHop: 1, AtHop: 2, Between: []netip.Addr{exHop1, exHop2}}}
			n, box := Explain(rep, &Result{Findings: []Finding{f}}, "10.79.3.1")
			rep.Finish()
			if n != 3 || box != "a box at hop 2 (10.79.2.254)" {
				t.Errorf("Explain: %d explained, answered by %q; want 3, \"a box at hop 2 (10.79.2.254)\"", n, box)
			}
			if rep.ExitCode() != 0 || rep.Summary[report.Fail]+rep.Summary[report.Warn] != 0 {
				t.Errorf("summary %s, exit %d: want no fail or warn through a proxy", rep.Summary.Counts(), rep.ExitCode())
			}
			for _, r := range rep.Results {
				label := "answered by a box at hop 2 (10.79.2.254), not by 10.79.3.1"
				if !strings.Contains(r.Reason, label) && !slices.ContainsFunc(r.Notes, func(n string) bool { return strings.Contains(n, label) }) &&
					!strings.Contains(r.Reason, "closed-port scenario skipped") {
					t.Errorf("%s: reason %q notes %q: want it labelled %q", r.Name, r.Reason, r.Notes, label)
				}
			}
			if r := rep.Results[1]; r.Verdict != report.Skip || r.Cause != report.Cause("path:"+string(k)) {
				t.Errorf("closed-syn: got %s cause %s, want skip cause path:%s", r.Verdict, r.Cause, k)
			}
			if r := rep.Results[3]; r.Verdict != report.Pass {
				t.Errorf("listen-handshake: got %s, want pass (labelled)", r.Verdict)
			}
			fp := rep.Fingerprint.(*fingerprint.Fingerprint)
			if len(fp.Notes) == 0 || !strings.Contains(fp.Notes[0], "the whole fingerprint is the box's") {
				t.Errorf("fingerprint notes %q: want the first to say it is the box's", fp.Notes)
			}
		})
	}
}

func TestExplainFingerprint(t *testing.T) {
	yes, ws, ttl := true, 7, 61
	fp := &fingerprint.Fingerprint{
		Timestamps: fingerprint.Timestamps{Answered: &yes},
		SACK:       fingerprint.Support{Supported: &yes},
		ECN:        fingerprint.Support{Supported: &yes},
		SYNACK:     fingerprint.SYNACK{WScale: &ws},
		TTL:        fingerprint.TTL{RST: &ttl, RSTInitial: &ttl},
	}
	rep := &report.Report{Fingerprint: fp}
	res := &Result{Findings: []Finding{exFinding(OptionStripped.With("ts")), exFinding(OptionStripped.With("sack")),
		exFinding(OptionStripped.With("ws")), exFinding(ECNFlagsCleared), exFinding(Drop.With("no-connection")), exFinding(MSSClamp)}}
	Explain(rep, res, "10.79.3.1")
	for _, c := range []struct {
		field string
		why   string
		known bool
	}{
		{"timestamps", fp.Timestamps.Why, fp.Timestamps.Answered != nil},
		{"sack", fp.SACK.Why, fp.SACK.Supported != nil},
		{"ecn", fp.ECN.Why, fp.ECN.Supported != nil},
		{"window scale", fp.SYNACK.WScaleWhy, fp.SYNACK.WScale != nil},
		{"rst ttl", fp.TTL.Why, fp.TTL.RST != nil},
		{"syn-ack mss", fp.SYNACK.MSSWhy, false},
	} {
		if c.known || !strings.HasPrefix(c.why, "path: ") {
			t.Errorf("%s: still known %v, why %q; want unknown with a \"path: \" reason", c.field, c.known, c.why)
		}
	}
}

func TestFamiliesFor(t *testing.T) {
	tests := []struct {
		r    report.Result
		want []Family
	}{
		{exFailed("listen-syn-data", report.Fail, "S.", "nothing", "reply"), []Family{FamilySYNData}},
		{exFailed("closed-ack", report.Fail, "R", "nothing", "reply"), []Family{FamilyConn}},
		{exFailed("options-unknown-ignored", report.Fail, "S.", "nothing", "reply"), []Family{FamilyExotic}},
		{exFailed("established-paws", report.Fail, ".", ". ack 9", "ack"), []Family{FamilySYN, FamilyConn}},
		{report.Result{Name: "options-ecn-negotiation", Verdict: report.Skip, Cause: report.CausePremiseECN}, []Family{FamilyECN}},
		{report.Result{Name: "closed-ack", Verdict: report.Pass}, nil},
		{exFailed("listen-rst", report.Fail, "R", "nothing", "reply"), nil},
	}
	for _, tc := range tests {
		if got := FamiliesFor(tc.r); !slices.Equal(got, tc.want) {
			t.Errorf("FamiliesFor(%s %s): got %v, want %v", tc.r.Name, tc.r.Verdict, got, tc.want)
		}
	}
}

func TestWhereString(t *testing.T) {
	tests := []struct {
		w    Where
		want string
	}{
		{exBetween, "between hop 1 10.79.1.254 and hop 2 10.79.2.254"},
		{Where{AfterHop: 0, AtHop: 1, Between: []netip.Addr{{}, exHop1}}, "between this host and hop 1 10.79.1.254"},
		{Where{AfterHop: 2, Blind: true, Between: []netip.Addr{exHop2}}, "beyond hop 2 10.79.2.254, where no router quotes (blind)"},
		{Where{AfterHop: 1, AtHop: 3, Between: []netip.Addr{exHop1, {}}}, "between hop 1 10.79.1.254 and hop 3"},
	}
	for _, tc := range tests {
		if got := tc.w.String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"auto", "off", "full"} {
		if m, err := ParseMode(s); err != nil || string(m) != s {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", s, m, err, s)
		}
	}
	for _, s := range []string{"", "on", "AUTO"} {
		if _, err := ParseMode(s); err == nil {
			t.Errorf("ParseMode(%q): want an error", s)
		}
	}
}

func TestCheckText(t *testing.T) {
	c := &Check{Mode: ModeAuto, Families: QuickFamilies, Verdict: report.Warn, DurationMS: 120,
		Findings: []Finding{{Kind: OptionStripped.With("ts"), Verdict: report.Warn, Where: exBetween, Evidence: []string{"TS replaced by NOPs"}}}, Explained: 2}
	got := c.Text()
	for _, want := range []string{"path: warn (auto; walks syn, alt; 120 ms)", "path: WARN  option-stripped(ts) between hop 1 10.79.1.254 and hop 2 10.79.2.254: TS replaced by NOPs", "path: 2 results explained"} {
		if !strings.Contains(got, want) {
			t.Errorf("text %q: want it to contain %q", got, want)
		}
	}
	if got := (&Check{Mode: ModeAuto, Families: QuickFamilies, Verdict: report.Pass}).Text(); !strings.Contains(got, "no change seen") {
		t.Errorf("text %q: want \"no change seen\"", got)
	}
}

func TestFingerprintFamilies(t *testing.T) {
	no := false
	if got := FingerprintFamilies(&fingerprint.Fingerprint{ECN: fingerprint.Support{Supported: &no}}); !slices.Equal(got, []Family{FamilyECN}) {
		t.Errorf("ECN not taken up: got %v, want [ecn]", got)
	}
	if got := FingerprintFamilies(&fingerprint.Fingerprint{}); got != nil {
		t.Errorf("nothing measured: got %v, want none", got)
	}
	if got := FingerprintFamilies(nil); got != nil {
		t.Errorf("no fingerprint: got %v, want none", got)
	}
}

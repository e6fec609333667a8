package trace

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strings"

	"synprobe/conformance/fingerprint"
	"synprobe/conformance/report"
	"synprobe/internal/plural"
)

// Mode is what --path-check asks of audit, handshake and run.
type Mode string

// The modes of --path-check.
const (
	// ModeAuto runs the quick walks (QuickFamilies) beside the suite, then
	// the families that could explain each result that did not pass.
	ModeAuto Mode = "auto"
	// ModeOff runs no path check.
	ModeOff Mode = "off"
	// ModeFull runs every family before the suite.
	ModeFull Mode = "full"
)

// ParseMode reads a --path-check value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeAuto, ModeOff, ModeFull:
		return m, nil
	}
	return "", fmt.Errorf("unknown path check %q: want auto, off or full", s)
}

// Check is what a path check found: the path object of a report.
type Check struct {
	Mode Mode `json:"mode"`
	// Families are the probe families that were walked, in order.
	Families []Family `json:"families"`
	// Verdict is the path's (pass when nothing was found), never the
	// target's.
	Verdict  report.Verdict `json:"verdict"`
	Findings []Finding      `json:"findings"`
	Coverage []string       `json:"coverage,omitempty"`
	// AnsweredBy says what answered instead of the target, when a box did
	// (a terminating proxy or a SYN proxy): "a box at hop 2 (10.79.2.254)".
	AnsweredBy string `json:"answered_by,omitempty"`
	// Explained counts the results a finding explains (now skip with a
	// path: cause).
	Explained  int     `json:"explained"`
	DurationMS float64 `json:"duration_ms"`
	// Error says why the path check could not run, or ran only in part.
	Error string `json:"error,omitempty"`
}

// Text is the report's path section (report.WriteText).
func (c *Check) Text() string {
	var b strings.Builder
	fams := make([]string, len(c.Families))
	for i, f := range c.Families {
		fams[i] = string(f)
	}
	fmt.Fprintf(&b, "path: %s (%s; walks %s; %s)", c.Verdict, c.Mode, strings.Join(fams, ", "), msText(c.DurationMS))
	switch {
	case c.Error != "":
		fmt.Fprintf(&b, ": %s", c.Error)
	case len(c.Findings) == 0:
		b.WriteString(": no change seen")
	}
	b.WriteByte('\n')
	if c.AnsweredBy != "" {
		fmt.Fprintf(&b, "path: answered by %s, not by the target: every result is the box's TCP\n", c.AnsweredBy)
	}
	for _, f := range c.Findings {
		fmt.Fprintf(&b, "path: %-5s %s %s", strings.ToUpper(string(f.Verdict)), f.Kind, f.Where)
		if len(f.Evidence) > 0 {
			fmt.Fprintf(&b, ": %s", strings.Join(f.Evidence, "; "))
		}
		b.WriteByte('\n')
	}
	if c.Explained > 0 {
		fmt.Fprintf(&b, "path: %s explained by the path (skip, cause path:...)\n", plural.N(c.Explained, "result", "results"))
	}
	for _, l := range c.Coverage {
		fmt.Fprintf(&b, "path: coverage: %s\n", l)
	}
	return b.String()
}

func msText(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f s", v/1000)
	}
	return fmt.Sprintf("%.0f ms", v)
}

// String says where, for people: "between hop 1 10.79.1.254 and hop 2
// 10.79.2.254", "beyond hop 2 10.79.2.254 (blind)".
func (w Where) String() string {
	addr := func(i int) netip.Addr {
		if i < len(w.Between) {
			return w.Between[i]
		}
		return netip.Addr{}
	}
	hop := func(k int, a netip.Addr) string {
		switch {
		case k <= 0:
			return "this host"
		case a.IsValid():
			return fmt.Sprintf("hop %d %s", k, a)
		}
		return fmt.Sprintf("hop %d", k)
	}
	switch {
	case w.Blind:
		return fmt.Sprintf("beyond %s, where no router quotes (blind)", hop(w.AfterHop, addr(0)))
	case w.AtHop > 0:
		return fmt.Sprintf("between %s and %s", hop(w.AfterHop, addr(0)), hop(w.AtHop, addr(1)))
	}
	return "after " + hop(w.AfterHop, addr(0))
}

// boxHop is the hop of the box that answers for a proxy finding and its
// address: the first hop that saw the change, or the one after the last
// that did not.
func (w Where) boxHop() string {
	k, a := w.AtHop, netip.Addr{}
	if len(w.Between) > 1 {
		a = w.Between[1]
	}
	if k <= 0 {
		k = w.AfterHop + 1
		a = netip.Addr{}
		if w.AfterHop > 0 && len(w.Between) > 0 {
			// The box is the last quoting router itself, or beyond it.
			k, a = w.AfterHop, w.Between[0]
		}
	}
	if a.IsValid() {
		return fmt.Sprintf("a box at hop %d (%s)", k, a)
	}
	return fmt.Sprintf("a box at hop %d", k)
}

// describe says what a finding's kind means, in a few words.
func describe(k Kind) string {
	switch k {
	case OptionStripped.With("ts"):
		return "timestamps stripped"
	case OptionStripped.With("sack"):
		return "SACK-permitted stripped"
	case OptionStripped.With("ws"):
		return "window scale stripped"
	case OptionStripped.With("unknown"):
		return "unknown options stripped"
	case OptionStripped.With("tfo"):
		return "the Fast Open option stripped"
	case Drop.With("syndata"):
		return "SYNs with data dropped"
	case Drop.With("exotic"):
		return "SYNs with unknown options dropped"
	case Drop.With("badsum"):
		return "segments with a bad checksum dropped"
	case Drop.With("out-of-window"):
		return "out-of-window segments dropped"
	case Drop.With("no-connection"):
		return "segments of no connection dropped"
	case MSSClamp:
		return "MSS clamped"
	case ECNFlagsCleared:
		return "ECE and CWR cleared from SYNs"
	case ECNBleached:
		return "the IP ECN field cleared"
	case NAT:
		return "addresses translated (NAT)"
	case NATLeak:
		return "an out-of-state segment passed the NAT untranslated"
	case TerminatingProxy:
		return "a terminating proxy"
	case SYNProxy:
		return "a SYN proxy"
	}
	return string(k)
}

// row is one line of TRACE.md's table ("Use in audit/handshake/run"): a
// finding, the results it can explain, through which fields of their
// failing steps, and what of the fingerprint it makes unknown.
type row struct {
	kinds []Kind // findings of these kinds
	// family is the probe family that makes the finding.
	families []Family
	// names are the scenarios it explains (globs), through fields: the
	// fields of a failing step it can change (rule names of
	// conformance's problems, "reply" for nothing arrived; "x-*" globs).
	names  []string
	fields []string
	// generic explains a failing step of any result (a user's script, a
	// check the table does not name) whose fields are all among generic:
	// the option missing where it was negotiated (ts-present), or an
	// options mismatch whose expectation names token while what arrived
	// lacks it.
	generic []string
	token   string
	// premise is the premise skip the finding explains: the premise
	// failed because of the path.
	premise report.Cause
	// fingerprint are the fields it makes unknown (fingerprint.Path*).
	fingerprint []string
	// walks, when set, are the walks a finding must have been made by to
	// explain a scenario (by glob; "*" for the rest): a box that drops a
	// bare ACK of no connection says nothing of a FIN.
	walks map[string][]string
}

// findFor returns the first finding of res that rw can use for the
// result named name: of one of rw's kinds, made by a walk rw accepts.
func findFor(res *Result, rw row, name string) *Finding {
	if rw.walks == nil {
		return find(res, rw.kinds)
	}
	want, ok := rw.walks[name]
	if !ok {
		for g, ws := range rw.walks {
			if g != "*" && matches([]string{g}, name) {
				want, ok = ws, true
				break
			}
		}
	}
	if !ok {
		want = rw.walks["*"]
	}
	for _, k := range rw.kinds {
		for i := range res.Findings {
			f := &res.Findings[i]
			if f.Kind != k {
				continue
			}
			for _, p := range f.Probes {
				if slices.Contains(want, p) {
					return f
				}
			}
		}
	}
	return nil
}

// connFields are what a segment the path changed or dropped can change in
// the steps after it: what arrives, and whether anything does.
var connFields = []string{"reply", "segment", "flags", "seq", "ack", "win", "length", "payload"}

// closedPortScenarios need a closed port: through a box that answers for
// the target's ports, they judge the box.
var closedPortScenarios = []string{"closed-*"}

var rows = []row{
	{kinds: []Kind{OptionStripped.With("ts")}, families: []Family{FamilySYN, FamilyConn},
		names: []string{"options-ts-*", "established-paws"}, fields: append([]string{"options", "ts-*", "paws"}, connFields...),
		generic: []string{"options", "ts-present"}, token: "TS", premise: report.CausePremiseTimestamps,
		fingerprint: []string{fingerprint.PathTimestamps}},
	// TS missing from the target's segments after the handshake took it,
	// with no router quoting a change: a box after the last router, or
	// the target (reason says so; a reflector tells them apart).
	{kinds: []Kind{Unobserved}, families: []Family{FamilyConn},
		names: []string{"options-ts-*", "established-paws"}, fields: append([]string{"options", "ts-*", "paws"}, connFields...),
		generic: []string{"options", "ts-present"}, token: "TS",
		walks: map[string][]string{"*": {connData}}},
	{kinds: []Kind{OptionStripped.With("sack")}, families: []Family{FamilySYN},
		names: []string{"options-sack-*"}, fields: append([]string{"options", "sack-*"}, connFields...),
		generic: []string{"options"}, token: "sackOK", premise: report.CausePremiseSACK,
		fingerprint: []string{fingerprint.PathSACK}},
	{kinds: []Kind{OptionStripped.With("ws")}, families: []Family{FamilySYN},
		names: []string{"options-wscale-*"}, fields: []string{"options", "wscale-*", "win", "window-shrink"},
		generic: []string{"options"}, token: "wscale", premise: report.CausePremiseWScale,
		fingerprint: []string{fingerprint.PathWScale}},
	{kinds: []Kind{OptionStripped.With("unknown"), OptionStripped.With("tfo"), Drop.With("exotic")}, families: []Family{FamilyExotic},
		names: []string{"options-unknown-ignored", "options-fast-open-cookie"}, fields: []string{"options", "unknown-echoed", "tfo-offered", "reply"}},
	{kinds: []Kind{Drop.With("syndata")}, families: []Family{FamilySYNData},
		names: []string{"listen-syn-data", "closed-syn-data"}, fields: []string{"reply"}},
	{kinds: []Kind{Drop.With("out-of-window"), Drop.With("no-connection")}, families: []Family{FamilyConn},
		names: []string{"closed-ack", "closed-fin", "closed-null", "listen-ack", "listen-synack", "listen-bad-ack-in-syn-received",
			"established-ack-above-sndnxt", "established-out-of-window-data"},
		fields: []string{"reply"}, fingerprint: []string{fingerprint.PathRSTTTL},
		walks: map[string][]string{
			"closed-fin": {connFIN}, "closed-null": {connNull}, "listen-synack": {connSYNACK},
			"closed-ack": {connNoConn}, "listen-ack": {connNoConn},
			"listen-bad-ack-in-syn-received": {connNoConn, connAckAbove},
			"established-ack-above-sndnxt":   {connAckAbove}, "established-out-of-window-data": {connOutOfWin},
			"*": {connNoConn, connOutOfWin, connAckAbove, connFIN, connNull, connSYNACK},
		}},
	{kinds: []Kind{NATLeak, NAT}, families: []Family{FamilyConn},
		names: []string{"established-ack-above-sndnxt"}, fields: []string{"segment", "flags", "seq", "ack", "rst-*"},
		fingerprint: []string{fingerprint.PathISN}},
	{kinds: []Kind{ECNFlagsCleared, ECNBleached}, families: []Family{FamilyECN},
		names: []string{"options-ecn-*"}, fields: []string{"ecn", "synack-ecn", "flags"}, premise: report.CausePremiseECN,
		fingerprint: []string{fingerprint.PathECN}},
	{kinds: []Kind{MSSClamp}, families: []Family{FamilySYN},
		generic: []string{"options", "mss-small", "mss-tiny"}, token: "mss", fingerprint: []string{fingerprint.PathMSS}},
}

// proxies are the findings of a box that answers instead of the target.
var proxies = []Kind{TerminatingProxy, SYNProxy}

// FamiliesFor returns the probe families whose findings could explain r
// (nil when none could, or r passed): only those of a finding that could
// change the fields of the steps that decided r.
func FamiliesFor(r report.Result) []Family {
	var out []Family
	add := func(fs []Family) {
		for _, f := range fs {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	for _, rw := range rows {
		switch {
		case r.Verdict == report.Skip:
			if rw.premise != "" && r.Cause == rw.premise {
				add(rw.families)
			}
		case r.Verdict == report.Pass || r.Verdict == report.Error:
		case matches(rw.names, r.Name) && explainsSteps(rw, r):
			add(rw.families)
		case rw.generic != nil && genericStep(rw, r):
			add(rw.families)
		}
	}
	return out
}

// FingerprintFamilies returns the probe families whose findings could
// explain what a fingerprint (*fingerprint.Fingerprint) lacks of what was
// offered: ecn when ECN was not taken up (syn, for the options, is among
// the quick walks).
func FingerprintFamilies(fp any) []Family {
	f, ok := fp.(*fingerprint.Fingerprint)
	if !ok || f == nil {
		return nil
	}
	if f.ECN.Supported != nil && !*f.ECN.Supported {
		return []Family{FamilyECN}
	}
	return nil
}

func matches(globs []string, name string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// failing returns the steps that decided r's verdict.
func failing(r report.Result) []report.Step {
	var out []report.Step
	for _, s := range r.Steps {
		if s.Verdict == r.Verdict {
			out = append(out, s)
		}
	}
	return out
}

// within says whether every field is among allowed (globs), and there is
// at least one.
func within(fields, allowed []string) bool {
	for _, f := range fields {
		if !matches(allowed, f) {
			return false
		}
	}
	return len(fields) > 0
}

// explainsSteps says whether every step that decided r involves only
// fields the row's finding can change (and there is such a step): a
// finding never explains a failure in a field it did not change.
func explainsSteps(rw row, r report.Result) bool {
	steps := failing(r)
	for _, s := range steps {
		if !within(s.Fields, rw.fields) {
			return false
		}
	}
	return len(steps) > 0
}

// genericStep says whether the steps that decided r are option mismatches
// of the row's option: expected, and missing from (or changed in) what
// arrived.
func genericStep(rw row, r report.Result) bool {
	steps := failing(r)
	for _, s := range steps {
		if !within(s.Fields, rw.generic) {
			return false
		}
		if rw.kinds[0] == MSSClamp {
			// A changed MSS: the options are what was expected but for
			// the MSS's value (a rule on the MSS alone needs no look).
			if slices.Contains(s.Fields, "options") && mssOnly.ReplaceAllString(optionsText(s.Expected), "mss") != mssOnly.ReplaceAllString(optionsText(s.Actual), "mss") {
				return false
			}
			continue
		}
		if slices.Contains(s.Fields, "options") && (!strings.Contains(s.Expected, rw.token) || strings.Contains(s.Actual, rw.token)) {
			return false
		}
	}
	return len(steps) > 0
}

// mssOnly is an MSS option's value in packetdrill's notation.
var mssOnly = regexp.MustCompile(`mss [0-9]+`)

// optionsText is the <...> of a segment in packetdrill's notation.
func optionsText(seg string) string {
	i, j := strings.IndexByte(seg, '<'), strings.LastIndexByte(seg, '>')
	if i < 0 || j < i {
		return ""
	}
	return seg[i : j+1]
}

// find returns the first finding of res of one of kinds.
func find(res *Result, kinds []Kind) *Finding {
	for _, k := range kinds {
		for i := range res.Findings {
			if f := &res.Findings[i]; f.Kind == k {
				return f
			}
		}
	}
	return nil
}

// Explain rewrites what the findings of res explain in rep, before its
// verdicts are counted (report.Finish): a result a finding explains
// becomes skip with the cause "path:" and the finding's kind, its reason
// naming the finding and where; the fingerprint fields the path may have
// changed become unknown. Through a box that answers instead of host (a
// terminating proxy, a SYN proxy) every result is labelled as the box's
// and none fails. A result whose failing steps involve no field the
// finding changed keeps its verdict: a finding explains, it never hides.
// It returns how many results it changed and what answered, if a box did.
func Explain(rep *report.Report, res *Result, host string) (explained int, answeredBy string) {
	if res == nil {
		return 0, ""
	}
	if f := find(res, proxies); f != nil {
		answeredBy = f.Where.boxHop()
		for i := range rep.Results {
			if explainProxy(&rep.Results[i], f, answeredBy, host) {
				explained++
			}
		}
		if fp, ok := rep.Fingerprint.(*fingerprint.Fingerprint); ok && fp != nil {
			fp.PathUnknown(fingerprint.PathAll, fmt.Sprintf("path: answered by %s (%s), not by %s: the whole fingerprint is the box's", answeredBy, describe(f.Kind), host))
		}
		return explained, answeredBy
	}
	for i := range rep.Results {
		if ExplainResult(&rep.Results[i], res) {
			explained++
		}
	}
	if fp, ok := rep.Fingerprint.(*fingerprint.Fingerprint); ok && fp != nil {
		for _, rw := range rows {
			f := find(res, rw.kinds)
			if f == nil {
				continue
			}
			for _, field := range rw.fingerprint {
				fp.PathUnknown(field, reason(f))
			}
		}
	}
	return explained, ""
}

// reason is the reason of a result a finding explains: "path: timestamps
// stripped between hop 1 10.79.1.254 and hop 2 10.79.2.254".
func reason(f *Finding) string {
	r := "path: " + describe(f.Kind) + " " + f.Where.String()
	if f.Kind == Unobserved && len(f.Evidence) > 0 {
		return "path: unobserved " + f.Where.String() + ": " + strings.Join(f.Evidence, "; ") + " (synprobe reflect tells them apart)"
	}
	if f.Where.Blind {
		// What only the target's answer shows may be the target's own
		// doing: the result is not judged (skip), and says so.
		r += ": the target itself or a box after the last router (synprobe reflect tells them apart)"
	}
	return r
}

// ExplainResult rewrites r if a finding of res explains it (see Explain;
// boxes that answer instead of the target are Explain's), and says
// whether it did.
func ExplainResult(r *report.Result, res *Result) bool {
	for _, rw := range rows {
		f := findFor(res, rw, r.Name)
		if f == nil {
			continue
		}
		switch r.Verdict {
		case report.Skip:
			if rw.premise == "" || r.Cause != rw.premise {
				continue
			}
		case report.Fail, report.Warn, report.Info:
			byName := matches(rw.names, r.Name) && explainsSteps(rw, *r)
			if !byName && !(rw.generic != nil && r.Verdict != report.Info && genericStep(rw, *r)) {
				continue
			}
		default:
			continue
		}
		was := string(r.Verdict)
		if r.Reason != "" {
			was += ": " + r.Reason
		}
		if r.Cause != "" {
			was += " [cause " + string(r.Cause) + "]"
		}
		r.Notes = append(r.Notes, "without the path finding: "+was)
		r.Verdict, r.Cause, r.Reason = report.Skip, report.Cause("path:"+string(f.Kind)), reason(f)
		return true
	}
	return false
}

// explainProxy labels r as the box's: a result that failed or warned
// becomes skip (the box's TCP is not the target's to be blamed for),
// closed-port scenarios skip, the rest keep their verdict with a note.
func explainProxy(r *report.Result, f *Finding, box, host string) bool {
	label := fmt.Sprintf("answered by %s, not by %s", box, host)
	cause := report.Cause("path:" + string(f.Kind))
	switch {
	case matches(closedPortScenarios, r.Name) && r.Verdict != report.Skip:
		r.Notes = append(r.Notes, fmt.Sprintf("without the path finding: %s: %s", r.Verdict, r.Reason))
		r.Verdict, r.Cause = report.Skip, cause
		r.Reason = fmt.Sprintf("path: closed-port scenario skipped: %s (%s) answers for %s's ports", box, describe(f.Kind), host)
		return true
	case r.Verdict == report.Fail || r.Verdict == report.Warn:
		r.Notes = append(r.Notes, fmt.Sprintf("without the path finding: %s: %s", r.Verdict, r.Reason))
		r.Verdict, r.Cause = report.Skip, cause
		r.Reason = fmt.Sprintf("path: %s (%s): %s", label, describe(f.Kind), r.Reason)
		return true
	}
	r.Notes = append(r.Notes, "path: "+label)
	return false
}

// Merge adds the probes, findings and coverage of b to a (a second trace
// of other families), keeping the first finding of each kind, and
// returns a (b when a is nil).
func Merge(a, b *Result) *Result {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	a.Probes = append(a.Probes, b.Probes...)
	for _, f := range b.Findings {
		if find(a, []Kind{f.Kind}) == nil {
			a.Findings = append(a.Findings, f)
		}
	}
	for _, c := range b.Coverage {
		if !slices.Contains(a.Coverage, c) {
			a.Coverage = append(a.Coverage, c)
		}
	}
	a.Verdict = report.Worst(a.Verdict, b.Verdict)
	return a
}

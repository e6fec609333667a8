package report

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// Verdict is the judgement of a step or a result.
type Verdict string

// Verdicts (DESIGN.md). A target is never blamed for what the local host,
// the path or the target's application did: those are Error and Skip.
const (
	Pass Verdict = "pass"
	// Fail: a MUST was broken, or the script's expectation was not met.
	Fail Verdict = "fail"
	// Warn: a SHOULD was not met.
	Warn Verdict = "warn"
	// Info: implementation-defined behaviour, reported as observed.
	Info Verdict = "info"
	// Skip: cannot be judged from the wire (the application did not act,
	// the run lacks something the check needs).
	Skip Verdict = "skip"
	// Error: synprobe or the local host failed.
	Error Verdict = "error"
)

// Verdicts lists every verdict, in the order summaries show them.
var Verdicts = []Verdict{Pass, Fail, Warn, Info, Skip, Error}

// rank orders verdicts for Worst: what matters most wins.
func (v Verdict) rank() int {
	switch v {
	case Error:
		return 6
	case Fail:
		return 5
	case Warn:
		return 4
	case Info:
		return 3
	case Pass:
		return 2
	case Skip:
		return 1
	}
	return 0
}

// Valid reports whether v is one of the six verdicts.
func (v Verdict) Valid() bool { return v.rank() > 0 }

// Worst combines verdicts: error over fail over warn over info over pass;
// skip only when nothing else was judged.
func Worst(vs ...Verdict) Verdict {
	var w Verdict
	for _, v := range vs {
		if v.rank() > w.rank() {
			w = v
		}
	}
	return w
}

// Direction says what a step did.
type Direction string

const (
	// Send: synprobe sent a segment.
	Send Direction = "send"
	// Expect: synprobe waited for a segment (or for silence).
	Expect Direction = "expect"
	// Observe: a check over what was seen, not tied to one segment.
	Observe Direction = "observe"
)

// Report is the outcome of one synprobe command.
type Report struct {
	Command string    `json:"command"`
	Target  Target    `json:"target"`
	Started time.Time `json:"started"`
	// DurationMS is the wall time of the whole run.
	DurationMS  float64  `json:"duration_ms"`
	Results     []Result `json:"results"`
	Fingerprint any      `json:"fingerprint,omitempty"`
	// Application is what the target's application does, learned before
	// the suite (conformance.Application).
	Application any `json:"application,omitempty"`
	// Path is what the path check found (trace.Check): present whenever
	// it ran.
	Path    any     `json:"path,omitempty"`
	Summary Summary `json:"summary"`
	// Notes are facts about the run that are not verdicts: the RST guard
	// used, frames dropped locally, lines of a script that were ignored.
	Notes []string `json:"notes,omitempty"`
}

// Target says what was probed and from where.
type Target struct {
	// Address is what the user named: "192.0.2.2:80", a capture file.
	Address   string `json:"address"`
	Host      string `json:"host,omitempty"`
	Port      int    `json:"port,omitempty"`
	Source    string `json:"source,omitempty"`
	Interface string `json:"interface,omitempty"`
	// Lab names the lab stack ("linux", "gvisor") when the target is one.
	Lab string `json:"lab,omitempty"`
}

// Result is the outcome of one check.
type Result struct {
	Name        string  `json:"name"`
	Description string  `json:"description,omitempty"`
	File        string  `json:"file,omitempty"`
	Level       string  `json:"level,omitempty"` // MUST, SHOULD, info
	RFC         string  `json:"rfc,omitempty"`
	Verdict     Verdict `json:"verdict"`
	// Reason says why, in one line: the first problem of the step that
	// decided the verdict.
	Reason string `json:"reason,omitempty"`
	// Cause says what decided a verdict other than pass: the stack, the
	// application, a premise, the path or the local host (see Cause).
	Cause      Cause    `json:"cause,omitempty"`
	DurationMS float64  `json:"duration_ms"`
	Steps      []Step   `json:"steps"`
	Notes      []string `json:"notes,omitempty"`
	// Retry is set when the check could not be judged because the target
	// was busy with the run's other checks (its listener dropped the
	// opening SYN): the caller may run it again alone.
	Retry bool `json:"-"`
}

// MarshalJSON writes Steps as [] when there are none (a result decided
// before any step, such as an early skip), never null.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result // without this method
	if r.Steps == nil {
		r.Steps = []Step{}
	}
	return json.Marshal(plain(r))
}

// Step is one line of the exchange.
type Step struct {
	Index     int       `json:"index"`
	Line      int       `json:"line,omitempty"` // script line
	Text      string    `json:"text,omitempty"` // script text of the line
	Direction Direction `json:"direction"`
	Verdict   Verdict   `json:"verdict"`
	// Expected is what synprobe sent (send) or expected (expect).
	Expected string `json:"expected"`
	// Actual is what went out (send) or arrived (expect), in the script's
	// relative sequence space where there is one; ActualAbs in absolute
	// numbers.
	Actual    string   `json:"actual"`
	ActualAbs string   `json:"actual_abs,omitempty"`
	Problems  []string `json:"problems,omitempty"`
	// Cause says what decided a step's verdict when it is not the stack's
	// behaviour (skip, error), or when a rule judged the stack.
	Cause Cause `json:"cause,omitempty"`
	// From names the endpoint that sent the segment an observed step
	// judges (capture analysis judges both ends of a connection).
	From string `json:"from,omitempty"`
	// RTTMicros is the time from the segment that caused this reply to the
	// reply, from kernel timestamps.
	RTTMicros *float64 `json:"rtt_us,omitempty"`
	// AtMS is when the step happened, from the start of its check.
	AtMS float64 `json:"at_ms"`
	// Fields name what the step's problems concern, by rule ("options",
	// "ack", "rst-seq", ...; "reply" when nothing came): a path finding
	// explains a step only through a field the path changed.
	Fields []string `json:"-"`
}

// Summary counts results by verdict.
type Summary map[Verdict]int

// MarshalJSON writes every verdict, zero counts too, in a fixed order.
func (s Summary) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, v := range Verdicts {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%d", v, s[v])
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

// RTT converts a duration to the value of Step.RTTMicros.
func RTT(d time.Duration) *float64 {
	us := math.Round(float64(d.Nanoseconds())) / 1000
	return &us
}

// Millis converts a duration to milliseconds with microsecond precision.
func Millis(d time.Duration) float64 { return math.Round(float64(d.Microseconds())) / 1000 }

// Judge sets r.Verdict, r.Reason and r.Cause from the steps unless they
// are set already: the worst step verdict decides, the reason is that
// step's first problem and the cause is that step's. A fail, warn or info
// with no cause named is the stack's.
func (r *Result) Judge() {
	defer r.defaultCause()
	if r.Verdict != "" {
		return
	}
	vs := make([]Verdict, 0, len(r.Steps))
	for _, s := range r.Steps {
		vs = append(vs, s.Verdict)
	}
	r.Verdict = Worst(vs...)
	// A step skipped for a cause (the application, a premise) means the
	// check could not be completed: nothing that passed before it makes
	// the result a pass.
	if r.Verdict == Pass || r.Verdict == Info {
		for _, s := range r.Steps {
			if s.Verdict == Skip && s.Cause != "" {
				r.Verdict, r.Cause = Skip, s.Cause
				if r.Reason == "" && len(s.Problems) > 0 {
					r.Reason = s.Problems[0]
				}
				return
			}
		}
	}
	if r.Verdict == "" {
		r.Verdict = Skip
		if r.Reason == "" {
			r.Reason = "nothing was judged"
			if r.Cause == "" {
				r.Cause = CausePremiseNothing
			}
		}
		return
	}
	for _, s := range r.Steps {
		if s.Verdict == r.Verdict && r.Verdict != Pass {
			if r.Cause == "" {
				r.Cause = s.Cause
			}
			if r.Reason != "" {
				return
			}
			r.Reason = s.Verdict.String() + " at step " + fmt.Sprint(s.Index)
			if s.Line > 0 {
				r.Reason = fmt.Sprintf("%s at line %d", s.Verdict, s.Line)
			}
			if len(s.Problems) > 0 {
				r.Reason += ": " + s.Problems[0]
			}
			return
		}
	}
}

// defaultCause names the stack as the cause of a fail, warn or info that
// names none, and clears the cause of a pass.
func (r *Result) defaultCause() {
	switch r.Verdict {
	case Pass:
		r.Cause = ""
	case Fail, Warn, Info:
		if r.Cause == "" {
			r.Cause = CauseStack
		}
	}
}

// Decide sets a verdict with its cause and reason, unless a step already
// failed or warned: a cause explains a result, it never hides a failure
// that came before it.
func (r *Result) Decide(v Verdict, c Cause, reason string) {
	for _, s := range r.Steps {
		if (s.Verdict == Fail || s.Verdict == Warn) && v != Error {
			return
		}
	}
	r.Verdict, r.Cause, r.Reason = v, c, reason
}

func (v Verdict) String() string { return string(v) }

// Finish judges every result and computes the summary; results keep their
// order.
func (rep *Report) Finish() {
	rep.Summary = Summary{}
	for i := range rep.Results {
		rep.Results[i].Judge()
		rep.Summary[rep.Results[i].Verdict]++
	}
}

// ExitCode maps the report to synprobe's exit codes: 1 when a check
// failed, else 3 when synprobe or the local host failed (error), else 0.
func (rep *Report) ExitCode() int {
	switch {
	case rep.Summary[Fail] > 0:
		return 1
	case rep.Summary[Error] > 0:
		return 3
	}
	return 0
}

// Total is the number of results counted.
func (s Summary) Total() int {
	n := 0
	for _, v := range s {
		n += v
	}
	return n
}

// Counts formats the summary as "3 pass, 1 fail" (verdicts with a count).
func (s Summary) Counts() string {
	var parts []string
	for _, v := range Verdicts {
		if s[v] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", s[v], v))
		}
	}
	if len(parts) == 0 {
		return "no results"
	}
	return strings.Join(parts, ", ")
}

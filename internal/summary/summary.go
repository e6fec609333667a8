package summary

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"sort"
	"strings"

	"synprobe/conformance/report"
	"synprobe/internal/targets"
)

// Summary is what the lines of many runs add up to.
type Summary struct {
	Files int `json:"files"`
	Lines int `json:"lines"`
	// Targets counts the distinct targets counted (reports and swept
	// ports); Duplicates the lines of targets already counted;
	// Interrupted the targets whose only lines were interrupted (not
	// counted below).
	Targets     int `json:"targets"`
	Duplicates  int `json:"duplicates"`
	Interrupted int `json:"interrupted"`
	// Commands counts reports by command (audit, handshake; sweep for
	// swept ports).
	Commands map[string]int `json:"commands"`
	// Worst counts targets by their worst verdict (the verdict of the
	// target as a whole), of the commands that judge the target's stack:
	// a trace's verdict is the path's (its scenario row "trace" and the
	// path findings count it).
	Worst map[report.Verdict]int `json:"worst_verdict"`
	// Scenarios counts, per scenario, targets by verdict and by cause.
	Scenarios []*Scenario `json:"scenarios"`
	// Fingerprints are the clusters of identical fingerprints, largest
	// first.
	Fingerprints []*Cluster `json:"fingerprints"`
	// Paths counts path findings by kind and verdict; PathWalked the
	// targets whose lines have a path object (audit and handshake
	// --path-check, trace), PathClean those of them that passed with no
	// finding: the denominators of the findings.
	Paths      []*PathKind `json:"path_findings"`
	PathWalked int         `json:"path_walked"`
	PathClean  int         `json:"path_clean"`
	// Sweep counts swept ports by state.
	Sweep map[string]int `json:"sweep,omitempty"`

	scenarios map[string]*Scenario
	clusters  map[Fingerprint]*Cluster
	paths     map[[2]string]*PathKind
	// seen holds the targets counted, per command: an audit and a sweep
	// of one HOST:PORT are two lines to count, two runs of one command a
	// repeat.
	seen map[seenKey]struct{}
	// interrupted holds targets seen only in interrupted lines so far.
	interrupted map[seenKey]struct{}
	// errored holds the last line of each target whose lines so far all
	// had an error and no fail (this host could not check it): a run
	// resumed with --resume checks it again and appends a line, which
	// then counts instead. Finish counts those left.
	errored map[seenKey]*line
}

// Scenario is one scenario's row.
type Scenario struct {
	Name    string                 `json:"name"`
	Targets int                    `json:"targets"`
	Counts  map[report.Verdict]int `json:"verdicts"`
	// Causes count the results that did not pass, by verdict and cause.
	Causes []*CauseCount `json:"causes,omitempty"`
}

// CauseCount is how many targets got a verdict for a cause.
type CauseCount struct {
	Verdict report.Verdict `json:"verdict"`
	Cause   report.Cause   `json:"cause"`
	Count   int            `json:"count"`
	// Example is one reason given, to read what the cause looked like.
	Example string `json:"example,omitempty"`
}

// Fingerprint is the part of a stack's fingerprint that clusters: the
// SYN-ACK's option layout, its initial TTL and window, and the ISN and
// timestamp clocks ("-" where unknown: sweeps see no clocks).
type Fingerprint struct {
	Options    string `json:"options"`
	InitialTTL string `json:"initial_ttl"`
	Window     string `json:"window"`
	ISN        string `json:"isn_clock"`
	Timestamps string `json:"ts_clock"`
}

// Cluster is a fingerprint and how many targets have it.
type Cluster struct {
	Fingerprint
	Count int `json:"count"`
}

// PathKind counts the targets with a path finding of one kind.
type PathKind struct {
	Kind    string `json:"kind"`
	Verdict string `json:"verdict"`
	Count   int    `json:"count"`
}

// New returns an empty Summary.
func New() *Summary {
	return &Summary{
		Commands: map[string]int{}, Worst: map[report.Verdict]int{},
		scenarios: map[string]*Scenario{}, clusters: map[Fingerprint]*Cluster{},
		paths: map[[2]string]*PathKind{}, seen: map[seenKey]struct{}{},
		interrupted: map[seenKey]struct{}{}, errored: map[seenKey]*line{},
	}
}

// line is what a summary reads of a line: a report (audit, handshake)
// or a swept port.
type line struct {
	Command     string          `json:"command"`
	Target      json.RawMessage `json:"target"`
	Interrupted bool            `json:"interrupted"`
	Results     []struct {
		Name    string         `json:"name"`
		Verdict report.Verdict `json:"verdict"`
		Cause   report.Cause   `json:"cause"`
		Reason  string         `json:"reason"`
	} `json:"results"`
	Fingerprint *fingerprint `json:"fingerprint"`
	Path        *struct {
		Verdict  report.Verdict `json:"verdict"`
		Findings []struct {
			Kind    string `json:"kind"`
			Verdict string `json:"verdict"`
		} `json:"findings"`
	} `json:"path"`

	// synprobe sweep
	Addr    string  `json:"addr"`
	Port    int     `json:"port"`
	State   string  `json:"state"`
	TTL     int     `json:"ttl"`
	Window  *int    `json:"window"`
	Options *string `json:"options"`
}

type fingerprint struct {
	TTL struct {
		Initial *int `json:"initial"`
	} `json:"ttl"`
	SYNACK struct {
		Window  *int   `json:"window"`
		Options string `json:"options"`
	} `json:"syn_ack"`
	ISN struct {
		OneTuple struct {
			RateHz *float64 `json:"rate_hz"`
		} `json:"one_4tuple"`
		Adjacent struct {
			RandomBits *float64 `json:"random_bits"`
		} `json:"adjacent_ports"`
	} `json:"isn"`
	Timestamps struct {
		Answered  *bool    `json:"answered"`
		RateHz    *float64 `json:"rate_hz"`
		NominalHz float64  `json:"nominal_hz"`
		PerTuple  *bool    `json:"per_4tuple_offsets"`
	} `json:"timestamps"`
}

// LineError is a line that is not a report or sweep line (FILE:LINE:
// problem, as --targets says it).
type LineError = targets.LineError

// Read adds the lines of one file. A last line cut short (a run killed
// while writing) is skipped; any other bad line is an error.
func (s *Summary) Read(r io.Reader, name string) error {
	s.Files++
	br := bufio.NewReaderSize(r, 1<<16)
	for n := 1; ; n++ {
		b, err := br.ReadBytes('\n')
		if len(b) == 0 && err == io.EOF {
			return nil
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("read %s: %w", name, err)
		}
		last := err == io.EOF
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		if aerr := s.add(b); aerr != nil {
			if last && !json.Valid(b) {
				return nil
			}
			return &LineError{Name: name, Line: n, Err: aerr}
		}
		if last {
			return nil
		}
	}
}

// seenKey is a target of one command.
type seenKey struct {
	command string
	target  netip.AddrPort
}

func (s *Summary) add(b []byte) error {
	var l line
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("not a JSON line of synprobe (--format jsonl, sweep): %v", err)
	}
	s.Lines++
	if l.Addr != "" && l.State != "" {
		return s.addSweep(&l)
	}
	if l.Command == "" || l.Target == nil {
		return errors.New(`neither a report (command, target) nor a sweep line (addr, state)`)
	}
	ap, err := targets.TargetOf(l.Target)
	if err != nil {
		return err
	}
	key := seenKey{l.Command, ap}
	if _, ok := s.seen[key]; ok {
		s.Duplicates++
		return nil
	}
	if l.Interrupted {
		if _, ok := s.errored[key]; !ok {
			s.interrupted[key] = struct{}{}
		}
		return nil
	}
	delete(s.interrupted, key)
	if l.errored() {
		s.errored[key] = &l
		return nil
	}
	delete(s.errored, key)
	s.count(key, &l)
	return nil
}

// errored reports whether a report line had an error and no fail: this
// host could not check the target (report.Report.ExitCode 3).
func (l *line) errored() bool {
	errs := false
	for _, r := range l.Results {
		switch r.Verdict {
		case report.Fail:
			return false
		case report.Error:
			errs = true
		}
	}
	return errs
}

// count counts the line of a target: its verdicts, fingerprint and path.
func (s *Summary) count(key seenKey, l *line) {
	s.seen[key] = struct{}{}
	s.Targets++
	s.Commands[l.Command]++
	var verdicts []report.Verdict
	for _, r := range l.Results {
		sc := s.scenarios[r.Name]
		if sc == nil {
			sc = &Scenario{Name: r.Name, Counts: map[report.Verdict]int{}}
			s.scenarios[r.Name] = sc
		}
		sc.Targets++
		sc.Counts[r.Verdict]++
		verdicts = append(verdicts, r.Verdict)
		if r.Verdict != report.Pass {
			sc.addCause(r.Verdict, r.Cause, r.Reason)
		}
	}
	if w := report.Worst(verdicts...); w != "" && l.Command != "trace" {
		s.Worst[w]++
	}
	if f := l.Fingerprint; f != nil {
		s.addCluster(Fingerprint{
			Options:    layoutOfText(f.SYNACK.Options),
			InitialTTL: intText(f.TTL.Initial),
			Window:     intText(f.SYNACK.Window),
			ISN:        isnClock(f),
			Timestamps: tsClock(f),
		})
	}
	if l.Path != nil {
		s.PathWalked++
		if len(l.Path.Findings) == 0 && l.Path.Verdict == report.Pass {
			s.PathClean++
		}
		kinds := map[[2]string]bool{}
		for _, f := range l.Path.Findings {
			kinds[[2]string{f.Kind, f.Verdict}] = true // a target counts once per kind
		}
		for k := range kinds {
			p := s.paths[k]
			if p == nil {
				p = &PathKind{Kind: k[0], Verdict: k[1]}
				s.paths[k] = p
			}
			p.Count++
		}
	}
}

func (sc *Scenario) addCause(v report.Verdict, c report.Cause, reason string) {
	for _, cc := range sc.Causes {
		if cc.Verdict == v && cc.Cause == c {
			cc.Count++
			return
		}
	}
	sc.Causes = append(sc.Causes, &CauseCount{Verdict: v, Cause: c, Count: 1, Example: reason})
}

func (s *Summary) addSweep(l *line) error {
	a, err := netip.ParseAddr(l.Addr)
	if err != nil || l.Port < 1 || l.Port > 65535 {
		return fmt.Errorf("sweep line: addr %q port %d is not a target", l.Addr, l.Port)
	}
	key := seenKey{"sweep", netip.AddrPortFrom(a.Unmap(), uint16(l.Port))}
	if _, ok := s.seen[key]; ok {
		s.Duplicates++
		return nil
	}
	s.seen[key] = struct{}{}
	s.Targets++
	s.Commands["sweep"]++
	if s.Sweep == nil {
		s.Sweep = map[string]int{}
	}
	s.Sweep[l.State]++
	if l.State == "open" {
		opts := "-"
		if l.Options != nil {
			opts = layoutOfList(*l.Options)
		}
		ttl := "-"
		if l.TTL > 0 {
			ttl = fmt.Sprint(initialTTL(l.TTL))
		}
		s.addCluster(Fingerprint{Options: opts, InitialTTL: ttl, Window: intText(l.Window), ISN: "-", Timestamps: "-"})
	}
	return nil
}

func (s *Summary) addCluster(f Fingerprint) {
	c := s.clusters[f]
	if c == nil {
		c = &Cluster{Fingerprint: f}
		s.clusters[f] = c
	}
	c.Count++
}

// initialTTL is the TTL a stack most likely started from: the next of
// the usual initial values (32, 64, 128, 255) at or above the one seen.
func initialTTL(ttl int) int {
	for _, t := range []int{32, 64, 128} {
		if ttl <= t {
			return t
		}
	}
	return 255
}

func intText(p *int) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

// layoutOfText turns the fingerprint's option text, "<mss 1460,sackOK,TS
// val 1 ecr 2,nop,wscale 8>", into a layout: M,S,T,N,W8 (the window scale
// keeps its value, which tells stacks apart; the MSS follows the path).
func layoutOfText(s string) string {
	s = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "<"), ">")
	if s == "" {
		return "-"
	}
	var out []string
	for _, o := range strings.Split(s, ",") {
		f := strings.Fields(o)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "mss":
			out = append(out, "M")
		case "sackOK":
			out = append(out, "S")
		case "TS":
			out = append(out, "T")
		case "nop":
			out = append(out, "N")
		case "eol":
			out = append(out, "E")
		case "wscale":
			w := "W"
			if len(f) > 1 {
				w += f[1]
			}
			out = append(out, w)
		default:
			out = append(out, f[0])
		}
	}
	return strings.Join(out, ",")
}

// layoutOfList turns a sweep's options, "M1460,S,T,N,W7", into a layout
// as layoutOfText writes it.
func layoutOfList(s string) string {
	if s == "" {
		return "-"
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		if strings.HasPrefix(p, "M") {
			parts[i] = "M"
		}
	}
	return strings.Join(parts, ",")
}

// isnClock names how a stack picks ISNs: "random" when those of adjacent
// ports look random (20 bits or more), else how few random bits they
// have, and the rate the ISN grows at on one 4-tuple.
func isnClock(f *fingerprint) string {
	var parts []string
	if rb := f.ISN.Adjacent.RandomBits; rb != nil && *rb >= 20 {
		parts = append(parts, "random")
	} else if rb != nil {
		parts = append(parts, fmt.Sprintf("predictable (%.0f random bits)", *rb))
	}
	if r := f.ISN.OneTuple.RateHz; r != nil {
		parts = append(parts, hz(*r)+" per 4-tuple")
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// tsClock names the timestamp clock: its nominal rate, else the rate
// measured, and whether each 4-tuple sees its own offset (Linux since
// 4.10) or one clock is shared (the TSval tells the uptime); "none" when
// the SYN-ACK carried no timestamps.
func tsClock(f *fingerprint) string {
	t := f.Timestamps
	var clock string
	switch {
	case t.Answered != nil && !*t.Answered:
		return "none"
	case t.NominalHz > 0:
		clock = hz(t.NominalHz)
	case t.RateHz != nil:
		clock = "~" + hz(*t.RateHz)
	default:
		clock = "-"
	}
	switch {
	case t.PerTuple == nil:
	case *t.PerTuple:
		clock += ", offset per 4-tuple"
	default:
		clock += ", one offset"
	}
	return clock
}

// hz writes a rate with three significant digits: 1000Hz, 15.6MHz.
func hz(r float64) string {
	unit := "Hz"
	for _, u := range []string{"kHz", "MHz", "GHz"} {
		if math.Abs(r) < 1000 {
			break
		}
		r /= 1000
		unit = u
	}
	return fmt.Sprintf("%.3g%s", r, unit)
}

// Finish orders the tables and counts the targets that were only
// interrupted; call it after the last Read.
func (s *Summary) Finish() {
	// The targets whose every line had an error count with the last one,
	// in a fixed order: the first of a cause gives its example.
	keys := make([]seenKey, 0, len(s.errored))
	for k := range s.errored {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].command != keys[j].command {
			return keys[i].command < keys[j].command
		}
		return keys[i].target.Compare(keys[j].target) < 0
	})
	for _, k := range keys {
		s.count(k, s.errored[k])
		delete(s.errored, k)
	}
	s.Interrupted = len(s.interrupted)
	s.Scenarios = s.Scenarios[:0]
	for _, sc := range s.scenarios {
		sort.Slice(sc.Causes, func(i, j int) bool {
			a, b := sc.Causes[i], sc.Causes[j]
			if a.Count != b.Count {
				return a.Count > b.Count
			}
			if a.Verdict != b.Verdict {
				return a.Verdict < b.Verdict
			}
			return a.Cause < b.Cause
		})
		s.Scenarios = append(s.Scenarios, sc)
	}
	sort.Slice(s.Scenarios, func(i, j int) bool { return s.Scenarios[i].Name < s.Scenarios[j].Name })
	s.Fingerprints = s.Fingerprints[:0]
	for _, c := range s.clusters {
		s.Fingerprints = append(s.Fingerprints, c)
	}
	sort.Slice(s.Fingerprints, func(i, j int) bool {
		a, b := s.Fingerprints[i], s.Fingerprints[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return fmt.Sprint(a.Fingerprint) < fmt.Sprint(b.Fingerprint)
	})
	s.Paths = s.Paths[:0]
	for _, p := range s.paths {
		s.Paths = append(s.Paths, p)
	}
	sort.Slice(s.Paths, func(i, j int) bool {
		a, b := s.Paths[i], s.Paths[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Kind+a.Verdict < b.Kind+b.Verdict
	})
}

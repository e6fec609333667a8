package conformance

import (
	"fmt"
	"slices"
	"strings"

	"synprobe/conformance/report"
	"synprobe/probe"
)

// Level is the strength of a requirement.
type Level int

const (
	// Must: RFC MUST; breaking it fails.
	Must Level = iota
	// Should: RFC SHOULD; breaking it warns.
	Should
	// Observed: implementation-defined; reported as info.
	Observed
)

// Verdict is the verdict a broken requirement of this level earns.
func (l Level) Verdict() report.Verdict {
	switch l {
	case Should:
		return report.Warn
	case Observed:
		return report.Info
	}
	return report.Fail
}

func (l Level) String() string {
	switch l {
	case Should:
		return "SHOULD"
	case Observed:
		return "info"
	}
	return "MUST"
}

// ParseLevel reads "MUST", "SHOULD" or "info" (any case).
func ParseLevel(s string) (Level, error) {
	switch s {
	case "MUST", "must":
		return Must, nil
	case "SHOULD", "should":
		return Should, nil
	case "info", "INFO", "observed":
		return Observed, nil
	}
	return 0, fmt.Errorf("unknown level %q (want MUST, SHOULD or info)", s)
}

// Problem is one requirement a segment broke.
type Problem struct {
	Rule  string // a short name: "synack-ack"
	Level Level
	Text  string // "ack: want ISN+1 (8221823), got 8221822"
}

func (p Problem) String() string { return p.Text }

// Problems is a list of problems.
type Problems []Problem

func (ps *Problems) add(rule string, level Level, format string, args ...any) {
	*ps = append(*ps, Problem{Rule: rule, Level: level, Text: fmt.Sprintf(format, args...)})
}

// Verdict is the verdict the problems earn: the worst of their levels,
// pass when there are none.
func (ps Problems) Verdict() report.Verdict {
	v := report.Pass
	for _, p := range ps {
		v = report.Worst(v, p.Level.Verdict())
	}
	return v
}

// Rules returns the rules the problems broke, each once, in order: what
// a step's problems concern (report.Step.Fields).
func (ps Problems) Rules() []string {
	var out []string
	for _, p := range ps {
		if !slices.Contains(out, p.Rule) {
			out = append(out, p.Rule)
		}
	}
	return out
}

// Texts returns the problems' texts.
func (ps Problems) Texts() []string {
	if len(ps) == 0 {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Text
	}
	return out
}

// WellFormed checks that a segment from the target is well formed (RFC 9293
// 3.1): checksums valid (one the kernel has not finished is not a fault),
// a data offset of at least 5 within the segment, sane option lengths,
// only zeros after EOL, no MSS outside a SYN, reserved bits zero.
func WellFormed(f *probe.Frame, decodeErr error) Problems {
	var ps Problems
	if decodeErr != nil {
		ps.add("well-formed", Must, "malformed: %v", decodeErr)
		return ps
	}
	if f.IP.Version == 4 && f.IPChecksum == probe.ChecksumInvalid {
		ps.add("ip-checksum", Must, "IPv4 header checksum 0x%04x is wrong", f.IP.Checksum)
	}
	if f.Checksum == probe.ChecksumInvalid {
		ps.add("tcp-checksum", Must, "TCP checksum 0x%04x is wrong", f.TCP.Checksum)
	}
	if !f.Has(probe.LayerTCP) {
		return ps
	}
	t := &f.TCP
	if t.OptionsErr != nil {
		ps.add("option-length", Must, "%v", t.OptionsErr)
	}
	for _, o := range t.Options {
		if err := o.Validate(); err != nil {
			ps.add("option-length", Must, "%v", err)
		}
		if o.Kind == probe.OptionEOL {
			for _, b := range o.Data {
				if b != 0 {
					ps.add("option-padding", Must, "non-zero byte 0x%02x after EOL (padding must be zero)", b)
					break
				}
			}
		}
		if o.Kind == probe.OptionMSS && t.Flags&probe.SYN == 0 {
			ps.add("mss-outside-syn", Must, "MSS option in a segment without SYN")
		}
	}
	if t.Reserved&0x0e != 0 {
		ps.add("reserved-bits", Must, "reserved bits set: 0x%x (must be zero)", t.Reserved&0x0e)
	}
	return ps
}

// SYNACK checks a SYN-ACK against the SYN it answers (RFC 9293 3.10.7.2):
// SYN and ACK set and no RST or FIN, ack = ISN+1 (plus any SYN data the
// target accepted: it may only acknowledge it with Fast Open), and ECE
// only in answer to ECE+CWR (RFC 3168 6.1.1).
func SYNACK(syn, synack *probe.TCP) Problems {
	var ps Problems
	if synack.Flags&(probe.SYN|probe.ACK) != probe.SYN|probe.ACK {
		ps.add("synack-flags", Must, "flags: want S. (SYN and ACK), got %s", synack.Flags)
	}
	if synack.Flags&(probe.RST|probe.FIN) != 0 {
		ps.add("synack-flags", Must, "flags: RST or FIN in a SYN-ACK: %s", synack.Flags)
	}
	want := syn.Seq.Add(1)
	if synack.Ack != want {
		_, fastOpen := syn.Option(probe.OptionFastOpen)
		if !(fastOpen && synack.Ack == syn.End()) {
			ps.add("synack-ack", Must, "ack: want ISN+1 (%d), got %d (ISN%+d)", uint32(want), uint32(synack.Ack), synack.Ack.Sub(syn.Seq))
		}
	}
	if synack.Flags&probe.ECE != 0 && !syn.Flags.Has(probe.ECE|probe.CWR) {
		ps.add("synack-ecn", Must, "ECE in the SYN-ACK of a SYN that did not ask for ECN (RFC 3168 6.1.1)")
	}
	if synack.Flags&probe.CWR != 0 {
		ps.add("synack-ecn", Must, "CWR in a SYN-ACK (RFC 3168 6.1.1: ECN-setup SYN-ACK has ECE, not CWR)")
	}
	return ps
}

// OptionsOffered checks that a SYN-ACK carries the options a SYN may be
// answered with only when the SYN offered them: window scale (RFC 7323
// 2.2), timestamps (RFC 7323 3.2), SACK-permitted (RFC 2018), Fast Open
// cookies (RFC 7413 4.1.2). An unknown option in the SYN is never echoed.
func OptionsOffered(syn, synack *probe.TCP) Problems {
	var ps Problems
	if _, ok := synack.Option(probe.OptionWScale); ok {
		if _, offered := syn.Option(probe.OptionWScale); !offered {
			ps.add("wscale-offered", Must, "window scale in the SYN-ACK, but the SYN offered none (RFC 7323 2.2)")
		}
	}
	if _, ok := synack.Option(probe.OptionTimestamps); ok {
		if _, offered := syn.Option(probe.OptionTimestamps); !offered {
			ps.add("ts-offered", Must, "timestamps in the SYN-ACK, but the SYN offered none (RFC 7323 3.2)")
		}
	}
	if synack.SACKPermitted() && !syn.SACKPermitted() {
		ps.add("sack-offered", Must, "SACK-permitted in the SYN-ACK, but the SYN offered none (RFC 2018)")
	}
	for _, o := range synack.Options {
		if c, ok := o.FastOpenCookie(); ok && len(c) > 0 {
			requested := false
			for _, so := range syn.Options {
				if _, ok := so.FastOpenCookie(); ok {
					requested = true
				}
			}
			if !requested {
				ps.add("tfo-offered", Must, "Fast Open cookie in the SYN-ACK, but the SYN did not ask (RFC 7413 4.1.2)")
			}
		}
		if o.Kind == probe.OptionSACK {
			ps.add("sack-in-synack", Must, "SACK blocks in a SYN-ACK")
		}
	}
	known := map[probe.OptionKind]bool{probe.OptionEOL: true, probe.OptionNOP: true, probe.OptionMSS: true, probe.OptionWScale: true,
		probe.OptionSACKPermitted: true, probe.OptionTimestamps: true, probe.OptionFastOpen: true, probe.OptionExperimental: true}
	for _, so := range syn.Options {
		if known[so.Kind] {
			continue
		}
		for _, o := range synack.Options {
			if o.Kind == so.Kind {
				ps.add("unknown-echoed", Must, "option kind %d, unknown, sent in the SYN and echoed in the SYN-ACK", uint8(so.Kind))
			}
		}
	}
	return ps
}

// TSEcho checks a timestamp option on a segment from the target once
// timestamps are in use (RFC 7323 3.2, 4.3): it is present on every
// segment but RST, TSecr echoes the last TSval synprobe sent (if ack is
// set), and TSval does not go backwards.
func TSEcho(ts TSState, t *probe.TCP) Problems {
	var ps Problems
	if !ts.Enabled || t.Flags&probe.RST != 0 {
		return ps
	}
	val, ecr, ok := t.Timestamps()
	if !ok {
		ps.add("ts-present", Must, "no timestamps option, but timestamps were negotiated (RFC 7323 3.2)")
		return ps
	}
	switch {
	case t.Flags&probe.ACK == 0:
	case len(ts.hist) > 0:
		// TS.Recent as the target keeps it from synprobe's segments.
		if want := ts.echoable(t.Ack, true); len(want) > 0 && !slices.Contains(want, ecr) {
			ps.add("ts-echo", Must, "TSecr: want %s (TS.Recent, from synprobe's segments at or left of the target's last ACK: RFC 7323 4.3), got %d", tsList(want), ecr)
		}
	case ts.SentAny && ecr != ts.LastSent && ecr != ts.PrevSent:
		ps.add("ts-echo", Must, "TSecr: want %d (the TSval synprobe last sent), got %d", ts.LastSent, ecr)
	}
	if ts.ReceivedAny && int32(val-ts.LastReceived) < 0 {
		ps.add("ts-monotonic", Must, "TSval went backwards: %d after %d", val, ts.LastReceived)
	}
	return ps
}

// TSState is what synprobe knows of the timestamps on a connection.
type TSState struct {
	// Enabled once both SYNs carried timestamps.
	Enabled bool
	// LastSent and PrevSent are the last two TSvals synprobe sent: a
	// target may echo either when two segments cross.
	LastSent, PrevSent uint32
	SentAny            bool
	// MaxSent is the highest TSval synprobe sent (in 32-bit sequence
	// order): segments synprobe adds on its own carry it, so that they
	// never look older than what the target has seen.
	MaxSent uint32
	// LastReceived is the target's last TSval.
	LastReceived uint32
	ReceivedAny  bool

	// hist is what TS.Recent may hold after each of synprobe's last
	// segments (SentSegment); recvAt how many there were when the target's
	// last segment came.
	hist   []tsPoint
	recvAt int
}

// TSUpdate says whether a segment sent updates the receiver's TS.Recent.
type TSUpdate uint8

const (
	// TSNever: beyond a gap, or a RST.
	TSNever TSUpdate = iota
	// TSMay: the receiver may or may not have taken it.
	TSMay
	// TSMust: at or left of the receiver's last ACK, acceptable.
	TSMust
)

// maxTSRecent bounds the values TS.Recent is tracked as possibly holding;
// maxTSHistory the segments remembered.
const (
	maxTSRecent  = 8
	maxTSHistory = 32
)

// tsPoint is what TS.Recent may hold after a segment synprobe sent, and
// where the segment's sequence space ends (data: it had any).
type tsPoint struct {
	end    probe.Seq
	data   bool
	recent []uint32
}

// SentSegment records the TSval of a segment synprobe sent, where its
// sequence space ends and how it updates the receiver's TS.Recent (RFC
// 7323 4.3): the values TS.Recent may hold follow, PAWS included (an older
// TSval is not taken).
func (ts *TSState) SentSegment(val uint32, u TSUpdate, seq, end probe.Seq) {
	ts.Sent(val)
	var cur []uint32
	if n := len(ts.hist); n > 0 {
		cur = ts.hist[n-1].recent
	}
	var next []uint32
	if len(cur) == 0 && u != TSNever {
		next = []uint32{val}
	}
	for _, r := range cur {
		switch {
		case u == TSNever || int32(val-r) < 0:
			next = addTS(next, r)
		case u == TSMay:
			next = addTS(addTS(next, r), val)
		default:
			next = addTS(next, val)
		}
	}
	if len(next) > maxTSRecent {
		next = next[len(next)-maxTSRecent:]
	}
	ts.hist = append(ts.hist, tsPoint{end: end, data: seq != end, recent: next})
	if len(ts.hist) > maxTSHistory {
		ts.hist = ts.hist[1:]
		ts.recvAt = max(ts.recvAt-1, 0)
	}
}

// echoable are the values a segment acknowledging ack may echo: what
// TS.Recent may have held since the segment before the last of synprobe's
// it acknowledges (the target processed that one; some stacks, gVisor
// among them, send the ACK of a segment before they take its TSval), and
// since the segment before the last synprobe had sent when the target's
// previous segment came (one may have crossed it).
func (ts *TSState) echoable(ack probe.Seq, isACK bool) []uint32 {
	lower := ts.recvAt - 2
	for i := len(ts.hist) - 1; isACK && i > lower+1; i-- {
		if p := ts.hist[i]; p.data && p.end.LessEq(ack) {
			lower = i - 1
			break
		}
	}
	var out []uint32
	for _, p := range ts.hist[max(lower, 0):] {
		for _, v := range p.recent {
			out = addTS(out, v)
		}
	}
	return out
}

func addTS(list []uint32, v uint32) []uint32 {
	if slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

func tsList(vals []uint32) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, " or ")
}

// Sent records a TSval synprobe sent.
func (ts *TSState) Sent(val uint32) {
	if ts.SentAny && val == ts.LastSent {
		return
	}
	if !ts.SentAny || int32(val-ts.MaxSent) > 0 {
		ts.MaxSent = val
	}
	ts.PrevSent, ts.LastSent, ts.SentAny = ts.LastSent, val, true
}

// Received records the target's TSval, and that it answered the segments
// synprobe had sent (but perhaps the last: see echoable).
func (ts *TSState) Received(t *probe.TCP) {
	if val, _, ok := t.Timestamps(); ok {
		ts.LastReceived, ts.ReceivedAny = val, true
	}
	ts.recvAt = len(ts.hist)
}

// RSTForSYN checks the reset a closed port sends for a SYN (RFC 9293
// 3.10.7.1): the SYN had no ACK, so <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
func RSTForSYN(syn, rst *probe.TCP) Problems {
	var ps Problems
	if rst.Flags&(probe.RST|probe.ACK) != probe.RST|probe.ACK {
		ps.add("rst-flags", Must, "flags: want R. (RST and ACK), got %s", rst.Flags)
	}
	if rst.Flags&(probe.SYN|probe.FIN) != 0 {
		ps.add("rst-flags", Must, "flags: SYN or FIN with RST: %s", rst.Flags)
	}
	if rst.Seq != 0 {
		ps.add("rst-seq", Must, "seq: want 0, got %d", uint32(rst.Seq))
	}
	if want := syn.End(); rst.Ack != want {
		ps.add("rst-ack", Must, "ack: want ISN+%d (%d), got %d (ISN%+d)", syn.SeqLen(), uint32(want), uint32(rst.Ack), rst.Ack.Sub(syn.Seq))
	}
	return ps
}

package scenarios

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"synprobe/conformance/report"
	"synprobe/internal/lab"
	"synprobe/internal/labtest"
	"synprobe/probe"
)

// faultCase is a deliberately faulty responder for one scenario: the fault
// the scenario exists to catch, and the verdict it must then give, for the
// right reason. Against the untampered gVisor lab the scenario must not
// give that verdict for that reason, or the case proves nothing.
type faultCase struct {
	scenario string
	// fault says what the responder does wrong.
	fault string
	// f makes the fault; nil when the untampered gVisor lab has it already
	// (a finding).
	f *fault
	// verdict is what the scenario must give against the fault: fail for a
	// MUST, warn for a SHOULD, info for implementation-defined behaviour
	// (whose observation must then change).
	verdict report.Verdict
	// because is in the reason or in a problem of a step with that verdict.
	because string

	// For a finding: fix is a responder that corrects what gVisor does;
	// the scenario must pass against it. linux is set when the Linux lab
	// passes the scenario too (checked when this process may make one).
	fix   *fault
	linux bool
}

// faultCases has one entry at least for every scenario of the suite.
var faultCases = []faultCase{
	// closed: the RST a closed port owes (RFC 9293 3.10.7.1), or silence.
	fails("closed-ack", "the RST's seq is the segment's ack + 1", "seq: expected 1000",
		onRST(func(t *probe.TCP) { t.Seq++ })),
	fails("closed-fin", "the RST does not count the FIN (ack = seq)", "ack: expected 1",
		onRST(func(t *probe.TCP) { t.Ack-- })),
	fails("closed-null", "the RST acknowledges one octet too many", "ack: expected 0",
		onRST(func(t *probe.TCP) { t.Ack++ })),
	fails("closed-rst", "a RST is answered with a RST", "expected silence",
		answerTo(flagsAre(probe.RST), resetFor)),
	fails("closed-syn", "the RST does not count the SYN (ack = ISN)", "ack: expected 1",
		onRST(func(t *probe.TCP) { t.Ack-- })),
	fails("closed-syn", "the RST has seq 1, not 0", "seq: expected 0",
		onRST(func(t *probe.TCP) { t.Seq = 1 })),
	fails("closed-syn-data", "the RST acknowledges the SYN but not its 5 octets", "ack: expected 6",
		onRST(func(t *probe.TCP) { t.Ack -= 5 })),

	// listen: what a listener answers, and what it ignores (RFC 9293 3.10.7.2).
	fails("listen-ack", "the RST's seq is the segment's ack + 1", "seq: expected 1000",
		onRST(func(t *probe.TCP) { t.Seq++ })),
	fails("listen-bad-ack-in-syn-received", "the RST's seq is the bad ack + 1", "seq: expected 1000",
		onRST(func(t *probe.TCP) { t.Seq++ })),
	fails("listen-fin", "a FIN to the listener is answered with a RST", "expected silence",
		answerTo(flagsAre(probe.FIN), resetFor)),
	fails("listen-handshake", "the SYN-ACK does not count the SYN (ack = ISN)", "ack: expected 1",
		onSYNACK(func(s *seg) { s.TCP.Ack-- })),
	fails("listen-null", "a segment without flags is answered with a RST", "expected silence",
		answerTo(flagsAre(0), resetFor)),
	fails("listen-rst", "a RST to the listener is answered with a RST", "expected silence",
		answerTo(flagsAre(probe.RST), resetFor)),
	fails("listen-rst", "a RST closes the listener: later SYNs go unanswered", "no segment",
		&fault{toTarget: func(r *responder, _ *connState, s *seg) {
			if s.TCP.Flags&probe.RST != 0 {
				r.flagged = true
			} else if r.flagged && s.TCP.Flags&probe.SYN != 0 {
				s.drop = true
			}
		}}),
	fails("listen-rst-in-syn-received", "the RST is ignored: the SYN-ACK is retransmitted", "expected silence",
		dropToTarget(func(t *probe.TCP) bool { return t.Flags&probe.RST != 0 })),
	fails("listen-syn-data", "the SYN-ACK acknowledges the SYN's 5 octets (no Fast Open)", "ack: expected 1",
		onSYNACK(func(s *seg) { s.TCP.Ack += 5 })),
	observes("listen-syn-fin", "SYN+FIN is dropped (as Linux does) instead of answered", "as the script describes",
		onSYNACK(func(s *seg) { s.drop = true })),
	fails("listen-synack", "the RST's seq is the SYN-ACK's ack + 1", "seq: expected 1000",
		onRST(func(t *probe.TCP) { t.Seq++ })),

	// validity: damaged segments in, well-formed segments out (RFC 9293 3.1).
	fails("validity-bad-checksum-data", "the data's bad checksum is mended on the way: the stack takes it", "expected silence",
		&fault{toTarget: mendChecksum}),
	fails("validity-bad-checksum-syn", "the SYN's bad checksum is mended on the way: the stack answers it", "expected silence",
		&fault{toTarget: mendChecksum}),
	fails("validity-replies-well-formed", "the SYN-ACK's TCP checksum is wrong", "TCP checksum",
		onSYNACK(func(s *seg) { s.ov = append(s.ov, probe.Override{Field: probe.FieldTCPChecksumAdd, Value: 1}) })),
	fails("validity-replies-well-formed", "the ACK of data has a reserved bit set", "reserved bits set",
		onLater(func(s *seg) { s.TCP.Reserved |= 0x4 })),
	fails("validity-replies-well-formed", "the ACK of data carries an MSS option", "MSS option in a segment without SYN",
		onLater(func(s *seg) { s.TCP.Options = withOption(s.TCP.Options, probe.MSSOption(1460)) })),
	fails("validity-replies-well-formed", "the SYN-ACK's MSS option is 5 octets long", "mss option with length 5",
		onSYNACK(func(s *seg) { s.TCP.Options = setOption(s.TCP.Options, probe.RawOption([]byte{2, 5, 5, 0xb4, 0})) })),
	fails("validity-replies-well-formed", "the RST has a data offset of 4 words", "malformed",
		onRST(nil, probe.Override{Field: probe.FieldTCPDataOffset, Value: 4})),
	fails("validity-reserved-bits", "the SYN-ACK echoes the reserved bits", "reserved bits set",
		onSYNACK(func(s *seg) { s.TCP.Reserved |= 0xe })),
	fails("validity-reserved-bits", "a SYN with reserved bits set is dropped", "no segment",
		dropToTarget(func(t *probe.TCP) bool { return t.Reserved&0xe != 0 })),

	// options.
	fails("options-ecn-negotiation", "every SYN-ACK carries ECE, also to a SYN that did not ask for ECN", "did not ask for ECN",
		onSYNACK(func(s *seg) { s.TCP.Flags |= probe.ECE })),
	fails("options-ecn-negotiation", "the SYN-ACK is ECN-capable (ECT(0))", "ECN-capable",
		onSYNACK(func(s *seg) { s.IP.TOS |= probe.ECNECT0 })),
	fails("options-ecn-negotiation", "the SYN-ACK carries CWR", "CWR in a SYN-ACK",
		onSYNACK(func(s *seg) { s.TCP.Flags |= probe.CWR })),
	observes("options-fast-open-cookie", "the SYN-ACK carries an 8-octet Fast Open cookie", "a Fast Open cookie of 8 bytes",
		onSYNACK(func(s *seg) {
			s.TCP.Options = withOption(s.TCP.Options, probe.FastOpenOption([]byte{1, 2, 3, 4, 5, 6, 7, 8}))
		})),
	fails("options-illegal-length", "after a SYN with a damaged option area, the stack answers no SYN", "stopped answering after a SYN with an MSS with length 0",
		&fault{toTarget: func(r *responder, _ *connState, s *seg) {
			if s.TCP.Flags&probe.SYN == 0 {
				return
			}
			if malformedOptions(&s.TCP) {
				r.flagged = true
			} else if r.flagged {
				s.drop = true
			}
		}}),
	fails("options-mss-unaligned", "the MSS of 100 is ignored (the stack sees 1460)", "above the MSS of 100",
		onSYN(func(s *seg) {
			if _, ok := s.TCP.MSS(); ok {
				s.TCP.Options = setOption(s.TCP.Options, probe.MSSOption(1460))
			}
		})),
	fails("options-no-mss-default", "without an MSS option the stack sends 1460-octet segments", "above the default MSS of 536",
		onSYN(func(s *seg) {
			if _, ok := s.TCP.MSS(); !ok {
				s.TCP.Options = withOption(s.TCP.Options, probe.MSSOption(1460))
			}
		})),
	observes("options-sack-blocks", "the duplicate ACK after a gap carries no SACK block", "options: expected <nop,nop,sack 21:31>",
		onLater(func(s *seg) { s.TCP.Options = withoutOption(s.TCP.Options, probe.OptionSACK) })),
	fails("options-sack-only-if-offered", "the SYN-ACK carries SACK-permitted the SYN did not offer", "SACK-permitted in the SYN-ACK",
		onSYNACK(func(s *seg) {
			s.TCP.Options = withOption(s.TCP.Options, probe.NOPOption(), probe.NOPOption(), probe.SACKPermittedOption())
		})),
	fails("options-sack-only-if-offered", "the duplicate ACK after a gap carries a SACK block", "options: expected none got <nop,nop,sack",
		onLater(func(s *seg) {
			if pureACK(&s.TCP) {
				b := probe.SACKBlock{Left: s.TCP.Ack.Add(10), Right: s.TCP.Ack.Add(20)}
				s.TCP.Options = withOption(s.TCP.Options, probe.NOPOption(), probe.NOPOption(), probe.SACKOption(b))
			}
		})),
	warns("options-server-sends-mss", "the SYN-ACK carries no MSS option", "options: expected <mss *>",
		onSYNACK(func(s *seg) { s.TCP.Options = withoutOption(s.TCP.Options, probe.OptionMSS) })),
	fails("options-ts-echo", "the SYN-ACK's TSecr is the SYN's TSval + 1", "TSecr: want 12345",
		onSYNACK(func(s *seg) {
			if val, ecr, ok := s.TCP.Timestamps(); ok {
				s.TCP.Options = setOption(s.TCP.Options, probe.TimestampsOption(val, ecr+1))
			}
		})),
	// RFC 7323 3.2: once timestamps are in use, a segment without one
	// SHOULD be dropped. gVisor takes it, and Linux does too.
	finding("options-ts-missing-dropped", "data without a timestamp is taken", report.Warn, "expected silence", noLinux,
		&fault{toTarget: func(_ *responder, c *connState, s *seg) {
			_, _, ts := s.TCP.Timestamps()
			s.drop = c.offeredTS && len(s.TCP.Payload) > 0 && !ts && s.TCP.Flags&probe.RST == 0
		}}),
	fails("options-ts-missing-no-abort", "data without a timestamp makes the stack reset the connection", "aborted the connection (RST) over a segment without timestamps",
		&fault{answer: func(r *responder, c *connState, in *probe.Frame) []probe.TCP {
			t := &in.TCP
			if _, _, ts := t.Timestamps(); c == nil || !c.offeredTS || ts || len(t.Payload) == 0 {
				return nil
			}
			r.swallow()
			return []probe.TCP{{Seq: t.Ack, Flags: probe.RST}}
		}}),
	fails("options-ts-on-every-segment", "the ACKs of data carry no timestamps", "no timestamps option, but timestamps were negotiated",
		onLater(func(s *seg) { s.TCP.Options = withoutOption(s.TCP.Options, probe.OptionTimestamps) })),
	fails("options-ts-only-if-offered", "the SYN-ACK carries timestamps the SYN did not offer", "timestamps in the SYN-ACK, but the SYN offered none",
		onSYNACK(func(s *seg) {
			s.TCP.Options = withOption(s.TCP.Options, probe.NOPOption(), probe.NOPOption(), probe.TimestampsOption(7, 0))
		})),
	fails("options-ts-only-if-offered", "the ACK of data carries timestamps nobody negotiated", "options: expected none got <nop,nop,TS val 7 ecr 0>",
		onLater(func(s *seg) {
			s.TCP.Options = withOption(s.TCP.Options, probe.NOPOption(), probe.NOPOption(), probe.TimestampsOption(7, 0))
		})),
	fails("options-unknown-ignored", "the SYN-ACK echoes option kind 99", "option kind 99, unknown, sent in the SYN and echoed",
		onSYNACK(func(s *seg) { s.TCP.Options = withOption(s.TCP.Options, probe.RawOption([]byte{99, 4, 0, 0})) })),
	fails("options-wscale-only-if-offered", "the SYN-ACK carries a window scale the SYN did not offer", "window scale in the SYN-ACK, but the SYN offered none",
		onSYNACK(func(s *seg) { s.TCP.Options = withOption(s.TCP.Options, probe.NOPOption(), probe.WScaleOption(7)) })),
	fails("options-wscale-over-14", "synprobe's window of 1 reaches the stack as 2: what a shift of 15 makes of it", "it used a shift of 15",
		&fault{toTarget: func(_ *responder, _ *connState, s *seg) {
			if s.TCP.Flags&(probe.SYN|probe.RST) == 0 && s.TCP.Window == 1 {
				s.TCP.Window = 2
			}
		}}),

	// established.
	// RFC 9293 3.10.7.4: "If the ACK acks something not yet sent (SEG.ACK
	// > SND.NXT), then send an ACK, drop the segment, and return." gVisor
	// drops it without the ACK.
	finding("established-ack-above-sndnxt", "an ACK above SND.NXT is dropped without an ACK", report.Fail, "no segment", linuxPasses,
		&fault{answer: func(_ *responder, c *connState, in *probe.Frame) []probe.TCP {
			t := &in.TCP
			if c == nil || !c.haveTarget || !pureACK(t) || !c.targetNxt.LessThan(t.Ack) {
				return nil
			}
			return []probe.TCP{{Seq: c.targetNxt, Ack: t.Seq, Flags: probe.ACK, Window: c.targetWin}}
		}}),
	fails("established-close-sequence", "the ACK of synprobe's FIN does not count the FIN", "ack: want synprobe's FIN seq+1",
		&fault{toProbe: uncountFIN}),
	fails("established-fin-half-close", "the ACK of synprobe's FIN does not count the FIN", "synprobe's FIN was not acknowledged",
		&fault{toProbe: uncountFIN}),
	fails("established-icmp-soft-error", "an ICMP soft error aborts the connection: later segments get a RST", "flags: expected . got R",
		&fault{answer: func(r *responder, c *connState, in *probe.Frame) []probe.TCP {
			if c == nil {
				return nil
			}
			if in.Has(probe.LayerICMP) {
				c.aborted = true
				return nil
			}
			if !c.aborted || in.TCP.Flags&probe.RST != 0 {
				return nil
			}
			r.swallow()
			return []probe.TCP{resetFor(&in.TCP)}
		}}),
	fails("established-out-of-window-data", "data far above the window is taken as if in sequence", "ack: expected 1",
		&fault{toTarget: func(_ *responder, c *connState, s *seg) {
			if c.haveProbe && len(s.TCP.Payload) > 0 && s.TCP.Seq.Sub(c.probeNxt) > 65535 {
				s.TCP.Seq = c.probeNxt
			}
		}}),
	// RFC 7323 5.3: a segment whose TSval is below TS.Recent is
	// unacceptable: send an ACK and drop it. gVisor has no PAWS and takes
	// the data.
	finding("established-paws", "data with an old TSval is taken", report.Fail, "ack: expected 11", linuxPasses,
		&fault{answer: func(r *responder, c *connState, in *probe.Frame) []probe.TCP {
			val, _, ok := in.TCP.Timestamps()
			if c == nil || !ok || !c.haveTS || !c.haveTarget || in.TCP.Flags&(probe.SYN|probe.RST) != 0 || int32(val-c.probeTS) >= 0 {
				return nil
			}
			r.swallow()
			return []probe.TCP{{Seq: c.targetNxt, Ack: c.targetAck, Flags: probe.ACK, Window: c.targetWin,
				Options: []probe.Option{probe.NOPOption(), probe.NOPOption(), probe.TimestampsOption(c.targetTS, c.probeTS)}}}
		}}),
	fails("established-rst-exact", "a RST at RCV.NXT is ignored", "flags: expected R got .",
		dropToTarget(func(t *probe.TCP) bool { return t.Flags&probe.RST != 0 })),
	fails("established-rst-in-window", "no challenge ACK to a RST in the window", "no segment",
		&fault{
			answer: func(_ *responder, c *connState, in *probe.Frame) []probe.TCP {
				if c != nil && in.TCP.Flags&probe.RST != 0 {
					c.dropACK = true
				}
				return nil
			},
			toProbe: func(_ *responder, c *connState, s *seg) {
				if c.dropACK && pureACK(&s.TCP) {
					s.drop, c.dropACK = true, false
				}
			},
		}),
	fails("established-rst-in-window", "a RST in the window (not at RCV.NXT) resets the connection", "no segment",
		rstAtRCVNXT()),
	fails("established-rst-out-of-window", "a RST far out of the window resets the connection", "flags: expected . got R",
		rstAtRCVNXT()),
	fails("established-rst-out-of-window", "a RST far out of the window is answered with an ACK", "expected silence",
		&fault{answer: func(_ *responder, c *connState, in *probe.Frame) []probe.TCP {
			if c == nil || !c.haveTarget || in.TCP.Flags&probe.RST == 0 {
				return nil
			}
			return []probe.TCP{{Seq: c.targetNxt, Ack: c.probeNxt, Flags: probe.ACK, Window: c.targetWin}}
		}}),
	observes("established-syn", "a SYN in the window resets the connection (RFC 793's way)", "flags: expected . got R",
		&fault{answer: func(r *responder, c *connState, in *probe.Frame) []probe.TCP {
			if c == nil || c.syns == 0 || !c.haveTarget || in.TCP.Flags&(probe.SYN|probe.ACK) != probe.SYN {
				return nil
			}
			r.swallow()
			return []probe.TCP{{Seq: c.targetNxt, Flags: probe.RST}}
		}}),
	fails("established-urgent-data", "urgent data is dropped", "no segment",
		dropToTarget(func(t *probe.TCP) bool { return t.Flags&probe.URG != 0 })),

	// timers.
	fails("timer-delayed-ack", "data is acknowledged 1.5 s late", "no segment",
		&fault{toProbe: func(r *responder, _ *connState, s *seg) {
			if pureACK(&s.TCP) {
				if b, err := s.Encode(); err == nil {
					r.later(1500*time.Millisecond, b)
				}
				s.drop = true
			}
		}}),
	warns("timer-synack-retransmission", "the SYN-ACK is never retransmitted", "no SYN-ACK retransmission",
		onSYNACKState(func(c *connState, s *seg) {
			for _, seq := range c.synacks {
				if seq == s.TCP.Seq {
					s.drop = true
				}
			}
		})),
	fails("timer-zero-window", "no window probes", "no window probe",
		onLaterState(func(c *connState, s *seg) {
			s.drop = s.TCP.Seq.LessThan(c.targetNxt) && len(s.TCP.Payload) <= 1
		})),
	fails("timer-zero-window", "the zero window is ignored: the stack sends its data", "into a zero window",
		&fault{toTarget: func(_ *responder, _ *connState, s *seg) {
			if s.TCP.Flags&(probe.SYN|probe.RST) == 0 && s.TCP.Window == 0 {
				s.TCP.Window = 65535
			}
		}}),
}

// fails is a case of a MUST scenario, warns of a SHOULD one: against f the
// scenario fails (warns) with because in a problem.
func fails(scenario, fault, because string, f *fault) faultCase {
	return faultCase{scenario: scenario, fault: fault, f: f, verdict: report.Fail, because: because}
}

func warns(scenario, fault, because string, f *fault) faultCase {
	return faultCase{scenario: scenario, fault: fault, f: f, verdict: report.Warn, because: because}
}

// observes is a case of an info scenario: against f its observation says
// because, which it does not against the untampered lab.
func observes(scenario, fault, because string, f *fault) faultCase {
	return faultCase{scenario: scenario, fault: fault, f: f, verdict: report.Info, because: because}
}

// Whether the Linux lab passes a scenario gVisor fails.
const (
	linuxPasses = true
	noLinux     = false
)

// finding is a case where the untampered gVisor lab has the fault (a real
// difference from what the RFC asks): the scenario gives v with because
// against it, and passes against fix, a responder that corrects it.
func finding(scenario, fault string, v report.Verdict, because string, linux bool, fix *fault) faultCase {
	return faultCase{scenario: scenario, fault: fault + " (gVisor)", verdict: v, because: because, fix: fix, linux: linux}
}

// Faults built from small edits.

// onRST edits every RST the stack sends; ov lie about header fields.
func onRST(fn func(t *probe.TCP), ov ...probe.Override) *fault {
	return &fault{toProbe: func(_ *responder, _ *connState, s *seg) {
		if s.TCP.Flags&probe.RST == 0 {
			return
		}
		if fn != nil {
			fn(&s.TCP)
		}
		s.ov = append(s.ov, ov...)
	}}
}

// onSYNACK edits every SYN-ACK the stack sends.
func onSYNACK(fn func(s *seg)) *fault {
	return onSYNACKState(func(_ *connState, s *seg) { fn(s) })
}

func onSYNACKState(fn func(c *connState, s *seg)) *fault {
	return &fault{toProbe: func(_ *responder, c *connState, s *seg) {
		if s.TCP.Flags.Has(probe.SYN | probe.ACK) {
			fn(c, s)
		}
	}}
}

// onLater edits every segment the stack sends after its SYN-ACK, RSTs
// aside.
func onLater(fn func(s *seg)) *fault {
	return onLaterState(func(_ *connState, s *seg) { fn(s) })
}

func onLaterState(fn func(c *connState, s *seg)) *fault {
	return &fault{toProbe: func(_ *responder, c *connState, s *seg) {
		if s.TCP.Flags&(probe.SYN|probe.RST) == 0 {
			fn(c, s)
		}
	}}
}

// onSYN edits synprobe's SYNs on their way to the stack.
func onSYN(fn func(s *seg)) *fault {
	return &fault{toTarget: func(_ *responder, _ *connState, s *seg) {
		if s.TCP.Flags&probe.SYN != 0 {
			fn(s)
		}
	}}
}

// dropToTarget keeps synprobe's segments that match from the stack.
func dropToTarget(match func(t *probe.TCP) bool) *fault {
	return &fault{toTarget: func(_ *responder, _ *connState, s *seg) { s.drop = match(&s.TCP) }}
}

// answerTo answers synprobe's segments that match with reply, and keeps
// them from the stack.
func answerTo(match func(t *probe.TCP) bool, reply func(in *probe.TCP) probe.TCP) *fault {
	return &fault{answer: func(r *responder, _ *connState, in *probe.Frame) []probe.TCP {
		if !in.Has(probe.LayerTCP) || !match(&in.TCP) {
			return nil
		}
		r.swallow()
		return []probe.TCP{reply(&in.TCP)}
	}}
}

// flagsAre matches segments with exactly these flags.
func flagsAre(f probe.Flags) func(t *probe.TCP) bool {
	return func(t *probe.TCP) bool { return t.Flags == f }
}

// resetFor is the RST RFC 9293 3.10.7.1 sends for a segment nobody
// expects: seq = its ack if it has one, else seq 0 and ACK of all of it.
func resetFor(in *probe.TCP) probe.TCP {
	if in.Flags&probe.ACK != 0 {
		return probe.TCP{Seq: in.Ack, Flags: probe.RST}
	}
	return probe.TCP{Ack: in.End(), Flags: probe.RST | probe.ACK}
}

// rstAtRCVNXT moves synprobe's RSTs to RCV.NXT: the stack takes any RST
// as exact, and resets.
func rstAtRCVNXT() *fault {
	return &fault{toTarget: func(_ *responder, c *connState, s *seg) {
		if s.TCP.Flags&probe.RST != 0 && c.haveProbe {
			s.TCP.Seq = c.probeNxt
		}
	}}
}

// mendChecksum gives synprobe's segments with a wrong TCP checksum a right
// one.
func mendChecksum(_ *responder, _ *connState, s *seg) {
	if s.Checksum == probe.ChecksumInvalid {
		s.Checksum = probe.ChecksumValid
	}
}

// uncountFIN makes the stack's acknowledgments leave synprobe's FIN out of
// the sequence space.
func uncountFIN(_ *responder, c *connState, s *seg) {
	if c.sentFIN && s.TCP.Flags&probe.ACK != 0 && s.TCP.Ack == c.finEnd {
		s.TCP.Ack--
	}
}

func TestFaultCasesCoverTheSuite(t *testing.T) {
	all, err := Suite()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, sc := range all {
		known[sc.Name] = true
	}
	has := map[string]bool{}
	for _, fc := range faultCases {
		if !known[fc.scenario] {
			t.Errorf("fault case %q names no scenario of the suite", fc.scenario)
		}
		has[fc.scenario] = true
		if fc.f == nil && fc.fix == nil {
			t.Errorf("%s: a finding of the untampered lab needs a responder that fixes it", fc.scenario)
		}
	}
	for _, sc := range all {
		if !has[sc.Name] {
			t.Errorf("scenario %s has no faulty responder: add one to faultCases that introduces the fault it exists to catch", sc.Name)
		}
		want := map[string]report.Verdict{"MUST": report.Fail, "SHOULD": report.Warn, "info": report.Info}[sc.Level]
		for _, fc := range faultCases {
			if fc.scenario == sc.Name && fc.verdict != want {
				t.Errorf("%s (%s): fault %q expects %s, want %s for its level", sc.Name, sc.Level, fc.fault, fc.verdict, want)
			}
		}
	}
}

// runSpec is one run of one scenario against one responder.
type runSpec struct {
	scenario string
	f        *fault // nil: the untampered lab
	stack    lab.Stack
}

// labRuns is how many labs run at once: enough to overlap the timer
// scenarios' waits, few enough that a 2-core machine keeps up with the
// runner's round-trip allowances.
const labRuns = 6

// TestFaultyResponders runs every scenario against its faulty responders
// and against the untampered gVisor lab (and, for findings, against a
// responder that fixes gVisor and against the Linux lab), each run in a lab
// of its own, several at once so that the timer scenarios' waits overlap.
func TestFaultyResponders(t *testing.T) {
	all, err := Suite()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Scenario{}
	for _, sc := range all {
		byName[sc.Name] = sc
	}
	linuxOK, linuxWhy := false, "not root"
	if os.Geteuid() == 0 {
		linuxOK, linuxWhy = lab.LinuxAvailable()
	}

	// Every run, deduplicated: the untampered baselines once per scenario.
	var specs []runSpec
	index := map[runSpec]int{}
	add := func(s runSpec) {
		if _, ok := index[s]; !ok {
			index[s] = len(specs)
			specs = append(specs, s)
		}
	}
	for _, fc := range faultCases {
		if _, ok := byName[fc.scenario]; !ok {
			continue // TestFaultCasesCoverTheSuite says so
		}
		add(runSpec{scenario: fc.scenario, stack: lab.StackGVisor})
		if fc.f != nil {
			add(runSpec{scenario: fc.scenario, f: fc.f, stack: lab.StackGVisor})
		}
		if fc.fix != nil {
			add(runSpec{scenario: fc.scenario, f: fc.fix, stack: lab.StackGVisor})
		}
		if fc.linux && linuxOK {
			add(runSpec{scenario: fc.scenario, stack: lab.StackLinux})
		}
	}

	start := time.Now()
	results := make([]report.Result, len(specs))
	errs := make([]error, len(specs))
	sem := make(chan struct{}, labRuns)
	var wg sync.WaitGroup
	for i, s := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i], errs[i] = runAgainst(byName[s.scenario], s.f, s.stack)
		}()
	}
	wg.Wait()
	t.Logf("%d runs in %v", len(specs), time.Since(start).Round(time.Millisecond))

	result := func(t *testing.T, s runSpec) report.Result {
		t.Helper()
		i := index[s]
		if errs[i] != nil {
			t.Fatalf("run %s against the %s: %v", s.scenario, responderName(s), errs[i])
		}
		return results[i]
	}
	for _, fc := range faultCases {
		sc, ok := byName[fc.scenario]
		if !ok {
			continue
		}
		t.Run(sc.Name+"/"+fc.fault, func(t *testing.T) {
			base := result(t, runSpec{scenario: sc.Name, stack: lab.StackGVisor})
			faulty, control, controlName := base, base, "untampered gVisor lab"
			if fc.f != nil {
				faulty = result(t, runSpec{scenario: sc.Name, f: fc.f, stack: lab.StackGVisor})
			} else {
				control, controlName = result(t, runSpec{scenario: sc.Name, f: fc.fix, stack: lab.StackGVisor}), "gVisor lab with the behaviour fixed"
			}
			t.Logf("faulty: %s: %s", faulty.Verdict, faulty.Reason)
			t.Logf("%s: %s: %s", controlName, control.Verdict, control.Reason)
			if !gives(faulty, fc.verdict, fc.because) {
				t.Errorf("against the faulty responder (%s): got %s, want %s with %q\n%s", fc.fault, faulty.Verdict, fc.verdict, fc.because, describeResult(faulty))
			}
			if gives(control, fc.verdict, fc.because) {
				t.Errorf("against the %s: got %s with %q too: the case proves nothing\n%s", controlName, control.Verdict, fc.because, describeResult(control))
			}
			if fc.f == nil && control.Verdict != report.Pass {
				t.Errorf("against the %s: got %s, want pass\n%s", controlName, control.Verdict, describeResult(control))
			}
			if fc.linux {
				if !linuxOK {
					t.Logf("Linux half skipped: linux lab unavailable: %s", linuxWhy)
					return
				}
				lx := result(t, runSpec{scenario: sc.Name, stack: lab.StackLinux})
				t.Logf("Linux lab: %s: %s", lx.Verdict, lx.Reason)
				if lx.Verdict != report.Pass {
					t.Errorf("against the Linux lab: got %s, want pass\n%s", lx.Verdict, describeResult(lx))
				}
			}
		})
	}
}

func responderName(s runSpec) string {
	switch {
	case s.stack == lab.StackLinux:
		return "Linux lab"
	case s.f != nil:
		return "faulty gVisor lab"
	}
	return "gVisor lab"
}

// runAgainst runs one scenario against a lab of its own: the Linux lab, the
// gVisor lab, or, with f, a gVisor lab whose stack has f's fault.
func runAgainst(sc Scenario, f *fault, stack lab.Stack) (report.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var tg *lab.Target
	var err error
	r := newResponder()
	if f != nil {
		tg, err = lab.StartFaulty(ctx, f.tamper(r))
	} else {
		tg, err = lab.Start(ctx, stack)
	}
	if err != nil {
		return report.Result{}, fmt.Errorf("start lab: %w", err)
	}
	defer tg.Close()
	if tg.Probe.Link != nil {
		r.mu.Lock()
		r.link, _ = tg.Probe.Link.(*probe.MemoryLink)
		r.mu.Unlock()
	}
	p, err := probe.Dial(ctx, tg.Open.Addr(), labtest.DialConfig(tg, tg.Open.Addr(), probe.DialConfig{}))
	if err != nil {
		return report.Result{}, fmt.Errorf("dial: %w", err)
	}
	defer p.Close()
	rep := Run(ctx, p, RunConfig{Target: tg.Open, ClosedPort: lab.ClosedPort, Rate: -1, Timeout: time.Second}, []Scenario{sc})
	return rep.Results[0], nil
}

// gives reports whether res has verdict v for the reason because: in its
// reason, or in a problem of a step with that verdict.
func gives(res report.Result, v report.Verdict, because string) bool {
	if res.Verdict != v {
		return false
	}
	if strings.Contains(res.Reason, because) {
		return true
	}
	for _, s := range res.Steps {
		if s.Verdict != v {
			continue
		}
		for _, p := range s.Problems {
			if strings.Contains(p, because) {
				return true
			}
		}
	}
	return false
}

func describeResult(res report.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %s: %s\n", res.Verdict, res.Reason)
	for _, s := range res.Steps {
		fmt.Fprintf(&b, "  %d %s %s: expected %q, actual %q %q\n", s.Index, s.Direction, s.Verdict, s.Expected, s.Actual, s.Problems)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	return b.String()
}

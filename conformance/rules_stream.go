package conformance

import "synprobe/probe"

// Rules over the life of an established connection: the ACK that completes
// the handshake, resets, acknowledgments, FINs, and the use of the options
// negotiated in the handshake. Live scenarios call them with what synprobe
// knows of its probe connection; capture analysis with what the capture
// showed of both sides. Each takes the segment judged and a little state,
// and returns the problems at the level of the requirement broken.

// HandshakeACK checks the segment that completes a handshake, from the side
// that sent the SYN (RFC 9293 3.10.7.3, SYN-SENT): ACK set, ack = the
// SYN-ACK's seq + 1, and seq = SND.NXT, which is what the SYN-ACK
// acknowledged (ISN+1, or later when Fast Open data in the SYN was
// accepted). syn may be nil when it is not known; then seq is checked
// against the SYN-ACK's ack alone.
func HandshakeACK(syn, synack, ack *probe.TCP) Problems {
	var ps Problems
	if ack.Flags&probe.ACK == 0 {
		ps.add("hs-ack-flags", Must, "flags: want the ACK bit, got %s", ack.Flags)
		return ps
	}
	if want := synack.Seq.Add(1); ack.Ack != want {
		ps.add("hs-ack-ack", Must, "ack: want the SYN-ACK's ISN+1 (%d), got %d (ISN%+d)", uint32(want), uint32(ack.Ack), ack.Ack.Sub(synack.Seq))
	}
	wantSeq := synack.Ack
	if syn != nil && synack.Ack.LessThan(syn.Seq.Add(1)) {
		// The SYN-ACK was wrong (SYNACK says so); SND.NXT is still ISN+1.
		wantSeq = syn.Seq.Add(1)
	}
	if ack.Seq != wantSeq {
		// Fast Open: the SYN's data may have been left unacknowledged and
		// is sent again from ISN+1.
		ok := syn != nil && !ack.Seq.LessThan(syn.Seq.Add(1)) && ack.Seq.LessEq(syn.End())
		if !ok {
			ps.add("hs-ack-seq", Must, "seq: want what the SYN-ACK acknowledged (%d), got %d", uint32(wantSeq), uint32(ack.Seq))
		}
	}
	return ps
}

// MSSSane checks the MSS option of a SYN or SYN-ACK (RFC 9293 3.7.1,
// RFC 6691): a value of 0 leaves no room for data at all; below 88 (the
// floor Linux enforces) a sender must cut its data into absurdly many
// segments, which is how a peer forces resource exhaustion
// (CVE-2019-11478); below the default of 536 for IPv4 or 1220 for IPv6
// is legal but unusual.
func MSSSane(t *probe.TCP, ipv6 bool) Problems {
	var ps Problems
	mss, ok := t.MSS()
	if !ok || t.Flags&probe.SYN == 0 {
		return ps
	}
	def, v := uint16(536), 4
	if ipv6 {
		def, v = 1220, 6
	}
	switch {
	case mss == 0:
		ps.add("mss-zero", Must, "MSS 0: the peer could never send data (RFC 9293 3.7.1)")
	case mss < 88:
		ps.add("mss-tiny", Should, "MSS %d is tiny: below 88, a peer must cut data into absurdly many segments (Linux raises it to 88)", mss)
	case mss < def:
		ps.add("mss-small", Observed, "MSS %d is below the default of %d for IPv%d (RFC 9293 3.7.1)", mss, def, v)
	}
	return ps
}

// WScaleUse checks the window scale option of any segment (RFC 7323 2.2,
// 2.3): it belongs in SYN segments only (elsewhere the receiver ignores
// it), and its shift is at most 14.
func WScaleUse(t *probe.TCP) Problems {
	var ps Problems
	shift, ok := t.WScale()
	if !ok {
		return ps
	}
	if t.Flags&probe.SYN == 0 {
		ps.add("wscale-not-syn", Should, "window scale option in a segment without SYN: it is only sent in SYN segments and ignored elsewhere (RFC 7323 2.2)")
	}
	if shift > probe.MaxWScale {
		ps.add("wscale-max", Should, "window scale shift %d exceeds the maximum of 14; the receiver uses 14 (RFC 7323 2.3)", shift)
	}
	return ps
}

// AckSent checks that a segment acknowledges only what its peer sent (RFC
// 9293 3.10.7.4: an ACK of something not yet sent is unacceptable; the
// receiver answers with an ACK and drops the segment). peerSNDNXT is the
// peer's SND.NXT: the sequence number after the last octet (SYN and FIN
// included) the peer has sent.
func AckSent(t *probe.TCP, peerSNDNXT probe.Seq) Problems {
	var ps Problems
	if t.Flags&probe.ACK == 0 || t.Ack.LessEq(peerSNDNXT) {
		return ps
	}
	ps.add("ack-unsent", Must, "ack %d acknowledges %d octets the peer never sent (its SND.NXT is %d)", uint32(t.Ack), t.Ack.Sub(peerSNDNXT), uint32(peerSNDNXT))
	return ps
}

// FINAck tells whether t acknowledges a FIN that occupies sequence number
// finSeq (the FIN counts for one: its ACK has ack = finSeq+1, RFC 9293
// 3.5, 3.10.7.4), and checks that it acknowledges nothing beyond it: after
// its FIN the peer sends nothing more.
func FINAck(finSeq probe.Seq, t *probe.TCP) (acked bool, ps Problems) {
	if t.Flags&probe.ACK == 0 {
		return false, nil
	}
	want := finSeq.Add(1)
	switch {
	case t.Ack == want:
		return true, nil
	case want.LessThan(t.Ack):
		ps.add("fin-ack", Must, "ack: want the FIN's seq+1 (%d), got %d: %d octets past the FIN, which ends the peer's sequence space", uint32(want), uint32(t.Ack), t.Ack.Sub(want))
		return true, ps
	}
	return false, nil
}

// AfterFIN checks a segment from a side that has sent its FIN at sequence
// number finSeq (RFC 9293 3.5, 3.10.4): the FIN takes one sequence number,
// so everything after it starts at finSeq+1; a side that closed sends no
// new data; the FIN itself may come again (retransmission), and so may
// data before it.
func AfterFIN(finSeq probe.Seq, t *probe.TCP) Problems {
	var ps Problems
	if t.Flags&probe.RST != 0 {
		return ps
	}
	end := finSeq.Add(1)
	switch {
	case t.Flags&probe.FIN != 0 && t.End() != end:
		ps.add("fin-moved", Must, "a second FIN at seq %d, after the FIN at seq %d: a side closes once", uint32(t.End()-1), uint32(finSeq))
	case t.Flags&probe.FIN != 0:
		// A retransmitted FIN.
	case len(t.Payload) > 0 && end.LessThan(t.End()):
		ps.add("data-after-fin", Must, "%d octets of data after the FIN (seq %d): a side that closed sends no new data (RFC 9293 3.10.4)", t.End().Sub(end), uint32(finSeq))
	case len(t.Payload) > 0:
		// Data before the FIN, sent again.
	case t.Seq == finSeq:
		ps.add("fin-seq", Must, "seq: want %d (the FIN takes one sequence number), got %d, the FIN's own", uint32(end), uint32(t.Seq))
	case end.LessThan(t.Seq):
		ps.add("fin-seq", Must, "seq: want %d (the FIN's seq+1), got %d: %d past the end of the sender's sequence space", uint32(end), uint32(t.Seq), t.Seq.Sub(end))
	}
	return ps
}

// RSTClass says how the receiver of a RST judges it (RFC 9293 3.10.7.4
// with RFC 5961 3.2).
type RSTClass uint8

const (
	// RSTExact: seq = RCV.NXT; the receiver resets the connection.
	RSTExact RSTClass = iota
	// RSTInWindow: in the receive window but not RCV.NXT; the receiver
	// sends a challenge ACK and keeps the connection.
	RSTInWindow
	// RSTOutOfWindow: outside the window; the receiver discards it.
	RSTOutOfWindow
)

func (c RSTClass) String() string {
	switch c {
	case RSTExact:
		return "exact"
	case RSTInWindow:
		return "in window, not exact"
	}
	return "out of window"
}

// RcvWindow is what the receiver of a segment expects (RFC 9293 3.3.1).
type RcvWindow struct {
	// NXT is RCV.NXT.
	NXT probe.Seq
	// InFlight is sequence space the sender sent beyond what the receiver
	// is known to have received (a capture sees the receiver's ACKs, not
	// its RCV.NXT): a RST at any point from NXT to NXT+InFlight may be
	// exact by the time it arrives. Zero for a live probe, which knows.
	InFlight uint32
	// WND is RCV.WND in octets (the advertised window, scaled).
	WND uint32
}

// RSTAcceptable classifies a RST sent to a synchronized connection (every
// state but SYN-SENT) the way its receiver judges it: exact when seq is
// RCV.NXT, the only RST that aborts a connection since RFC 5961; in the
// window but not exact, answered with a challenge ACK, so the abort fails
// (SHOULD: a sender aborts with <SEQ=SND.NXT>, RFC 9293 3.10.7.4, and
// answers a segment with <SEQ=SEG.ACK>, 3.10.7.1); out of the window,
// discarded (MUST: such a RST is never the abort of this connection).
func RSTAcceptable(rst *probe.TCP, rcv RcvWindow) (RSTClass, Problems) {
	var ps Problems
	off := uint32(rst.Seq - rcv.NXT)
	switch {
	case off <= rcv.InFlight:
		return RSTExact, ps
	case rst.Seq.InWindow(rcv.NXT, rcv.WND):
		ps.add("rst-inexact", Should, "RST seq %d is in the receiver's window [%d, %d) but not RCV.NXT %d: an RFC 5961 receiver answers with a challenge ACK and keeps the connection (RFC 9293 3.10.7.4)",
			uint32(rst.Seq), uint32(rcv.NXT), uint32(rcv.NXT.Add(rcv.WND)), uint32(rcv.NXT))
		return RSTInWindow, ps
	}
	ps.add("rst-out-of-window", Must, "RST seq %d is outside the receiver's window [%d, %d) (RCV.NXT%+d): the receiver discards it (RFC 9293 3.10.7.4)",
		uint32(rst.Seq), uint32(rcv.NXT), uint32(rcv.NXT.Add(rcv.WND)), rst.Seq.Sub(rcv.NXT))
	return RSTOutOfWindow, ps
}

// RSTForSegment checks the reset a TCP sends for a segment that belongs to
// no connection it has (RFC 9293 3.10.7.1, CLOSED): for a segment with ACK,
// <SEQ=SEG.ACK><CTL=RST>; without, <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
// (for a SYN this is RSTForSYN).
func RSTForSegment(seg, rst *probe.TCP) Problems {
	if seg.Flags&probe.ACK == 0 {
		return RSTForSYN(seg, rst)
	}
	var ps Problems
	if rst.Flags&probe.RST == 0 {
		ps.add("rst-flags", Must, "flags: want R, got %s", rst.Flags)
	}
	if rst.Flags&(probe.SYN|probe.FIN) != 0 {
		ps.add("rst-flags", Must, "flags: SYN or FIN with RST: %s", rst.Flags)
	}
	if rst.Seq != seg.Ack {
		ps.add("rst-seq", Must, "seq: want the segment's ack (%d), got %d (%+d)", uint32(seg.Ack), uint32(rst.Seq), rst.Seq.Sub(seg.Ack))
	}
	return ps
}

// TSFlow is what is known of the timestamps on a connection when judging a
// segment of one of its sides (RFC 7323 3.2, 4.3, 5.4). It is looser than
// TSState: between two stacks that both delay ACKs and send several
// segments at once, TSecr may echo any TSval the peer sent, not only the
// last two.
type TSFlow struct {
	// Known says whether the handshake was seen, so that Negotiated is
	// known: both SYNs carried timestamps.
	Known, Negotiated bool
	// OwnLast is the side's own newest TSval, when OwnAny.
	OwnLast uint32
	OwnAny  bool
	// PeerMax is the newest TSval the peer sent, when PeerAny.
	PeerMax uint32
	PeerAny bool
}

// TSUse checks the timestamps option of a segment after the handshake
// against the negotiation: present on every segment but RST once
// negotiated (MUST), absent when not negotiated (the receiver ignores it),
// TSval non-decreasing, and TSecr no newer than the newest TSval the peer
// sent.
func TSUse(ts TSFlow, t *probe.TCP) Problems {
	var ps Problems
	if t.Flags&probe.RST != 0 {
		return ps
	}
	val, ecr, ok := t.Timestamps()
	if !ok {
		if ts.Known && ts.Negotiated {
			ps.add("ts-present", Must, "no timestamps option, but timestamps were negotiated (RFC 7323 3.2)")
		}
		return ps
	}
	if ts.Known && !ts.Negotiated && t.Flags&probe.SYN == 0 {
		ps.add("ts-not-negotiated", Should, "timestamps option, but timestamps were not negotiated in the handshake: the receiver ignores it (RFC 7323 3.2)")
	}
	if ts.OwnAny && int32(val-ts.OwnLast) < 0 {
		ps.add("ts-monotonic", Must, "TSval went backwards: %d after %d", val, ts.OwnLast)
	}
	if t.Flags&probe.ACK != 0 && ts.PeerAny && int32(ecr-ts.PeerMax) > 0 {
		ps.add("ts-echo", Must, "TSecr %d echoes no TSval the peer sent: its newest was %d (RFC 7323 4.3)", ecr, ts.PeerMax)
	}
	return ps
}

// RightEdge is the right edge of the window a segment offers:
// SEG.ACK + SEG.WND << shift (RFC 7323 2.3; the window of a SYN segment is
// never scaled).
func RightEdge(t *probe.TCP, shift uint8) probe.Seq {
	if t.Flags&probe.SYN != 0 {
		shift = 0
	}
	return t.Ack.Add(uint32(t.Window) << min(shift, probe.MaxWScale))
}

// WindowShrink checks that a receiver does not move the right edge of its
// window to the left (RFC 9293 3.8.6: receivers SHOULD NOT shrink the
// window). prevEdge is the edge its previous segment offered; with window
// scaling the window is only known to 2^shift octets, so that much is
// rounding, not shrinking.
func WindowShrink(prevEdge probe.Seq, t *probe.TCP, shift uint8) Problems {
	var ps Problems
	if t.Flags&probe.ACK == 0 || t.Flags&probe.RST != 0 {
		return ps
	}
	edge := RightEdge(t, shift)
	if by := prevEdge.Sub(edge); by > 0 && uint32(by) >= uint32(1)<<min(shift, probe.MaxWScale) {
		ps.add("window-shrink", Should, "window shrank: right edge %d, %d octets left of the %d offered before (RFC 9293 3.8.6)", uint32(edge), by, uint32(prevEdge))
	}
	return ps
}

// PAWSAccepted checks that a receiver did not take data that PAWS rejects
// (RFC 7323 5.3, R1): a segment whose TSval is older than TS.Recent is not
// acceptable; the receiver acknowledges it and drops it. oldSeq is where
// such a segment's data began; t is the receiver's next segment: an ack
// beyond oldSeq took the data.
func PAWSAccepted(oldSeq probe.Seq, t *probe.TCP) Problems {
	var ps Problems
	if t.Flags&probe.ACK != 0 && t.Flags&probe.RST == 0 && oldSeq.LessThan(t.Ack) {
		ps.add("paws", Must, "acknowledged data (from seq %d) that came with a TSval older than one already received: PAWS drops such a segment (RFC 7323 5.3)", uint32(oldSeq))
	}
	return ps
}

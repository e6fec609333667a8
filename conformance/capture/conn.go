package capture

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"synprobe/conformance"
	"synprobe/conformance/report"
	"synprobe/probe"
)

// connKey is a 4-tuple in a canonical order (the lower address and port
// first), so that both directions of a connection find the same entry.
type connKey struct {
	lo, hi         [16]byte
	loPort, hiPort uint16
}

// keyOf returns the key of the segment in f, and whether its source is the
// key's lo end.
func keyOf(f *probe.Frame) (connKey, bool) {
	s, d := f.IP.Src.As16(), f.IP.Dst.As16()
	sp, dp := f.TCP.SrcPort, f.TCP.DstPort
	if c := bytes.Compare(s[:], d[:]); c < 0 || c == 0 && sp <= dp {
		return connKey{lo: s, hi: d, loPort: sp, hiPort: dp}, true
	}
	return connKey{lo: d, hi: s, loPort: dp, hiPort: sp}, false
}

// zeros stands in for payload a snapshot length cut off: the rules look at
// a segment's length, never at its bytes.
var zeros [1 << 17]byte

// endReason says why a connection was judged.
type endReason uint8

const (
	endClosed   endReason = iota // both FINs acknowledged, or a RST that aborts it
	endEOF                       // the capture ended with it open
	endDamage                    // the capture ended in damage with it open
	endIdle                      // no segment for Options.IdleTimeout
	endReplaced                  // a SYN with a new ISN started another connection
	endCrowded                   // more than Options.MaxOpen connections were open
)

// closeKind says how a connection closed.
type closeKind uint8

const (
	closeNone closeKind = iota
	closeFIN
	closeRST
	closeRefused // a RST answered the SYN: the port is closed
)

// tcpState names a side's state (RFC 9293 3.3.2) as an observer infers it.
type tcpState uint8

const (
	stClosed tcpState = iota
	stListen
	stSynSent
	stSynReceived
	stEstablished
	stFinWait1
	stFinWait2
	stCloseWait
	stClosing
	stLastAck
	stTimeWait
)

var stateNames = [...]string{"CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT"}

func (s tcpState) String() string { return stateNames[s] }

// evKind is what a step observed.
type evKind uint8

const (
	evSYN evKind = iota
	evSYNRetrans
	evSYNACK
	evSYNACKRetrans
	evHandshakeACK
	evFIN
	evFINAck
	evRST
	evRSTClosed // RST for a SYN to a closed port
	evRSTNoConn // RST for a segment of a connection the sender does not have
	evProblem   // any other segment that broke a rule
	evMalformed // a segment whose header could not be decoded
	evChecksum  // the checksum summary of one side
	evQuiet     // nothing notable: the connection's segments, summed up
)

// FIN variants (event.variant).
const (
	finActive uint8 = iota
	finPassive
	finSimultaneous
)

// segment is the part of a TCP segment a step shows, copied out of the
// packet buffer (which the reader reuses).
type segment struct {
	flags       probe.Flags
	optLen      uint8
	optsUnknown bool
	win, urg    uint16
	seq, ack    probe.Seq
	plen        uint32
	opts        [40]byte
}

func snapshot(t *probe.TCP, plen uint32, optsUnknown bool) segment {
	sg := segment{flags: t.Flags, optsUnknown: optsUnknown, win: t.Window, urg: t.Urgent, seq: t.Seq, ack: t.Ack, plen: plen}
	sg.optLen = uint8(copy(sg.opts[:], t.OptionBytes))
	return sg
}

// event is a step in compact form: it becomes text only if its result is
// kept.
type event struct {
	kind    evKind
	side    uint8
	state   tcpState
	variant uint8 // FIN variant, or RST class
	removed bool
	pkt     int
	at      time.Duration
	want    probe.Seq
	seg     segment
	// problems are the rules the segment broke.
	problems conformance.Problems
}

// tcpCopy holds a SYN or SYN-ACK for the rules that judge the answer to it,
// with its options copied out of the packet buffer.
type tcpCopy struct {
	t   probe.TCP
	buf [40]byte
}

func (cp *tcpCopy) set(t *probe.TCP, plen uint32) {
	opts := cp.t.Options[:0]
	cp.t = *t
	used := 0
	for _, o := range t.Options {
		d := o.Data
		if d != nil {
			n := copy(cp.buf[used:], d)
			d = cp.buf[used : used+n : used+n]
			used += n
		}
		opts = append(opts, probe.Option{Kind: o.Kind, Data: d})
	}
	cp.t.Options, cp.t.OptionBytes = opts, nil
	cp.t.Payload = zeros[:min(int(plen), len(zeros))]
}

// side is what the capture showed of one end of a connection.
type side struct {
	addr netip.AddrPort

	segs, octets, dataSegs uint64
	// checked counts segments whose checksums could be verified; badSum
	// those that were wrong, the first of them in badPkts.
	checked, badSum uint64
	badPkts         [6]int
	// partialSums counts segments whose checksum field holds the
	// pseudo-header sum that checksum offload leaves for the card.
	partialSums uint64

	isn                       probe.Seq
	haveISN                   bool
	synSeen, synackSeen       bool
	synOptsUnknown            bool
	synackOptsUnknown         bool
	synRetrans, synackRetrans int
	syn, synack               tcpCopy

	// nxt is the side's SND.NXT as seen: the end of the highest segment
	// it sent; ack the highest ack it sent (its RCV.NXT as far as known).
	nxt, ack         probe.Seq
	haveNxt, haveAck bool
	// unsentMark is the highest ack of this side already reported as
	// acknowledging data never sent, so that one gap is reported once.
	unsentMark     probe.Seq
	haveUnsentMark bool
	holes          uint64

	win        uint16
	winSYN     bool
	shift      uint8
	shiftKnown bool
	edge       probe.Seq
	haveEdge   bool

	tsLast, tsPrev uint32
	tsAny          bool
	// paws is set while data this side sent with an old TSval (PAWS says
	// the peer drops it) waits for the peer's next ack; pawsSeq is where it
	// began.
	paws    bool
	pawsSeq probe.Seq

	finSeen, finAcked bool
	finSeq            probe.Seq
	finPkt, finAckPkt int
	finRetrans        int
	// afterPeerFIN counts data octets sent after the peer's FIN (a half
	// close: the peer closed its side, this one goes on sending).
	afterPeerFIN uint64

	rst              bool
	challengePending bool
	challengeRSTPkt  int

	last struct {
		flags    probe.Flags
		seq, ack probe.Seq
		plen     uint32
	}
}

// pendingAck is an ack of data the capture never showed. If the acked side
// later shows it had sent that far, the capture missed its segments and
// the problem is withdrawn.
type pendingAck struct {
	ev    int
	acker uint8
	ack   probe.Seq
	pkt   int
}

// conn is one connection being followed. Side 0 is the client (the side
// that sent the first SYN) when the handshake was seen, else the side that
// sent the first segment of the capture.
type conn struct {
	key        connKey
	clientLo   bool
	rolesKnown bool
	v6         bool
	s          [2]side

	first, last       time.Time
	firstPkt, lastPkt int
	maxSteps          int

	events                  []event
	droppedPass, droppedBad int
	droppedWorst            report.Verdict
	notes                   []string
	pending                 []pendingAck

	hsSeen, hsDone    bool
	simOpen, simClose bool
	firstCloser       int8
	tsKnown, tsOn     bool

	// names caches the sides' addresses as text, for role; tx collects
	// the texts while the result is written.
	names [2]string
	tx    *texts

	closed   bool
	how      closeKind
	closedBy int8
	end      endReason
}

// reset clears c for reuse, keeping the capacity of its slices.
func (c *conn) reset() {
	var o [2][2][]probe.Option
	for i := range c.s {
		o[i][0], o[i][1] = c.s[i].syn.t.Options[:0], c.s[i].synack.t.Options[:0]
	}
	ev := c.events[:0]
	*c = conn{events: ev}
	for i := range c.s {
		c.s[i].syn.t.Options, c.s[i].synack.t.Options = o[i][0], o[i][1]
	}
}

func (c *conn) init(key connKey, srcLo bool, f *probe.Frame, pkt int, ts time.Time, maxSteps int) {
	t := &f.TCP
	c.key, c.maxSteps = key, maxSteps
	c.first, c.last, c.firstPkt, c.lastPkt = ts, ts, pkt, pkt
	c.firstCloser, c.closedBy = -1, -1
	hs := t.Flags & (probe.SYN | probe.ACK | probe.RST)
	c.clientLo = srcLo
	if hs == probe.SYN|probe.ACK {
		c.clientLo = !srcLo
	}
	c.rolesKnown = hs == probe.SYN || hs == probe.SYN|probe.ACK
	c.hsDone = !c.rolesKnown
	c.v6 = f.IP.Version == 6
	src, dst := f.Src(), f.Dst()
	if c.clientLo == srcLo {
		c.s[0].addr, c.s[1].addr = src, dst
	} else {
		c.s[0].addr, c.s[1].addr = dst, src
	}
	if cap(c.events) == 0 {
		c.events = make([]event, 0, 8)
	}
}

// sideOf returns the index of the side a segment comes from.
func (c *conn) sideOf(srcLo bool) int {
	if srcLo == c.clientLo {
		return 0
	}
	return 1
}

// newIncarnation reports whether the SYN t starts a new connection on this
// connection's 4-tuple: a SYN with another ISN, or a SYN on a connection
// that was seen from its middle.
func (c *conn) newIncarnation(t *probe.TCP, srcLo bool) bool {
	if t.Flags&(probe.SYN|probe.ACK|probe.RST) != probe.SYN {
		return false
	}
	if !c.hsSeen {
		return true
	}
	s := &c.s[c.sideOf(srcLo)]
	return s.haveISN && t.Seq != s.isn
}

// payloadLen is the length of the segment's data on the wire, even when
// the snapshot length cut it, and whether its options were cut.
func payloadLen(f *probe.Frame) (plen uint32, optsUnknown bool) {
	t := &f.TCP
	if !f.Truncated {
		return uint32(len(t.Payload)), false
	}
	hl := int(t.DataOffset) * 4
	n := f.IP.TotalLength - f.IP.HeaderLen - hl
	n = max(0, min(n, len(zeros)))
	return uint32(n), hl < probe.TCPHeaderLen || len(t.OptionBytes) != hl-probe.TCPHeaderLen
}

// segEnd is the sequence number after a segment of plen data octets.
func segEnd(t *probe.TCP, plen uint32) probe.Seq {
	n := plen
	if t.Flags&probe.SYN != 0 {
		n++
	}
	if t.Flags&probe.FIN != 0 {
		n++
	}
	return t.Seq.Add(n)
}

// problemf makes a problem for a check that has no rule of its own.
func problemf(rule string, level conformance.Level, format string, args ...any) conformance.Problem {
	return conformance.Problem{Rule: rule, Level: level, Text: fmt.Sprintf(format, args...)}
}

// add records a step. Past maxSteps, steps are counted, not kept.
func (c *conn) add(ev event) int {
	if len(c.events) >= c.maxSteps {
		if len(ev.problems) == 0 {
			c.droppedPass++
		} else {
			c.droppedBad++
			c.droppedWorst = report.Worst(c.droppedWorst, ev.problems.Verdict())
		}
		return -1
	}
	c.events = append(c.events, ev)
	return len(c.events) - 1
}

func (c *conn) note(format string, args ...any) {
	if len(c.notes) < c.maxSteps {
		c.notes = append(c.notes, fmt.Sprintf(format, args...))
	}
}

// segment judges one segment of the connection and follows its state.
func (c *conn) segment(a *Analyzer, pkt int, ts time.Time, f *probe.Frame, srcLo bool, decodeErr error) {
	from := c.sideOf(srcLo)
	s, p := &c.s[from], &c.s[1-from]
	t := &f.TCP
	if !ts.IsZero() && ts.After(c.last) {
		c.last = ts
	}
	c.lastPkt = pkt
	var at time.Duration
	if !ts.IsZero() && !c.first.IsZero() {
		at = ts.Sub(c.first)
	}
	s.segs++
	switch {
	case f.Checksum == probe.ChecksumInvalid && f.IPChecksum != probe.ChecksumInvalid && partialChecksum(f):
		// Left to the network card: not a fault, whoever sent it.
		s.partialSums++
	case f.Checksum == probe.ChecksumInvalid || f.IPChecksum == probe.ChecksumInvalid:
		if s.badSum < uint64(len(s.badPkts)) {
			s.badPkts[s.badSum] = pkt
		}
		s.badSum++
		s.checked++
	case f.Checksum == probe.ChecksumValid:
		s.checked++
	}
	plen, optsUnknown := payloadLen(f)
	ev := event{side: uint8(from), pkt: pkt, at: at, seg: snapshot(t, plen, optsUnknown)}
	if decodeErr != nil {
		ev.kind, ev.problems = evMalformed, conformance.WellFormed(f, decodeErr)
		c.add(ev)
		return
	}
	if f.Truncated {
		t.Payload = zeros[:plen]
	}
	ps := wellFormed(f)
	if len(c.pending) > 0 {
		c.resolve(from, t, plen)
	}
	if s.challengePending {
		s.challengePending = false
		if t.Flags&(probe.SYN|probe.FIN|probe.RST|probe.ACK) == probe.ACK && plen == 0 {
			c.note("%s answered the RST of packet %d with a challenge ACK (RFC 5961 3.2) in packet %d", c.role(from), s.challengeRSTPkt, pkt)
		}
	}
	switch {
	case t.Flags&probe.RST != 0:
		c.onRST(from, t, ev, ps)
	case t.Flags&(probe.SYN|probe.ACK) == probe.SYN:
		c.onSYN(from, t, plen, optsUnknown, ev, ps)
	case t.Flags&probe.SYN != 0:
		c.onSYNACK(from, t, plen, optsUnknown, ev, ps)
	default:
		c.onSegment(from, t, plen, optsUnknown, ev, ps)
	}
	c.track(s, p, t, plen, optsUnknown)
	if c.s[0].finAcked && c.s[1].finAcked && !c.closed {
		c.closed, c.how = true, closeFIN
	}
}

// partialChecksum reports whether a segment's checksum field holds what a
// sender that leaves the checksum to its network card writes there (Linux
// CHECKSUM_PARTIAL): the pseudo-header sum, folded but not complemented. A
// capture taken on the sending host (or on a veth pair) sees segments so.
func partialChecksum(f *probe.Frame) bool {
	var ph [40]byte // the pseudo-header (RFC 9293 3.1, RFC 8200 8.1)
	n := 0
	segLen := f.IP.TotalLength - f.IP.HeaderLen
	if f.IP.Version == 4 {
		s, d := f.IP.Src.As4(), f.IP.Dst.As4()
		n = copy(ph[:], s[:])
		n += copy(ph[n:], d[:])
		ph[n+1] = probe.ProtocolTCP
		binary.BigEndian.PutUint16(ph[n+2:], uint16(segLen))
		n += 4
	} else {
		s, d := f.IP.Src.As16(), f.IP.Dst.As16()
		n = copy(ph[:], s[:])
		n += copy(ph[n:], d[:])
		binary.BigEndian.PutUint32(ph[n:], uint32(segLen))
		ph[n+7] = probe.ProtocolTCP
		n += 8
	}
	sum := ^probe.Checksum(ph[:n]) // folded, not complemented
	return f.TCP.Checksum == sum || sum == 0xffff && f.TCP.Checksum == 0 || sum == 0 && f.TCP.Checksum == 0xffff
}

// wellFormed is conformance.WellFormed without the checksum problems,
// which are judged per side when the connection ends (they may be
// offloaded).
func wellFormed(f *probe.Frame) conformance.Problems {
	ps := conformance.WellFormed(f, nil)
	if len(ps) == 0 {
		return nil
	}
	out := ps[:0]
	for _, p := range ps {
		if p.Rule != "tcp-checksum" && p.Rule != "ip-checksum" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// track follows a side's sequence space, acks, window and timestamps after
// its segment was judged.
func (c *conn) track(s, p *side, t *probe.TCP, plen uint32, optsUnknown bool) {
	s.last.flags, s.last.seq, s.last.ack, s.last.plen = t.Flags, t.Seq, t.Ack, plen
	if t.Flags&probe.RST != 0 {
		return
	}
	end := segEnd(t, plen)
	if s.haveNxt && s.nxt.LessThan(t.Seq) {
		s.holes++
	}
	if !s.haveNxt || s.nxt.LessThan(end) {
		s.nxt, s.haveNxt = end, true
	}
	isSYN := t.Flags&probe.SYN != 0
	if t.Flags&probe.ACK != 0 {
		newer := !s.haveAck || !t.Ack.LessThan(s.ack)
		if newer {
			s.ack, s.haveAck = t.Ack, true
			if isSYN || s.shiftKnown {
				s.edge, s.haveEdge = conformance.RightEdge(t, s.shift), true
			}
		}
	}
	s.win, s.winSYN = t.Window, isSYN
	if !optsUnknown {
		if val, _, ok := t.Timestamps(); ok {
			if !s.tsAny || int32(val-s.tsLast) > 0 {
				s.tsPrev, s.tsLast = s.tsLast, val
			}
			s.tsAny = true
		}
	}
	if plen > 0 {
		s.dataSegs++
		s.octets += uint64(plen)
		if p.finSeen && !s.finSeen {
			s.afterPeerFIN += uint64(plen)
		}
	}
}

// resolve withdraws the "ack of data never sent" problems about side
// from's data once it shows it had sent that far: the capture missed its
// segments.
func (c *conn) resolve(from int, t *probe.TCP, plen uint32) {
	end := segEnd(t, plen)
	kept := c.pending[:0]
	for _, pa := range c.pending {
		if int(pa.acker) == from || end.LessThan(pa.ack) {
			kept = append(kept, pa)
			continue
		}
		ev := &c.events[pa.ev]
		ps := ev.problems[:0]
		for _, p := range ev.problems {
			if p.Rule != "ack-unsent" {
				ps = append(ps, p)
			}
		}
		ev.problems = ps
		if len(ps) == 0 && ev.kind == evProblem {
			ev.removed = true
		}
		c.note("packet %d acknowledged data of %s the capture did not show (capture loss), not judged", pa.pkt, c.role(from))
	}
	c.pending = kept
}

func (c *conn) onSYN(from int, t *probe.TCP, plen uint32, optsUnknown bool, ev event, ps conformance.Problems) {
	s, p := &c.s[from], &c.s[1-from]
	c.hsSeen = true
	if s.synSeen {
		// The same ISN (another one starts a new connection).
		s.synRetrans++
		ev.kind, ev.problems = evSYNRetrans, ps
		c.add(ev)
		return
	}
	s.synSeen, s.synOptsUnknown = true, optsUnknown
	s.isn, s.haveISN = t.Seq, true
	s.syn.set(t, plen)
	ev.kind = evSYN
	if p.synSeen {
		c.simOpen = true
		ev.variant = 1
	}
	if !optsUnknown {
		ps = append(ps, conformance.MSSSane(t, c.v6)...)
		ps = append(ps, conformance.WScaleUse(t)...)
	}
	ev.problems = ps
	c.add(ev)
}

func (c *conn) onSYNACK(from int, t *probe.TCP, plen uint32, optsUnknown bool, ev event, ps conformance.Problems) {
	s, p := &c.s[from], &c.s[1-from]
	c.hsSeen = true
	if s.synackSeen {
		if t.Seq == s.isn {
			s.synackRetrans++
			ev.kind, ev.problems = evSYNACKRetrans, ps
		} else {
			ev.kind = evProblem
			ev.problems = append(ps, problemf("synack-isn", conformance.Must, "a second SYN-ACK with another ISN: seq %d, the first had %d", uint32(t.Seq), uint32(s.isn)))
		}
		c.add(ev)
		return
	}
	if s.synSeen && t.Seq != s.isn {
		ps = append(ps, problemf("synack-isn", conformance.Must, "SYN-ACK seq %d is not the ISN %d of the SYN this side sent (simultaneous open)", uint32(t.Seq), uint32(s.isn)))
	}
	s.synackSeen, s.synackOptsUnknown = true, optsUnknown
	if !s.haveISN {
		s.isn, s.haveISN = t.Seq, true
	}
	s.synack.set(t, plen)
	var syn *probe.TCP
	if p.synSeen {
		syn = &p.syn.t
		ps = append(ps, conformance.SYNACK(syn, t)...)
		if !optsUnknown && !p.synOptsUnknown {
			ps = append(ps, conformance.OptionsOffered(syn, t)...)
			_, _, tsSyn := syn.Timestamps()
			_, _, tsAck := t.Timestamps()
			ts := conformance.TSState{Enabled: tsSyn && tsAck, LastSent: p.tsLast, PrevSent: p.tsPrev, SentAny: p.tsAny,
				LastReceived: s.tsLast, ReceivedAny: s.tsAny}
			ps = append(ps, conformance.TSEcho(ts, t)...)
		}
		ev.want = syn.Seq.Add(1)
	}
	if !optsUnknown {
		ps = append(ps, conformance.MSSSane(t, c.v6)...)
		ps = append(ps, conformance.WScaleUse(t)...)
	}
	c.negotiate(from, syn, t, optsUnknown)
	ev.kind, ev.problems = evSYNACK, ps
	c.add(ev)
	if c.simOpen && c.s[0].synackSeen && c.s[1].synackSeen {
		c.hsDone = true
	}
}

// negotiate learns window scaling and timestamps from a SYN-ACK sent by
// side from and the SYN it answers (nil when not in the capture).
func (c *conn) negotiate(from int, syn, synack *probe.TCP, optsUnknown bool) {
	a, b := &c.s[1-from], &c.s[from]
	if optsUnknown || syn != nil && a.synOptsUnknown {
		return
	}
	wsB, okB := synack.WScale()
	_, _, tsB := synack.Timestamps()
	if syn == nil {
		// A conforming SYN-ACK carries an option only if the SYN did.
		if okB {
			b.shift, b.shiftKnown = min(wsB, probe.MaxWScale), true
		} else {
			a.shift, b.shift, a.shiftKnown, b.shiftKnown = 0, 0, true, true
		}
		c.tsKnown, c.tsOn = true, tsB
		return
	}
	wsA, okA := syn.WScale()
	a.shift, b.shift = 0, 0
	if okA && okB {
		a.shift, b.shift = min(wsA, probe.MaxWScale), min(wsB, probe.MaxWScale)
	}
	a.shiftKnown, b.shiftKnown = true, true
	_, _, tsA := syn.Timestamps()
	c.tsKnown, c.tsOn = true, tsA && tsB
}

// trackPAWS notes new data that s sent with a TSval older than its newest
// (the peer must drop it, RFC 7323 5.3), and forgets it when s sends the
// data again with a good TSval.
func (c *conn) trackPAWS(s, p *side, t *probe.TCP, plen uint32) {
	val, _, ok := t.Timestamps()
	if !ok || plen == 0 || !c.tsOn {
		return
	}
	end := t.Seq.Add(plen)
	switch {
	case s.tsAny && int32(val-s.tsLast) < 0:
		if !(p.haveAck && end.LessEq(p.ack)) { // data not yet acknowledged
			s.paws, s.pawsSeq = true, t.Seq
		}
	case s.paws && t.Seq.LessEq(s.pawsSeq) && s.pawsSeq.LessThan(end):
		s.paws = false // sent again, with a good TSval
	}
}

func (c *conn) onSegment(from int, t *probe.TCP, plen uint32, optsUnknown bool, ev event, ps conformance.Problems) {
	s, p := &c.s[from], &c.s[1-from]
	isACK := t.Flags&probe.ACK != 0
	handshake := false
	if !c.hsDone && isACK && p.synackSeen && !s.synackSeen {
		// The ACK that completes the handshake (its SYN may be missing).
		handshake, c.hsDone = true, true
		var syn *probe.TCP
		if s.synSeen {
			syn = &s.syn.t
		}
		ps = append(ps, conformance.HandshakeACK(syn, &p.synack.t, t)...)
		if c.tsOn && !optsUnknown {
			ts := conformance.TSState{Enabled: true, LastSent: p.tsLast, PrevSent: p.tsPrev, SentAny: p.tsAny, LastReceived: s.tsLast, ReceivedAny: s.tsAny}
			ps = append(ps, conformance.TSEcho(ts, t)...)
		}
		if !optsUnknown {
			ps = append(ps, conformance.WScaleUse(t)...)
		}
	}

	ackedFIN := false
	if isACK && p.finSeen && !p.finAcked {
		acked, fps := conformance.FINAck(p.finSeq, t)
		ps = append(ps, fps...)
		if acked {
			p.finAcked, p.finAckPkt, ackedFIN = true, ev.pkt, true
		}
	} else if isACK && !handshake && p.haveNxt && !(s.haveUnsentMark && t.Ack.LessEq(s.unsentMark)) {
		if aps := conformance.AckSent(t, p.nxt); len(aps) > 0 {
			ps = append(ps, aps...)
			s.unsentMark, s.haveUnsentMark = t.Ack, true
		}
	}
	if !handshake {
		if !optsUnknown {
			// A TSecr newer than anything seen from the peer is the
			// capture's loss, not the peer's fault, when the ack also
			// runs ahead of the capture or the capture already missed
			// some of the peer's data.
			peerAny := p.tsAny && p.holes == 0 && !(isACK && p.haveNxt && p.nxt.LessThan(t.Ack))
			tsf := conformance.TSFlow{Known: c.tsKnown, Negotiated: c.tsOn, OwnLast: s.tsLast, OwnAny: s.tsAny, PeerMax: p.tsLast, PeerAny: peerAny}
			ps = append(ps, conformance.TSUse(tsf, t)...)
			c.trackPAWS(s, p, t, plen)
			ps = append(ps, conformance.WScaleUse(t)...)
		}
		if isACK && p.paws && !optsUnknown {
			ps = append(ps, conformance.PAWSAccepted(p.pawsSeq, t)...)
			p.paws = false
		}
		if isACK && s.haveEdge && s.shiftKnown && s.haveAck && !t.Ack.LessThan(s.ack) {
			ps = append(ps, conformance.WindowShrink(s.edge, t, s.shift)...)
		}
	}
	if s.finSeen {
		ps = append(ps, conformance.AfterFIN(s.finSeq, t)...)
	}

	newFIN := false
	if t.Flags&probe.FIN != 0 {
		finSeq := t.Seq.Add(plen)
		switch {
		case !s.finSeen:
			newFIN = true
			s.finSeen, s.finSeq, s.finPkt = true, finSeq, ev.pkt
			if c.firstCloser < 0 {
				c.firstCloser = int8(from)
			}
		case finSeq == s.finSeq:
			s.finRetrans++
		}
	}

	// One segment may be several steps (the ACK of a FIN that carries its
	// own FIN); its problems go with the first.
	attached := false
	emit := func(kind evKind, variant uint8, want probe.Seq) {
		e := ev
		e.kind, e.variant, e.want = kind, variant, want
		if !attached {
			e.problems, attached = ps, true
		}
		c.addTracked(e, from, t)
	}
	if handshake {
		emit(evHandshakeACK, 0, p.synack.t.Seq.Add(1))
	}
	if ackedFIN {
		emit(evFINAck, 0, p.finSeq.Add(1))
	}
	if newFIN {
		variant := finActive
		switch {
		case c.firstCloser != int8(from) && p.finSeen && !p.finAcked:
			variant = finSimultaneous
			c.simClose = true
		case c.firstCloser != int8(from):
			variant = finPassive
		}
		ev.state = c.stateOf(from)
		emit(evFIN, variant, s.finSeq)
	}
	if !attached && len(ps) > 0 {
		emit(evProblem, 0, 0)
	}
}

// addTracked adds an event and remembers an "ack of data never sent"
// problem in it, to withdraw if the capture turns out to have missed data.
func (c *conn) addTracked(ev event, from int, t *probe.TCP) {
	i := c.add(ev)
	if i < 0 {
		return
	}
	for _, p := range ev.problems {
		if p.Rule == "ack-unsent" {
			c.pending = append(c.pending, pendingAck{ev: i, acker: uint8(from), ack: t.Ack, pkt: ev.pkt})
			break
		}
	}
}

func (c *conn) onRST(from int, t *probe.TCP, ev event, ps conformance.Problems) {
	s, p := &c.s[from], &c.s[1-from]
	s.rst = true
	ev.state = c.stateOf(from)
	switch {
	case s.segs == 1 && p.synSeen && !p.synackSeen && p.last.flags&probe.SYN != 0:
		// The first thing this side says is a RST to the SYN: no one
		// listens on the port (RFC 9293 3.10.7.1).
		ev.kind, ev.state, ev.want = evRSTClosed, stClosed, p.syn.t.End()
		ev.problems = append(ps, conformance.RSTForSYN(&p.syn.t, t)...)
		c.add(ev)
		c.closed, c.how, c.closedBy = true, closeRefused, int8(from)
	case s.segs == 1 && p.segs > 0 && !c.hsSeen:
		// A RST to a segment of a connection this side does not have.
		seg := probe.TCP{Flags: p.last.flags, Seq: p.last.seq, Ack: p.last.ack, Payload: zeros[:p.last.plen]}
		ev.kind, ev.state, ev.want = evRSTNoConn, stClosed, seg.Ack
		if seg.Flags&probe.ACK == 0 {
			ev.want = seg.End()
		}
		ev.problems = append(ps, conformance.RSTForSegment(&seg, t)...)
		c.add(ev)
		c.closed, c.how, c.closedBy = true, closeRST, int8(from)
	default:
		rcv, known := c.rcvWindow(p, s)
		ev.kind, ev.want = evRST, rcv.NXT
		if !known {
			// Nothing seen of either sequence space: take it as the abort.
			ev.problems = ps
			c.add(ev)
			c.closed, c.how, c.closedBy = true, closeRST, int8(from)
			return
		}
		class, rps := conformance.RSTAcceptable(t, rcv)
		ev.variant, ev.problems = uint8(class), append(ps, rps...)
		c.add(ev)
		if class == conformance.RSTExact {
			c.closed, c.how, c.closedBy = true, closeRST, int8(from)
		} else {
			p.challengePending, p.challengeRSTPkt = true, ev.pkt
		}
	}
}

// rcvWindow is the receive window of side p, the receiver of a segment
// from s, as the capture knows it.
func (c *conn) rcvWindow(p, s *side) (conformance.RcvWindow, bool) {
	var w conformance.RcvWindow
	switch {
	case p.haveAck:
		w.NXT = p.ack
	case s.haveNxt:
		w.NXT = s.nxt
	default:
		return w, false
	}
	if s.haveNxt && w.NXT.LessThan(s.nxt) {
		w.InFlight = uint32(s.nxt - w.NXT)
	}
	w.WND = uint32(p.win)
	if !p.winSYN {
		shift := uint8(probe.MaxWScale) // unknown: the widest it can be
		if p.shiftKnown {
			shift = p.shift
		}
		w.WND <<= shift
	}
	return w, true
}

// stateOf infers the state of side i from what the capture showed.
func (c *conn) stateOf(i int) tcpState {
	s, p := &c.s[i], &c.s[1-i]
	if !c.hsDone {
		switch {
		case s.synackSeen:
			return stSynReceived
		case s.synSeen:
			return stSynSent
		case p.synSeen:
			return stListen
		}
		return stEstablished
	}
	switch {
	case !s.finSeen && !p.finSeen:
		return stEstablished
	case s.finSeen && !p.finSeen:
		if s.finAcked {
			return stFinWait2
		}
		return stFinWait1
	case !s.finSeen:
		return stCloseWait
	case int(c.firstCloser) == i:
		if s.finAcked {
			return stTimeWait
		}
		return stClosing
	}
	return stLastAck
}

// checksumVerdicts adds one step per side whose segments had bad
// checksums: possibly offloaded (info) when the capture was likely taken
// on that side's host, else a failure.
func (c *conn) checksumVerdicts(a *Analyzer) {
	for i := range c.s {
		s := &c.s[i]
		if s.badSum == 0 {
			continue
		}
		other := c.s[1-i].badSum
		all := s.badSum == s.checked
		host := s.addr.Addr()
		offload := other == 0 && (all || a.offloadHosts[host])
		if other == 0 && all && len(a.offloadHosts) < maxOffloadHosts {
			a.offloadHosts[host] = true
		}
		ev := event{kind: evChecksum, side: uint8(i), pkt: s.badPkts[0]}
		if offload {
			ev.problems = conformance.Problems{problemf("tcp-checksum", conformance.Observed,
				"possibly offloaded: the capture was likely taken on %v, whose network card fills in checksums after the capture saw the segment", host)}
		} else {
			ev.problems = conformance.Problems{problemf("tcp-checksum", conformance.Must,
				"bad checksums from %v: damaged on the path or by the sender (RFC 9293 3.1)", host)}
		}
		// Always kept: it sums up many segments.
		c.events = append(c.events, ev)
	}
}

// verdict is the worst verdict of the connection's steps.
func (c *conn) verdict() report.Verdict {
	v := report.Pass
	for i := range c.events {
		if !c.events[i].removed {
			v = report.Worst(v, c.events[i].problems.Verdict())
		}
	}
	if c.droppedBad > 0 {
		v = report.Worst(v, c.droppedWorst)
	}
	return v
}

// release frees what a judged connection holds.
func (c *conn) release() {
	clear(c.events)
	c.events = c.events[:0]
	c.notes, c.pending = nil, nil
}

// tombstone is what a closed connection leaves behind for a while: enough
// to tell its retransmissions from a new connection on the same 4-tuple.
type tombstone struct {
	gen      uint64
	clientLo bool
	haveISN  [2]bool
	haveNxt  [2]bool
	isn, nxt [2]probe.Seq
}

func (c *conn) tombstone(gen uint64) tombstone {
	tb := tombstone{gen: gen, clientLo: c.clientLo}
	for i := range c.s {
		tb.haveISN[i], tb.isn[i] = c.s[i].haveISN, c.s[i].isn
		tb.haveNxt[i], tb.nxt[i] = c.s[i].haveNxt, c.s[i].nxt
	}
	return tb
}

// absorbs reports whether a segment after the close is a retransmission
// of the closed connection (a RST, its SYN, or nothing beyond what its
// sender had sent) rather than the start of a new one.
func (tb *tombstone) absorbs(f *probe.Frame, srcLo bool) bool {
	i := 1
	if srcLo == tb.clientLo {
		i = 0
	}
	t := &f.TCP
	if t.Flags&probe.RST != 0 {
		return true
	}
	if t.Flags&probe.SYN != 0 {
		return tb.haveISN[i] && t.Seq == tb.isn[i]
	}
	plen, _ := payloadLen(f)
	return tb.haveNxt[i] && segEnd(t, plen).LessEq(tb.nxt[i])
}

package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"synprobe/conformance/report"
	"synprobe/probe"
)

// Conn is what the runner knows of one probe connection: the session, the
// two ISNs, the next sequence numbers, the options negotiated, timestamps,
// and the steps taken so far. The built-in handshake and scripts both run
// through it.
type Conn struct {
	S     *probe.Session
	Start time.Time

	// ISN is synprobe's initial sequence number: the sequence number of the
	// first segment it sent on the connection (packetdrill's rule: any
	// first segment opens the connection at a listener). PeerISN is the
	// target's, from its latest SYN (HavePeerISN).
	ISN, PeerISN probe.Seq
	HaveISN      bool
	HavePeerISN  bool
	// SNDNXT is the next sequence number synprobe will send; RCVNXT the
	// next one it expects from the target.
	SNDNXT, RCVNXT probe.Seq
	// InOrderNXT is the end of what synprobe sent in order from its ISN:
	// data sent beyond a gap, or far out of the window, does not move it.
	InOrderNXT probe.Seq
	// beyond are data ranges synprobe sent past a gap (past InOrderNXT),
	// oldest first: once the gap is filled the target holds them too.
	beyond []seqRange
	// SYN is the last SYN synprobe sent (what it offered).
	SYN *probe.TCP
	TS  TSState
	// WScale is the target's window scale once negotiated (-1 before).
	WScale int
	// LastSent is the last frame synprobe sent: replies are timed from it.
	LastSent *probe.Sent
	// Late is the most a segment synprobe sent left after it was due (a
	// script's time, or at once after the reply it answers), and LateWhat
	// names that segment: this host was busy (NoteLate).
	Late     time.Duration
	LateWhat string
	// sentAt are when synprobe's last frames left, oldest first (see
	// Unprovoked).
	sentAt [8]time.Time
	nSent  int

	// PeerAcked is the highest acknowledgment the target sent
	// (HavePeerAck): its RCV.NXT as it last told synprobe. Data synprobe
	// sent beyond it was not taken, or not yet.
	PeerAcked   probe.Seq
	HavePeerAck bool
	// App is what the target's application did on the connection that no
	// script line or check described (see Attribute).
	App AppState
	// Scripted is how much of the target's sequence space (after its SYN)
	// script lines described: the rest is the application's (Shift).
	Scripted uint32
	// PeerReset is set once the target sent a RST: its side is gone.
	PeerReset bool
	// PeerFIN is the sequence number after the target's FIN (HavePeerFIN).
	PeerFIN     probe.Seq
	HavePeerFIN bool
	// AckSent is the highest acknowledgment synprobe sent (HaveAckSent).
	AckSent     probe.Seq
	HaveAckSent bool
	// FINSent is the sequence number after synprobe's FIN (HaveFINSent).
	FINSent     probe.Seq
	HaveFINSent bool
	// Window is the window synprobe last advertised.
	Window uint16
	// ResetSent is set once synprobe sent a RST at the target's RCV.NXT
	// as last acknowledged: one that resets the connection.
	ResetSent bool
	// HandshakeRTT is the time from synprobe's SYN to the SYN-ACK.
	HandshakeRTT time.Duration
	// SYNUnanswered is set when a SYN went unanswered, sent again and all
	// (AwaitSYNACK).
	SYNUnanswered bool

	Steps []report.Step
	Notes []string

	drops0 uint64
}

// NewConn wraps a session.
func NewConn(s *probe.Session) *Conn {
	return &Conn{S: s, Start: time.Now(), WScale: -1, drops0: s.Prober().Stats().Drops}
}

// Send sends a frame on the connection and keeps the state: ISN from a SYN,
// SND.NXT, timestamps.
func (c *Conn) Send(f *probe.Frame, ov ...probe.Override) (*probe.Sent, error) {
	sent, err := c.S.Send(f, ov...)
	if err != nil {
		return nil, err
	}
	c.Sent(&f.TCP, sent)
	return sent, nil
}

// Sent updates the state with a segment synprobe sent.
func (c *Conn) Sent(t *probe.TCP, sent *probe.Sent) {
	if val, _, ok := t.Timestamps(); ok {
		c.TS.SentSegment(val, c.tsRecentUpdate(t), t.Seq, t.End())
	}
	if !c.HaveISN {
		c.ISN, c.SNDNXT, c.InOrderNXT, c.HaveISN = t.Seq, t.Seq, t.Seq, true
	}
	if t.Flags&probe.SYN != 0 {
		c.SNDNXT, c.InOrderNXT = t.Seq, t.Seq // a SYN (re)starts the sequence space
		syn := *t
		c.SYN = &syn
	}
	if end := t.End(); c.SNDNXT.LessThan(end) {
		c.SNDNXT = end
	}
	if end := t.End(); t.Flags&probe.RST == 0 && t.Seq.LessEq(c.InOrderNXT) && c.InOrderNXT.LessThan(end) {
		c.InOrderNXT = end
	}
	if t.Flags&probe.FIN != 0 && t.Flags&probe.RST == 0 {
		c.FINSent, c.HaveFINSent = t.End(), true
	}
	if t.Flags&probe.ACK != 0 && t.Flags&probe.RST == 0 && (!c.HaveAckSent || c.AckSent.LessThan(t.Ack)) {
		c.AckSent, c.HaveAckSent = t.Ack, true
	}
	if t.Flags&probe.RST == 0 {
		c.Window = t.Window
	} else if !c.HavePeerAck || t.Seq == c.PeerAcked {
		c.ResetSent = true
	}
	c.noteBeyond(t)
	c.LastSent = sent
	c.sentAt[c.nSent%len(c.sentAt)] = sent.Time
	c.nSent++
}

// seqRange is a range of sequence numbers [from, to).
type seqRange struct{ from, to probe.Seq }

// noteBeyond keeps the data ranges sent past InOrderNXT (a few, the
// newest), and the in-order end they extend once a gap before them is
// filled is what the target holds (rcvEdge).
func (c *Conn) noteBeyond(t *probe.TCP) {
	if t.Flags&(probe.SYN|probe.RST) != 0 {
		if t.Flags&probe.SYN != 0 {
			c.beyond = nil
		}
		return
	}
	if end := t.End(); c.InOrderNXT.LessThan(t.Seq) && t.Seq.LessThan(end) {
		c.beyond = append(c.beyond, seqRange{t.Seq, end})
		if len(c.beyond) > 16 {
			c.beyond = c.beyond[1:]
		}
	}
}

// rcvEdge is the most the target's RCV.NXT can be: the in-order end of
// what synprobe sent, extended by data sent past a gap that was filled
// since, or the target's acknowledgment when that is further.
func (c *Conn) rcvEdge() probe.Seq {
	edge := c.InOrderNXT
	if c.HavePeerAck && edge.LessThan(c.PeerAcked) {
		edge = c.PeerAcked
	}
	for grown := true; grown; {
		grown = false
		for _, r := range c.beyond {
			if r.from.LessEq(edge) && edge.LessThan(r.to) {
				edge, grown = r.to, true
			}
		}
	}
	return edge
}

// tsRecentUpdate says whether the target takes t's TSval as TS.Recent
// (RFC 7323 4.3, 5.3 R3): only from an acceptable segment with SEG.SEQ <=
// Last.ACK.sent (the target's last acknowledgment). It must when synprobe
// knows that holds; it may when the target may have acknowledged more
// than synprobe saw yet, when the segment may not be acceptable (old
// data, an ACK of data the target never sent, which Linux drops before it
// records the TSval); it never does beyond a gap (SEG.SEQ > RCV.NXT) or
// from a RST.
func (c *Conn) tsRecentUpdate(t *probe.TCP) TSUpdate {
	switch {
	case t.Flags&probe.RST != 0:
		return TSNever
	case t.Flags&probe.SYN != 0:
		return TSMust
	case !c.HaveISN:
		return TSMay
	case c.rcvEdge().LessThan(t.Seq):
		return TSNever
	}
	newData := c.InOrderNXT.LessThan(t.End()) || t.End() == t.Seq && t.Seq == c.InOrderNXT
	validACK := t.Flags&probe.ACK == 0 || !c.HavePeerISN || t.Ack.LessEq(c.RCVNXT)
	if c.HavePeerAck && t.Seq.LessEq(c.PeerAcked) && newData && validACK {
		return TSMust
	}
	return TSMay
}

// sentBefore is when synprobe's last frame before t left (zero if none
// is remembered).
func (c *Conn) sentBefore(t time.Time) time.Time {
	var last time.Time
	for i := max(0, c.nSent-len(c.sentAt)); i < c.nSent; i++ {
		if at := c.sentAt[i%len(c.sentAt)]; !at.After(t) && at.After(last) {
			last = at
		}
	}
	return last
}

// ErrSilence is returned by Recv when nothing arrived before the deadline.
var ErrSilence = errors.New("no segment")

// Recv waits until deadline for the next frame from the target on this
// connection. It returns ErrSilence on timeout, and ctx's error when ctx
// ends first.
func (c *Conn) Recv(ctx context.Context, deadline time.Time) (*probe.Reply, error) {
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	r, err := c.S.Recv(dctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, ErrSilence
		}
		return nil, err
	}
	return r, nil
}

// Observe updates the state with a segment from the target: its ISN from a
// SYN, RCV.NXT, timestamps and window scale.
func (c *Conn) Observe(t *probe.TCP) {
	if t.Flags&probe.SYN != 0 && (!c.HavePeerISN || t.Seq != c.PeerISN) {
		c.PeerISN, c.HavePeerISN = t.Seq, true
		c.RCVNXT = t.Seq
		// A new sequence space: what was known of the old one is void.
		c.HavePeerAck, c.HavePeerFIN, c.App, c.Scripted = false, false, AppState{}, 0
		if c.SYN != nil {
			_, offered := c.SYN.Option(probe.OptionTimestamps)
			_, answered := t.Option(probe.OptionTimestamps)
			c.TS.Enabled = offered && answered
			if _, ok := c.SYN.WScale(); ok {
				if ws, ok := t.WScale(); ok {
					c.WScale = int(min(ws, probe.MaxWScale))
				}
			}
		}
	}
	if t.Flags&probe.RST != 0 {
		c.PeerReset = true
	} else {
		if end := t.End(); c.HavePeerISN && c.RCVNXT.LessThan(end) {
			c.RCVNXT = end
		}
		if t.Flags&probe.ACK != 0 && (!c.HavePeerAck || c.PeerAcked.LessThan(t.Ack)) {
			c.PeerAcked, c.HavePeerAck = t.Ack, true
		}
		if t.Flags&probe.FIN != 0 && t.Flags&probe.SYN == 0 {
			c.PeerFIN, c.HavePeerFIN = t.End(), true
		}
	}
	c.TS.Received(t)
}

// Receive updates the state with a segment from the target (see Observe)
// and checks its timestamps against what was known before it: TSecr
// echoes synprobe's last TSval, TSval does not go backwards, the option is
// present once negotiated.
func (c *Conn) Receive(t *probe.TCP) Problems {
	before := c.TS
	c.Observe(t)
	before.Enabled = c.TS.Enabled
	return TSEcho(before, t)
}

// Judge takes in a reply from the target (see Receive) and applies the
// rules every reply must meet: timestamps as negotiated, well formed, and,
// for a SYN-ACK to synprobe's SYN, only options that were offered. With
// synack (the reply is the one that must answer synprobe's SYN), the
// SYN-ACK's own rules too: flags, ack = ISN+1, ECN.
func (c *Conn) Judge(r *probe.Reply, synack bool) Problems {
	t := &r.Frame.TCP
	if t.Flags.Has(probe.SYN|probe.ACK) && c.LastSent != nil && c.LastSent.Frame.TCP.Flags&probe.SYN != 0 && r.Time.After(c.LastSent.Time) {
		c.HandshakeRTT = r.Time.Sub(c.LastSent.Time)
	}
	ps := c.Receive(t)
	ps = append(ps, WellFormed(&r.Frame, r.DecodeErr)...)
	if c.SYN != nil && (synack || t.Flags.Has(probe.SYN|probe.ACK)) {
		if synack {
			ps = append(ps, SYNACK(c.SYN, t)...)
		}
		ps = append(ps, OptionsOffered(c.SYN, t)...)
	}
	return ps
}

// IPv4 returns the IP header fields synprobe sends with by default: DF
// set and a per-connection incrementing ID (IPv4), like current stacks.
func (c *Conn) IPv4() probe.IP {
	if !c.S.Remote().Addr().Is4() {
		return probe.IP{}
	}
	return probe.IP{Flags: probe.IPFlagDF, ID: c.S.NextIPID()}
}

// RTT is the time from the last frame synprobe sent to r.
func (c *Conn) RTT(r *probe.Reply) *float64 {
	if c.LastSent == nil || r.Time.Before(c.LastSent.Time) {
		return nil
	}
	return report.RTT(r.Time.Sub(c.LastSent.Time))
}

// DroppedLocally returns how many frames the local socket dropped since the
// connection started: a reply lost there must not be read as silence.
func (c *Conn) DroppedLocally() uint64 {
	return c.S.Prober().Stats().Drops - c.drops0
}

// NoteLate records that the segment what left by late after it was due.
func (c *Conn) NoteLate(what string, late time.Duration) {
	if late > c.Late {
		c.Late, c.LateWhat = late, what
	}
}

// LocalHostInterference describes frames the local host sent on this
// connection's 4-tuple behind synprobe's back ("" when none): a kernel RST
// disturbs the run and is never the target's fault.
func (c *Conn) LocalHostInterference() string {
	frames := c.S.LocalHostFrames()
	if len(frames) == 0 {
		return ""
	}
	var parts []string
	for _, f := range frames {
		parts = append(parts, c.Format(&f.Frame.TCP, false))
	}
	return fmt.Sprintf("disturbed by the local host: its kernel sent %s on synprobe's port (no RST guard?)", strings.Join(parts, "; "))
}

// AddStep appends a step, numbering it and timing it from the start.
func (c *Conn) AddStep(s report.Step, at time.Time) *report.Step {
	s.Index = len(c.Steps) + 1
	if !at.IsZero() {
		s.AtMS = report.Millis(at.Sub(c.Start))
	}
	c.Steps = append(c.Steps, s)
	return &c.Steps[len(c.Steps)-1]
}

// Format writes a segment in packetdrill's notation with sequence numbers
// relative to the ISNs where they are known: synprobe's own segments
// (fromTarget false) count seq from ISN and ack from PeerISN; the target's
// the other way round.
func (c *Conn) Format(t *probe.TCP, fromTarget bool) string {
	seqBase, ackBase := c.ISN, c.PeerISN
	haveSeq, haveAck := c.HaveISN, c.HavePeerISN
	if fromTarget {
		seqBase, ackBase = c.PeerISN, c.ISN
		haveSeq, haveAck = c.HavePeerISN, c.HaveISN
	}
	seq := uint32(t.Seq)
	if haveSeq {
		seq = uint32(t.Seq - seqBase)
	}
	ack := uint32(t.Ack)
	if haveAck {
		ack = uint32(t.Ack - ackBase)
	}
	return formatTCP(t, seq, ack)
}

// FormatAbs writes a segment with absolute numbers.
func FormatAbs(t *probe.TCP) string { return formatTCP(t, uint32(t.Seq), uint32(t.Ack)) }

func formatTCP(t *probe.TCP, seq, ack uint32) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d:%d(%d)", t.Flags, seq, seq+uint32(len(t.Payload)), len(t.Payload))
	if t.Flags&probe.ACK != 0 || t.Ack != 0 {
		fmt.Fprintf(&b, " ack %d", ack)
	}
	fmt.Fprintf(&b, " win %d", t.Window)
	if t.Flags&probe.URG != 0 || t.Urgent != 0 {
		fmt.Fprintf(&b, " urg %d", t.Urgent)
	}
	if len(t.Options) > 0 {
		b.WriteByte(' ')
		b.WriteString(probe.FormatOptions(t.Options))
	}
	return b.String()
}

// FormatReply formats anything that arrived: a TCP segment (relative), an
// ICMP error, or a damaged frame.
func (c *Conn) FormatReply(r *probe.Reply) string {
	f := &r.Frame
	switch {
	case f.Has(probe.LayerTCP):
		return c.Format(&f.TCP, true)
	case f.Has(probe.LayerICMP):
		return fmt.Sprintf("ICMP type %d code %d from %v", f.ICMP.Type, f.ICMP.Code, f.IP.Src)
	}
	return fmt.Sprintf("undecodable frame (%v)", r.DecodeErr)
}

package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"synprobe/conformance/report"
	"synprobe/conformance/script"
	"synprobe/internal/plural"
	"synprobe/probe"
)

// execution runs one script on one connection, packetdrill's way:
// sequence numbers in SYN lines are absolute, all others relative to the
// two ISNs; relative times count from the previous event; an outbound
// segment must come within the tolerance of its time (plus an allowance
// for the round trip, since the target is remote). The first expectation
// that is not met ends the script.
type execution struct {
	ctx  context.Context
	r    *Runner
	s    *script.Script
	conn *Conn

	t0 time.Time
	// firstSent is when the script's first segment left: nothing that
	// arrived before it answers the script.
	firstSent   time.Time
	prevSched   time.Time
	prevActual  time.Time
	prevInbound bool
	havePrev    bool
	// minRTT is the shortest time a reply of the target's took after
	// synprobe's last frame: the path's round trip when no handshake
	// measured it.
	minRTT time.Duration

	// scriptPeerISN is the sequence number written in the script's
	// outbound SYN line: inbound SYN lines' acks are offset by the
	// difference to the real one (packetdrill's rule).
	scriptPeerISN probe.Seq
	// tsMap maps TSvals written in outbound lines to the values that came,
	// so inbound lines can echo them.
	tsMap map[uint32]uint32
	// appPending is the last application call the script says the target
	// makes, until an expectation is met.
	appPending *script.Event
	// pending holds segments that came while the script slept, for the
	// next expectation.
	pending []*probe.Reply
	// syn is the SYN synprobe sent last, when nothing was sent after it:
	// sent again while its answer does not come (Conn.AwaitSYNACK).
	syn   *probe.Frame
	synOv []probe.Override
	synAt time.Time

	syns int // SYNs sent: later ones go first at the pacer
	// idx is the event being run; consumed marks later outbound lines an
	// earlier segment already satisfied (see laterFIN), with what came.
	idx         int
	consumed    map[int]consumedBy
	notes       []string
	skipReason  string
	skipCause   report.Cause
	interrupted bool
	// listening is set by a listen() call: the next SYN synprobe sends
	// opens a new connection from a new port when one was opened before
	// (packetdrill's socket under test is then a new listener). earlier
	// are the connections the script opened before its current one.
	listening bool
	earlier   []*Conn
	// stopLine is the first line a remote black box cannot honour (0:
	// none), stopWhy why: the script stops there, skip.
	stopLine int
	stopWhy  string
	// stale is set when the opening SYN met a connection an earlier run
	// left on the 4-tuple (Conn.Stale): the script starts again on another
	// port. staleSeen is set once that happened: a second time is believed.
	stale, staleSeen bool
}

// consumedBy records the segment that satisfied a later line early.
type consumedBy struct {
	line   int
	reply  *probe.Reply
	actual string
}

// facts are the run's facts of the target (never nil).
func (e *execution) facts() *Facts {
	return e.r.Facts()
}

func newExecution(ctx context.Context, r *Runner, s *script.Script, c *Conn) *execution {
	return &execution{ctx: ctx, r: r, s: s, conn: c, tsMap: map[uint32]uint32{}, consumed: map[int]consumedBy{}}
}

func (e *execution) run() {
	e.t0 = time.Now()
	e.conn.Start = e.t0
	for i := range e.s.Events {
		ev := &e.s.Events[i]
		e.idx = i
		if by, ok := e.consumed[i]; ok {
			e.step(ev, report.Step{Direction: report.Expect, Verdict: report.Pass, Actual: by.actual,
				Problems: nil, RTTMicros: e.conn.RTT(by.reply)}, by.reply.Time)
			e.conn.Steps[len(e.conn.Steps)-1].Actual = fmt.Sprintf("%s (the segment of line %d)", by.actual, by.line)
			e.appPending = nil
			continue
		}
		if e.ctx.Err() != nil {
			e.interrupted = true
			e.skipFrom(i, "not run: interrupted")
			break
		}
		if e.stopLine > 0 && ev.Line >= e.stopLine {
			e.skipReason, e.skipCause = e.stopWhy, report.CausePremiseBlackBox
			e.skipFrom(i, e.stopWhy)
			break
		}
		ok := true
		switch {
		case ev.Syscall != nil:
			e.syscall(ev)
		case ev.Packet.Dir == script.Inbound:
			ok = e.inbound(ev)
		case ev.Packet.Silence:
			ok = e.silence(ev)
		default:
			ok = e.outbound(ev)
		}
		if !ok {
			e.skipFrom(i+1, "not reached")
			break
		}
	}
	e.cleanup()
}

// schedule returns when ev should happen (packetdrill's
// adjust_relative_event_times): a relative time counts from the previous
// event's scheduled time when both are inbound packets, otherwise from now.
func (e *execution) schedule(ev *script.Event) (start, end time.Time) {
	now := time.Now()
	inbound := ev.Packet != nil && ev.Packet.Dir == script.Inbound && !ev.Packet.Silence
	switch ev.Time.Kind {
	case script.Absolute:
		start, end = e.t0.Add(ev.Time.Start), e.t0.Add(ev.Time.End)
	case script.Relative:
		// From when the previous event really happened (the kernel's
		// time of the frame), or its schedule between two inbound lines.
		base := now
		if e.havePrev {
			base = e.prevActual
		}
		if inbound && e.prevInbound && e.havePrev {
			base = e.prevSched
		}
		start, end = base.Add(ev.Time.Start), base.Add(ev.Time.End)
	default: // Any
		start, end = now, now
	}
	if !ev.Time.Range {
		end = start
	}
	return start, end
}

// done records an event: when it was due and when it really happened.
func (e *execution) done(sched, actual time.Time, inbound bool) {
	e.prevSched, e.prevActual, e.prevInbound, e.havePrev = sched, actual, inbound, true
}

// tolerance is packetdrill's: max(tolerance_usecs, percent of the gap to
// the previous event).
func (e *execution) tolerance(sched time.Time) time.Duration {
	tol := time.Duration(e.s.Config.ToleranceUsecs) * time.Microsecond
	if e.havePrev {
		gap := sched.Sub(e.prevSched)
		if pct := time.Duration(float64(gap) * e.s.Config.TolerancePercent / 100); pct > tol {
			tol = pct
		}
	}
	return tol
}

// hostJitter is what a reply may take beyond the script's tolerance and
// the round trip measured: a frame may wait that much more in the queues
// of two busy hosts and the link than it did when the round trip was
// measured. packetdrill needs none (its target is local); its default
// tolerance, 4 ms, already covers the target's scheduling, which a lab
// target on this host shares. 2 ms keeps the Linux lab's verdicts steady
// on a busy 2-core host (runs of the lab tests at -count=5 beside other
// work) while a reply late by a few milliseconds on a sub-millisecond
// path still fails.
const hostJitter = 2 * time.Millisecond

// waitSlack is how much longer than the latest time a reply may come the
// runner waits for it: time for this process to be scheduled and read the
// frame. It changes no verdict: arrival is judged by the kernel's
// timestamps on both frames.
const waitSlack = 50 * time.Millisecond

// allowance is the extra time a reply may take because the target is
// remote: the connection's round trip (SYN to SYN-ACK, or the shortest
// reply seen before a handshake measured one) and a quarter more for the
// path's jitter, plus hostJitter and the jitter the user gave for the
// path; the run's timeout before any round trip was measured.
func (e *execution) allowance() time.Duration {
	rtt := e.conn.HandshakeRTT
	if rtt == 0 {
		rtt = e.minRTT
	}
	if rtt == 0 {
		return e.r.cfg.Timeout
	}
	return rtt + rtt/4 + hostJitter + e.r.cfg.Jitter
}

// sleepUntil waits until t. Meanwhile the application may speak: what it
// alone sent is taken in (and acknowledged) as it comes, the rest is held
// for the next expectation.
func (e *execution) sleepUntil(t time.Time) bool {
	for time.Now().Before(t) {
		r, err := e.conn.Recv(e.ctx, t)
		if err != nil {
			if e.ctx.Err() != nil {
				e.interrupted = true
				return false
			}
			if !errors.Is(err, ErrSilence) {
				time.Sleep(time.Until(t))
			}
			return true
		}
		if !e.absorb(r, e.nextOutbound()) {
			e.pending = append(e.pending, r)
		}
	}
	if e.ctx.Err() != nil {
		e.interrupted = true
		return false
	}
	return true
}

// recv returns the next segment for an expectation: one held while the
// script slept, or the next to come before deadline.
func (e *execution) recv(deadline time.Time) (*probe.Reply, error) {
	if len(e.pending) > 0 {
		r := e.pending[0]
		e.pending = e.pending[1:]
		return r, nil
	}
	return e.conn.Recv(e.ctx, deadline)
}

// nextOutbound is the next line that expects something of the target
// (nil when none is left).
func (e *execution) nextOutbound() *script.Packet {
	for j := e.idx; j < len(e.s.Events); j++ {
		if p := e.s.Events[j].Packet; p != nil && p.Dir == script.Outbound {
			return p
		}
	}
	return nil
}

// wants says what of a segment a line describes: a payload, and a FIN
// (here or, for the FIN, at a later line after the application's close).
func (e *execution) wants(p *script.Packet) (data, fin bool) {
	if p == nil || p.Silence || p.ICMP != nil {
		return false, false
	}
	return p.Len > 0 || p.LenAny || len(p.Payload) > 0, p.Flags&probe.FIN != 0 || e.laterFIN(p) >= 0
}

// absorb takes in r when it is the application speaking and nothing of
// the stack's (Share.Only) while p is awaited: its bytes and FIN are
// counted, acknowledged and noted; the rules every segment meets still
// apply to it. It reports whether it did.
func (e *execution) absorb(r *probe.Reply, p *script.Packet) bool {
	if !r.Frame.Has(probe.LayerTCP) {
		return false
	}
	data, fin := e.wants(p)
	sh := e.conn.Attribute(&r.Frame.TCP, data, fin)
	if !sh.Only {
		return false
	}
	ps := e.conn.Judge(r, false)
	e.conn.Absorb(sh)
	e.conn.ACKApplication()
	if len(ps) > 0 {
		line := 0
		if e.idx < len(e.s.Events) {
			line = e.s.Events[e.idx].Line
		}
		e.conn.AddStep(report.Step{Direction: report.Observe, Line: line, Verdict: ps.Verdict(), Expected: "the rules every segment meets",
			Actual: e.conn.FormatReply(r), Problems: ps.Texts(), Fields: ps.Rules()}, r.Time)
	}
	return true
}

func (e *execution) syscall(ev *script.Event) {
	start, _ := e.schedule(ev)
	e.sleepUntil(start)
	if ev.Syscall.AppActs() {
		e.appPending = ev
	}
	if ev.Syscall.Name == "listen" {
		e.listening = true
	}
	e.done(start, start, false)
}

// step records a step for ev.
func (e *execution) step(ev *script.Event, s report.Step, at time.Time) *report.Step {
	s.Line, s.Text = ev.Line, ev.Text
	if s.Expected == "" {
		s.Expected = packetText(ev)
	}
	return e.conn.AddStep(s, at)
}

// packetText is the event's text without its time: what the line asks for.
func packetText(ev *script.Event) string {
	t := strings.TrimSpace(ev.Text)
	if i := strings.IndexAny(t, "<>"); i >= 0 {
		return strings.TrimSpace(t[i:])
	}
	return t
}

func (e *execution) skipFrom(i int, why string) {
	for _, ev := range e.s.Events[i:] {
		if ev.Packet == nil {
			continue
		}
		dir := report.Send
		if ev.Packet.Dir == script.Outbound {
			dir = report.Expect
		}
		e.step(&ev, report.Step{Direction: dir, Verdict: report.Skip, Problems: []string{why}}, time.Time{})
	}
}

// level is the level a broken expectation of this script earns.
func (e *execution) level() Level {
	l, err := ParseLevel(e.s.Meta.Level)
	if err != nil || e.s.Meta.Level == "" {
		return Must
	}
	return l
}

// ---- inbound: synprobe sends ----

func (e *execution) inbound(ev *script.Event) bool {
	p := ev.Packet
	start, _ := e.schedule(ev)
	if !e.sleepUntil(start) {
		return false
	}
	if p.ICMP == nil && p.Flags&probe.SYN != 0 {
		// Waiting for the pacer is time outside the script: the script's
		// clock stops meanwhile.
		waited := time.Now()
		if err := e.r.pace.wait(e.ctx, int(e.s.Length()/time.Millisecond)+e.syns); err != nil {
			e.interrupted = true
			return false
		}
		e.syns++
		d := time.Since(waited)
		e.t0, e.prevSched, start = e.t0.Add(d), e.prevSched.Add(d), start.Add(d)
	}
	if p.ICMP == nil && p.Flags&(probe.SYN|probe.ACK) == probe.SYN {
		if e.listening && e.conn.HaveISN {
			if err := e.reopen(); err != nil {
				e.step(ev, report.Step{Direction: report.Send, Verdict: report.Error, Cause: report.CauseLocalFailure, Problems: []string{err.Error()}}, time.Now())
				return false
			}
		}
		e.listening = false
	}
	frames, err := e.build(p)
	if err != nil {
		e.step(ev, report.Step{Direction: report.Send, Verdict: report.Error, Problems: []string{err.Error()}}, time.Now())
		return false
	}
	var first *probe.Sent
	var actual []string
	for _, f := range frames {
		sent, n, err := e.send(f, p.Overrides)
		if n > 1 {
			e.notes = append(e.notes, fmt.Sprintf("line %d: the segment is longer than the path's MTU (%d): sent whole, as %d IP fragments, as packetdrill hands it to the target's stack (a path that drops fragments looks like silence)", ev.Line, e.mtu(), n))
		}
		if err != nil {
			e.step(ev, report.Step{Direction: report.Send, Verdict: report.Error, Problems: []string{err.Error()}}, time.Now())
			return false
		}
		if sent.Frame.Has(probe.LayerTCP) {
			e.conn.Sent(&f.TCP, sent)
			actual = append(actual, e.conn.Format(&sent.Frame.TCP, false))
		} else {
			e.conn.LastSent = sent
			actual = append(actual, fmt.Sprintf("icmp type %d code %d", f.ICMP.Type, f.ICMP.Code))
		}
		if first == nil {
			first = sent
		}
	}
	e.syn = nil
	if len(frames) == 1 && p.ICMP == nil && frames[0].TCP.Flags&(probe.SYN|probe.ACK|probe.RST) == probe.SYN {
		e.syn, e.synOv, e.synAt = frames[0], p.Overrides, first.Time
	}
	st := report.Step{Direction: report.Send, Verdict: report.Pass, Actual: strings.Join(actual, "; ")}
	if len(frames) == 1 && first.Frame.Has(probe.LayerTCP) {
		st.ActualAbs = FormatAbs(&first.Frame.TCP)
	}
	e.step(ev, st, first.Time)
	e.done(start, first.Time, true)
	e.conn.NoteLate(fmt.Sprintf("line %d", ev.Line), first.Time.Sub(start))
	if e.firstSent.IsZero() {
		e.firstSent = first.Time
	}
	return true
}

// mtu is the path's MTU: the longest IP packet sent whole.
func (e *execution) mtu() int {
	if mtu := e.conn.S.Prober().Path().MTU; mtu > 0 {
		return mtu
	}
	return 1500
}

// send sends a frame of an inbound line. A TCP segment longer than the
// path carries goes as IP fragments, so that the target's TCP takes it as
// the one segment the line is (packetdrill injects it whole into the
// target's stack; with --mss as one GSO packet, which the stack also takes
// whole). Overrides are applied to the whole packet: one that rewrites
// the IP header sends it unfragmented.
func (e *execution) send(f *probe.Frame, ov []probe.Override) (*probe.Sent, int, error) {
	if f.IP.Protocol == probe.ProtocolICMP || f.IP.Protocol == probe.ProtocolICMPv6 || len(ov) > 0 {
		sent, err := e.conn.S.Send(f, ov...)
		return sent, 1, err
	}
	return e.conn.S.SendFragmented(f, e.mtu())
}

// reopen starts a new connection from a new port, as packetdrill does
// for a SYN to a listener the script made after its first connection: the
// current one is released and kept for the report; the steps go on.
func (e *execution) reopen() error {
	old := e.conn
	e.cleanup()
	sess, err := e.r.p.Open(probe.SessionConfig{Remote: old.S.Remote()})
	if err != nil {
		return fmt.Errorf("open a new connection: %w", err)
	}
	old.S.Close()
	c := NewConn(sess)
	c.Start, c.Steps, c.drops0 = old.Start, old.Steps, old.drops0
	old.Steps = nil
	e.earlier = append(e.earlier, old)
	e.conn = c
	e.notes = append(e.notes, fmt.Sprintf("a new connection from port %d (the script listens again), as packetdrill opens one", sess.Local().Port()))
	// What belongs to the connection's sequence and timestamp spaces
	// starts again.
	e.scriptPeerISN, e.tsMap, e.pending = 0, map[uint32]uint32{}, nil
	e.syn, e.synOv = nil, nil
	return nil
}

// conns are every connection the script opened, the current one last.
func (e *execution) conns() []*Conn {
	return append(append([]*Conn(nil), e.earlier...), e.conn)
}

// build turns an inbound line into its frame: the segment as written,
// however long (inbound sends it as IP fragments when the path needs).
func (e *execution) build(p *script.Packet) ([]*probe.Frame, error) {
	if p.ICMP != nil {
		f, err := e.buildICMP(p)
		if err != nil {
			return nil, err
		}
		return []*probe.Frame{f}, nil
	}
	c := e.conn
	t := probe.TCP{Flags: p.Flags, Reserved: p.Reserved, Window: uint16(p.Win.Value), Urgent: uint16(p.Urg.Value)}
	if p.AE {
		t.Reserved |= 1
	}
	// packetdrill's rule: the first segment sent opens the connection and
	// its sequence number is the ISN, SYN or not; other lines count from
	// it (so a first non-SYN "< . 100:100(0)" puts 200 on the wire, as in
	// packetdrill).
	isn := probe.Seq(p.Seq)
	if c.HaveISN {
		isn = c.ISN
	}
	if p.Flags&probe.SYN != 0 {
		t.Seq = probe.Seq(p.Seq)
	} else {
		t.Seq = isn + probe.Seq(p.Seq)
	}
	if p.Flags&probe.ACK != 0 || p.Ack.Set {
		switch {
		case p.Flags&probe.ACK == 0:
			t.Ack = probe.Seq(p.Ack.Value) // not an acknowledgment: raw
		case p.Flags&probe.SYN != 0:
			t.Ack = probe.Seq(p.Ack.Value) + (c.PeerISN - e.scriptPeerISN)
		default:
			// Relative to the target's ISN, past the application's bytes the
			// script does not count.
			t.Ack = c.PeerISN + probe.Seq(p.Ack.Value+c.Shift())
		}
	}
	for _, o := range p.Options.List {
		t.Options = append(t.Options, e.inboundOption(o, p))
	}
	t.Payload = p.Payload
	if t.Payload == nil && p.Len > 0 {
		// Bytes only the stack is to see: the filler the application
		// ignores (zeros without a profile), the same for the same
		// sequence numbers.
		off := int(p.Seq) - 1
		if p.Flags&probe.SYN != 0 || off < 0 {
			off = 0
		}
		t.Payload = e.facts().FillerBytes(off, int(p.Len))
	}
	return []*probe.Frame{{IP: e.inboundIP(p, true), TCP: t}}, nil
}

// inboundIP is the IP header an inbound line asks for: its IP information
// over synprobe's defaults (DF set on TCP segments, as TCPs send them;
// IPv4 IDs from the session's counter).
func (e *execution) inboundIP(p *script.Packet, df bool) probe.IP {
	c := e.conn
	ip := probe.IP{TOS: uint8(p.IP.TOS.Value), TTL: uint8(p.IP.TTL.Value), ID: uint16(p.IP.ID.Value), FlowLabel: p.IP.FlowLabel.Value}
	switch p.IP.ECN {
	case script.ECNECT0:
		ip.TOS = ip.TOS&^3 | probe.ECNECT0
	case script.ECNECT1:
		ip.TOS = ip.TOS&^3 | probe.ECNECT1
	case script.ECNCE:
		ip.TOS = ip.TOS&^3 | probe.ECNCE
	case script.ECNNotECT:
		ip.TOS &^= 3
	}
	if c.S.Remote().Addr().Is4() {
		if p.IP.DF.Set {
			df = p.IP.DF.Value != 0
		}
		if df {
			ip.Flags = probe.IPFlagDF
		}
		if !p.IP.ID.Set {
			ip.ID = c.S.NextIPID()
		}
	}
	return ip
}

// inboundOption makes the option an inbound line sends. TSecr names a
// TSval of an earlier outbound line and is replaced by the value that
// really came; an ecr the script cannot know echoes the target's latest.
func (e *execution) inboundOption(o script.OptionSpec, p *script.Packet) probe.Option {
	opt := o.Option
	if val, ecr, ok := opt.Timestamps(); ok && p.Flags&probe.ACK != 0 && ecr != 0 {
		live, found := e.tsMap[ecr]
		if !found && e.conn.TS.ReceivedAny {
			live = e.conn.TS.LastReceived
		} else if !found {
			live = ecr
		}
		return probe.TimestampsOption(val, live)
	}
	if n := opt.NumSACKBlocks(); n > 0 {
		blocks := make([]probe.SACKBlock, n)
		for i := range blocks {
			b := opt.SACKBlock(i)
			base := e.conn.PeerISN.Add(e.conn.Shift())
			blocks[i] = probe.SACKBlock{Left: base + b.Left, Right: base + b.Right}
		}
		return probe.SACKOption(blocks...)
	}
	return opt
}

// buildICMP makes an ICMP error that quotes a segment the target sent to
// synprobe, as a router on the path would.
func (e *execution) buildICMP(p *script.Packet) (*probe.Frame, error) {
	c := e.conn
	v6 := c.S.Remote().Addr().Is6()
	typ, code, err := script.ICMPTypeCode(v6, p.ICMP.Type, p.ICMP.Code)
	if err != nil {
		return nil, err
	}
	seq := c.RCVNXT
	if p.ICMP.Echoed != nil {
		seq = c.PeerISN + probe.Seq(p.ICMP.Echoed.Seq+c.Shift())
	}
	quoted := probe.Frame{
		IP:  probe.IP{Src: c.S.Remote().Addr(), Dst: c.S.Local().Addr(), Flags: probe.IPFlagDF},
		TCP: probe.TCP{SrcPort: c.S.Remote().Port(), DstPort: c.S.Local().Port(), Seq: seq, Ack: c.SNDNXT, Flags: probe.ACK, Window: 502},
	}
	if p.ICMP.Echoed != nil && p.ICMP.Echoed.Len > 0 {
		quoted.TCP.Payload = make([]byte, min(int(p.ICMP.Echoed.Len), 64))
	}
	body, err := quoted.EncodeIP()
	if err != nil {
		return nil, err
	}
	proto := probe.ProtocolICMP
	if v6 {
		proto = probe.ProtocolICMPv6
	}
	// The line's IP information is the ICMP message's own header; DF
	// clear unless it says df, as routers send their errors.
	ip := e.inboundIP(p, false)
	ip.Protocol = proto
	return &probe.Frame{IP: ip, ICMP: probe.ICMP{Type: typ, Code: code, Rest: p.ICMP.MTU.Value, Body: body}}, nil
}

// ---- outbound: synprobe expects ----

func (e *execution) outbound(ev *script.Event) bool {
	p := ev.Packet
	start, end := e.schedule(ev)
	tol := e.tolerance(start)
	allow := e.allowance()
	latest := end.Add(tol + allow) // the latest a segment may arrive
	deadline := latest.Add(waitSlack)
	if ev.Time.Kind == script.Any {
		deadline, latest = time.Now().Add(e.r.cfg.Timeout), time.Time{}
	}
	var r *probe.Reply
	awaitSYN := e.syn != nil && p.Flags.Has(probe.SYN|probe.ACK) && p.ICMP == nil
	for {
		var err error
		if awaitSYN && len(e.pending) == 0 {
			// The SYN goes again while its answer does not come, as a TCP
			// sends it: a listener whose queue is full drops SYNs until
			// its application accepts.
			var again int
			r, again, err = e.conn.AwaitSYNACK(e.ctx, e.syn, e.synOv, e.synAt, deadline)
			if again > 0 {
				e.notes = append(e.notes, fmt.Sprintf("line %d: no answer to the SYN for %v: synprobe sent it %d more time(s), as a TCP does", ev.Line, synRetransmits[again-1], again))
				// The answer is to a SYN sent after the line's time: a
				// busy listener's, not late.
				latest = time.Time{}
			}
		} else {
			r, err = e.recv(deadline)
		}
		awaitSYN = false
		if err != nil {
			return e.missing(ev, err, start)
		}
		if e.absorb(r, p) {
			continue
		}
		break
	}
	c := e.conn
	if r.Frame.Has(probe.LayerTCP) && p.ICMP == nil && !e.staleSeen && c.Stale(&r.Frame.TCP, c.S.Remote() == e.r.cfg.Target) {
		c.ResetStale(&r.Frame.TCP)
		e.stale, e.staleSeen = true, true
		return false
	}
	if r.Frame.Has(probe.LayerICMP) && p.ICMP == nil {
		return e.pathAnswered(ev, r)
	}
	// What of the segment is the application's: bytes no line describes,
	// a FIN no line expects (or one a later line expects after the
	// application's close: it came early).
	wantData, _ := e.wants(p)
	later := -1
	var sh Share
	var unscriptedFIN bool
	shift := c.Shift()
	if r.Frame.Has(probe.LayerTCP) {
		t := &r.Frame.TCP
		unscriptedFIN = t.Flags&probe.FIN != 0 && p.Flags&probe.FIN == 0 && t.Flags&(probe.SYN|probe.RST) == 0
		if unscriptedFIN {
			later = e.laterFIN(p)
		}
		sh = c.Attribute(t, wantData, p.Flags&probe.FIN != 0 || later >= 0)
	}
	rcvnxt := c.RCVNXT
	ps := e.match(p, r, matchHow{appData: r.Frame.Has(probe.LayerTCP) && len(r.Frame.TCP.Payload) > 0 && !wantData, stripFIN: unscriptedFIN, shift: shift})
	// What of the sequence space the segment took the line describes: all
	// it moved RCV.NXT by but the application's share.
	if moved := uint32(c.RCVNXT - rcvnxt); c.HavePeerISN && r.Frame.Has(probe.LayerTCP) && r.Frame.TCP.Flags&probe.SYN == 0 {
		app := uint32(sh.Data)
		if sh.FIN {
			app++
		}
		if moved > app {
			c.Scripted += moved - app
		}
	}
	// Timing: the application acts on its own clock, so a segment that
	// follows an application call may come early.
	if ev.Time.Kind != script.Any && e.appPending == nil && r.Time.Before(start.Add(-tol)) {
		ps.add("timing", e.level(), "timing: expected at %.3f s (tolerance %.3f s), arrived at %.3f s",
			start.Sub(e.t0).Seconds(), tol.Seconds(), r.Time.Sub(e.t0).Seconds())
	}
	// Late, by the kernel's clocks on the frames: the application acts on
	// its own clock, so a segment that follows its call may come late too.
	if !latest.IsZero() && e.appPending == nil && r.Time.After(latest) {
		ps.add("timing", e.level(), "timing: expected by %.3f s (tolerance %.3f s, round trip allowance %.3f s; --jitter widens it on a path whose round trip varies), arrived at %.3f s",
			latest.Sub(e.t0).Seconds(), tol.Seconds(), allow.Seconds(), r.Time.Sub(e.t0).Seconds())
	}
	if rtt := c.RTT(r); rtt != nil {
		if d := time.Duration(*rtt * 1000); d > 0 && (e.minRTT == 0 || d < e.minRTT) {
			e.minRTT = d
		}
	}
	st := report.Step{Direction: report.Expect, Verdict: ps.Verdict(), Problems: ps.Texts(), Fields: ps.Rules(), RTTMicros: c.RTT(r)}
	st.Actual = c.FormatReply(r)
	if r.Frame.Has(probe.LayerICMP) {
		st.Actual = e.formatICMP(r)
	}
	if r.Frame.Has(probe.LayerTCP) {
		st.ActualAbs = FormatAbs(&r.Frame.TCP)
	}
	if cause, why := e.appCaused(p, r); cause != "" && st.Verdict != report.Pass {
		st.Verdict, st.Cause = report.Skip, cause
		st.Problems = append([]string{why}, st.Problems...)
		e.skipReason, e.skipCause = why, cause
	}
	if st.Verdict == report.Pass && sh.Any() {
		c.Absorb(sh)
		c.ACKApplication()
		switch {
		case sh.FIN:
			e.notes = append(e.notes, fmt.Sprintf("line %d: the target's application closed the connection (its FIN came in this segment), which the script does not say: not a TCP matter", ev.Line))
		case later >= 0:
			e.notes = append(e.notes, fmt.Sprintf("line %d: the target's FIN came in this segment: its application closed sooner than line %d says", ev.Line, e.s.Events[later].Line))
			e.consumed[later] = consumedBy{line: ev.Line, reply: r, actual: st.Actual}
		}
	} else if st.Verdict == report.Pass && later >= 0 {
		e.notes = append(e.notes, fmt.Sprintf("line %d: the target's FIN came in this segment: its application closed sooner than line %d says", ev.Line, e.s.Events[later].Line))
		e.consumed[later] = consumedBy{line: ev.Line, reply: r, actual: st.Actual}
	}
	e.step(ev, st, r.Time)
	e.done(start, r.Time, false)
	if st.Verdict == report.Fail || st.Verdict == report.Error || st.Verdict == report.Skip {
		return false
	}
	e.appPending = nil
	if p.Flags.Has(probe.SYN|probe.ACK) && r.Frame.Has(probe.LayerTCP) && r.Frame.TCP.Flags.Has(probe.SYN|probe.ACK) {
		return e.premisesAtSYNACK(ev, &r.Frame.TCP)
	}
	return true
}

// premisesAtSYNACK checks the premises the script names (@needs) that a
// SYN-ACK settles: timestamps, SACK, window scaling, ECN negotiated. One
// that does not hold ends the script: what follows would judge a feature
// the target did not agree to use.
func (e *execution) premisesAtSYNACK(ev *script.Event, synack *probe.TCP) bool {
	if e.conn.SYN == nil {
		return true
	}
	for _, n := range e.s.Meta.Needs {
		if ok, cause, why := premiseAtSYNACK(Need(n), e.conn.SYN, synack); !ok {
			e.skipReason, e.skipCause = why, cause
			return false
		}
	}
	return true
}

// appCaused says whether a segment that does not match its line is the
// application's doing, and why. A RST the line did not expect is when the
// application had closed (the stack resets data that comes after a close:
// RFC 9293 3.10.7.4, RFC 1122 4.2.2.13), closes every connection after its
// greeting, or resets connections on the checks' data (the profile saw
// it). Any segment is when the application closed the connection before
// it: the stack is then no longer in the state the script describes. A
// malformed segment stays the stack's.
func (e *execution) appCaused(p *script.Packet, r *probe.Reply) (report.Cause, string) {
	if !r.Frame.Has(probe.LayerTCP) || len(WellFormed(&r.Frame, r.DecodeErr)) > 0 {
		return "", ""
	}
	c, f := e.conn, e.facts()
	rst := r.Frame.TCP.Flags&probe.RST != 0 && p.Flags&probe.RST == 0
	switch {
	case c.App.FIN && rst:
		return report.CauseAppClosed, "the target's application had closed the connection (its FIN came first): the RST that answers later data is not judged"
	case c.App.FIN:
		return report.CauseAppClosed, "the target's application closed the connection before this line (its FIN): the stack is no longer in the state the script describes"
	case f.ClosesAfterGreeting():
		return report.CauseAppClosed, "the target's application closes every connection right after its greeting (the profile saw it): the stack is no longer in the state the script describes"
	case rst && c.AbortAfterFIN(&r.Frame.TCP):
		return report.CauseAppReset, "the target reset the connection after it took synprobe's FIN (the RST acknowledges it): its application aborted the connection on end of stream (SO_LINGER 0)"
	case rst && unprovoked(c, r):
		after, _ := c.Unprovoked(r)
		return report.CauseAppReset, fmt.Sprintf("the target reset the connection %v after synprobe's last segment, answering nothing: its application aborted it (an idle timeout, SO_LINGER 0)", after.Round(time.Millisecond))
	case rst && c.HaveISN && c.SNDNXT.Sub(c.ISN) > 1 && f.DropsConnectionOnData():
		return report.CauseAppReset, "the target's application drops connections on the checks' data (it did so when synprobe asked it alone): the RST is not judged"
	}
	return "", ""
}

func unprovoked(c *Conn, r *probe.Reply) bool {
	_, ok := c.Unprovoked(r)
	return ok
}

// pathAnswered records an ICMP error where a segment from the target was
// expected: a router or a firewall answered, not the stack.
func (e *execution) pathAnswered(ev *script.Event, r *probe.Reply) bool {
	why := fmt.Sprintf("ICMP type %d code %d from %v answered instead of the target's TCP stack: a router, or a firewall on the path or on the target host", r.Frame.ICMP.Type, r.Frame.ICMP.Code, r.Frame.IP.Src)
	e.step(ev, report.Step{Direction: report.Expect, Verdict: report.Skip, Cause: report.CausePathICMP, Actual: e.conn.FormatReply(r), Problems: []string{why}}, r.Time)
	e.skipReason, e.skipCause = why, report.CausePathICMP
	return false
}

// laterFIN is the index of a later line that expects exactly the FIN that
// would follow p after the application's close (with only application
// calls between), or -1. When and whether a target sends its FIN is its
// application's choice (the lab's closes on end of stream): a FIN that
// comes with p's segment satisfies that line too.
func (e *execution) laterFIN(p *script.Packet) int {
	if p.ICMP != nil || p.Flags&probe.FIN != 0 {
		return -1
	}
	closed := false
	for j := e.idx + 1; j < len(e.s.Events); j++ {
		ev := &e.s.Events[j]
		if ev.Syscall != nil {
			if ev.Syscall.Name == "close" || ev.Syscall.Name == "shutdown" {
				closed = true
			}
			continue
		}
		q := ev.Packet
		if closed && q.Dir == script.Outbound && !q.Silence && q.ICMP == nil && q.Flags == p.Flags|probe.FIN &&
			q.Len == 0 && q.Seq == p.Seq+p.Len && q.Ack == p.Ack {
			return j
		}
		return -1
	}
	return -1
}

// missing records an expectation that met silence: skip when the script
// said the application must act first (synprobe cannot make a remote
// application act) or the listener does not accept connections, error
// when frames were lost locally, else the script's level.
func (e *execution) missing(ev *script.Event, err error, start time.Time) bool {
	st := report.Step{Direction: report.Expect, Actual: "nothing"}
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		e.interrupted = true
		st.Verdict, st.Cause, st.Problems = report.Error, report.CauseLocalInterrupted, []string{"interrupted"}
	case !errors.Is(err, ErrSilence):
		st.Verdict, st.Cause, st.Problems = report.Error, report.CauseLocalFailure, []string{err.Error()}
	case e.conn.DroppedLocally() > 0:
		st.Verdict, st.Cause = report.Error, report.CauseLocalDrops
		st.Problems = []string{fmt.Sprintf("nothing arrived, but the local socket dropped %s: silence cannot be told from local loss", plural.N(e.conn.DroppedLocally(), "frame", "frames"))}
	case e.appPending != nil:
		call := e.appPending.Syscall.Name
		st.Verdict, st.Cause = report.Skip, report.CauseAppDidNotAct
		st.Problems = []string{fmt.Sprintf("nothing arrived: the target application did not %s (line %d), which synprobe cannot make a remote application do", call, e.appPending.Line)}
		e.skipReason, e.skipCause = fmt.Sprintf("the target application did not %s (line %d)", call, e.appPending.Line), report.CauseAppDidNotAct
	default:
		if why := e.notAccepting(ev.Packet); why != "" {
			st.Verdict, st.Cause = report.Skip, report.CauseAppNotAccepting
			st.Problems = []string{"no SYN-ACK: " + why}
			e.skipReason, e.skipCause = why, report.CauseAppNotAccepting
			break
		}
		if ev.Packet != nil && ev.Packet.ICMP == nil && e.r.p.TCPHeard() == 0 && e.r.factsSettled(e.ctx).NotAccepting() != "" && e.r.p.TCPHeard() == 0 {
			// The profile found no listener, and not one TCP segment
			// came from the target, on any port: a filter drops what
			// synprobe sends, or nothing is there. Its silence here is no
			// more the stack's than elsewhere.
			why := "the target has sent no TCP segment at all (no SYN-ACK, no RST, on any port): a filter drops what synprobe sends, or nothing is there; its silence is not judged"
			st.Verdict, st.Cause, st.Problems = report.Skip, report.CausePremiseNothing, []string{why}
			e.skipReason, e.skipCause = why, report.CausePremiseNothing
			break
		}
		st.Verdict, st.Fields = e.level().Verdict(), []string{"reply"}
		st.Problems = []string{fmt.Sprintf("no segment by %.3f s (expected at %.3f s)", time.Since(e.t0).Seconds(), start.Sub(e.t0).Seconds())}
	}
	e.step(ev, st, time.Now())
	return false
}

// notAccepting says why a SYN-ACK p expected did not come, when the
// listener does not accept connections (known before, or found now by a
// fresh SYN from another port), or "".
func (e *execution) notAccepting(p *script.Packet) string {
	if p == nil || !p.Flags.Has(probe.SYN|probe.ACK) || e.conn.S.Remote() != e.r.cfg.Target || e.syn == nil {
		return ""
	}
	return e.r.ListenerDown(e.ctx)
}

// matchHow says what of a segment is not the line's to describe: a
// payload that is the application's (appData), a FIN that is the
// application's or a later line's (stripFIN), and how far the
// application's bytes moved the target's sequence space (shift).
type matchHow struct {
	appData, stripFIN bool
	shift             uint32
}

func (e *execution) silence(ev *script.Event) bool {
	start, _ := e.schedule(ev)
	for {
		r, err := e.recv(start)
		if err != nil {
			if !errors.Is(err, ErrSilence) {
				return e.missing(ev, err, start)
			}
			break
		}
		if e.absorb(r, ev.Packet) {
			continue
		}
		if r.Frame.Has(probe.LayerICMP) && !e.fromTarget(&r.Frame) && !e.expectsICMP() {
			// A router's answer to a segment synprobe sent (a TTL-limited
			// probe's time exceeded): the path's, not the target's.
			e.notes = append(e.notes, fmt.Sprintf("line %d: ignored %s during the silence: the path's, not the target's", ev.Line, e.formatICMP(r)))
			continue
		}
		if e.firstSent.IsZero() || r.Time.Before(e.firstSent) {
			// Left on the 4-tuple by an earlier use of the port (its
			// kernel timestamp is older than the script's first
			// segment): no answer to anything this script sent.
			e.notes = append(e.notes, fmt.Sprintf("line %d: ignored %s during the silence: it arrived %.3f s before the script's first segment", ev.Line, e.conn.FormatReply(r), e.firstSent.Sub(r.Time).Seconds()))
			continue
		}
		if r.Frame.Has(probe.LayerICMP) && !e.expectsICMP() {
			// A destination unreachable from the target's own address is
			// a firewall there (a REJECT rule), never its TCP stack, which
			// answers TCP with TCP.
			return e.pathAnswered(ev, r)
		}
		var extra []string
		if r.Frame.Has(probe.LayerTCP) {
			extra = e.receive(r).Texts() // first: a SYN-ACK sets the ISN it is shown against
		}
		what := "a segment"
		if r.Frame.Has(probe.LayerICMP) {
			what = "an ICMP error from " + e.icmpSender(&r.Frame)
		}
		st := report.Step{Direction: report.Expect, Verdict: e.level().Verdict(), Actual: e.conn.FormatReply(r), RTTMicros: e.conn.RTT(r), Fields: []string{"unexpected"},
			Problems: append([]string{fmt.Sprintf("expected silence until %.3f s, got %s at %.3f s", start.Sub(e.t0).Seconds(), what, r.Time.Sub(e.t0).Seconds())}, extra...)}
		if r.Frame.Has(probe.LayerTCP) {
			st.ActualAbs = FormatAbs(&r.Frame.TCP)
		}
		if r.Frame.Has(probe.LayerICMP) {
			st.Actual = e.formatICMP(r)
		}
		if cause, why := e.appCaused(ev.Packet, r); cause != "" {
			st.Verdict, st.Cause = report.Skip, cause
			st.Problems = append([]string{why}, st.Problems...)
			e.skipReason, e.skipCause = why, cause
		}
		e.step(ev, st, r.Time)
		return false
	}
	st := report.Step{Direction: report.Expect, Verdict: report.Pass, Actual: "nothing"}
	if n := e.conn.DroppedLocally(); n > 0 {
		st.Verdict, st.Cause = report.Error, report.CauseLocalDrops
		st.Problems = []string{fmt.Sprintf("the local socket dropped %s meanwhile: silence cannot be judged", plural.N(n, "frame", "frames"))}
	}
	e.step(ev, st, start)
	e.done(start, start, false)
	return st.Verdict == report.Pass
}

// match compares a reply with an outbound line, field by field, in script
// sequence space.
func (e *execution) match(p *script.Packet, r *probe.Reply, how matchHow) Problems {
	var ps Problems
	lvl := e.level()
	f := &r.Frame
	if p.ICMP != nil {
		ps, unquoted := e.matchICMP(p, r)
		if len(unquoted) > 0 {
			q, _ := f.ICMP.QuotedPacket()
			e.notes = append(e.notes, unquotedNote(e.s.Events[e.idx].Line, e.icmpSender(f), unquoted,
				fmt.Sprintf("%s quote, %d bytes of TCP", q.Class, q.TCPLen)))
		}
		return ps
	}
	if !f.Has(probe.LayerTCP) {
		if r.DecodeErr != nil {
			ps.add("well-formed", Must, "malformed segment: %v", r.DecodeErr)
		} else {
			ps.add("segment", lvl, "expected a TCP segment, got %s", e.conn.FormatReply(r))
		}
		return ps
	}
	t := &f.TCP
	c := e.conn
	ps = append(ps, matchIP(p.IP, &f.IP, lvl)...)
	wantFlags := p.Flags
	gotFlags := t.Flags
	if how.appData {
		gotFlags &^= probe.PSH
	}
	if how.stripFIN {
		gotFlags &^= probe.FIN
	}
	if wantFlags != gotFlags || p.AE != (t.Reserved&1 != 0) {
		ps.add("flags", lvl, "flags: expected %s got %s", flagText(wantFlags, p.AE), flagText(gotFlags, t.Reserved&1 != 0))
	}
	if p.Flags&probe.SYN != 0 {
		e.scriptPeerISN = probe.Seq(p.Seq)
	}
	// Receive before comparing: a SYN sets the target's ISN that the rest
	// of the line is relative to.
	ps = append(ps, e.receive(r)...)
	if t.Flags&probe.SYN == 0 && p.Flags&probe.SYN == 0 {
		if got := uint32(t.Seq-c.PeerISN) - how.shift; got != p.Seq {
			if how.shift > 0 {
				ps.add("seq", lvl, "seq: expected %d (abs %d, after %d sequence numbers of the application's) got %d", p.Seq, uint32(c.PeerISN)+p.Seq+how.shift, how.shift, got)
			} else {
				ps.add("seq", lvl, "seq: expected %d (abs %d) got %d", p.Seq, uint32(c.PeerISN)+p.Seq, got)
			}
		}
	}
	if p.Ack.Set || p.Flags&probe.ACK != 0 {
		if !p.Ack.Any {
			want := p.Ack.Value
			var got, abs uint32
			switch {
			case p.Flags&probe.ACK == 0:
				got, abs = uint32(t.Ack), want
			case p.Flags&probe.SYN != 0:
				got, abs = uint32(t.Ack), want
			default:
				got, abs = uint32(t.Ack-c.ISN), uint32(c.ISN)+want
			}
			if got != want {
				ps.add("ack", lvl, "ack: expected %d (abs %d) got %d", want, abs, got)
			}
		}
	}
	if p.Win.Set && !p.Win.Any && uint32(t.Window) != p.Win.Value {
		ps.add("win", lvl, "win: expected %d got %d", p.Win.Value, t.Window)
	}
	if p.Urg.Set && !p.Urg.Any && uint32(t.Urgent) != p.Urg.Value {
		ps.add("urg", lvl, "urg: expected %d got %d", p.Urg.Value, t.Urgent)
	}
	if !p.LenAny && !how.appData && uint32(len(t.Payload)) != p.Len {
		ps.add("length", lvl, "payload: expected %d bytes got %d", p.Len, len(t.Payload))
	}
	if len(p.Payload) > 0 && !hasPrefix(t.Payload, p.Payload) {
		ps.add("payload", lvl, "payload: expected it to start with %q, got %q", clip(p.Payload), clip(t.Payload))
	}
	ps = append(ps, e.matchOptions(p, t)...)
	return ps
}

func hasPrefix(b, prefix []byte) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == string(prefix)
}

func clip(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

func flagText(f probe.Flags, ae bool) string {
	s := f.String()
	if ae {
		if f == 0 {
			s = ""
		}
		s += "A"
	}
	return s
}

// matchIP compares an IP header with a line's IP information.
func matchIP(ip script.IPSpec, got *probe.IP, lvl Level) Problems {
	var ps Problems
	if want, ok := ecnWant[ip.ECN]; ok && !want.allows(got.ECN()) {
		ps.add("ecn", lvl, "ecn: expected %s got %s", want.name, ecnName(got.ECN()))
	}
	check := func(name string, n script.Num, got uint32) {
		if n.Set && !n.Any && n.Value != got {
			ps.add(name, lvl, "%s: expected %d got %d", name, n.Value, got)
		}
	}
	check("tos", ip.TOS, uint32(got.TOS))
	check("ttl", ip.TTL, uint32(got.TTL))
	check("ip id", ip.ID, uint32(got.ID))
	if got.Version == 6 {
		check("flowlabel", ip.FlowLabel, got.FlowLabel)
	} else {
		df := uint32(0)
		if got.DF() {
			df = 1
		}
		if ip.DF.Set && !ip.DF.Any && ip.DF.Value != df {
			ps.add("df", lvl, "DF: expected %s got %s", dfName(ip.DF.Value), dfName(df))
		}
	}
	return ps
}

// ecnWant is what each ECN expectation of a script line accepts.
var ecnWant = map[script.ECN]ecnSet{
	script.ECNNotECT: {"not-ECT", []uint8{probe.ECNNotECT}},
	script.ECNECT0:   {"ECT(0)", []uint8{probe.ECNECT0}},
	script.ECNECT1:   {"ECT(1)", []uint8{probe.ECNECT1}},
	script.ECNCE:     {"CE", []uint8{probe.ECNCE}},
	script.ECNECT01:  {"ECT(0) or ECT(1)", []uint8{probe.ECNECT0, probe.ECNECT1}},
}

type ecnSet struct {
	name string
	set  []uint8
}

func (e ecnSet) allows(c uint8) bool { return slices.Contains(e.set, c) }

func dfName(v uint32) string {
	if v != 0 {
		return "set"
	}
	return "clear"
}

func ecnName(e uint8) string {
	return [...]string{"not-ECT", "ECT(1)", "ECT(0)", "CE"}[e&3]
}

// matchOptions checks options in order, kind by kind, with their values;
// TS values are in the target's clock and are checked by the timestamp
// rules instead (as packetdrill leaves them unchecked).
func (e *execution) matchOptions(p *script.Packet, t *probe.TCP) Problems {
	var ps Problems
	want := p.Options
	if want.Kind == script.Listed {
		for i, w := range want.List {
			if i >= len(t.Options) {
				break
			}
			if sv, _, ok := w.Option.Timestamps(); ok && !w.AnyVal {
				if gv, _, ok := t.Options[i].Timestamps(); ok {
					e.tsMap[sv] = gv
				}
			}
		}
	}
	if msg := compareOptions(want, t.Options, e.sackEqual, e.relSACK); msg != "" {
		ps.add("options", e.level(), "%s", msg)
	}
	return ps
}

// compareOptions compares the options of a segment with a line's list, in
// order, kind by kind (TS values unchecked, as packetdrill does; "<...>"
// and a trailing "..." accept any more), and says how they differ, or "".
// sackEqual and relSACK compare and show SACK blocks in the line's
// sequence space.
func compareOptions(list script.OptionList, got []probe.Option, sackEqual func(want, got probe.Option) bool, relSACK func(probe.Option) string) string {
	// Zero padding after the last option is not an option.
	if n := len(got); n > 0 && got[n-1].Kind == probe.OptionEOL && allZero(got[n-1].Data) &&
		(len(list.List) == 0 || list.List[len(list.List)-1].Option.Kind != probe.OptionEOL) {
		got = got[:n-1]
	}
	switch list.Kind {
	case script.AnyOptions:
		return ""
	case script.NoOptions:
		if len(got) > 0 {
			return "options: expected none got " + probe.FormatOptions(got)
		}
		return ""
	}
	want := list.List
	mismatch := len(want) != len(got)
	if list.More {
		mismatch = len(got) < len(want)
	}
	var detail []string
	for i := 0; i < len(want) && i < len(got); i++ {
		w, g := want[i], got[i]
		if w.Option.Wire != nil {
			if string(w.Option.Wire) != string(g.Bytes()) {
				mismatch = true
			}
			continue
		}
		if w.Option.Kind != g.Kind {
			mismatch = true
			continue
		}
		switch g.Kind {
		case probe.OptionMSS, probe.OptionWScale:
			if !w.AnyValue && string(w.Option.Data) != string(g.Data) {
				mismatch = true
				detail = append(detail, fmt.Sprintf("%s: expected %s got %s", g.Kind, w.Option, g))
			}
		case probe.OptionTimestamps:
		case probe.OptionSACK:
			if !w.AnyValue && !sackEqual(w.Option, g) {
				mismatch = true
				detail = append(detail, fmt.Sprintf("sack: expected %s got %s (relative)", w.Option, relSACK(g)))
			}
		case probe.OptionFastOpen, probe.OptionExperimental:
			if !w.AnyValue && string(w.Option.Data) != string(g.Data) {
				mismatch = true
			}
		default:
			if string(w.Option.Data) != string(g.Data) {
				mismatch = true
			}
		}
	}
	if !mismatch {
		return ""
	}
	msg := fmt.Sprintf("options: expected %s got %s", specOptions(list), probe.FormatOptions(got))
	if len(detail) > 0 {
		msg += " (" + strings.Join(detail, "; ") + ")"
	}
	return msg
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func specOptions(l script.OptionList) string {
	list := l.List
	parts := make([]string, len(list), len(list)+1)
	for i, o := range list {
		s := o.Option.String()
		switch {
		case o.AnyValue:
			s = o.Option.Kind.String() + " *"
		case o.AnyVal || o.AnyEcr:
			s = "TS val * ecr *"
		}
		parts[i] = s
	}
	if l.More {
		parts = append(parts, "...")
	}
	return "<" + strings.Join(parts, ",") + ">"
}

func (e *execution) sackEqual(want, got probe.Option) bool {
	if want.NumSACKBlocks() != got.NumSACKBlocks() {
		return false
	}
	for i := 0; i < got.NumSACKBlocks(); i++ {
		w, g := want.SACKBlock(i), got.SACKBlock(i)
		if g.Left-e.conn.ISN != w.Left || g.Right-e.conn.ISN != w.Right {
			return false
		}
	}
	return true
}

func (e *execution) relSACK(o probe.Option) string {
	var parts []string
	for i := 0; i < o.NumSACKBlocks(); i++ {
		b := o.SACKBlock(i)
		parts = append(parts, fmt.Sprintf("%d:%d", uint32(b.Left-e.conn.ISN), uint32(b.Right-e.conn.ISN)))
	}
	return "sack " + strings.Join(parts, " ")
}

// receive takes in a segment from the target and applies the rules every
// segment must meet whatever the script says: well formed, options only if
// offered in a SYN-ACK, timestamps echoed and monotonic.
func (e *execution) receive(r *probe.Reply) Problems {
	return e.conn.Judge(r, false)
}

// cleanup resets the target's side of a connection the script left open,
// as packetdrill does, so that no state lingers at the target.
func (e *execution) cleanup() {
	if note := e.conn.Release(); note != "" {
		e.notes = append(e.notes, note)
	}
}

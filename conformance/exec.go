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

	t0          time.Time
	prevSched   time.Time
	prevActual  time.Time
	prevInbound bool
	havePrev    bool
	maxRTT      time.Duration

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
	closed     bool // the target reset the connection or both sides closed
	finSent    bool
	finRcvd    bool

	syns int // SYNs sent: later ones go first at the pacer
	// split is the sequence range of the last inbound segment synprobe cut
	// into several: the target's ACKs of its pieces are not the script's.
	split [2]probe.Seq
	// idx is the event being run; consumed marks later outbound lines an
	// earlier segment already satisfied (see earlyFIN), with what came.
	idx         int
	consumed    map[int]consumedBy
	notes       []string
	skipReason  string
	interrupted bool
}

// consumedBy records the segment that satisfied a later line early.
type consumedBy struct {
	line   int
	reply  *probe.Reply
	actual string
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

// minAllowance is the least extra time a reply may take: a remote stack
// (and this host, handing the frame over) may be busy for some
// milliseconds even when the path is short.
const minAllowance = 50 * time.Millisecond

// allowance is the extra time a reply may take because the target is
// remote: twice the longest round trip seen (at least minAllowance), or the
// run's timeout before any was measured.
func (e *execution) allowance() time.Duration {
	if e.maxRTT == 0 {
		return e.r.cfg.Timeout
	}
	return max(2*e.maxRTT, minAllowance)
}

func (e *execution) sleepUntil(t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-e.ctx.Done():
		e.interrupted = true
		return false
	}
}

func (e *execution) syscall(ev *script.Event) {
	start, _ := e.schedule(ev)
	e.sleepUntil(start)
	if ev.Syscall.AppActs() {
		e.appPending = ev
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
	frames, err := e.build(p)
	if err != nil {
		e.step(ev, report.Step{Direction: report.Send, Verdict: report.Error, Problems: []string{err.Error()}}, time.Now())
		return false
	}
	var first *probe.Sent
	var actual []string
	for _, f := range frames {
		sent, err := e.conn.S.Send(f, p.Overrides...)
		if err != nil {
			e.step(ev, report.Step{Direction: report.Send, Verdict: report.Error, Problems: []string{err.Error()}}, time.Now())
			return false
		}
		if sent.Frame.Has(probe.LayerTCP) {
			e.conn.Sent(&f.TCP, sent)
			if f.TCP.Flags&probe.FIN != 0 {
				e.finSent = true
			}
			actual = append(actual, e.conn.Format(&sent.Frame.TCP, false))
		} else {
			e.conn.LastSent = sent
			actual = append(actual, fmt.Sprintf("icmp type %d code %d", f.ICMP.Type, f.ICMP.Code))
		}
		if first == nil {
			first = sent
		}
	}
	st := report.Step{Direction: report.Send, Verdict: report.Pass, Actual: strings.Join(actual, "; ")}
	if len(frames) == 1 && first.Frame.Has(probe.LayerTCP) {
		st.ActualAbs = FormatAbs(&first.Frame.TCP)
	}
	e.step(ev, st, first.Time)
	e.done(start, first.Time, true)
	return true
}

// build turns an inbound line into frames: one, or several when --mss
// splits a long segment as packetdrill's GSO does.
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
			t.Ack = c.PeerISN + probe.Seq(p.Ack.Value)
		}
	}
	for _, o := range p.Options.List {
		t.Options = append(t.Options, e.inboundOption(o, p))
	}
	t.Payload = p.Payload
	if t.Payload == nil && p.Len > 0 {
		t.Payload = make([]byte, p.Len)
	}
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
		if !p.IP.DF.Set || p.IP.DF.Value != 0 {
			ip.Flags = probe.IPFlagDF
		}
		if !p.IP.ID.Set {
			ip.ID = c.S.NextIPID()
		}
	}
	frames := []*probe.Frame{{IP: ip, TCP: t}}
	if mss := e.maxPayload(&t); len(t.Payload) > mss {
		frames = split(ip, t, mss)
		e.split = [2]probe.Seq{t.Seq, t.Seq.Add(uint32(len(t.Payload)))}
	}
	return frames, nil
}

// maxPayload is the most data one inbound segment carries: what fits the
// path's MTU with t's options, or --mss when the script sets a smaller one.
// packetdrill hands longer segments to its tun device as GSO, which cuts
// them to this size; synprobe cuts them itself.
func (e *execution) maxPayload(t *probe.TCP) int {
	mtu := e.conn.S.Prober().Path().MTU
	if mtu == 0 {
		mtu = 1500
	}
	hdr := probe.IPv4HeaderLen
	if e.conn.S.Remote().Addr().Is6() {
		hdr = probe.IPv6HeaderLen
	}
	opts := 0
	for _, o := range t.Options {
		opts += len(o.Bytes())
	}
	n := mtu - hdr - probe.TCPHeaderLen - (opts+3)&^3
	if mss := e.s.Config.MSS; mss > 0 && mss < n {
		n = mss
	}
	return n
}

// split cuts a segment into mss-sized ones: SYN only on the first, FIN and
// PSH only on the last.
func split(ip probe.IP, t probe.TCP, mss int) []*probe.Frame {
	var out []*probe.Frame
	data := t.Payload
	seq := t.Seq
	for first := true; len(data) > 0; first = false {
		n := min(mss, len(data))
		seg := t
		seg.Seq, seg.Payload = seq, data[:n]
		if !first {
			seg.Flags &^= probe.SYN
		}
		if n < len(data) {
			seg.Flags &^= probe.FIN | probe.PSH
		}
		out = append(out, &probe.Frame{IP: ip, TCP: seg})
		seq = seq.Add(uint32(n))
		data = data[n:]
	}
	return out
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
			blocks[i] = probe.SACKBlock{Left: e.conn.PeerISN + b.Left, Right: e.conn.PeerISN + b.Right}
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
		seq = c.PeerISN + probe.Seq(p.ICMP.Echoed.Seq)
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
	return &probe.Frame{IP: probe.IP{Protocol: proto}, ICMP: probe.ICMP{Type: typ, Code: code, Rest: p.ICMP.MTU.Value, Body: body}}, nil
}

// ---- outbound: synprobe expects ----

func (e *execution) outbound(ev *script.Event) bool {
	p := ev.Packet
	start, end := e.schedule(ev)
	tol := e.tolerance(start)
	deadline := end.Add(tol + e.allowance())
	if ev.Time.Kind == script.Any {
		deadline = time.Now().Add(e.r.cfg.Timeout)
	}
	var r *probe.Reply
	for {
		var err error
		if r, err = e.conn.Recv(e.ctx, deadline); err != nil {
			return e.missing(ev, err, start)
		}
		if !e.pieceACK(r) {
			break
		}
		e.notes = append(e.notes, fmt.Sprintf("line %d: skipped %s, the ACK of a piece of a segment synprobe cut to fit the MTU", ev.Line, e.conn.FormatReply(r)))
		e.conn.Receive(&r.Frame.TCP)
	}
	want := p
	later, early := e.earlyFIN(p, r)
	if early {
		merged := *p
		merged.Flags |= probe.FIN
		want = &merged
	}
	ps := e.match(want, r)
	// Timing: the application acts on its own clock, so a segment that
	// follows an application call may come early.
	if ev.Time.Kind != script.Any && e.appPending == nil && r.Time.Before(start.Add(-tol)) {
		ps.add("timing", e.level(), "timing: expected at %.3f s (tolerance %.3f s), arrived at %.3f s",
			start.Sub(e.t0).Seconds(), tol.Seconds(), r.Time.Sub(e.t0).Seconds())
	}
	if rtt := e.conn.RTT(r); rtt != nil {
		if d := time.Duration(*rtt * 1000); d > e.maxRTT && d < e.r.cfg.Timeout {
			e.maxRTT = d
		}
	}
	st := report.Step{Direction: report.Expect, Verdict: ps.Verdict(), Problems: ps.Texts(), RTTMicros: e.conn.RTT(r)}
	st.Actual = e.conn.FormatReply(r)
	if r.Frame.Has(probe.LayerTCP) {
		st.ActualAbs = FormatAbs(&r.Frame.TCP)
	}
	if early && st.Verdict == report.Pass {
		if later >= 0 {
			e.notes = append(e.notes, fmt.Sprintf("line %d: the target's FIN came in this segment: its application closed sooner than line %d says", ev.Line, e.s.Events[later].Line))
			e.consumed[later] = consumedBy{line: ev.Line, reply: r, actual: st.Actual}
		} else {
			e.notes = append(e.notes, fmt.Sprintf("line %d: the target's FIN came in this segment: its application closed, which the script does not say (not a TCP matter)", ev.Line))
		}
	}
	e.step(ev, st, r.Time)
	e.done(start, r.Time, false)
	if st.Verdict == report.Fail || st.Verdict == report.Error {
		return false
	}
	e.appPending = nil
	return true
}

// pieceACK reports whether r is the target's pure ACK of a piece of the
// last segment synprobe cut to fit the MTU (not of the whole segment).
func (e *execution) pieceACK(r *probe.Reply) bool {
	if e.split[0] == e.split[1] || !r.Frame.Has(probe.LayerTCP) {
		return false
	}
	t := &r.Frame.TCP
	return t.Flags == probe.ACK && len(t.Payload) == 0 && e.split[0].LessThan(t.Ack) && t.Ack.LessThan(e.split[1])
}

// earlyFIN reports whether r is the segment a line expects plus the
// target's FIN. When and whether a target sends its FIN is its
// application's choice (the lab's closes on end of stream): an application
// that closes sooner than the script says, or where the script says
// nothing, is not a TCP fault, so the segment satisfies the line. When a
// later line expects exactly that FIN after the application's close (with
// only application calls between), the segment satisfies it too: later is
// its index, or -1.
func (e *execution) earlyFIN(p *script.Packet, r *probe.Reply) (later int, ok bool) {
	if !r.Frame.Has(probe.LayerTCP) || p.ICMP != nil || p.Flags&probe.FIN != 0 || r.Frame.TCP.Flags != p.Flags|probe.FIN {
		return -1, false
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
			return j, true
		}
		break
	}
	return -1, true
}

// missing records an expectation that met silence: skip when the script
// said the application must act first (synprobe cannot make a remote
// application act), error when frames were lost locally, else the
// script's level.
func (e *execution) missing(ev *script.Event, err error, start time.Time) bool {
	st := report.Step{Direction: report.Expect, Actual: "nothing"}
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		e.interrupted = true
		st.Verdict, st.Problems = report.Error, []string{"interrupted"}
	case !errors.Is(err, ErrSilence):
		st.Verdict, st.Problems = report.Error, []string{err.Error()}
	case e.conn.DroppedLocally() > 0:
		st.Verdict = report.Error
		st.Problems = []string{fmt.Sprintf("nothing arrived, but the local socket dropped %d frames: silence cannot be told from local loss", e.conn.DroppedLocally())}
	case e.appPending != nil:
		call := e.appPending.Syscall.Name
		st.Verdict = report.Skip
		st.Problems = []string{fmt.Sprintf("nothing arrived: the target application did not %s (line %d), which synprobe cannot make a remote application do", call, e.appPending.Line)}
		e.skipReason = fmt.Sprintf("the target application did not %s (line %d)", call, e.appPending.Line)
	default:
		st.Verdict = e.level().Verdict()
		st.Problems = []string{fmt.Sprintf("no segment by %.3f s (expected at %.3f s)", time.Since(e.t0).Seconds(), start.Sub(e.t0).Seconds())}
	}
	e.step(ev, st, time.Now())
	return false
}

func (e *execution) silence(ev *script.Event) bool {
	start, _ := e.schedule(ev)
	r, err := e.conn.Recv(e.ctx, start)
	if err == nil {
		var extra []string
		if r.Frame.Has(probe.LayerTCP) {
			extra = e.receive(r).Texts() // first: a SYN-ACK sets the ISN it is shown against
		}
		st := report.Step{Direction: report.Expect, Verdict: e.level().Verdict(), Actual: e.conn.FormatReply(r), RTTMicros: e.conn.RTT(r),
			Problems: append([]string{fmt.Sprintf("expected silence until %.3f s, got a segment at %.3f s", start.Sub(e.t0).Seconds(), r.Time.Sub(e.t0).Seconds())}, extra...)}
		if r.Frame.Has(probe.LayerTCP) {
			st.ActualAbs = FormatAbs(&r.Frame.TCP)
		}
		e.step(ev, st, r.Time)
		return false
	}
	if !errors.Is(err, ErrSilence) {
		return e.missing(ev, err, start)
	}
	st := report.Step{Direction: report.Expect, Verdict: report.Pass, Actual: "nothing"}
	if n := e.conn.DroppedLocally(); n > 0 {
		st.Verdict = report.Error
		st.Problems = []string{fmt.Sprintf("the local socket dropped %d frames meanwhile: silence cannot be judged", n)}
	}
	e.step(ev, st, start)
	e.done(start, start, false)
	return st.Verdict == report.Pass
}

// match compares a reply with an outbound line, field by field, in script
// sequence space.
func (e *execution) match(p *script.Packet, r *probe.Reply) Problems {
	var ps Problems
	lvl := e.level()
	f := &r.Frame
	if p.ICMP != nil {
		if !f.Has(probe.LayerICMP) {
			ps.add("icmp", lvl, "expected an ICMP %s message, got %s", p.ICMP.Type, e.conn.FormatReply(r))
			return ps
		}
		typ, code, err := script.ICMPTypeCode(f.IP.Version == 6, p.ICMP.Type, p.ICMP.Code)
		if err == nil && (typ != f.ICMP.Type || code != f.ICMP.Code) {
			ps.add("icmp", lvl, "icmp: expected type %d code %d, got type %d code %d", typ, code, f.ICMP.Type, f.ICMP.Code)
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
	ps = append(ps, e.matchIP(p, f)...)
	wantFlags := p.Flags
	gotFlags := t.Flags
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
		if got := uint32(t.Seq - c.PeerISN); got != p.Seq {
			ps.add("seq", lvl, "seq: expected %d (abs %d) got %d", p.Seq, uint32(c.PeerISN)+p.Seq, got)
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
	if !p.LenAny && uint32(len(t.Payload)) != p.Len {
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

func (e *execution) matchIP(p *script.Packet, f *probe.Frame) Problems {
	var ps Problems
	lvl := e.level()
	ip := p.IP
	if want, ok := ecnWant[ip.ECN]; ok && !want.allows(f.IP.ECN()) {
		ps.add("ecn", lvl, "ecn: expected %s got %s", want.name, ecnName(f.IP.ECN()))
	}
	check := func(name string, n script.Num, got uint32) {
		if n.Set && !n.Any && n.Value != got {
			ps.add(name, lvl, "%s: expected %d got %d", name, n.Value, got)
		}
	}
	check("tos", ip.TOS, uint32(f.IP.TOS))
	check("ttl", ip.TTL, uint32(f.IP.TTL))
	check("ip id", ip.ID, uint32(f.IP.ID))
	if f.IP.Version == 6 {
		check("flowlabel", ip.FlowLabel, f.IP.FlowLabel)
	} else {
		df := uint32(0)
		if f.IP.DF() {
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
	lvl := e.level()
	got := t.Options
	// Zero padding after the last option is not an option.
	if n := len(got); n > 0 && got[n-1].Kind == probe.OptionEOL && allZero(got[n-1].Data) &&
		(len(p.Options.List) == 0 || p.Options.List[len(p.Options.List)-1].Option.Kind != probe.OptionEOL) {
		got = got[:n-1]
	}
	switch p.Options.Kind {
	case script.AnyOptions:
		return ps
	case script.NoOptions:
		if len(got) > 0 {
			ps.add("options", lvl, "options: expected none got %s", probe.FormatOptions(got))
		}
		return ps
	}
	want := p.Options.List
	mismatch := len(want) != len(got)
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
			if sv, _, ok := w.Option.Timestamps(); ok && !w.AnyVal {
				if gv, _, ok := g.Timestamps(); ok {
					e.tsMap[sv] = gv
				}
			}
		case probe.OptionSACK:
			if !w.AnyValue && !e.sackEqual(w.Option, g) {
				mismatch = true
				detail = append(detail, fmt.Sprintf("sack: expected %s got %s (relative)", w.Option, e.relSACK(g)))
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
	if mismatch {
		msg := fmt.Sprintf("options: expected %s got %s", specOptions(want), probe.FormatOptions(got))
		if len(detail) > 0 {
			msg += " (" + strings.Join(detail, "; ") + ")"
		}
		ps.add("options", lvl, "%s", msg)
	}
	return ps
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func specOptions(list []script.OptionSpec) string {
	parts := make([]string, len(list))
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
	t := &r.Frame.TCP
	if t.Flags&probe.RST != 0 {
		e.closed = true
	}
	if t.Flags&probe.FIN != 0 {
		e.finRcvd = true
	}
	return e.conn.Judge(r, false)
}

// cleanup resets the target's side of a connection the script left open,
// as packetdrill does, so that no state lingers at the target.
func (e *execution) cleanup() {
	c := e.conn
	if !c.HavePeerISN || e.closed || (e.finSent && e.finRcvd) {
		return
	}
	rst := probe.Frame{IP: c.IPv4(), TCP: probe.TCP{Seq: c.SNDNXT, Ack: c.RCVNXT, Flags: probe.RST | probe.ACK}}
	if _, err := c.S.Send(&rst); err == nil {
		e.notes = append(e.notes, "cleanup: sent R. to release the target's connection")
	}
}

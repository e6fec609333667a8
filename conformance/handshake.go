package conformance

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"synprobe/conformance/report"
	"synprobe/internal/plural"
	"synprobe/probe"
)

// HandshakeOptions tune the handshake check.
type HandshakeOptions struct {
	// Timeout is how long to wait for each expected segment (default 2s).
	Timeout time.Duration
	// ISN is synprobe's initial sequence number; 0 picks a random one.
	ISN probe.Seq
}

// Window values synprobe advertises, as a current Linux does.
const (
	synWindow = 64240
	ackWindow = 502
	wscale    = 7
)

// handshake runs the seven steps of the KB 172983 exchange.
type handshake struct {
	c       *Conn
	ctx     context.Context
	timeout time.Duration
	ts0     uint32
	res     report.Result
	// stale is set when the SYN's answer may come from a connection an
	// earlier run left on the 4-tuple (Conn.Stale); staleSeen once that
	// happened: a second time is believed.
	stale, staleSeen bool
	// staleRST is set when that answer was a RST (not a bare ACK).
	staleRST bool
}

// Handshake opens and closes one connection on s the way KB 172983 shows
// it, checking every reply: SYN; SYN-ACK; ACK; FIN-ACK; the ACK of that
// FIN; the target's FIN; the last ACK. A target application that keeps its
// half open is not a TCP fault (skip); a closed port fails at step 2 and
// its RST is checked; silence fails at step 2.
func Handshake(ctx context.Context, s *probe.Session, opt HandshakeOptions) report.Result {
	if opt.Timeout <= 0 {
		opt.Timeout = 2 * time.Second
	}
	isn := opt.ISN
	if isn == 0 {
		isn = probe.Seq(rand.Uint32())
	}
	h := &handshake{c: NewConn(s), ctx: ctx, timeout: opt.Timeout, ts0: rand.Uint32() >> 1}
	h.res = report.Result{Name: "handshake", Description: "KB 172983: three-way handshake, then the four-segment close", RFC: "9293 3.5, 3.6", Level: "MUST"}
	h.run(isn)
	if h.stale {
		// What an earlier run left on the 4-tuple was reset (or gone):
		// the exchange starts again, with another ISN, and only this one
		// is judged. A bare ACK is evidence of that connection by itself;
		// a RST that acknowledges the SYN is what a closed port sends
		// too, so it is called a leftover only if the SYN sent again
		// gets a SYN-ACK.
		note := fmt.Sprintf("%s answered the SYN: a connection an earlier run left on the 4-tuple; it was reset and the exchange started again", h.c.Steps[len(h.c.Steps)-1].Actual)
		notes, byRST := h.c.Notes, h.staleRST
		h.c, h.stale = NewConn(s), false
		h.run(isn + 1<<31)
		if !byRST || h.c.HavePeerISN {
			notes = append(notes, note)
		}
		h.c.Notes = append(notes, h.c.Notes...)
	}
	c := h.c
	// Whatever is left of the connection at the target is released: a
	// close that did not complete, an abort, a half-open connection.
	if note := c.Release(); note != "" {
		c.Notes = append(c.Notes, note)
	}
	h.res.Steps = c.Steps
	h.res.Notes = append(h.res.Notes, c.Notes...)
	if c.HavePeerISN {
		h.res.Notes = append(h.res.Notes, fmt.Sprintf("ISNs: synprobe %d, target %d", uint32(c.ISN), uint32(c.PeerISN)))
	}
	if v, cause, why := LocalHost(c); v != "" {
		h.res.Verdict, h.res.Cause, h.res.Reason = v, cause, why
	}
	h.res.DurationMS = report.Millis(time.Since(c.Start))
	h.res.Judge()
	return h.res
}

// tsNow is synprobe's timestamp clock: 1 ms ticks, as Linux.
func (h *handshake) tsNow() uint32 { return h.ts0 + uint32(time.Since(h.c.Start).Milliseconds()) }

func (h *handshake) send(f *probe.Frame) bool {
	c := h.c
	f.IP = c.IPv4()
	sent, err := c.Send(f)
	if err != nil {
		c.AddStep(report.Step{Direction: report.Send, Verdict: report.Error, Expected: FormatAbs(&f.TCP), Problems: []string{err.Error()}}, time.Now())
		return false
	}
	text := c.Format(&sent.Frame.TCP, false)
	c.AddStep(report.Step{Direction: report.Send, Verdict: report.Pass, Expected: text, Actual: text, ActualAbs: FormatAbs(&sent.Frame.TCP)}, sent.Time)
	return true
}

// ackOptions are the options of a non-SYN segment: timestamps once
// negotiated (gVisor drops segments without them; RFC 7323 3.2 asks for
// them on every segment).
func (h *handshake) ackOptions() []probe.Option {
	if !h.c.TS.Enabled {
		return nil
	}
	return []probe.Option{probe.NOPOption(), probe.NOPOption(), probe.TimestampsOption(h.tsNow(), h.c.TS.LastReceived)}
}

// skipRest records the steps that were not run.
func (h *handshake) skipRest(from int, why string) {
	names := map[int]string{
		3: "send ACK (handshake complete)", 4: "send FIN-ACK (active close)", 5: "expect the ACK of synprobe's FIN",
		6: "expect the target's FIN", 7: "send the ACK of the target's FIN",
	}
	for i := from; i <= 7; i++ {
		dir := report.Send
		if i == 5 || i == 6 {
			dir = report.Expect
		}
		h.c.AddStep(report.Step{Direction: dir, Verdict: report.Skip, Expected: names[i], Problems: []string{why}}, time.Time{})
	}
}

func (h *handshake) run(isn probe.Seq) {
	c := h.c
	mss := uint16(c.S.Prober().Path().MTU - 40)
	if !c.S.Remote().Addr().Is4() {
		mss -= 20
	}
	if c.S.Prober().Path().MTU == 0 {
		mss = 1460
	}
	// 1. SYN with the options a current Linux offers.
	syn := probe.Frame{TCP: probe.TCP{Seq: isn, Flags: probe.SYN, Window: synWindow, Options: []probe.Option{
		probe.MSSOption(mss), probe.SACKPermittedOption(), probe.TimestampsOption(h.ts0, 0), probe.NOPOption(), probe.WScaleOption(wscale),
	}}}
	if !h.send(&syn) {
		h.skipRest(2, "not run: the SYN could not be sent")
		return
	}

	// 2. SYN-ACK.
	if !h.expectSYNACK(&syn) {
		return
	}

	// 3. ACK: the connection is open.
	ack := probe.Frame{TCP: probe.TCP{Seq: c.SNDNXT, Ack: c.RCVNXT, Flags: probe.ACK, Window: ackWindow, Options: h.ackOptions()}}
	if !h.send(&ack) {
		h.skipRest(4, "not run: a send failed")
		return
	}

	// 4. FIN-ACK: synprobe closes first.
	fin := probe.Frame{TCP: probe.TCP{Seq: c.SNDNXT, Ack: c.RCVNXT, Flags: probe.FIN | probe.ACK, Window: ackWindow, Options: h.ackOptions()}}
	if !h.send(&fin) {
		h.skipRest(5, "not run: a send failed")
		return
	}

	// 5 and 6: the ACK of our FIN, then the target's FIN (maybe in one segment).
	gotFIN, ok := h.expectClose(fin.TCP.End())
	if !ok {
		return
	}
	if !gotFIN {
		// The application keeps its half open: Handshake releases the
		// target's connection, so that nothing of it lingers.
		h.skipRest(7, "not sent: the target did not close its side")
		return
	}

	// 7. ACK of the target's FIN.
	last := probe.Frame{TCP: probe.TCP{Seq: c.SNDNXT, Ack: c.RCVNXT, Flags: probe.ACK, Window: ackWindow, Options: h.ackOptions()}}
	h.send(&last)
}

// silenceStep records an expectation that met silence. Frames dropped by the
// local socket meanwhile make silence unjudgeable (error).
func (h *handshake) silenceStep(expected string, v report.Verdict, problem string) {
	c := h.c
	st := report.Step{Direction: report.Expect, Verdict: v, Expected: expected, Actual: "nothing", Problems: []string{problem}, Fields: []string{"reply"}}
	if n := c.DroppedLocally(); n > 0 {
		st.Verdict, st.Cause = report.Error, report.CauseLocalDrops
		st.Problems = append(st.Problems, fmt.Sprintf("the local socket dropped %s meanwhile: silence cannot be told from local loss", plural.N(n, "frame", "frames")))
	}
	c.AddStep(st, time.Now())
}

func (h *handshake) expectSYNACK(syn *probe.Frame) bool {
	c := h.c
	expected := "S. 0:0(0) ack 1 <options offered only>"
	// The SYN goes again while unanswered, as a TCP sends it.
	first := c.LastSent.Time
	r, again, err := c.AwaitSYNACK(h.ctx, syn, nil, first, time.Now().Add(h.timeout))
	if again > 0 {
		c.Notes = append(c.Notes, fmt.Sprintf("no answer to the SYN at first: synprobe sent it %d more time(s), as a TCP does", again))
	}
	if err != nil {
		if errors.Is(err, ErrSilence) {
			h.silenceStep(expected, report.Skip, fmt.Sprintf("no reply to the SYN, sent %s over %v: nothing answered it (the listener does not accept connections, or a filter on the path drops the SYN)", plural.N(again+1, "time", "times"), time.Since(first).Round(100*time.Millisecond)))
			if st := &c.Steps[len(c.Steps)-1]; st.Verdict == report.Skip {
				st.Cause = report.CauseAppNotAccepting
			}
			h.skipRest(3, "not run: no SYN-ACK")
		} else {
			c.AddStep(report.Step{Direction: report.Expect, Verdict: report.Error, Expected: expected, Problems: []string{err.Error()}}, time.Now())
			h.skipRest(3, "not run: "+err.Error())
		}
		return false
	}
	st := report.Step{Direction: report.Expect, Expected: expected, RTTMicros: c.RTT(r)}
	if r.Frame.Has(probe.LayerICMP) {
		st.Actual = c.FormatReply(r)
		st.Verdict, st.Cause = report.Skip, report.CausePathICMP
		st.Problems = []string{fmt.Sprintf("the path answered with ICMP type %d code %d from %v: the SYN did not reach a TCP stack that could answer", r.Frame.ICMP.Type, r.Frame.ICMP.Code, r.Frame.IP.Src)}
		c.AddStep(st, r.Time)
		h.skipRest(3, "not run: the path rejected the SYN")
		return false
	}
	if !r.Frame.Has(probe.LayerTCP) {
		st.Verdict, st.Actual, st.Problems = report.Fail, c.FormatReply(r), WellFormed(&r.Frame, r.DecodeErr).Texts()
		c.AddStep(st, r.Time)
		h.skipRest(3, "not run: the reply was not a TCP segment")
		return false
	}
	t := &r.Frame.TCP
	if !h.staleSeen && c.Stale(t, true) {
		h.stale, h.staleSeen, h.staleRST = true, true, t.Flags&probe.RST != 0
		c.ResetStale(t)
		st.Actual = c.Format(t, true)
		c.AddStep(st, r.Time)
		return false
	}
	if t.Flags&probe.RST != 0 {
		// Nothing listens: not the stack's fault, but its RST is judged.
		ps := append(WellFormed(&r.Frame, r.DecodeErr), RSTForSYN(c.SYN, t)...)
		st.Verdict, st.Cause = report.Skip, report.CauseAppNotAccepting
		st.Problems = append([]string{"port closed: " + t.Flags.String() + " (nothing listens on the port)"}, ps.Texts()...)
		if len(ps) > 0 {
			st.Verdict, st.Cause = ps.Verdict(), report.CauseStack
		}
		st.Actual, st.ActualAbs = c.Format(t, true), FormatAbs(t)
		c.AddStep(st, r.Time)
		h.skipRest(3, "not run: the port is closed")
		return false
	}
	ps := c.Judge(r, true)
	st.Verdict, st.Problems, st.Fields = ps.Verdict(), ps.Texts(), ps.Rules()
	st.Actual, st.ActualAbs = c.Format(t, true), FormatAbs(t)
	c.AddStep(st, r.Time)
	if t.Flags&probe.SYN == 0 || t.Flags&probe.ACK == 0 {
		h.skipRest(3, "not run: no SYN-ACK")
		return false
	}
	return true
}

// expectClose waits for the ACK of synprobe's FIN (step 5) and the
// target's FIN (step 6), in whatever order they come: the target's
// application may close first, its FIN crossing synprobe's. finEnd is our
// FIN's sequence number + 1. Data the target sends meanwhile (a banner) is
// acknowledged in the end and noted.
func (h *handshake) expectClose(finEnd probe.Seq) (gotFIN, ok bool) {
	c := h.c
	ackExpected := "any segment with ack 2 (the ACK of synprobe's FIN)"
	finExpected := "F. with ack 2 (the target's FIN)"
	var ackSeg, finSeg *probe.Reply
	var p5, p6 Problems
	var recvErr error
	deadline := time.Now().Add(h.timeout)
	for ackSeg == nil || finSeg == nil {
		r, err := c.Recv(h.ctx, deadline)
		if err != nil {
			recvErr = err
			break
		}
		if !r.Frame.Has(probe.LayerTCP) {
			c.Notes = append(c.Notes, "ignored while closing: "+c.FormatReply(r))
			continue
		}
		t := &r.Frame.TCP
		ps := WellFormed(&r.Frame, r.DecodeErr)
		if t.Flags&probe.RST != 0 {
			expected := ackExpected
			if ackSeg != nil {
				expected = finExpected
			}
			h.recordClose(ackSeg, finSeg, p5, p6, ackExpected, finExpected)
			st := report.Step{Direction: report.Expect, Verdict: report.Skip, Cause: report.CauseAppReset, Expected: expected, Actual: c.Format(t, true), ActualAbs: FormatAbs(t), RTTMicros: c.RTT(r)}
			st.Problems = []string{"the target aborted the connection with RST instead of closing: an application decision (SO_LINGER 0), not judged"}
			if t.Seq != c.RCVNXT {
				ps.add("rst-seq", Must, "RST seq: want RCV.NXT %d, got %d", uint32(c.RCVNXT-c.PeerISN), uint32(t.Seq-c.PeerISN))
			}
			if len(ps) > 0 {
				st.Verdict, st.Cause = ps.Verdict(), report.CauseStack
				st.Problems = append(st.Problems, ps.Texts()...)
			}
			c.AddStep(st, r.Time)
			return false, false
		}
		if t.Flags&probe.SYN != 0 {
			c.Notes = append(c.Notes, "the target sent its SYN-ACK again (synprobe's ACK lost?): "+c.Format(t, true))
			continue
		}
		if len(t.Payload) > 0 {
			c.Notes = append(c.Notes, fmt.Sprintf("the target sent %d bytes of data while closing (not judged)", len(t.Payload)))
		}
		wantSeq := c.RCVNXT
		ps = append(ps, c.Receive(t)...)
		acksFIN := t.Flags&probe.ACK != 0 && !t.Ack.LessThan(finEnd)
		if acksFIN && ackSeg == nil {
			ackSeg, p5 = r, append(Problems{}, ps...)
			if t.Ack != finEnd {
				p5.add("fin-ack", Must, "ack: want synprobe's FIN seq+1 (%d), got %d", uint32(finEnd-c.ISN), uint32(t.Ack-c.ISN))
			}
			if t.Seq != wantSeq {
				p5.add("fin-ack-seq", Must, "seq: want %d (RCV.NXT), got %d", uint32(wantSeq-c.PeerISN), uint32(t.Seq-c.PeerISN))
			}
		}
		if t.Flags&probe.FIN != 0 && finSeg == nil {
			finSeg, p6 = r, append(Problems{}, ps...)
			if t.Seq != wantSeq {
				p6.add("fin-seq", Must, "seq: want %d (RCV.NXT), got %d", uint32(wantSeq-c.PeerISN), uint32(t.Seq-c.PeerISN))
			}
			switch {
			case t.Flags&probe.ACK == 0:
				p6.add("fin-ack", Must, "ack: want %d (synprobe's FIN acknowledged), got %s", uint32(finEnd-c.ISN), ackText(t, c.ISN))
			case t.Ack == finEnd-1 && ackSeg == nil:
				c.Notes = append(c.Notes, "the target's FIN crossed synprobe's: its application closed first (a simultaneous close, RFC 9293 3.6)")
			case t.Ack != finEnd:
				p6.add("fin-ack", Must, "ack: want %d (synprobe's FIN acknowledged), got %s", uint32(finEnd-c.ISN), ackText(t, c.ISN))
			}
		}
	}
	if recvErr != nil && !errors.Is(recvErr, ErrSilence) {
		h.recordClose(ackSeg, finSeg, p5, p6, ackExpected, finExpected)
		c.AddStep(report.Step{Direction: report.Expect, Verdict: report.Error, Cause: report.CauseLocalFailure, Expected: finExpected, Problems: []string{recvErr.Error()}}, time.Now())
		return false, false
	}
	if ackSeg == nil {
		why := fmt.Sprintf("no ACK of synprobe's FIN within %v", h.timeout)
		if finSeg != nil {
			why = fmt.Sprintf("ack: want synprobe's FIN seq+1 (%d): the target's FIN acknowledged %s, and nothing acknowledged synprobe's FIN within %v", uint32(finEnd-c.ISN), ackText(&finSeg.Frame.TCP, c.ISN), h.timeout)
		}
		h.silenceStep(ackExpected, report.Fail, why)
		if finSeg == nil {
			h.skipRest(6, "not run: synprobe's FIN was not acknowledged")
		} else {
			h.recordClose(nil, finSeg, nil, p6, ackExpected, finExpected)
		}
		return false, false
	}
	h.recordClose(ackSeg, finSeg, p5, p6, ackExpected, finExpected)
	if finSeg == nil {
		h.silenceStep(finExpected, report.Skip, fmt.Sprintf("the target application did not close its side within %v (not a TCP fault: it may keep a half-open connection)", h.timeout))
		c.Steps[len(c.Steps)-1].Cause = report.CauseAppDidNotAct
		return false, true
	}
	if ackSeg == finSeg {
		c.Notes = append(c.Notes, "the target's FIN came in the same segment as the ACK of synprobe's FIN")
	}
	return true, true
}

// recordClose records steps 5 and 6 for what came, in the exchange's
// order.
func (h *handshake) recordClose(ackSeg, finSeg *probe.Reply, p5, p6 Problems, ackExpected, finExpected string) {
	c := h.c
	add := func(r *probe.Reply, ps Problems, expected string) {
		t := &r.Frame.TCP
		c.AddStep(report.Step{Direction: report.Expect, Expected: expected, Actual: c.Format(t, true), ActualAbs: FormatAbs(t), RTTMicros: c.RTT(r),
			Verdict: ps.Verdict(), Problems: ps.Texts(), Fields: ps.Rules()}, r.Time)
	}
	if ackSeg != nil {
		add(ackSeg, p5, ackExpected)
	}
	if finSeg != nil {
		add(finSeg, p6, finExpected)
	}
}

func ackText(t *probe.TCP, isn probe.Seq) string {
	if t.Flags&probe.ACK == 0 {
		return "no ACK bit"
	}
	return fmt.Sprint(uint32(t.Ack - isn))
}

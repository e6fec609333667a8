package scenarios

import (
	"context"
	"fmt"
	"strings"
	"time"

	"synprobe/conformance"
	"synprobe/conformance/report"
	"synprobe/internal/plural"
	"synprobe/probe"
)

// checks are the scenarios written in Go: their rows of the catalogue
// accept alternatives the script language cannot express, or need data
// from the target's application, or statistics.
var checks = []*Check{
	{Name: "established-close-sequence", Area: "established", Level: "MUST", RFC: "9293 3.6",
		Description: "the KB 172983 exchange: handshake, FIN, the ACK of that FIN, the target's FIN, the last ACK, with all sequence arithmetic right",
		Estimate:    100 * time.Millisecond, Run: closeSequence},
	{Name: "established-fin-half-close", Area: "established", Level: "MUST", RFC: "9293 3.6",
		Description: "a FIN after a request is acknowledged (FIN seq+1); the target may go on sending (half close)",
		Estimate:    500 * time.Millisecond, Application: true, Run: halfClose},
	{Name: "options-ts-missing-no-abort", Area: "options", Level: "MUST", RFC: "7323 3.2",
		Description: "a segment without timestamps after they were negotiated never aborts the connection",
		Estimate:    time.Second, Application: true, Run: tsMissingNoAbort},
	{Name: "options-illegal-length", Area: "options", Level: "MUST", RFC: "9293 3.1",
		Description: "SYNs with an MSS option of length 0, of length 1 and running past the options get a SYN-ACK, a RST or silence, and the target keeps answering afterwards",
		Estimate:    time.Second, Run: illegalOptionLength},
	// The MSS of a SYN answered with a cookie travels in the cookie, which
	// holds only a few values (Linux: 536 at the least): syn-state.
	{Name: "options-mss-unaligned", Area: "options", Level: "MUST", RFC: "9293 3.7.1", Needs: []string{"syn-state"},
		Description: "an MSS of 100 after a NOP (unaligned) is honoured: no segment from the target carries more than 100 bytes",
		Estimate:    500 * time.Millisecond, Application: true, Run: mssUnaligned},
	{Name: "options-no-mss-default", Area: "options", Level: "MUST", RFC: "9293 3.7.1",
		Description: "without an MSS option the target sends segments of at most 536 bytes (IPv4) or 1220 bytes (IPv6)",
		Estimate:    500 * time.Millisecond, Application: true, Run: noMSSDefault},
	{Name: "options-wscale-over-14", Area: "options", Level: "MUST", RFC: "7323 2.3",
		Description: "a window scale of 15 is treated as 14: the target never sends more than a window of 1 << 14 allows",
		Estimate:    500 * time.Millisecond, Application: true, Run: wscaleOver14},
	{Name: "options-ecn-negotiation", Area: "options", Level: "MUST", RFC: "3168 6.1.1",
		Description: "a SYN with ECE and CWR gets a SYN-ACK with ECE and not CWR, or without ECN; a plain SYN never gets ECE; SYN-ACKs are not ECN-capable",
		Estimate:    100 * time.Millisecond, Run: ecnNegotiation},
	{Name: "options-fast-open-cookie", Area: "options", Level: "info", RFC: "7413 4.1",
		Description: "a SYN asking for a Fast Open cookie: reported as observed (a cookie, or none)",
		Estimate:    100 * time.Millisecond, Run: fastOpenCookie},
	{Name: "timer-synack-retransmission", Area: "timers", Level: "SHOULD", RFC: "6298 2, 5.5", Needs: []string{"syn-state"},
		Description: "a SYN left unanswered makes the target retransmit its SYN-ACK (RFC 6298: initial RTO 1 s, then doubling); when and how often it does beyond the first is reported as observed (net.ipv4.tcp_synack_retries is the administrator's choice)",
		Estimate:    synackWatch, Run: synackRetransmission},
	{Name: "timer-zero-window", Area: "timers", Level: "MUST", RFC: "9293 3.8.6.1",
		Description: "with synprobe's window at zero while the target has data to send, the target probes the window, backing off, never aborts, and sends once the window opens",
		Estimate:    2500 * time.Millisecond, Application: true, Run: zeroWindow},
}

func closeSequence(ctx context.Context, env *Env) report.Result {
	if err := env.Pace(ctx); err != nil {
		return errResult(err)
	}
	s, err := env.Prober.Open(probe.SessionConfig{Remote: env.Target})
	if err != nil {
		return errResult(err)
	}
	defer s.Close()
	return conformance.Handshake(ctx, s, conformance.HandshakeOptions{Timeout: env.Timeout})
}

var linuxSYN = []probe.Option{probe.MSSOption(1460)}

// connect opens a connection with a SYN carrying opts and completes the
// handshake; ok is false (and steps say why) when it could not.
func connect(ctx context.Context, env *Env, opts []probe.Option, win uint16) (*client, bool, error) {
	cl, err := env.dial(ctx, 0)
	if err != nil {
		return nil, false, err
	}
	r, err := cl.open(probe.TCP{Seq: 1, Window: 65535, Options: opts})
	if err != nil {
		return nil, false, err
	}
	if !cl.expectSYNACK(r) {
		return cl, false, nil
	}
	if err := cl.handshake(r, win); err != nil {
		return nil, false, err
	}
	return cl, true, nil
}

func halfClose(ctx context.Context, env *Env) report.Result {
	cl, ok, err := connect(ctx, env, linuxSYN, 65535)
	if err != nil {
		return errResult(err)
	}
	if !ok {
		return cl.result()
	}
	// The request, so that the application may answer after the FIN (half
	// close); data it ignores when it resets connections on the request.
	useRequest := env.Facts.App == nil || env.Facts.App.Answer.Then != conformance.ThenReset
	data := cl.filler(0, 10)
	if useRequest {
		data = cl.request(3000)
	}
	if _, err := cl.send(cl.segment(probe.PSH|probe.FIN|probe.ACK, data, 65535)); err != nil {
		return errResult(err)
	}
	finEnd := cl.c.SNDNXT
	var acked, fin, rst bool
	var after int
	var ps conformance.Problems
	var ackReply, rstReply *probe.Reply
	deadline := time.Now().Add(env.Timeout)
	for time.Now().Before(deadline) && !(acked && fin) && !rst {
		r, err := cl.c.Recv(ctx, deadline)
		if err != nil {
			break
		}
		if !r.Frame.Has(probe.LayerTCP) {
			continue
		}
		t := &r.Frame.TCP
		if t.Flags&probe.RST != 0 {
			rst, rstReply = true, r
			break
		}
		ps = append(ps, cl.judge(r)...)
		if t.Flags&probe.ACK != 0 && !t.Ack.LessThan(finEnd) && !acked {
			acked, ackReply = true, r
			if t.Ack != finEnd {
				ps = append(ps, problem("fin-ack", conformance.Must, "ack: want synprobe's FIN seq+1 (%d), got %d", uint32(finEnd-cl.c.ISN), uint32(t.Ack-cl.c.ISN))...)
			}
		}
		after += len(t.Payload)
		if t.Flags&probe.FIN != 0 {
			fin = true
		}
		if len(t.Payload) > 0 || t.Flags&probe.FIN != 0 {
			f := probe.Frame{IP: cl.c.IPv4(), TCP: cl.segment(probe.ACK, nil, 65535)}
			cl.c.Send(&f)
		}
	}
	if rst {
		if cause, why := cl.appReset(useRequest, rstReply); cause != "" {
			cl.judge(rstReply)
			cl.expectStep("any segment with ack = FIN seq+1 (the ACK of synprobe's FIN)", rstReply, ps)
			return cl.skipRST(cause, why)
		}
		ps = append(ps, cl.judge(rstReply)...)
		ps = append(ps, problem("half-close", conformance.Must, "the target reset the connection after synprobe's FIN")...)
		if ackReply == nil {
			ackReply = rstReply
		}
	} else if !acked {
		ps = append(ps, problem("fin-ack", conformance.Must, "synprobe's FIN was not acknowledged within %v", env.Timeout)...)
	}
	cl.expectStep("any segment with ack = FIN seq+1 (the ACK of synprobe's FIN)", ackReply, ps)
	if after > 0 {
		cl.c.Notes = append(cl.c.Notes, fmt.Sprintf("the target sent %d bytes after synprobe's FIN (it went on sending: half close)", after))
	} else {
		cl.c.Notes = append(cl.c.Notes, "the target sent no data after synprobe's FIN (its application answered nothing)")
	}
	return cl.result()
}

func tsMissingNoAbort(ctx context.Context, env *Env) report.Result {
	cl, ok, err := connect(ctx, env, []probe.Option{probe.MSSOption(1460), probe.NOPOption(), probe.NOPOption(), probe.TimestampsOption(1000, 0)}, 1000)
	if err != nil {
		return errResult(err)
	}
	if !ok {
		return cl.result()
	}
	if !cl.c.TS.Enabled {
		res := cl.result()
		res.Verdict, res.Cause, res.Reason = report.Skip, report.CausePremiseTimestamps, "timestamps not negotiated: the SYN-ACK carries no TS option (net.ipv4.tcp_timestamps=0?)"
		return res
	}
	start := cl.c.SNDNXT
	bare := cl.segment(probe.PSH|probe.ACK, cl.filler(0, 10), 1000)
	bare.Options = nil
	if _, err := cl.send(bare); err != nil {
		return errResult(err)
	}
	// Whatever the target does with it (drop it, as RFC 7323 suggests, or
	// take it), it must not abort.
	var ps conformance.Problems
	var seen []string
	deadline := time.Now().Add(600 * time.Millisecond)
	for {
		r, err := cl.c.Recv(ctx, deadline)
		if err != nil {
			break
		}
		if !r.Frame.Has(probe.LayerTCP) {
			continue
		}
		ps = append(ps, cl.judge(r)...)
		seen = append(seen, cl.c.FormatReply(r))
		if r.Frame.TCP.Flags&probe.RST != 0 {
			if cause, why := cl.appReset(false, r); cause != "" {
				cl.observe("no RST within 600 ms", strings.Join(seen, "; "), ps)
				return cl.skipRST(cause, why)
			}
			ps = append(ps, problem("ts-abort", conformance.Must, "the target aborted the connection (RST) over a segment without timestamps")...)
		}
	}
	actual := "nothing (dropped)"
	if len(seen) > 0 {
		actual = strings.Join(seen, "; ")
	}
	cl.observe("no RST within 600 ms", actual, ps)
	if ps.Verdict() == report.Fail {
		return cl.result()
	}
	// The same data again, with timestamps, and 5 bytes more: acknowledged
	// up to its end either way.
	good := cl.segment(probe.PSH|probe.ACK, cl.filler(0, 15), 1000)
	good.Seq = start
	if _, err := cl.send(good); err != nil {
		return errResult(err)
	}
	want := start.Add(15)
	r, err := cl.recv(env.Timeout)
	if err != nil {
		return errResult(err)
	}
	var ps2 conformance.Problems
	switch {
	case r == nil:
		ps2 = problem("alive", conformance.Must, "no ACK within %v: the connection seems dead", env.Timeout)
	case !r.Frame.Has(probe.LayerTCP):
		ps2 = problem("alive", conformance.Must, "expected an ACK, got %s", cl.c.FormatReply(r))
	default:
		ps2 = cl.judge(r)
		t := &r.Frame.TCP
		if t.Flags&probe.RST != 0 {
			if cause, why := cl.appReset(false, r); cause != "" {
				cl.expectStep(fmt.Sprintf(". ack %d <TS> (the connection is alive)", uint32(want-cl.c.ISN)), r, ps2)
				return cl.skipRST(cause, why)
			}
		}
		if t.Flags&probe.RST != 0 || t.Ack != want {
			ps2 = append(ps2, problem("alive", conformance.Must, "expected . ack %d, got %s", uint32(want-cl.c.ISN), cl.c.FormatReply(r))...)
		}
	}
	cl.expectStep(fmt.Sprintf(". ack %d <TS> (the connection is alive)", uint32(want-cl.c.ISN)), r, ps2)
	return cl.result()
}

func illegalOptionLength(ctx context.Context, env *Env) report.Result {
	probes := []struct {
		name string
		raw  []byte
	}{
		{"MSS with length 0", []byte{2, 0, 5, 0xb4}},
		{"MSS with length 1", []byte{2, 1, 5, 0xb4}},
		{"MSS whose length runs past the options", []byte{1, 2, 8, 5}},
	}
	var steps []report.Step
	start := time.Now()
	for _, pr := range probes {
		cl, err := env.dial(ctx, 0)
		if err != nil {
			return errResult(err)
		}
		r, err := cl.openOnce(probe.TCP{Seq: 1, Window: 1000, Options: []probe.Option{probe.RawOption(pr.raw)}})
		if err != nil {
			return errResult(err)
		}
		var ps conformance.Problems
		answer := "silence"
		if r != nil && r.Frame.Has(probe.LayerTCP) {
			ps = cl.judge(r)
			answer = cl.c.FormatReply(r)
		}
		st := cl.expectStep("a SYN-ACK, a RST or silence", r, ps)
		st.Expected = fmt.Sprintf("a SYN-ACK, a RST or silence to a SYN with an %s", pr.name)
		cl.c.Notes = append(cl.c.Notes, fmt.Sprintf("%s: %s", pr.name, answer))
		steps = append(steps, cl.c.Steps...)

		// The target keeps answering: a normal SYN from another port.
		ok, err := env.dial(ctx, 0)
		if err != nil {
			return errResult(err)
		}
		r2, err := ok.open(probe.TCP{Seq: 1, Window: 1000, Options: linuxSYN})
		if err != nil {
			return errResult(err)
		}
		if !ok.expectSYNACK(r2) {
			if last := &ok.c.Steps[len(ok.c.Steps)-1]; last.Verdict != report.Skip {
				last.Problems = append(last.Problems, "the target stopped answering after a SYN with an "+pr.name)
			}
		}
		steps = append(steps, ok.c.Steps...)
	}
	for i := range steps {
		steps[i].Index = i + 1
	}
	return report.Result{Steps: steps, DurationMS: report.Millis(time.Since(start))}
}

// segmentSizes opens a connection with a SYN carrying opts, asks the
// target's application for data and checks that no segment carries more
// than max bytes.
func segmentSizes(ctx context.Context, env *Env, opts []probe.Option, max int, why string) report.Result {
	if res, silent := silentApplication(env, "judging segment sizes"); silent {
		return res
	}
	cl, ok, err := connect(ctx, env, opts, 65535)
	if err != nil {
		return errResult(err)
	}
	if !ok {
		return cl.result()
	}
	if _, err := cl.send(cl.segment(probe.PSH|probe.ACK, cl.request(4*max+1000), 65535)); err != nil {
		return errResult(err)
	}
	tr := cl.receiveData(env.Timeout, 3*max, 65535)
	ps := tr.ps
	largest := 0
	for _, n := range tr.sizes {
		largest = max2(largest, n)
		if n > max {
			ps = append(ps, problem("mss", conformance.Must, "a segment of %d bytes, above %s", n, why)...)
			break
		}
	}
	actual := fmt.Sprintf("%d bytes in %d segments, the largest %d", tr.bytes, len(tr.sizes), largest)
	cl.observe(fmt.Sprintf("no segment above %d bytes (%s)", max, why), actual, ps)
	if ps.Verdict() == report.Pass && tr.bytes <= max {
		return cl.tooLittle(tr.bytes, max+1, "judging segment sizes")
	}
	return cl.result()
}

func max2(a, b int) int {
	if a > b {
		return a
	}
	return b
}

func mssUnaligned(ctx context.Context, env *Env) report.Result {
	return segmentSizes(ctx, env, []probe.Option{probe.NOPOption(), probe.MSSOption(100)}, 100, "the MSS of 100 synprobe announced")
}

func noMSSDefault(ctx context.Context, env *Env) report.Result {
	if env.Target.Addr().Is4() {
		return segmentSizes(ctx, env, nil, 536, "the default MSS of 536 for IPv4 (RFC 9293 3.7.1)")
	}
	return segmentSizes(ctx, env, nil, 1220, "the default MSS of 1220 for IPv6 (RFC 9293 3.7.1)")
}

// silentApplication skips a check that needs the application's data when
// the profile sent it the request and got nothing back: the check would
// wait for data that does not come.
func silentApplication(env *Env, what string) (report.Result, bool) {
	a := env.Facts.App
	if a == nil || a.Answer.Then == "" || a.Answer.Bytes > 0 {
		return report.Result{}, false
	}
	return report.Result{Verdict: report.Skip, Cause: report.CauseAppNoData,
		Reason: fmt.Sprintf("the target's application sent nothing to the request %s when the profile sent it, and %s needs its data: --request chooses what is asked", a.Request, what)}, true
}

func wscaleOver14(ctx context.Context, env *Env) report.Result {
	if res, silent := silentApplication(env, "filling a window"); silent {
		return res
	}
	// A window field of 1 means 1<<14 = 16384 bytes to a stack that clamps
	// the shift to 14, and 32768 to one that uses 15.
	cl, ok, err := connect(ctx, env, []probe.Option{probe.MSSOption(1460), probe.NOPOption(), probe.WScaleOption(15)}, 1)
	if err != nil {
		return errResult(err)
	}
	if !ok {
		return cl.result()
	}
	if cl.c.WScale < 0 {
		res := cl.result()
		res.Verdict, res.Cause, res.Reason = report.Skip, report.CausePremiseWScale, "window scaling not negotiated: the SYN-ACK carries no window scale option (net.ipv4.tcp_window_scaling=0, or SYN cookies without timestamps)"
		return res
	}
	const limit = 1 << 14
	if _, err := cl.send(cl.segment(probe.PSH|probe.ACK, cl.request(200000), 1)); err != nil {
		return errResult(err)
	}
	// Acknowledge in batches, so that the target's window fills between
	// acknowledgments and its slow start grows past the window: a batch
	// waits for the first segment, then takes segments until the sender
	// pauses, then acknowledges them all (well within its RTO).
	var ps conformance.Problems
	most := 0
	acked := cl.c.RCVNXT
	for batch := 0; batch < 12 && most < limit; batch++ {
		wait := 100 * time.Millisecond
		if batch == 0 {
			wait = env.Timeout / 2
		}
		got := false
		for {
			r, err := cl.c.Recv(ctx, time.Now().Add(wait))
			if err != nil {
				break
			}
			if !r.Frame.Has(probe.LayerTCP) {
				continue
			}
			ps = append(ps, cl.judge(r)...)
			t := &r.Frame.TCP
			if out := int(t.End().Sub(acked)); out > most {
				most = out
			}
			if len(t.Payload) > 0 {
				// Data flows: acknowledge once the flight pauses. Waiting
				// longer lets the target's retransmission timer (200 ms
				// at least) fire, and the loss it infers shrinks its
				// congestion window below the window under test.
				got, wait = true, 20*time.Millisecond
			}
		}
		if !got {
			break // nothing more came
		}
		acked = cl.c.RCVNXT
		f := probe.Frame{IP: cl.c.IPv4(), TCP: cl.segment(probe.ACK, nil, 1)}
		cl.c.Send(&f)
	}
	if most > limit {
		ps = append(ps, problem("wscale-clamp", conformance.Must, "the target had %d bytes outstanding, more than the %d a window of 1 scaled by 14 allows: it used a shift of 15", most, limit)...)
	}
	cl.observe(fmt.Sprintf("at most %d bytes beyond synprobe's acknowledgment", limit), fmt.Sprintf("at most %d bytes outstanding", most), ps)
	res := cl.result()
	if ps.Verdict() == report.Pass && most < limit-1460 {
		total := int(cl.c.RCVNXT.Sub(cl.c.PeerISN)) - 1 // the SYN
		if cl.c.HavePeerFIN {
			total-- // the FIN
		}
		if total < limit {
			return cl.tooLittle(total, limit, "filling a window of 16 KiB")
		}
		res.Verdict, res.Cause = report.Skip, report.CausePremiseNothing
		res.Reason = fmt.Sprintf("the target never filled the window (at most %d bytes outstanding): the shift it used cannot be told", most)
	}
	return res
}

func ecnNegotiation(ctx context.Context, env *Env) report.Result {
	start := time.Now()
	var steps []report.Step
	var notes []string
	for _, ecn := range []bool{true, false} {
		cl, err := env.dial(ctx, 0)
		if err != nil {
			return errResult(err)
		}
		flags := probe.Flags(0)
		if ecn {
			flags = probe.ECE | probe.CWR
		}
		r, err := cl.open(probe.TCP{Seq: 1, Flags: flags, Window: 1000, Options: linuxSYN})
		if err != nil {
			return errResult(err)
		}
		if cl.expectSYNACK(r) {
			last := &cl.c.Steps[len(cl.c.Steps)-1]
			if r.Frame.IP.ECN() != probe.ECNNotECT {
				last.Problems = append(last.Problems, fmt.Sprintf("the SYN-ACK is ECN-capable (IP ECN %d): RFC 3168 6.1.1 forbids ECT on SYN-ACKs", r.Frame.IP.ECN()))
				last.Verdict = report.Fail
			}
			if ecn {
				if r.Frame.TCP.Flags&probe.ECE != 0 {
					notes = append(notes, "ECN accepted (the SYN-ACK carries ECE)")
				} else {
					notes = append(notes, "ECN declined (the SYN-ACK carries no ECE)")
				}
			}
		}
		steps = append(steps, cl.c.Steps...)
	}
	for i := range steps {
		steps[i].Index = i + 1
	}
	return report.Result{Steps: steps, Notes: notes, DurationMS: report.Millis(time.Since(start))}
}

func fastOpenCookie(ctx context.Context, env *Env) report.Result {
	cl, err := env.dial(ctx, 0)
	if err != nil {
		return errResult(err)
	}
	r, err := cl.open(probe.TCP{Seq: 1, Window: 1000, Options: []probe.Option{probe.MSSOption(1460), probe.FastOpenOption(nil), probe.NOPOption(), probe.NOPOption()}})
	if err != nil {
		return errResult(err)
	}
	var observed string
	if cl.expectSYNACK(r) {
		observed = "no Fast Open cookie in the SYN-ACK"
		for _, o := range r.Frame.TCP.Options {
			if c, ok := o.FastOpenCookie(); ok {
				observed = fmt.Sprintf("a Fast Open cookie of %d bytes in the SYN-ACK", len(c))
			}
		}
	}
	res := cl.result()
	res.Reason = observed
	return res
}

// How long the zero-window check watches for probes: long enough for three
// with a 200 ms timeout backing off, and, when none came, for a first one
// after a 3 s timeout.
const (
	zeroWindowWatch     = 1600 * time.Millisecond
	zeroWindowLongWatch = 3500 * time.Millisecond
)

func zeroWindow(ctx context.Context, env *Env) report.Result {
	if res, silent := silentApplication(env, "a zero window with data waiting"); silent {
		return res
	}
	cl, ok, err := connect(ctx, env, linuxSYN, 65535)
	if err != nil {
		return errResult(err)
	}
	if !ok {
		return cl.result()
	}
	// The request itself closes the window: the answer must wait.
	if _, err := cl.send(cl.segment(probe.PSH|probe.ACK, cl.request(20000), 0)); err != nil {
		return errResult(err)
	}
	var ps conformance.Problems
	var times []time.Time
	var rst bool
	sent := 0
	// The first probe is due after the retransmission timeout (RFC 9293
	// 3.8.6.1): about 1 s, later when the stack has no round-trip sample
	// (Linux falls back to 3 s for a connection a SYN cookie opened).
	start := time.Now()
	deadline := start.Add(zeroWindowWatch)
	for {
		r, err := cl.c.Recv(ctx, deadline)
		if err != nil {
			if len(times) == 0 && deadline.Sub(start) < zeroWindowLongWatch {
				deadline = start.Add(zeroWindowLongWatch)
				continue
			}
			break
		}
		if !r.Frame.Has(probe.LayerTCP) {
			continue
		}
		t := &r.Frame.TCP
		// Judge without taking probe data in: the window is zero.
		before := cl.c.RCVNXT
		ps = append(ps, cl.judge(r)...)
		cl.c.RCVNXT = before
		if t.Flags&probe.RST != 0 {
			if cause, why := cl.appReset(true, r); cause != "" {
				cl.observe("window probes, backing off, no RST, no data beyond probes", cl.c.FormatReply(r), ps)
				return cl.skipRST(cause, why)
			}
			rst = true
			break
		}
		sent += len(t.Payload)
		// A window probe carries data, or repeats an old sequence number
		// (Linux: SND.UNA-1 without data) to draw an ACK. A plain ACK at
		// RCV.NXT, such as the one of the request, probes nothing.
		if len(t.Payload) > 0 || t.Seq.LessThan(before) {
			times = append(times, r.Time)
		}
		f := probe.Frame{IP: cl.c.IPv4(), TCP: cl.segment(probe.ACK, nil, 0)}
		cl.c.Send(&f)
	}
	var gaps []string
	backoff := true
	for i := 1; i < len(times); i++ {
		gaps = append(gaps, times[i].Sub(times[i-1]).Round(time.Millisecond).String())
		if i >= 2 && times[i].Sub(times[i-1]) < times[i-1].Sub(times[i-2])*9/10 {
			backoff = false
		}
	}
	// Data sent into the window comes first: the reason names the worst.
	if sent > len(times) {
		ps = append(ps, problem("zero-window", conformance.Must, "the target sent %d bytes into a zero window", sent)...)
	}
	switch {
	case rst:
		ps = append(ps, problem("zero-window", conformance.Must, "the target aborted the connection (RST) while the window was zero (RFC 9293 3.8.6.1: the window may stay closed indefinitely)")...)
	case len(times) > 0 && !backoff:
		ps = append(ps, problem("zero-window-backoff", conformance.Should, "probe intervals %s do not back off (RFC 1122 4.2.2.17)", strings.Join(gaps, ", "))...)
	}
	actual := plural.N(len(times), "probe", "probes")
	if len(gaps) > 0 {
		actual += ", intervals " + strings.Join(gaps, ", ")
	}
	if rst {
		cl.observe("window probes, backing off, no RST, no data beyond probes", actual, ps)
		return cl.result()
	}
	// Open the window: data must follow. Whether data waited while the
	// window was closed is known only now: an application that had
	// nothing to send owes no probe.
	if _, err := cl.send(cl.segment(probe.ACK, nil, 65535)); err != nil {
		return errResult(err)
	}
	tr := cl.receiveData(env.Timeout, 1, 65535)
	if tr.bytes == 0 && (len(times) == 0 || tr.fin) {
		// Nothing, or only the application's FIN, was waiting.
		cl.observe("window probes, backing off, no RST, no data beyond probes", actual, ps)
		return cl.tooLittle(0, 1, "a zero window with data waiting")
	}
	if len(times) == 0 {
		ps = append(ps, problem("zero-window", conformance.Must, "no window probe within %v, though data was waiting (it came once the window opened)", zeroWindowLongWatch)...)
	}
	cl.observe("window probes, backing off, no RST, no data beyond probes", actual, ps)
	ps2 := tr.ps
	switch {
	case tr.rst && tr.bytes == 0:
		ps2 = append(ps2, problem("zero-window", conformance.Must, "the target reset the connection when the window opened: it had given up on it while the window was zero, though synprobe acknowledged its probes (RFC 1122 4.2.2.17; an application's TCP_USER_TIMEOUT does the same)")...)
	case tr.bytes == 0:
		ps2 = append(ps2, problem("zero-window", conformance.Must, "no data within %v after the window opened, though the target probed the window", env.Timeout)...)
	}
	cl.observe("data once the window opens", fmt.Sprintf("%d bytes", tr.bytes), ps2)
	return cl.result()
}

// synackWatch is how long the SYN-ACK retransmission check watches: a
// retransmission after 1 s and another 2 s later, with some slack.
const synackWatch = 3500 * time.Millisecond

// ratio is the second interval over the first (0 when there is no second).
func ratio(gaps []time.Duration) float64 {
	if len(gaps) < 2 {
		return 0
	}
	return float64(gaps[1]) / float64(gaps[0])
}

func synackRetransmission(ctx context.Context, env *Env) report.Result {
	cl, err := env.dial(ctx, 0)
	if err != nil {
		return errResult(err)
	}
	r, err := cl.open(probe.TCP{Seq: 1, Window: 1000, Options: linuxSYN})
	if err != nil {
		return errResult(err)
	}
	if !cl.expectSYNACK(r) {
		return cl.result()
	}
	first, isn := r.Time, r.Frame.TCP.Seq
	var times []time.Time
	var ps conformance.Problems
	for deadline := first.Add(synackWatch); ; {
		r, err := cl.c.Recv(ctx, deadline)
		if err != nil {
			break
		}
		if !r.Frame.Has(probe.LayerTCP) {
			continue
		}
		ps = append(ps, cl.judge(r)...)
		if t := &r.Frame.TCP; t.Flags.Has(probe.SYN|probe.ACK) && t.Seq == isn {
			times = append(times, r.Time)
		} else {
			cl.c.Notes = append(cl.c.Notes, "while waiting for retransmissions: "+cl.c.FormatReply(r))
		}
	}
	var at []string
	prev := first
	var gaps []time.Duration
	for _, t := range times {
		at = append(at, t.Sub(first).Round(10*time.Millisecond).String())
		gaps = append(gaps, t.Sub(prev))
		prev = t
	}
	actual := "no retransmission"
	if len(at) > 0 {
		actual = "retransmitted at " + strings.Join(at, ", ") + " after the first"
	}
	if len(times) == 0 {
		ps = append(ps, problem("synack-rtx", conformance.Should, "no SYN-ACK retransmission within %v (RFC 6298 5: the retransmission timer runs for unacknowledged SYN-ACKs)", synackWatch)...)
	}
	cl.observe("the SYN-ACK again after about 1 s, then 2 s later", actual, ps)
	res := cl.result()
	if ps.Verdict() != report.Pass {
		return res
	}
	// Retransmission is what the RFCs ask; when, and how often, is the
	// implementation's and the administrator's choice: reported as seen.
	var odd []string
	if g := gaps[0]; g < 800*time.Millisecond || g > 1500*time.Millisecond {
		odd = append(odd, fmt.Sprintf("the first came after %v, where RFC 6298 2.1 suggests an initial RTO of 1 s", g.Round(10*time.Millisecond)))
	}
	// A second retransmission is due after three times the first interval
	// (the timer doubles); one the watch was too short for is not missing.
	if len(gaps) == 1 && synackWatch > gaps[0]*3*11/10 {
		odd = append(odd, fmt.Sprintf("only one retransmission within %v: the retry count is the administrator's choice (net.ipv4.tcp_synack_retries on Linux)", synackWatch))
	} else if r := ratio(gaps); r != 0 && (r < 1.6 || r > 2.6) {
		odd = append(odd, fmt.Sprintf("the second interval is %.1f times the first, where RFC 6298 5.5 doubles the timer", r))
	}
	if len(odd) > 0 {
		res.Verdict, res.Cause, res.Reason = report.Info, report.CauseStack, actual+": "+strings.Join(odd, "; ")
	}
	return res
}

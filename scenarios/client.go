package scenarios

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"synprobe/conformance"
	"synprobe/conformance/report"
	"synprobe/probe"
)

// client drives one probe connection from Go: the small vocabulary the Go
// checks share, over the same Conn, rules and step records as scripts.
type client struct {
	env  *Env
	ctx  context.Context
	c    *conformance.Conn
	ts0  uint32
	port uint16
	// asked is the request the check sent, for what it says of the answer.
	asked []byte
}

// dial opens a session to port (0: the open port) without sending.
func (env *Env) dial(ctx context.Context, port uint16) (*client, error) {
	if port == 0 {
		port = env.Target.Port()
	}
	s, err := env.Prober.Open(probe.SessionConfig{Remote: netip.AddrPortFrom(env.Target.Addr(), port)})
	if err != nil {
		return nil, err
	}
	cl := &client{env: env, ctx: ctx, c: conformance.NewConn(s), ts0: 1000, port: port}
	env.conns = append(env.conns, cl.c)
	return cl, nil
}

// open sends a SYN (paced) and waits for the answer, sending the SYN again
// while none comes, as a TCP does (Conn.AwaitSYNACK). It returns the reply
// (nil on silence). An answer that may come from a connection an earlier
// run left on the 4-tuple (Conn.Stale) makes the SYN go again from another
// port, once.
func (cl *client) open(syn probe.TCP) (*probe.Reply, error) { return cl.openSYN(syn, true) }

// openOnce is open without sending the SYN again: for a SYN that may go
// unanswered by design (a damaged one).
func (cl *client) openOnce(syn probe.TCP) (*probe.Reply, error) { return cl.openSYN(syn, false) }

func (cl *client) openSYN(syn probe.TCP, retransmit bool) (*probe.Reply, error) {
	syn.Flags |= probe.SYN
	staleSeen := false
	for {
		if err := cl.env.Pace(cl.ctx); err != nil {
			return nil, err
		}
		f := probe.Frame{IP: cl.c.IPv4(), TCP: syn}
		sent, err := cl.sendFrame(&f)
		if err != nil {
			return nil, err
		}
		var r *probe.Reply
		if retransmit {
			var again int
			r, again, err = cl.c.AwaitSYNACK(cl.ctx, &f, nil, sent.Time, time.Now().Add(cl.env.Timeout))
			if again > 0 {
				cl.c.Notes = append(cl.c.Notes, fmt.Sprintf("no answer to the SYN at first: synprobe sent it %d more time(s), as a TCP does", again))
			}
			if errors.Is(err, conformance.ErrSilence) {
				r, err = nil, nil
			}
		} else {
			r, err = cl.recv(cl.env.Timeout)
		}
		if err != nil || r == nil || !r.Frame.Has(probe.LayerTCP) {
			return r, err
		}
		t := &r.Frame.TCP
		if staleSeen || !cl.c.Stale(t, cl.port == cl.env.Target.Port()) {
			return r, nil
		}
		staleSeen = true
		cl.c.ResetStale(t)
		cl.c.Notes = append(cl.c.Notes, fmt.Sprintf("%s answered the SYN: a connection an earlier run left on the 4-tuple? The SYN went again from another port", cl.c.Format(t, true)))
		if err := cl.renew(); err != nil {
			return nil, err
		}
	}
}

// renew moves the client to a fresh session on another source port.
func (cl *client) renew() error {
	notes := cl.c.Notes
	cl.c.S.Close()
	s, err := cl.env.Prober.Open(probe.SessionConfig{Remote: cl.c.S.Remote()})
	if err != nil {
		return err
	}
	cl.c = conformance.NewConn(s)
	cl.c.Notes = notes
	cl.env.conns = append(cl.env.conns, cl.c)
	return nil
}

// send sends t as is (sequence numbers absolute) and records the step.
func (cl *client) send(t probe.TCP) (*probe.Sent, error) {
	f := probe.Frame{IP: cl.c.IPv4(), TCP: t}
	return cl.sendFrame(&f)
}

// sendFrame sends f and records the step.
func (cl *client) sendFrame(f *probe.Frame) (*probe.Sent, error) {
	t := f.TCP
	sent, err := cl.c.Send(f)
	if err != nil {
		cl.c.AddStep(report.Step{Direction: report.Send, Verdict: report.Error, Expected: conformance.FormatAbs(&t), Problems: []string{err.Error()}}, time.Now())
		return nil, err
	}
	text := cl.c.Format(&sent.Frame.TCP, false)
	cl.c.AddStep(report.Step{Direction: report.Send, Verdict: report.Pass, Expected: text, Actual: text, ActualAbs: conformance.FormatAbs(&sent.Frame.TCP)}, sent.Time)
	return sent, nil
}

// segment makes the next in-sequence segment: seq SND.NXT, ack RCV.NXT,
// timestamps when negotiated.
func (cl *client) segment(flags probe.Flags, payload []byte, win uint16) probe.TCP {
	t := probe.TCP{Seq: cl.c.SNDNXT, Ack: cl.c.RCVNXT, Flags: flags, Window: win, Payload: payload}
	if cl.c.TS.Enabled {
		t.Options = []probe.Option{probe.NOPOption(), probe.NOPOption(), probe.TimestampsOption(cl.tsNow(), cl.c.TS.LastReceived)}
	}
	return t
}

func (cl *client) tsNow() uint32 { return cl.ts0 + uint32(time.Since(cl.c.Start).Milliseconds()) }

// recv waits up to d for the next frame; nil without error means silence.
// TCP segments are taken into the connection state and checked against the
// rules every segment must meet; the problems are kept for the caller.
func (cl *client) recv(d time.Duration) (*probe.Reply, error) {
	r, err := cl.c.Recv(cl.ctx, time.Now().Add(d))
	if errors.Is(err, conformance.ErrSilence) {
		return nil, nil
	}
	return r, err
}

// judge takes in a TCP reply and checks it with the rules every reply
// meets, a SYN-ACK with its own too.
func (cl *client) judge(r *probe.Reply) conformance.Problems {
	return cl.c.Judge(r, r.Frame.TCP.Flags.Has(probe.SYN|probe.ACK))
}

// expectStep records an expectation and what came.
func (cl *client) expectStep(expected string, r *probe.Reply, ps conformance.Problems) *report.Step {
	st := report.Step{Direction: report.Expect, Expected: expected, Verdict: ps.Verdict(), Problems: ps.Texts(), Fields: ps.Rules()}
	at := time.Now()
	if r != nil {
		st.Actual, st.RTTMicros, at = cl.c.FormatReply(r), cl.c.RTT(r), r.Time
		if r.Frame.Has(probe.LayerTCP) {
			st.ActualAbs = conformance.FormatAbs(&r.Frame.TCP)
		}
	} else {
		st.Actual, st.Fields = "nothing", []string{"reply"}
	}
	return cl.c.AddStep(st, at)
}

// observe records a step that judges what was seen over a while.
func (cl *client) observe(expected, actual string, ps conformance.Problems) {
	cl.c.AddStep(report.Step{Direction: report.Observe, Expected: expected, Actual: actual, Verdict: ps.Verdict(), Problems: ps.Texts(), Fields: ps.Rules()}, time.Now())
}

// expectSYNACK waits for the answer to the SYN open sent.
func (cl *client) expectSYNACK(r *probe.Reply) bool {
	if r == nil {
		if cl.port == cl.env.Target.Port() && cl.env.ListenerDown != nil {
			if why := cl.env.ListenerDown(cl.ctx); why != "" {
				st := cl.expectStep("S. 0:0(0) ack 1", nil, nil)
				st.Verdict, st.Cause, st.Problems = report.Skip, report.CauseAppNotAccepting, []string{"no SYN-ACK: " + why}
				return false
			}
		}
		cl.expectStep("S. 0:0(0) ack 1", nil, problem("synack", conformance.Must, "no SYN-ACK within %v", cl.env.Timeout))
		return false
	}
	if r.Frame.Has(probe.LayerICMP) {
		// A router's or a firewall's answer (on the target host too: a
		// TCP stack answers TCP with TCP), not the stack's.
		st := cl.expectStep("S. 0:0(0) ack 1", r, nil)
		st.Verdict, st.Cause = report.Skip, report.CausePathICMP
		st.Problems = []string{fmt.Sprintf("ICMP type %d code %d from %v answered the SYN instead of the target's TCP stack: a router, or a firewall on the path or on the target host", r.Frame.ICMP.Type, r.Frame.ICMP.Code, r.Frame.IP.Src)}
		return false
	}
	if !r.Frame.Has(probe.LayerTCP) || r.Frame.TCP.Flags&(probe.SYN|probe.ACK) != probe.SYN|probe.ACK {
		ps := problem("synack", conformance.Must, "expected a SYN-ACK, got %s", cl.c.FormatReply(r))
		if r.Frame.Has(probe.LayerTCP) {
			ps = append(ps, cl.judge(r)...)
		}
		cl.expectStep("S. 0:0(0) ack 1", r, ps)
		return false
	}
	cl.expectStep("S. 0:0(0) ack 1", r, cl.judge(r))
	return true
}

// handshake completes the connection after the SYN-ACK synack, at once:
// an ACK that leaves late (this host busy) is noted, for the target may
// have sent the SYN-ACK again meanwhile.
func (cl *client) handshake(synack *probe.Reply, win uint16) error {
	sent, err := cl.send(cl.segment(probe.ACK, nil, win))
	if err == nil {
		cl.c.NoteLate("the handshake's ACK", sent.Time.Sub(synack.Time))
	}
	return err
}

// transfer reads the target's data for up to d, acknowledging each segment
// with window win, until want bytes came, a FIN or a RST. It returns the
// data segments' payload sizes.
type transfer struct {
	sizes []int
	bytes int
	fin   bool
	rst   bool
	ps    conformance.Problems
}

func (cl *client) receiveData(d time.Duration, want int, win uint16) transfer {
	var tr transfer
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && tr.bytes < want && !tr.fin && !tr.rst {
		r, err := cl.c.Recv(cl.ctx, deadline)
		if err != nil {
			break
		}
		if !r.Frame.Has(probe.LayerTCP) {
			continue
		}
		t := &r.Frame.TCP
		tr.ps = append(tr.ps, cl.judge(r)...)
		if t.Flags&probe.RST != 0 {
			tr.rst = true
			break
		}
		if n := len(t.Payload); n > 0 {
			tr.sizes = append(tr.sizes, n)
			tr.bytes += n
		}
		if t.Flags&probe.FIN != 0 {
			tr.fin = true
		}
		if len(t.Payload) > 0 || t.Flags&probe.FIN != 0 {
			ack := cl.segment(probe.ACK, nil, win)
			f := probe.Frame{IP: cl.c.IPv4(), TCP: ack}
			cl.c.Send(&f) // not a step: routine acknowledgments
		}
	}
	return tr
}

// appReset says whether a RST from the target is the application's doing,
// and why: it had closed (its FIN came first), or it resets connections on
// what the check sent (the profile saw it do so to the same kind of data:
// request says whether that was the request), or it came long after
// anything synprobe sent (Conn.Unprovoked).
func (cl *client) appReset(request bool, rst *probe.Reply) (report.Cause, string) {
	f := cl.env.Facts
	switch {
	case cl.c.App.FIN || cl.c.HavePeerFIN:
		return report.CauseAppClosed, "the target's application had closed the connection (its FIN came first): the RST that answers later data is not judged"
	case f.ClosesAfterGreeting():
		return report.CauseAppClosed, "the target's application closes every connection right after its greeting (the profile saw it): the RST that answers data is not judged"
	case rst != nil && cl.c.AbortAfterFIN(&rst.Frame.TCP):
		return report.CauseAppReset, "the target reset the connection after it took synprobe's FIN (the RST acknowledges it): its application aborted the connection on end of stream (SO_LINGER 0)"
	case rst != nil && unprovoked(cl.c, rst):
		after, _ := cl.c.Unprovoked(rst)
		return report.CauseAppReset, fmt.Sprintf("the target reset the connection %v after synprobe's last segment, answering nothing: its application aborted it (an idle timeout, SO_LINGER 0)", after.Round(time.Millisecond))
	case request && f != nil && f.App != nil && f.App.Answer.Then == conformance.ThenReset:
		return report.CauseAppReset, "the target's application resets the connection on the request (it did so when synprobe asked it alone): the RST is not judged"
	case !request && f.DropsConnectionOnData():
		return report.CauseAppReset, "the target's application drops connections on the checks' data (it did so when synprobe asked it alone): the RST is not judged"
	}
	return "", ""
}

// skipRST ends a check that met a RST the application caused: skip, with
// the cause, unless a step already failed.
func (cl *client) skipRST(cause report.Cause, why string) report.Result {
	res := cl.result()
	res.Judge()
	res.Decide(report.Skip, cause, why)
	return res
}

// tooLittle ends a check that needed more data from the application than
// it sent to the request.
func (cl *client) tooLittle(got, need int, what string) report.Result {
	res := cl.result()
	res.Judge()
	res.Decide(report.Skip, report.CauseAppNoData, fmt.Sprintf("the target's application sent %d bytes to the request %s, %s needs %d or more: --request chooses what is asked", got, clipQuote(cl.asked), what, need))
	return res
}

func clipQuote(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%q...", b[:40])
	}
	return fmt.Sprintf("%q", b)
}

// result wraps the steps.
func (cl *client) result() report.Result {
	return report.Result{Steps: cl.c.Steps, Notes: cl.c.Notes, DurationMS: report.Millis(time.Since(cl.c.Start))}
}

func problem(rule string, l conformance.Level, format string, args ...any) conformance.Problems {
	return conformance.Problems{{Rule: rule, Level: l, Text: fmt.Sprintf(format, args...)}}
}

// errResult is a check that could not run because synprobe failed.
func errResult(err error) report.Result {
	return report.Result{Verdict: report.Error, Reason: err.Error()}
}

// request is what Go checks send to make the target's application send
// data: --request, or an HTTP/1.0 request for n bytes, which the lab's
// application and web servers answer.
func (cl *client) request(n int) []byte {
	cl.asked = cl.env.Facts.RequestBytes(n)
	return cl.asked
}

// filler is the data a check sends where only the stack matters: bytes
// the application ignores (from its profile), at offset off of the stream.
func (cl *client) filler(off, n int) []byte { return cl.env.Facts.FillerBytes(off, n) }

func unprovoked(c *conformance.Conn, r *probe.Reply) bool {
	_, ok := c.Unprovoked(r)
	return ok
}

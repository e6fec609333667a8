package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"synprobe/probe"
)

// AppState is what the target's application did on a connection that no
// script line or check described: bytes it sent (a banner, an answer) and
// its close.
type AppState struct {
	// Bytes is how many bytes the application sent unannounced.
	Bytes int
	// FIN is set once the application closed (a FIN no line expected).
	FIN bool
	// Segments counts the segments that carried only the application's
	// part (see Share.Only).
	Segments int
}

// Shift is how far the target's sequence space runs ahead of the one a
// script describes: all the target sent (up to RCV.NXT, the highest seen,
// gaps included) that no line described. A banner of 41 bytes makes the
// stack's next ACK carry seq 42 where the script says 1.
func (c *Conn) Shift() uint32 {
	if !c.HavePeerISN {
		return 0
	}
	sent := uint32(c.RCVNXT-c.PeerISN) - 1 // the SYN
	if sent < c.Scripted {
		return 0
	}
	return sent - c.Scripted
}

// Share is the application's part of one segment from the target.
type Share struct {
	// Data is how many new payload bytes are the application's.
	Data int
	// FIN is set when the segment's FIN is the application's close.
	FIN bool
	// Only is set when nothing in the segment is the stack's own answer:
	// the payload and the FIN are the application's, it acknowledges
	// nothing new and carries no flag but ACK, PSH and FIN. Such a
	// segment is the application speaking; whatever the check waits for
	// from the stack is still to come.
	Only bool
}

// Any reports whether the segment carried anything of the application's.
func (s Share) Any() bool { return s.Data > 0 || s.FIN }

// Attribute tells the application's part of a segment from the target from
// the stack's, before the segment is taken in. wantData and wantFIN say
// whether the expectation waiting for a segment describes a payload, a
// FIN: what it describes is not the application's to explain. Only a
// synchronized connection's segments with ACK (no SYN, no RST) carry an
// application's part; a retransmission of the application's bytes counts
// once.
func (c *Conn) Attribute(t *probe.TCP, wantData, wantFIN bool) Share {
	var sh Share
	if !c.HavePeerISN || t.Flags&(probe.SYN|probe.RST) != 0 || t.Flags&probe.ACK == 0 {
		return sh
	}
	data := len(t.Payload) > 0
	fin := t.Flags&probe.FIN != 0
	appData := data && !wantData
	appFIN := fin && !wantFIN
	if appData {
		end := t.Seq.Add(uint32(len(t.Payload)))
		from := t.Seq
		if from.LessThan(c.RCVNXT) {
			from = c.RCVNXT
		}
		if from.LessThan(end) {
			sh.Data = int(end.Sub(from))
		}
	}
	if appFIN && !c.HavePeerFIN {
		sh.FIN = true
	}
	newAck := !c.HavePeerAck || c.PeerAcked.LessThan(t.Ack)
	sh.Only = (data || fin) && (!data || appData) && (!fin || appFIN) && !newAck &&
		t.Flags&^(probe.ACK|probe.PSH|probe.FIN) == 0
	return sh
}

// Absorb adds a segment's application part to the connection's AppState.
// Take the segment in (Receive or Judge) first.
func (c *Conn) Absorb(sh Share) {
	c.App.Bytes += sh.Data
	if sh.FIN {
		c.App.FIN = true
	}
	if sh.Only {
		c.App.Segments++
	}
}

// appACKLimit bounds the application data synprobe acknowledges on its own
// on one connection: a service that streams without end (chargen) stalls
// after it instead of flooding the run.
const appACKLimit = 64 << 10

// ACKApplication acknowledges what the target sent, as the peer's stack
// would, so that the application's bytes are not retransmitted into the
// checks: seq at the end of what synprobe sent in order, the window
// synprobe last advertised, timestamps with the highest TSval sent.
func (c *Conn) ACKApplication() error {
	// Nothing is acknowledged past the limit, nor on a connection synprobe
	// reset: the application's bytes crossed the RST.
	if c.App.Bytes > appACKLimit || !c.HavePeerISN || c.ResetSent {
		return nil
	}
	// At the end of what synprobe sent in order: the target's RCV.NXT once
	// it took it. Its last acknowledgment may lag data still in flight,
	// and an ACK below RCV.NXT draws a duplicate ACK (RFC 9293 3.10.7.4).
	seq := c.InOrderNXT
	if c.HavePeerAck && c.InOrderNXT.LessThan(c.PeerAcked) {
		seq = c.PeerAcked
	}
	t := probe.TCP{Seq: seq, Ack: c.RCVNXT, Flags: probe.ACK, Window: c.Window}
	if c.TS.Enabled {
		t.Options = []probe.Option{probe.NOPOption(), probe.NOPOption(), probe.TimestampsOption(c.TS.MaxSent, c.TS.LastReceived)}
	}
	f := probe.Frame{IP: c.IPv4(), TCP: t}
	_, err := c.Send(&f)
	return err
}

// Closed reports whether both sides closed and acknowledged each other's
// FIN: nothing of the connection is left to release at the target (but
// TIME-WAIT, which is correct). A RST from the target does not close it
// for sure: one that answers an unacceptable segment (RFC 9293 3.10.7.4,
// SYN-RECEIVED: <SEQ=SEG.ACK><CTL=RST>) leaves the connection as it was.
func (c *Conn) Closed() bool {
	return c.HavePeerFIN && c.HaveAckSent && !c.AckSent.LessThan(c.PeerFIN) &&
		c.HaveFINSent && c.HavePeerAck && !c.PeerAcked.LessThan(c.FINSent)
}

// Release resets the target's side of the connection unless nothing of it
// is left, so that no state of synprobe's lingers at the target (RFC 5961
// 3.2: only a RST at exactly RCV.NXT resets; one elsewhere in the window
// draws a challenge ACK and leaves the connection as it was). The RST goes
// at the target's RCV.NXT as it last acknowledged it, and again at
// synprobe's SND.NXT when data may still be in flight. It returns a note
// for the report ("" when nothing was sent).
//
// When synprobe acknowledged the FIN of a target that closed first, the
// RSTs go twice, releaseAgainAfter apart. Linux turns such a socket into
// a FIN-WAIT-2 timewait socket as it takes that ACK; a RST taken at the
// same moment on another CPU (frames a process sends from two CPUs may be
// taken in parallel) meets the socket being replaced and is dropped, and
// FIN-WAIT-2 stays for tcp_fin_timeout (60 s). Seen on veth, the ACK and
// the RST 17 µs apart, about once in a hundred such connections under
// load. The second RST meets the timewait socket, or nothing.
func (c *Conn) Release() string {
	// A RST to a connection that is gone is never answered: sending one
	// when in doubt costs nothing.
	if !c.HavePeerISN || c.Closed() {
		return ""
	}
	var seqs []probe.Seq
	if c.HavePeerAck {
		seqs = append(seqs, c.PeerAcked)
	}
	if !c.HavePeerAck || c.PeerAcked != c.SNDNXT {
		seqs = append(seqs, c.SNDNXT)
	}
	var sent []string
	reset := func() {
		for _, seq := range seqs {
			rst := probe.Frame{IP: c.IPv4(), TCP: probe.TCP{Seq: seq, Ack: c.RCVNXT, Flags: probe.RST | probe.ACK}}
			if _, err := c.S.Send(&rst); err == nil && !slices.Contains(sent, fmt.Sprint(uint32(seq-c.ISN))) {
				sent = append(sent, fmt.Sprint(uint32(seq-c.ISN)))
			}
		}
	}
	reset()
	again := ""
	if c.HavePeerFIN && c.HaveAckSent && !c.AckSent.LessThan(c.PeerFIN) {
		time.Sleep(releaseAgainAfter)
		reset()
		again = fmt.Sprintf(", and again %v later (the target closed first)", releaseAgainAfter)
	}
	if len(sent) == 0 {
		return ""
	}
	return fmt.Sprintf("cleanup: sent R. at seq %s to release the target's connection%s", strings.Join(sent, " and "), again)
}

// releaseAgainAfter is how long after its first RSTs Release sends them
// again: far above the microseconds a host takes to process the ACK
// before them, short beside a check.
const releaseAgainAfter = 5 * time.Millisecond

// Stale reports whether t, the answer to the SYN that opened this
// connection, may come from a connection an earlier run left on the same
// 4-tuple rather than from a listener that meets the SYN afresh: an ACK
// without SYN (RFC 5961 4.2: an established connection's challenge ACK, or
// TIME-WAIT's ACK; scripts open with the same ISN, so its ack may even be
// ISN+1), or, at a listening port (listening), a RST acknowledging the SYN
// (Linux answers a SYN that meets a half-open connection with a reset).
// The check starts again from another port (ResetStale resets what can be
// reset); a second such answer there is believed, and judged.
func (c *Conn) Stale(t *probe.TCP, listening bool) bool {
	if c.SYN == nil || c.HavePeerISN || t.Flags&probe.SYN != 0 || t.Flags&probe.ACK == 0 {
		return false
	}
	if t.Flags&probe.RST != 0 {
		return listening && t.Ack == c.SYN.Seq.Add(1)
	}
	return true
}

// Unprovoked reports whether a RST came long after synprobe's last segment,
// so that it answers nothing synprobe sent: the target aborted the
// connection on its own. A stack answers what it gets within a round trip;
// a connection aborted later is the application's doing (an idle timeout,
// SO_LINGER 0, a user timeout it set).
func (c *Conn) Unprovoked(r *probe.Reply) (time.Duration, bool) {
	if !r.Frame.Has(probe.LayerTCP) || r.Frame.TCP.Flags&probe.RST == 0 {
		return 0, false
	}
	// From synprobe's last segment before the RST came: one sent after it
	// (while the RST waited to be read) cannot have provoked it.
	before := c.sentBefore(r.Time)
	if before.IsZero() {
		return 0, false
	}
	after := r.Time.Sub(before)
	return after, after > max(unprovokedAfter, 4*c.HandshakeRTT)
}

// AbortAfterFIN reports whether t is a RST that acknowledges the FIN
// synprobe sent: the stack took the FIN (the application read its end of
// stream) and then the connection was aborted, as an application's close
// does with SO_LINGER 0 or with data it did not read (RFC 1122 4.2.2.13).
// A stack answers a FIN with an ACK, never with a RST.
func (c *Conn) AbortAfterFIN(t *probe.TCP) bool {
	return c.HavePeerISN && t.Flags&probe.RST != 0 && t.Flags&probe.ACK != 0 && c.HaveFINSent && !t.Ack.LessThan(c.FINSent)
}

// unprovokedAfter is the least time after synprobe's last segment that a
// RST answers nothing: far above a round trip on a short path, and above
// a busy host's delays.
const unprovokedAfter = 200 * time.Millisecond

// synRetransmits are when synprobe sends an unanswered SYN again, after it
// first went, as a TCP does (RFC 6298: 1 s, then doubling); synGiveUp is
// when it stops waiting. A listener whose accept queue is full (its
// application accepts slowly, one connection at a time) drops SYNs until
// the application takes a connection.
var synRetransmits = []time.Duration{time.Second, 3 * time.Second}

var synGiveUp = 5 * time.Second

// AwaitSYNACK waits for the answer to syn, which synprobe sent at sent with
// ov: the first frame that comes, or ErrSilence at deadline, which moves to
// synGiveUp after sent when sooner. While nothing comes it sends syn again
// at synRetransmits. It returns how many times it did.
func (c *Conn) AwaitSYNACK(ctx context.Context, syn *probe.Frame, ov []probe.Override, sent, deadline time.Time) (*probe.Reply, int, error) {
	if end := sent.Add(synGiveUp); deadline.Before(end) {
		deadline = end
	}
	again := 0
	for {
		until := deadline
		if again < len(synRetransmits) {
			if t := sent.Add(synRetransmits[again]); t.Before(until) {
				until = t
			}
		}
		r, err := c.Recv(ctx, until)
		if err == nil || !errors.Is(err, ErrSilence) || !until.Before(deadline) {
			c.SYNUnanswered = c.SYNUnanswered || errors.Is(err, ErrSilence)
			return r, again, err
		}
		s, err := c.S.Send(syn, ov...)
		if err != nil {
			return nil, again, err
		}
		c.Sent(&syn.TCP, s)
		again++
	}
}

// ResetStale resets the stale connection whose answer was t (Stale): at
// the ack of its challenge ACK (RFC 5961 3.2). A RST answer left nothing to
// reset.
func (c *Conn) ResetStale(t *probe.TCP) {
	if t.Flags&probe.RST != 0 {
		return
	}
	rst := probe.Frame{IP: c.IPv4(), TCP: probe.TCP{Seq: t.Ack, Flags: probe.RST}}
	c.S.Send(&rst)
}

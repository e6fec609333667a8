package conformance

import (
	"fmt"
	"strings"

	"synprobe/probe"
)

// AppState is what the target's application did on a connection that no
// script line or check described: bytes it sent (a banner, an answer) and
// its close. They take sequence space the script does not count (Shift):
// a banner of 41 bytes makes the stack's next ACK carry seq 42 where the
// script says 1.
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
// script describes.
func (a AppState) Shift() uint32 {
	n := uint32(a.Bytes)
	if a.FIN {
		n++
	}
	return n
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
// checks: seq at the target's RCV.NXT as last acknowledged, the window
// synprobe last advertised, timestamps with the highest TSval sent.
func (c *Conn) ACKApplication() error {
	if c.App.Bytes > appACKLimit || !c.HavePeerISN {
		return nil
	}
	seq := c.SNDNXT
	if c.HavePeerAck {
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
// FIN, or the target reset the connection: nothing of it is left to
// release at the target (but TIME-WAIT, which is correct).
func (c *Conn) Closed() bool {
	if c.PeerReset {
		return true
	}
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
func (c *Conn) Release() string {
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
	for _, seq := range seqs {
		rst := probe.Frame{IP: c.IPv4(), TCP: probe.TCP{Seq: seq, Ack: c.RCVNXT, Flags: probe.RST | probe.ACK}}
		if _, err := c.S.Send(&rst); err == nil {
			sent = append(sent, fmt.Sprint(uint32(seq-c.ISN)))
		}
	}
	if len(sent) == 0 {
		return ""
	}
	return fmt.Sprintf("cleanup: sent R. at seq %s to release the target's connection", strings.Join(sent, " and "))
}

// Stale reports whether t, the answer to the SYN that opened this
// connection, is a challenge ACK from a connection an earlier run left on
// the same 4-tuple (RFC 5961 4.2): an ACK without SYN whose ack is not
// ISN+1. Such a connection is reset (RFC 5961 3.2: a RST with the
// challenge ACK's ack as its seq) and the check starts again on another
// port; it is never judged.
func (c *Conn) Stale(t *probe.TCP) bool {
	return c.SYN != nil && t.Flags&(probe.SYN|probe.RST) == 0 && t.Flags&probe.ACK != 0 &&
		t.Ack != c.SYN.Seq.Add(1) && !c.HavePeerISN
}

// ResetStale resets the stale connection whose challenge ACK is t.
func (c *Conn) ResetStale(t *probe.TCP) {
	rst := probe.Frame{IP: c.IPv4(), TCP: probe.TCP{Seq: t.Ack, Flags: probe.RST}}
	c.S.Send(&rst)
}

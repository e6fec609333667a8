package trace

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"

	"synprobe/probe"
)

// The conn family's walks (TRACE.md P6).
const (
	connData       = "conn/data"         // (a) in-window data, TS, ECT(0)
	connOutOfWin   = "conn/out-of-window" // (b) the same data 2^20 beyond
	connAckAbove   = "conn/ack-above"    // (c) an ACK above SND.NXT
	connNoConn     = "conn/no-connection" // (d) a bare ACK on a fresh 4-tuple
	connDataLen    = 8
	connFar        = 1 << 20
	connDataWindow = synWindow >> synWScale
)

// connWalks is the conn family: one handshake, then four walks.
type connWalks struct {
	err error
	// synack is the target's answer to the handshake's SYN.
	synack *probe.Reply
	// tsOK: the handshake negotiated timestamps.
	tsOK bool
	isn  probe.Seq
	// data, outOfWin, ackAbove and noConn are the walks (a) to (d).
	data, outOfWin, ackAbove, noConn *walk
	// leak is the RST the host sent for (c) with seq = its ack: the ACK
	// reached it untranslated (NAT leak).
	leak *probe.Reply
}

// walkConn completes a handshake with the target (TTL 64), then walks (a)
// to (d) over the TTLs at once (each walk's quotes are told apart by their
// seq), and resets the connection.
func (t *tracer) walkConn(ctx context.Context, reach int) (*connWalks, error) {
	s, err := t.p.Open(probe.SessionConfig{Remote: t.cfg.Target})
	if err != nil {
		return nil, fmt.Errorf("trace: open conn probe: %w", err)
	}
	cw := &connWalks{isn: probe.Seq(rand.Uint32())}
	hs := newWalk(FamilyConn, "conn", s, t.v6)
	hs.frame = synFrame(FamilySYN, t.v6)
	hs.frame.TCP.Seq = cw.isn
	hs.tsBase, hs.hasTS, hs.expectTCP = tsBase(), true, true
	hs.frame.TCP.Options[2] = probe.TimestampsOption(hs.tsBase, 0)
	t.mu.Lock()
	t.walks = append(t.walks, hs)
	t.active[s] = hs
	t.mu.Unlock()
	go t.read(ctx, s)

	var synack *probe.Reply
	for try := 0; try < t.cfg.Tries && synack == nil; try++ {
		if err := t.send(ctx, hs, controlTTL, true); err != nil {
			return cw, err
		}
		t.waitFor(ctx, t.cfg.Wait, func() bool { return len(hs.tcp) > 0 })
		t.mu.Lock()
		if len(hs.tcp) > 0 {
			synack = hs.tcp[0]
		}
		t.mu.Unlock()
	}
	switch {
	case synack == nil:
		return cw, errors.New("conn: no answer to the handshake's SYN")
	case synack.Frame.TCP.Flags&(probe.SYN|probe.ACK) != probe.SYN|probe.ACK:
		return cw, fmt.Errorf("conn: the handshake's SYN was answered by %v, not a SYN-ACK", &synack.Frame.TCP)
	}
	cw.synack = synack
	sa := &synack.Frame.TCP
	peerTS, _, tsOK := sa.Timestamps()
	cw.tsOK = tsOK
	if reach == 0 {
		reach = distance(synack.Frame.IP.TTL)
	}

	var opts []probe.Option
	if tsOK {
		opts = []probe.Option{probe.NOPOption(), probe.NOPOption(), probe.TimestampsOption(hs.tsBase, peerTS)}
	}
	mk := func(seq, ack probe.Seq, flags probe.Flags, payload []byte, tos uint8) probe.Frame {
		f := probe.Frame{IP: probe.IP{TOS: tos, Flags: hs.frame.IP.Flags, FlowLabel: hs.frame.IP.FlowLabel},
			TCP: probe.TCP{Seq: seq, Ack: ack, Flags: flags, Window: connDataWindow, Options: opts, Payload: payload}}
		return f
	}
	ack := mk(cw.isn.Add(1), sa.Seq.Add(1), probe.ACK, nil, 0)
	ack.IP.TTL = controlTTL
	if _, err := s.Send(&ack); err != nil {
		return cw, fmt.Errorf("conn: send the handshake's ACK: %w", err)
	}
	data := []byte("synprobe")
	sub := func(name string, f probe.Frame, sess *probe.Session, expectTCP bool, match func(q *probe.QuotedPacket) bool) *walk {
		w := newWalk(FamilyConn, name, sess, t.v6)
		w.frame, w.tsBase, w.hasTS, w.expectTCP, w.matchQuote = f, hs.tsBase, tsOK, expectTCP, match
		w.sumValid, w.reach = true, reach
		return w
	}
	seqIs := func(seq probe.Seq) func(q *probe.QuotedPacket) bool {
		return func(q *probe.QuotedPacket) bool { return q.Covers(probe.QuotedTCPSeq) && q.TCP.Seq == seq }
	}
	cw.data = sub(connData, mk(cw.isn.Add(1), sa.Seq.Add(1), probe.ACK|probe.PSH, data, probe.ECNECT0), s, true, seqIs(cw.isn.Add(1)))
	cw.outOfWin = sub(connOutOfWin, mk(cw.isn.Add(1+connFar), sa.Seq.Add(1), probe.ACK|probe.PSH, data, probe.ECNECT0), s, false, seqIs(cw.isn.Add(1+connFar)))
	cw.ackAbove = sub(connAckAbove, mk(cw.isn.Add(1+connDataLen), sa.Seq.Add(1+connFar), probe.ACK, nil, 0), s, false, seqIs(cw.isn.Add(1+connDataLen)))
	fresh, err := t.p.Open(probe.SessionConfig{Remote: t.cfg.Target})
	if err != nil {
		return cw, fmt.Errorf("trace: open conn no-connection probe: %w", err)
	}
	bare := mk(probe.Seq(rand.Uint32()), probe.Seq(rand.Uint32()), probe.ACK, nil, 0)
	bare.TCP.Options = nil
	cw.noConn = sub(connNoConn, bare, fresh, true, nil)
	cw.noConn.hasTS = false
	t.mu.Lock()
	hs.matchQuote = func(q *probe.QuotedPacket) bool { return q.Covers(probe.QuotedTCPSeq) && q.TCP.Seq == cw.isn }
	t.walks = append(t.walks, cw.data, cw.outOfWin, cw.ackAbove, cw.noConn)
	t.active[s] = cw.data
	t.mu.Unlock()
	go t.read(ctx, fresh)

	err = t.rounds(ctx, []*walk{cw.data, cw.outOfWin, cw.ackAbove, cw.noConn}, min(t.cfg.MaxHops, reach+1))

	// The connection ends with a RST at what the target acknowledged.
	t.mu.Lock()
	rstSeq := cw.isn.Add(1)
	for _, r := range cw.data.tcp {
		ft := &r.Frame.TCP
		if ft.Flags&probe.RST != 0 && ft.Seq == sa.Seq.Add(1+connFar) && cw.leak == nil {
			cw.leak = r
		}
		if ft.Flags&probe.ACK != 0 && ft.Ack.Sub(rstSeq) > 0 && ft.Ack.Sub(rstSeq) <= connDataLen {
			rstSeq = ft.Ack
		}
	}
	t.mu.Unlock()
	rst := mk(rstSeq, 0, probe.RST, nil, 0)
	rst.TCP.Options, rst.IP.TTL = nil, controlTTL
	if ctx.Err() == nil {
		s.Send(&rst)
	}
	return cw, err
}


package trace

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"

	"synprobe/probe"
)

// The conn family's walks (TRACE.md P6).
const (
	connData     = "conn/data"          // (a) in-window data, TS, ECT(0)
	connOutOfWin = "conn/out-of-window" // (b) the same data 2^20 beyond
	connAckAbove = "conn/ack-above"     // (c) an ACK above SND.NXT
	connNoConn   = "conn/no-connection" // (d) a bare ACK on a fresh 4-tuple
	// A FIN, a segment without flags and a SYN-ACK of no connection, each
	// on a fresh 4-tuple to the alt port (closed: the host answers each
	// with a RST), which stateful boxes drop as invalid.
	connFIN        = "conn/fin"
	connNull       = "conn/null"
	connSYNACK     = "conn/syn-ack"
	connDataLen    = 8
	connFar        = 1 << 20
	connDataWindow = synWindow >> synWScale
)

// connWalks is the conn family: one handshake, then four walks.
type connWalks struct {
	err error
	// synack is the target's answer to the handshake's SYN.
	synack *probe.Reply
	// tsOK: the handshake negotiated timestamps; ackTSval is the TSval
	// of the handshake's ACK (the data carry others: a target that
	// echoes this one for data got the data without TS).
	tsOK     bool
	ackTSval uint32
	isn      probe.Seq
	// data, outOfWin, ackAbove and noConn are the walks (a) to (d);
	// stray are connFIN, connNull and connSYNACK.
	data, outOfWin, ackAbove, noConn *walk
	stray                            []*walk
	// leak is the RST the host sent for (c) with seq = its ack: the ACK
	// reached it untranslated (NAT leak).
	leak *probe.Reply
}

// connection is one handshake of the conn family.
type connection struct {
	s      *probe.Session
	hs     *walk // the handshake's SYN (a control, not a walk)
	isn    probe.Seq
	synack *probe.Reply
	tsOK   bool
	peerTS uint32
}

// connect completes a handshake with the target at TTL 64.
func (t *tracer) connect(ctx context.Context) (*connection, error) {
	s, err := t.p.Open(probe.SessionConfig{Remote: t.cfg.Target})
	if err != nil {
		return nil, fmt.Errorf("trace: open conn probe: %w", err)
	}
	c := &connection{s: s, isn: probe.Seq(rand.Uint32())}
	hs := newWalk(FamilyConn, "conn", s, t.v6)
	hs.frame = synFrame(FamilySYN, t.v6)
	hs.frame.TCP.Seq = c.isn
	hs.tsBase, hs.hasTS, hs.expectTCP = tsBase(), true, true
	hs.frame.TCP.Options[2] = probe.TimestampsOption(hs.tsBase, 0)
	hs.matchQuote = func(q *probe.QuotedPacket) bool { return q.Covers(probe.QuotedTCPSeq) && q.TCP.Seq == c.isn }
	c.hs = hs
	t.mu.Lock()
	t.walks = append(t.walks, hs)
	t.active[s] = hs
	t.mu.Unlock()
	go t.read(ctx, s)

	for try := 0; try < t.cfg.Tries && c.synack == nil; try++ {
		if err := t.send(ctx, hs, controlTTL, true); err != nil {
			return c, err
		}
		t.waitFor(ctx, t.cfg.Wait, func() bool { return len(hs.tcp) > 0 })
		t.mu.Lock()
		if len(hs.tcp) > 0 {
			c.synack = hs.tcp[0]
		}
		t.mu.Unlock()
	}
	switch {
	case c.synack == nil:
		return c, errors.New("conn: no answer to the handshake's SYN")
	case c.synack.Frame.TCP.Flags&(probe.SYN|probe.ACK) != probe.SYN|probe.ACK:
		return c, fmt.Errorf("conn: the handshake's SYN was answered by %v, not a SYN-ACK", &c.synack.Frame.TCP)
	}
	c.peerTS, _, c.tsOK = c.synack.Frame.TCP.Timestamps()
	// Its TSval is the SYN's at controlTTL or later (IPv6 SYNs carry the
	// TTL in the TSval): a TSval that went back would fail PAWS and leave
	// the connection half-open.
	ack := t.connFrame(c, c.isn.Add(1), c.synack.Frame.TCP.Seq.Add(1), probe.ACK, nil, 0, c.ackTSval())
	ack.IP.TTL, ack.IP.ID = controlTTL, handshakeACKID
	if _, err := s.Send(&ack); err != nil {
		return c, fmt.Errorf("conn: send the handshake's ACK: %w", err)
	}
	return c, nil
}

// ackTSval is the TSval of the handshake's ACK.
func (c *connection) ackTSval() uint32 { return c.hs.tsBase + controlTTL }

// handshakeACKID is the IPv4 ID of the conn family's handshake ACKs: not
// a walk's (ipIDTag|ttl), so that a reflector tells them apart.
const handshakeACKID = 0x5200

// connFrame is a segment of connection c (TS with tsval when negotiated).
func (t *tracer) connFrame(c *connection, seq, ack probe.Seq, flags probe.Flags, payload []byte, tos uint8, tsval uint32) probe.Frame {
	f := probe.Frame{IP: probe.IP{TOS: tos, Flags: c.hs.frame.IP.Flags, FlowLabel: c.hs.frame.IP.FlowLabel},
		TCP: probe.TCP{Seq: seq, Ack: ack, Flags: flags, Window: connDataWindow, Payload: payload}}
	if c.tsOK {
		f.TCP.Options = []probe.Option{probe.NOPOption(), probe.NOPOption(), probe.TimestampsOption(tsval, c.peerTS)}
	}
	return f
}

// walkConn completes three handshakes with the target (TTL 64), then walks
// (a) to (d) and the stray segments over the TTLs at once, and resets the
// connections. The in-window data, the out-of-window data and the ACK above
// SND.NXT each have a connection of their own: a stack answers the latter
// two with an ACK (RFC 9293 3.10.7.4) but rate-limits such ACKs per
// connection (Linux: one per 500 ms), so on one connection one would
// silence the other.
func (t *tracer) walkConn(ctx context.Context, reach int) (*connWalks, error) {
	conns := make([]*connection, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns[i], errs[i] = t.connect(ctx)
		}()
	}
	wg.Wait()
	main, oow, above := conns[0], conns[1], conns[2]
	cw := &connWalks{}
	if main != nil {
		cw.isn = main.isn
	}
	if err := errors.Join(errs...); err != nil {
		t.resetConns(ctx, conns, cw)
		return cw, err
	}
	cw.synack, cw.tsOK = main.synack, main.tsOK
	cw.ackTSval = main.ackTSval()
	sa := &main.synack.Frame.TCP
	if reach == 0 {
		reach = distance(main.synack.Frame.IP.TTL)
	}
	walkTS := main.hs.tsBase + 0x100
	data := []byte("synprobe")
	sub := func(name string, f probe.Frame, sess *probe.Session, tsOK, expectTCP bool, match func(q *probe.QuotedPacket) bool) *walk {
		w := newWalk(FamilyConn, name, sess, t.v6)
		w.frame, w.tsBase, w.hasTS, w.expectTCP, w.matchQuote = f, walkTS, tsOK, expectTCP, match
		w.sumValid, w.reach = true, reach
		for _, c := range conns {
			if c.s == sess && c.tsOK {
				w.handshakeTSval = c.ackTSval()
			}
		}
		return w
	}
	seqIs := func(seq probe.Seq) func(q *probe.QuotedPacket) bool {
		return func(q *probe.QuotedPacket) bool { return q.Covers(probe.QuotedTCPSeq) && q.TCP.Seq == seq }
	}
	cw.data = sub(connData, t.connFrame(main, main.isn.Add(1), sa.Seq.Add(1), probe.ACK|probe.PSH, data, probe.ECNECT0, walkTS), main.s, main.tsOK, true, seqIs(main.isn.Add(1)))
	osa := &oow.synack.Frame.TCP
	cw.outOfWin = sub(connOutOfWin, t.connFrame(oow, oow.isn.Add(1+connFar), osa.Seq.Add(1), probe.ACK|probe.PSH, data, probe.ECNECT0, walkTS), oow.s, oow.tsOK, true, seqIs(oow.isn.Add(1+connFar)))
	asa := &above.synack.Frame.TCP
	cw.ackAbove = sub(connAckAbove, t.connFrame(above, above.isn.Add(1), asa.Seq.Add(1+connFar), probe.ACK, nil, 0, walkTS), above.s, above.tsOK, true, seqIs(above.isn.Add(1)))
	fresh, err := t.p.Open(probe.SessionConfig{Remote: t.cfg.Target})
	if err != nil {
		t.resetConns(ctx, conns, cw)
		return cw, fmt.Errorf("trace: open conn no-connection probe: %w", err)
	}
	bare := probe.Frame{IP: probe.IP{Flags: main.hs.frame.IP.Flags, FlowLabel: main.hs.frame.IP.FlowLabel},
		TCP: probe.TCP{Seq: probe.Seq(rand.Uint32()), Ack: probe.Seq(rand.Uint32()), Flags: probe.ACK, Window: connDataWindow}}
	cw.noConn = sub(connNoConn, bare, fresh, false, true, nil)
	sessions := []*probe.Session{fresh}
	for _, st := range []struct {
		name  string
		flags probe.Flags
	}{{connFIN, probe.FIN}, {connNull, 0}, {connSYNACK, probe.SYN | probe.ACK}} {
		sess, err := t.p.Open(probe.SessionConfig{Remote: netip.AddrPortFrom(t.cfg.Target.Addr(), t.cfg.AltPort)})
		if err != nil {
			t.resetConns(ctx, conns, cw)
			return cw, fmt.Errorf("trace: open conn %s probe: %w", st.name, err)
		}
		f := bare
		f.TCP.Seq, f.TCP.Ack, f.TCP.Flags = probe.Seq(rand.Uint32()), 0, st.flags
		if st.flags&probe.ACK != 0 {
			f.TCP.Ack = probe.Seq(rand.Uint32())
		}
		cw.stray = append(cw.stray, sub(st.name, f, sess, false, true, nil))
		sessions = append(sessions, sess)
	}
	walks := append([]*walk{cw.data, cw.outOfWin, cw.ackAbove, cw.noConn}, cw.stray...)
	t.mu.Lock()
	t.walks = append(t.walks, walks...)
	t.active[main.s], t.active[oow.s], t.active[above.s] = cw.data, cw.outOfWin, cw.ackAbove
	t.mu.Unlock()
	for _, sess := range sessions {
		go t.read(ctx, sess)
	}

	err = t.rounds(ctx, walks, min(t.cfg.MaxHops, reach+1))

	// An RST with seq = the ACK's ack answers the ACK above SND.NXT: it
	// reached the host, which knows no such connection (a NAT leak).
	t.mu.Lock()
	for _, r := range cw.ackAbove.tcp {
		ft := &r.Frame.TCP
		if ft.Flags&probe.RST != 0 && ft.Seq == asa.Seq.Add(1+connFar) && cw.leak == nil {
			cw.leak = r
		}
	}
	t.mu.Unlock()
	t.resetConns(ctx, conns, cw)
	return cw, err
}

// resetConns ends the conn family's connections with a RST at what the
// target acknowledged.
func (t *tracer) resetConns(ctx context.Context, conns []*connection, cw *connWalks) {
	if ctx.Err() != nil {
		return
	}
	for i, c := range conns {
		if c == nil || c.synack == nil {
			continue
		}
		rstSeq := c.isn.Add(1)
		if i == 0 && cw.data != nil {
			t.mu.Lock()
			for _, r := range cw.data.tcp {
				ft := &r.Frame.TCP
				if ft.Flags&probe.ACK != 0 && ft.Ack.Sub(rstSeq) > 0 && ft.Ack.Sub(rstSeq) <= connDataLen {
					rstSeq = ft.Ack
				}
			}
			t.mu.Unlock()
		}
		rst := probe.Frame{IP: probe.IP{TTL: controlTTL, Flags: c.hs.frame.IP.Flags, FlowLabel: c.hs.frame.IP.FlowLabel},
			TCP: probe.TCP{Seq: rstSeq, Flags: probe.RST, Window: 0}}
		c.s.Send(&rst)
	}
}

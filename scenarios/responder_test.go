package scenarios

import (
	"bytes"
	"sync"
	"time"

	"synprobe/internal/lab"
	"synprobe/probe"
)

// responder is a deliberately faulty TCP responder: the gVisor lab's real
// stack, with its frames rewritten, dropped or answered on the way by a
// fault. It keeps what a fault needs to know of each connection.
type responder struct {
	mu    sync.Mutex
	conns map[connKey]*connState
	// drop holds frames from synprobe that Answer decided the stack must
	// not see (Answer runs before ToTarget, on a copy of the same frame).
	drop map[string]bool
	// link is the lab's link, for frames a fault hands synprobe late.
	link *probe.MemoryLink
	// answering is the frame Answer is answering.
	answering []byte
	// flagged is free state for faults that change their behaviour after
	// an event (a malformed SYN, a RST).
	flagged bool
}

// connKey names a connection by synprobe's port and the target's.
type connKey struct{ probe, target uint16 }

// connState is what the responder saw of one connection.
type connState struct {
	// synprobe's side.
	syns      int       // SYNs synprobe sent
	offeredTS bool      // synprobe's last SYN carried timestamps
	probeNxt  probe.Seq // synprobe's SND.NXT, as the stack received it
	haveProbe bool
	probeTS   uint32 // the last TSval the stack received
	haveTS    bool
	finEnd    probe.Seq // synprobe's FIN seq + 1
	sentFIN   bool
	aborted   bool // a fault made the target forget the connection
	// the target's side.
	synacks    []probe.Seq // seq of every SYN-ACK passed to synprobe
	targetNxt  probe.Seq   // the stack's SND.NXT
	targetAck  probe.Seq   // the stack's last ack (its RCV.NXT)
	targetWin  uint16
	targetTS   uint32 // the stack's last TSval
	haveTarget bool
	dropACK    bool // the next pure ACK from the stack is dropped
}

// seg is one decoded frame a fault may change: drop it, or add overrides
// that lie about a header field after encoding.
type seg struct {
	probe.Frame
	drop bool
	ov   []probe.Override
}

// fault is a faulty behaviour, in three optional parts.
type fault struct {
	// toProbe changes a frame the stack sends to synprobe.
	toProbe func(r *responder, c *connState, s *seg)
	// toTarget changes a frame synprobe sends to the stack.
	toTarget func(r *responder, c *connState, s *seg)
	// answer returns segments to hand synprobe as if the stack had sent
	// them, in answer to a frame synprobe sent (TCP or ICMP); c is nil for
	// an ICMP error that quotes no connection.
	answer func(r *responder, c *connState, in *probe.Frame) []probe.TCP
	// raw, if set, replaces toProbe: it may turn a frame into anything
	// (an ICMP error in the stack's place).
	raw func(b []byte) [][]byte
}

// tamper makes the lab.Tamper of f for a lab of its own.
func (f fault) tamper(r *responder) lab.Tamper {
	toProbe := r.toProbe(f.toProbe)
	if f.raw != nil {
		toProbe = f.raw
	}
	return lab.Tamper{
		ToProbe:  toProbe,
		ToTarget: r.toTarget(f.toTarget),
		Answer:   r.answer(f.answer),
	}
}

func newResponder() *responder {
	return &responder{conns: map[connKey]*connState{}, drop: map[string]bool{}}
}

func (r *responder) conn(k connKey) *connState {
	c := r.conns[k]
	if c == nil {
		c = &connState{}
		r.conns[k] = c
	}
	return c
}

// toProbe sees every frame of the stack (recording it as sent) and lets fn
// change it.
func (r *responder) toProbe(fn func(*responder, *connState, *seg)) func([]byte) [][]byte {
	return func(b []byte) [][]byte {
		r.mu.Lock()
		defer r.mu.Unlock()
		return edit(b, func(s *seg) {
			if !s.Has(probe.LayerTCP) {
				return
			}
			c := r.conn(connKey{s.TCP.DstPort, s.TCP.SrcPort})
			c.targetSent(&s.TCP)
			if fn != nil {
				fn(r, c, s)
			}
			if s.TCP.Flags.Has(probe.SYN|probe.ACK) && !s.drop {
				c.synacks = append(c.synacks, s.TCP.Seq)
			}
		})
	}
}

// toTarget lets fn change each frame of synprobe's, drops those Answer
// kept from the stack, and records what the stack receives.
func (r *responder) toTarget(fn func(*responder, *connState, *seg)) func([]byte) [][]byte {
	return func(b []byte) [][]byte {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.drop[string(b)] {
			delete(r.drop, string(b))
			return nil
		}
		return edit(b, func(s *seg) {
			if !s.Has(probe.LayerTCP) {
				return
			}
			c := r.conn(connKey{s.TCP.SrcPort, s.TCP.DstPort})
			if fn != nil {
				fn(r, c, s)
			}
			if !s.drop {
				c.probeSent(&s.TCP)
			}
		})
	}
}

// answer hands synprobe the segments fn makes in answer to a frame of
// synprobe's, addressed as the stack would address them.
func (r *responder) answer(fn func(*responder, *connState, *probe.Frame) []probe.TCP) func([]byte) [][]byte {
	return func(b []byte) [][]byte {
		var in probe.Frame
		if err := in.Decode(b); err != nil && !in.Has(probe.LayerTCP) {
			return nil
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if in.Has(probe.LayerTCP) && in.TCP.Flags&probe.FIN != 0 {
			c := r.conn(connKey{in.TCP.SrcPort, in.TCP.DstPort})
			c.finEnd, c.sentFIN = in.TCP.End(), true
		}
		if fn == nil {
			return nil
		}
		var c *connState
		switch {
		case in.Has(probe.LayerTCP):
			c = r.conn(connKey{in.TCP.SrcPort, in.TCP.DstPort})
		case in.Has(probe.LayerICMP):
			if q, err := in.ICMP.Quote(); err == nil {
				c = r.conns[connKey{q.Dst.Port(), q.Src.Port()}]
			}
		}
		r.answering = b
		var out [][]byte
		for _, t := range fn(r, c, &in) {
			out = append(out, replyTo(&in, t))
		}
		return out
	}
}

// swallow keeps the frame Answer is answering from the stack: the fault
// answers it instead of the stack.
func (r *responder) swallow() { r.drop[string(r.answering)] = true }

// later hands synprobe frame b after d, as a stack that is late would.
func (r *responder) later(d time.Duration, b []byte) {
	link := r.link
	time.AfterFunc(d, func() {
		if link != nil {
			link.Inject(b) // a closed link drops it
		}
	})
}

func (c *connState) probeSent(t *probe.TCP) {
	if t.Flags&probe.SYN != 0 {
		c.syns++
		_, _, c.offeredTS = t.Timestamps()
		c.probeNxt, c.haveProbe = t.Seq, true
	}
	if end := t.End(); !c.haveProbe || c.probeNxt.LessThan(end) {
		c.probeNxt, c.haveProbe = end, true
	}
	if val, _, ok := t.Timestamps(); ok && t.Flags&probe.SYN == 0 {
		c.probeTS, c.haveTS = val, true
	}
}

func (c *connState) targetSent(t *probe.TCP) {
	if t.Flags&probe.RST != 0 {
		return
	}
	if t.Flags&probe.SYN != 0 || !c.haveTarget || c.targetNxt.LessThan(t.End()) {
		c.targetNxt = t.End()
	}
	c.haveTarget = true
	if t.Flags&probe.ACK != 0 {
		c.targetAck = t.Ack
	}
	c.targetWin = t.Window
	if val, _, ok := t.Timestamps(); ok {
		c.targetTS = val
	}
}

// edit decodes a TCP or ICMP frame, lets fn change it and encodes it
// again, so that checksums stay right: the fault is only what fn did. A
// checksum that was wrong stays wrong unless fn marks it valid. Frames fn
// leaves alone pass byte for byte (damaged option areas included), and so
// do frames that do not decode.
func edit(b []byte, fn func(*seg)) [][]byte {
	var s seg
	if err := s.Decode(b); err != nil && !s.Has(probe.LayerTCP) {
		return [][]byte{b}
	}
	before, err := s.Encode(s.keepWrong()...)
	if err != nil {
		return [][]byte{b}
	}
	optLen := len(s.TCP.OptionBytes)
	fn(&s)
	if s.drop {
		return nil
	}
	// A data offset that only covered the old options is computed anew.
	if int(s.TCP.DataOffset)*4 == probe.TCPHeaderLen+optLen {
		s.TCP.DataOffset = 0
	}
	after, err := s.Encode(append(s.keepWrong(), s.ov...)...)
	if err != nil {
		panic("faulty responder: " + err.Error()) // a fault built a frame that cannot be encoded
	}
	if bytes.Equal(after, before) {
		return [][]byte{b}
	}
	return [][]byte{after}
}

// keepWrong are the overrides that keep a checksum that arrived wrong
// wrong after encoding.
func (s *seg) keepWrong() []probe.Override {
	var ov []probe.Override
	if s.Checksum == probe.ChecksumInvalid {
		ov = append(ov, probe.Override{Field: probe.FieldTCPChecksumAdd, Value: 1})
	}
	if s.IP.Version == 4 && s.IPChecksum == probe.ChecksumInvalid {
		ov = append(ov, probe.Override{Field: probe.FieldIPChecksumAdd, Value: 1})
	}
	return ov
}

// replyTo makes a frame from the target to synprobe that answers in.
func replyTo(in *probe.Frame, t probe.TCP) []byte {
	out := probe.Frame{
		Ethernet: probe.Ethernet{Src: in.Ethernet.Dst, Dst: in.Ethernet.Src},
		IP:       probe.IP{Src: in.IP.Dst, Dst: in.IP.Src, TTL: 64, Flags: probe.IPFlagDF},
		TCP:      t,
	}
	if in.Has(probe.LayerTCP) {
		out.TCP.SrcPort, out.TCP.DstPort = in.TCP.DstPort, in.TCP.SrcPort
	} else if q, err := in.ICMP.Quote(); err == nil {
		out.IP.Src, out.IP.Dst = q.Src.Addr(), q.Dst.Addr()
		out.TCP.SrcPort, out.TCP.DstPort = q.Src.Port(), q.Dst.Port()
	}
	b, err := out.Encode()
	if err != nil {
		panic("faulty responder: " + err.Error())
	}
	return b
}

// Small edits faults are made of.

// pureACK reports whether t is an ACK with nothing else: no data, no SYN,
// FIN or RST.
func pureACK(t *probe.TCP) bool {
	return t.Flags&^probe.PSH == probe.ACK && len(t.Payload) == 0
}

// withOption returns t's options with o added before any end-of-list
// padding.
func withOption(opts []probe.Option, add ...probe.Option) []probe.Option {
	var out []probe.Option
	for _, o := range opts {
		if o.Kind == probe.OptionEOL {
			break
		}
		out = append(out, o)
	}
	return append(out, add...)
}

// withoutOption returns opts without the options of kind k.
func withoutOption(opts []probe.Option, k probe.OptionKind) []probe.Option {
	var out []probe.Option
	for _, o := range opts {
		if o.Kind != k {
			out = append(out, o)
		}
	}
	return out
}

// setOption replaces the first option of o's kind with o.
func setOption(opts []probe.Option, o probe.Option) []probe.Option {
	out := append([]probe.Option(nil), opts...)
	for i := range out {
		if out[i].Kind == o.Kind {
			out[i] = o
			break
		}
	}
	return out
}

// malformedOptions reports whether t's option area is damaged.
func malformedOptions(t *probe.TCP) bool {
	if t.OptionsErr != nil {
		return true
	}
	for _, o := range t.Options {
		if o.Validate() != nil {
			return true
		}
	}
	return false
}

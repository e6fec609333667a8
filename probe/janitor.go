package probe

import "time"

// answerClosed answers a segment the target sent on the 4-tuple of a
// session that has ended as a closed port answers (RFC 9293 3.10.7.1):
// a SYN-ACK that came too late, a FIN or data retransmitted after the
// check let go of the connection. The RST guard keeps the local kernel
// from doing it; without an answer the target would hold the connection
// (SYN-RECEIVED, FIN-WAIT, retransmitting) long after synprobe is done. A
// RST is never answered.
func (p *Prober) answerClosed(in *Frame) {
	t := &in.TCP
	if t.Flags&RST != 0 {
		return
	}
	out := Frame{
		Ethernet: Ethernet{Src: p.path.LocalMAC, Dst: p.path.NextHopMAC},
		IP:       IP{Src: in.IP.Dst, Dst: in.IP.Src, Protocol: ProtocolTCP, TTL: 64},
		TCP:      TCP{SrcPort: t.DstPort, DstPort: t.SrcPort},
	}
	if in.IP.Version == 4 {
		out.IP.Flags = IPFlagDF
	}
	if t.Flags&ACK != 0 {
		out.TCP.Seq, out.TCP.Flags = t.Ack, RST
	} else {
		out.TCP.Ack, out.TCP.Flags = t.End(), RST|ACK
	}
	data, err := out.Encode()
	if err != nil {
		return
	}
	// Not p.send: the reader calls this and must not wait for the echo,
	// which it reads itself; the frame is remembered so that its echo is
	// still known as synprobe's.
	ps := &pendingSend{data: data, hash: p.hash(data), written: time.Now(), gaveUp: true}
	p.mu.Lock()
	p.addPendingLocked(ps)
	p.mu.Unlock()
	if err := p.link.WriteFrame(data); err != nil {
		p.mu.Lock()
		p.removePendingLocked(ps)
		p.mu.Unlock()
		return
	}
	p.closedAnswers.Add(1)
}

package conformance

import (
	"fmt"
	"strings"

	"synprobe/conformance/script"
	"synprobe/probe"
)

// This file holds what the script runner does with ICMP errors that come
// to synprobe: "> icmp" lines, and router ICMPs during "> none".

// fromTarget reports whether an ICMP error came from the target itself
// (its host answered), not from a router on the path.
func (e *execution) fromTarget(f *probe.Frame) bool {
	return f.IP.Src.Unmap() == e.conn.S.Remote().Addr().Unmap()
}

// icmpSender names where an ICMP error came from, for problems and notes.
func (e *execution) icmpSender(f *probe.Frame) string {
	if e.fromTarget(f) {
		return fmt.Sprintf("the target (%v)", f.IP.Src)
	}
	return fmt.Sprintf("router %v", f.IP.Src)
}

// expectsICMP reports whether the script expects an ICMP error next: the
// packet line after the current one is "> icmp ...". Router ICMPs then
// count in a "> none" before it, as they are what the script watches for.
func (e *execution) expectsICMP() bool {
	for j := e.idx + 1; j < len(e.s.Events); j++ {
		if p := e.s.Events[j].Packet; p != nil {
			return p.Dir == script.Outbound && p.ICMP != nil
		}
	}
	return false
}

// matchICMP compares an ICMP error with a "> icmp" line: type and code,
// source, MTU, the ICMP's own IP header, and the segment it quotes. A
// field the line asks of the quote that the quote is too short to hold is
// not checked: it is returned in unquoted, for a note (the router chose
// how much to quote; that says nothing of the target). Problems about a
// router's ICMP name the router: the script asked about the path.
func (e *execution) matchICMP(p *script.Packet, r *probe.Reply) (ps Problems, unquoted []string) {
	lvl := e.level()
	f := &r.Frame
	ic := p.ICMP
	if !f.Has(probe.LayerICMP) {
		ps.add("icmp", lvl, "expected an ICMP %s message, got %s", ic.Type, e.conn.FormatReply(r))
		return ps, nil
	}
	v6 := f.IP.Version == 6
	typ, code, err := script.ICMPTypeCode(v6, ic.Type, ic.Code)
	if err == nil && (typ != f.ICMP.Type || code != f.ICMP.Code) {
		ps.add("icmp", lvl, "icmp: expected type %d code %d, got type %d code %d from %s", typ, code, f.ICMP.Type, f.ICMP.Code, e.icmpSender(f))
	}
	if ic.From.IsValid() && f.IP.Src.Unmap() != ic.From {
		ps.add("icmp", lvl, "icmp from: expected %v got %s", ic.From, e.icmpSender(f))
	}
	if ic.MTU.Set && !ic.MTU.Any {
		got := f.ICMP.Rest // ICMPv6 packet too big: all 32 bits
		if !v6 {
			got &= 0xffff // ICMPv4 fragmentation needed: the low 16
		}
		if got != ic.MTU.Value {
			ps.add("icmp", lvl, "icmp mtu: expected %d got %d from %s", ic.MTU.Value, got, e.icmpSender(f))
		}
	}
	for _, pr := range matchIP(p.IP, &f.IP, lvl) {
		pr.Text = "icmp ip " + pr.Text
		ps = append(ps, pr)
	}
	if ic.Echoed == nil && ic.Quote == nil {
		return ps, nil
	}
	q, err := f.ICMP.QuotedPacket()
	if err != nil {
		ps.add("icmp-quote", lvl, "quote from %s: cannot be read: %v", e.icmpSender(f), err)
		return ps, nil
	}
	var qs Problems
	if ic.Echoed != nil {
		qs, unquoted = e.matchEchoed(ic.Echoed, &q)
	} else {
		qs, unquoted = e.matchQuote(ic.Quote, &q)
	}
	for _, pr := range qs {
		pr.Text = "quote from " + e.icmpSender(f) + ": " + pr.Text
		ps = append(ps, pr)
	}
	return ps, unquoted
}

// quotedPayloadLen is the payload length of the quoted segment, from the
// length its IP header claims: known when the quote holds the data offset.
func quotedPayloadLen(q *probe.QuotedPacket) (int, bool) {
	if !q.Covers(probe.QuotedTCPFlags) || q.TCP.DataOffset < 5 {
		return 0, false
	}
	n := q.IP.TotalLength - q.IP.HeaderLen - int(q.TCP.DataOffset)*4
	return n, n >= 0
}

// quotedSeq is the quoted sequence number in the script's numbering of
// synprobe's segments: relative to synprobe's ISN, or as on the wire for
// a SYN the script wrote absolute (abs).
func (e *execution) quotedSeq(q *probe.QuotedPacket, abs bool) uint32 {
	if abs || !e.conn.HaveISN {
		return uint32(q.TCP.Seq)
	}
	return uint32(q.TCP.Seq - e.conn.ISN)
}

// matchEchoed checks "[seq:end(len)]": seq relative to synprobe's ISN, len
// from the quoted IP header.
func (e *execution) matchEchoed(want *script.EchoedSegment, q *probe.QuotedPacket) (ps Problems, unquoted []string) {
	lvl := e.level()
	if !q.Covers(probe.QuotedTCPSeq) {
		unquoted = append(unquoted, "seq")
	} else if got := e.quotedSeq(q, false); got != want.Seq {
		ps.add("icmp-quote", lvl, "seq: expected %d (abs %d) got %d", want.Seq, uint32(e.conn.ISN)+want.Seq, got)
	}
	if n, ok := quotedPayloadLen(q); !ok {
		unquoted = append(unquoted, "len")
	} else if uint32(n) != want.Len {
		ps.add("icmp-quote", lvl, "payload: expected %d bytes got %d", want.Len, n)
	}
	return ps, unquoted
}

// matchQuote checks a quoted segment written like an outbound line, field
// by field where the quote holds the field, in the numbering of the "<"
// line that sent it.
func (e *execution) matchQuote(p *script.Packet, q *probe.QuotedPacket) (ps Problems, unquoted []string) {
	lvl := e.level()
	c := e.conn
	t := &q.TCP
	ps = append(ps, matchIP(p.IP, &q.IP, lvl)...)
	if !q.Covers(probe.QuotedTCPFlags) {
		unquoted = append(unquoted, "flags")
	} else if p.Flags != t.Flags || p.AE != (t.Reserved&1 != 0) {
		ps.add("icmp-quote", lvl, "flags: expected %s got %s", flagText(p.Flags, p.AE), flagText(t.Flags, t.Reserved&1 != 0))
	}
	if !q.Covers(probe.QuotedTCPSeq) {
		unquoted = append(unquoted, "seq")
	} else if got := e.quotedSeq(q, p.Flags&probe.SYN != 0); got != p.Seq {
		if p.Flags&probe.SYN != 0 || !c.HaveISN {
			ps.add("icmp-quote", lvl, "seq: expected %d got %d", p.Seq, got)
		} else {
			ps.add("icmp-quote", lvl, "seq: expected %d (abs %d) got %d", p.Seq, uint32(c.ISN)+p.Seq, got)
		}
	}
	if (p.Ack.Set || p.Flags&probe.ACK != 0) && !p.Ack.Any {
		if !q.Covers(probe.QuotedTCPAck) {
			unquoted = append(unquoted, "ack")
		} else {
			// As build numbers the ack of a "<" line.
			var base probe.Seq
			switch {
			case p.Flags&probe.ACK == 0:
			case p.Flags&probe.SYN != 0:
				base = c.PeerISN - e.scriptPeerISN
			default:
				base = c.PeerISN + probe.Seq(c.Shift())
			}
			if got := uint32(t.Ack - base); got != p.Ack.Value {
				ps.add("icmp-quote", lvl, "ack: expected %d (abs %d) got %d", p.Ack.Value, uint32(base)+p.Ack.Value, got)
			}
		}
	}
	if p.Win.Set && !p.Win.Any {
		if !q.Covers(probe.QuotedTCPWindow) {
			unquoted = append(unquoted, "win")
		} else if uint32(t.Window) != p.Win.Value {
			ps.add("icmp-quote", lvl, "win: expected %d got %d", p.Win.Value, t.Window)
		}
	}
	if p.Urg.Set && !p.Urg.Any {
		if !q.Covers(probe.QuotedTCPUrgent) {
			unquoted = append(unquoted, "urg")
		} else if uint32(t.Urgent) != p.Urg.Value {
			ps.add("icmp-quote", lvl, "urg: expected %d got %d", p.Urg.Value, t.Urgent)
		}
	}
	if !p.LenAny {
		if n, ok := quotedPayloadLen(q); !ok {
			unquoted = append(unquoted, "len")
		} else if uint32(n) != p.Len {
			ps.add("icmp-quote", lvl, "payload: expected %d bytes got %d", p.Len, n)
		}
	}
	if len(p.Payload) > 0 {
		switch {
		case q.OptionsComplete && hasPrefix(t.Payload, p.Payload):
		case q.OptionsComplete && (len(t.Payload) >= len(p.Payload) || q.Class == probe.QuoteFull):
			ps.add("icmp-quote", lvl, "payload: expected it to start with %q, got %q", clip(p.Payload), clip(t.Payload))
		default:
			unquoted = append(unquoted, "payload")
		}
	}
	if p.Options.Kind != script.AnyOptions {
		if !q.OptionsComplete {
			unquoted = append(unquoted, "options")
		} else if msg := compareOptions(p.Options, t.Options, e.sackSentEqual, e.relSACKSent); msg != "" {
			ps.add("icmp-quote", lvl, "%s", msg)
		}
	}
	return ps, unquoted
}

// sackSentEqual compares SACK blocks synprobe sent (relative to the
// target's ISN, past the application's bytes, as inboundOption numbers
// them) with a line's.
func (e *execution) sackSentEqual(want, got probe.Option) bool {
	if want.NumSACKBlocks() != got.NumSACKBlocks() {
		return false
	}
	base := e.conn.PeerISN.Add(e.conn.Shift())
	for i := 0; i < got.NumSACKBlocks(); i++ {
		w, g := want.SACKBlock(i), got.SACKBlock(i)
		if g.Left-base != w.Left || g.Right-base != w.Right {
			return false
		}
	}
	return true
}

func (e *execution) relSACKSent(o probe.Option) string {
	base := e.conn.PeerISN.Add(e.conn.Shift())
	var parts []string
	for i := 0; i < o.NumSACKBlocks(); i++ {
		b := o.SACKBlock(i)
		parts = append(parts, fmt.Sprintf("%d:%d", uint32(b.Left-base), uint32(b.Right-base)))
	}
	return "sack " + strings.Join(parts, " ")
}

// formatICMP shows an ICMP error and the segment it quotes, as far as the
// quote goes, in the script's numbering of synprobe's segments.
func (e *execution) formatICMP(r *probe.Reply) string {
	f := &r.Frame
	s := e.conn.FormatReply(r)
	q, err := f.ICMP.QuotedPacket()
	if err != nil {
		return s
	}
	t := &q.TCP
	var b strings.Builder
	fmt.Fprintf(&b, "%s quoting [ttl %d", s, q.IP.TTL)
	if q.IP.TOS != 0 {
		fmt.Fprintf(&b, ", tos %#x", q.IP.TOS)
	}
	b.WriteString("]")
	if q.Covers(probe.QuotedTCPFlags) {
		b.WriteString(" " + flagText(t.Flags, t.Reserved&1 != 0))
	}
	if q.Covers(probe.QuotedTCPSeq) {
		seq := e.quotedSeq(&q, q.Covers(probe.QuotedTCPFlags) && t.Flags&probe.SYN != 0)
		if n, ok := quotedPayloadLen(&q); ok {
			fmt.Fprintf(&b, " %d:%d(%d)", seq, seq+uint32(n), n)
		} else {
			fmt.Fprintf(&b, " %d", seq)
		}
	}
	if q.Covers(probe.QuotedTCPWindow) {
		fmt.Fprintf(&b, " win %d", t.Window)
	}
	if q.OptionsComplete && len(t.Options) > 0 {
		b.WriteString(" " + probe.FormatOptions(t.Options))
	}
	fmt.Fprintf(&b, " (%s quote, %d bytes of TCP)", q.Class, q.TCPLen)
	return b.String()
}

// unquotedNote says which fields a line asked of a quote the quote did not
// hold: not checked, and not the target's doing.
func unquotedNote(line int, sender string, fields []string, q string) string {
	return fmt.Sprintf("line %d: the quote from %s is too short to hold %s: not checked (%s)", line, sender, strings.Join(fields, ", "), q)
}

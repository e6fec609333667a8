package capture

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"synprobe/conformance/report"
	"synprobe/probe"
)

// texts collects the texts of one result in one buffer and turns them
// into one string at the end: a result's dozens of texts (names, segments,
// expectations) cost one allocation, not one each.
type texts struct {
	buf  []byte
	opts []byte // scratch for a segment's options
	refs []textRef
}

type textRef struct {
	dst        *string
	start, end int
}

// set makes *dst the text appended to buf since start, once flushed.
func (x *texts) set(dst *string, start int) {
	x.refs = append(x.refs, textRef{dst, start, len(x.buf)})
}

// flush fills in every text and empties x for the next result.
func (x *texts) flush() {
	all := string(x.buf)
	for _, r := range x.refs {
		*r.dst = all[r.start:r.end]
	}
	clear(x.refs)
	x.buf, x.refs = x.buf[:0], x.refs[:0]
}

// result turns a judged connection into its report.Result, writing its
// texts through x.
func (c *conn) result(x *texts) report.Result {
	s0, s1 := &c.s[0], &c.s[1]
	c.tx = x
	var res report.Result
	res.RFC = "9293"
	start := len(x.buf)
	x.buf = s0.addr.AppendTo(x.buf)
	x.buf = append(x.buf, " > "...)
	x.buf = s1.addr.AppendTo(x.buf)
	x.set(&res.Name, start)
	start = len(x.buf)
	b := append(x.buf, "packets "...)
	b = strconv.AppendInt(b, int64(c.firstPkt), 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(c.lastPkt), 10)
	b = append(b, ": "...)
	b = strconv.AppendUint(b, s0.segs+s1.segs, 10)
	b = append(b, " segments; data: "...)
	b = strconv.AppendUint(b, s0.octets, 10)
	b = append(b, " octets from "...)
	b = append(b, c.role(0)...)
	b = append(b, ", "...)
	b = strconv.AppendUint(b, s1.octets, 10)
	b = append(b, " from "...)
	x.buf = append(b, c.role(1)...)
	x.set(&res.Description, start)
	if !c.first.IsZero() && !c.last.IsZero() {
		res.DurationMS = report.Millis(c.last.Sub(c.first))
	}
	n := 0
	for i := range c.events {
		if !c.events[i].removed {
			n++
		}
	}
	// Sized once: x holds pointers into it.
	steps := make([]report.Step, max(n, 1))
	k := 0
	for i := range c.events {
		ev := &c.events[i]
		if ev.removed {
			continue
		}
		st := &steps[k]
		k++
		*st = report.Step{
			Index:     k,
			Line:      ev.pkt,
			Direction: report.Observe,
			Verdict:   ev.problems.Verdict(),
			Problems:  ev.problems.Texts(),
			AtMS:      report.Millis(ev.at),
			From:      c.endpoint(int(ev.side)),
		}
		c.expected(ev, &st.Expected)
		if ev.kind == evChecksum {
			st.Actual = c.checksumText(int(ev.side))
		} else {
			c.formatSeg(ev, &st.Actual, &st.ActualAbs)
		}
	}
	if n == 0 {
		// Nothing notable: say what was judged.
		steps[0] = report.Step{
			Index: 1, Line: c.firstPkt, Direction: report.Observe, Verdict: report.Pass,
			Expected: "segments consistent with the connection",
			Actual:   fmt.Sprintf("%d segments, packets %d-%d, none broke a rule", s0.segs+s1.segs, c.firstPkt, c.lastPkt),
		}
	}
	res.Steps = steps
	res.Notes = c.resultNotes()
	x.flush()
	if c.droppedBad > 0 {
		worst := report.Pass
		for _, st := range steps {
			worst = report.Worst(worst, st.Verdict)
		}
		if report.Worst(worst, c.droppedWorst) != worst {
			res.Verdict = c.droppedWorst
			res.Reason = fmt.Sprintf("%s in segments past the first %d steps (not listed)", c.droppedWorst, c.maxSteps)
		}
	}
	res.Judge()
	return res
}

// role names side i: "client" or "server" when the handshake told which
// is which, else its address.
func (c *conn) role(i int) string {
	if c.rolesKnown {
		if i == 0 {
			return "client"
		}
		return "server"
	}
	return c.endpoint(i)
}

// endpoint is side i's address and port, as text.
func (c *conn) endpoint(i int) string {
	if c.names[i] == "" {
		c.names[i] = c.s[i].addr.String()
	}
	return c.names[i]
}

// rel formats a sequence number relative to side i's ISN when known.
func (c *conn) rel(v probe.Seq, i int) string {
	if c.s[i].haveISN {
		return strconv.FormatUint(uint64(uint32(v-c.s[i].isn)), 10)
	}
	return strconv.FormatUint(uint64(uint32(v)), 10)
}

// expected sets *dst to what the rules wanted of a step's segment.
func (c *conn) expected(ev *event, dst *string) {
	i := int(ev.side)
	who, peer := c.role(i), c.role(1-i)
	x := c.tx
	start := len(x.buf)
	app := func(parts ...string) {
		for _, p := range parts {
			x.buf = append(x.buf, p...)
		}
		x.set(dst, start)
	}
	switch {
	case ev.kind == evHandshakeACK && !c.s[i].synSeen:
		app(". ack ", c.rel(ev.want, 1-i), " (the ACK that completes the handshake)")
		return
	case ev.kind == evSYNACK && !c.s[1-i].synSeen:
		app("S. ack = ", peer, "'s ISN+1 (the SYN is not in the capture)")
		return
	case c.rolesKnown:
		if t := expectedKnown[ev.kind][ev.variant&3][i]; t != "" {
			*dst = t
			return
		}
	}
	switch ev.kind {
	case evFINAck:
		app(". ack ", c.rel(ev.want, 1-i), " (the ACK of ", peer, "'s FIN: its seq+1)")
	case evRST:
		app("R seq ", c.rel(ev.want, i), " from ", who, " in ", ev.state.String(), " (RCV.NXT of ", peer, ": an exact reset)")
	case evRSTClosed:
		app("R. 0:0(0) ack ", c.rel(ev.want, 1-i), " (port closed: the RST for the SYN, RFC 9293 3.10.7.1)")
	case evRSTNoConn:
		app("R seq ", c.rel(ev.want, i), " (", who, " has no such connection: the RST takes the segment's ack, RFC 9293 3.10.7.1)")
	default:
		*dst = expectedText(ev.kind, ev.variant, who, peer)
	}
}

// expectedText is the Expected of the steps whose text holds no number.
func expectedText(kind evKind, variant uint8, who, peer string) string {
	switch kind {
	case evSYN:
		if variant == 1 {
			return "S (" + who + " opens too: simultaneous open)"
		}
		return "S (" + who + " opens: SYN without ACK)"
	case evSYNRetrans:
		return "S again with the same ISN (retransmitted SYN)"
	case evSYNACK:
		return "S. 0:0(0) ack 1 <only options the SYN offered> (ack = " + peer + "'s ISN+1)"
	case evSYNACKRetrans:
		return "S. again with the same ISN (retransmitted SYN-ACK)"
	case evHandshakeACK:
		return ". 1:1(0) ack 1 (the ACK that completes the handshake)"
	case evFIN:
		switch variant {
		case finSimultaneous:
			return "F (" + who + " closes while " + peer + "'s FIN is unacknowledged: simultaneous close)"
		case finPassive:
			return "F (" + who + " closes its side too: passive close)"
		}
		return "F (" + who + " closes first: active close)"
	case evMalformed:
		return "a well-formed segment"
	case evChecksum:
		return "valid checksums on the segments from " + who
	case evProblem:
		return "a segment consistent with the connection"
	}
	return ""
}

// expectedKnown holds expectedText for connections whose roles are known,
// by kind, variant and side, so that a result does not build them again.
var expectedKnown = func() (t [evQuiet + 1][4][2]string) {
	roles := [2]string{"client", "server"}
	for k := range t {
		for v := range t[k] {
			for i := range t[k][v] {
				t[k][v][i] = expectedText(evKind(k), uint8(v), roles[i], roles[1-i])
			}
		}
	}
	return t
}()

// checksumText is the Actual of a checksum step.
func (c *conn) checksumText(i int) string {
	s := &c.s[i]
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d checked segments from %s had bad checksums (packet", s.badSum, s.checked, c.role(i))
	n := min(s.badSum, uint64(len(s.badPkts)))
	if n > 1 {
		b.WriteByte('s')
	}
	for j := range n {
		if j > 0 {
			b.WriteByte(',')
		}
		b.WriteByte(' ')
		b.WriteString(strconv.Itoa(s.badPkts[j]))
	}
	if s.badSum > n {
		b.WriteString(", ...")
	}
	b.WriteByte(')')
	return b.String()
}

// flagLetters are tcpdump's and packetdrill's, in tcpdump's order (as
// probe.Flags.String writes them).
var flagLetters = [8]struct {
	f probe.Flags
	c byte
}{{probe.FIN, 'F'}, {probe.SYN, 'S'}, {probe.RST, 'R'}, {probe.PSH, 'P'}, {probe.ACK, '.'}, {probe.URG, 'U'}, {probe.ECE, 'E'}, {probe.CWR, 'W'}}

// formatSeg writes a step's segment in packetdrill's notation, as the
// live checks do: relative to the two ISNs (when known), and absolute.
func (c *conn) formatSeg(ev *event, rel, abs *string) {
	x := c.tx
	sg := &ev.seg
	i := int(ev.side)
	opts := x.opts[:0]
	switch {
	case sg.optsUnknown:
		opts = append(opts, " <options not captured>"...)
	case sg.optLen > 0:
		opts = append(opts, ' ')
		opts = appendOptions(opts, sg.opts[:sg.optLen])
	}
	x.opts = opts
	seq, ack := uint32(sg.seq), uint32(sg.ack)
	start := len(x.buf)
	x.buf = appendSeg(x.buf, sg, seq, ack, opts)
	x.set(abs, start)
	if c.s[i].haveISN {
		seq = uint32(sg.seq - c.s[i].isn)
	}
	if c.s[1-i].haveISN {
		ack = uint32(sg.ack - c.s[1-i].isn)
	}
	if seq != uint32(sg.seq) || ack != uint32(sg.ack) {
		start = len(x.buf)
		x.buf = appendSeg(x.buf, sg, seq, ack, opts)
	}
	x.set(rel, start)
}

// appendSeg appends a segment's text; opts is its options' text.
func appendSeg(b []byte, sg *segment, seq, ack uint32, opts []byte) []byte {
	if sg.flags == 0 {
		b = append(b, "none"...)
	}
	for _, fl := range flagLetters {
		if sg.flags&fl.f != 0 {
			b = append(b, fl.c)
		}
	}
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(seq), 10)
	b = append(b, ':')
	b = strconv.AppendUint(b, uint64(seq+sg.plen), 10)
	b = append(b, '(')
	b = strconv.AppendUint(b, uint64(sg.plen), 10)
	b = append(b, ')')
	if sg.flags&probe.ACK != 0 || sg.ack != 0 {
		b = append(b, " ack "...)
		b = strconv.AppendUint(b, uint64(ack), 10)
	}
	b = append(b, " win "...)
	b = strconv.AppendUint(b, uint64(sg.win), 10)
	if sg.flags&probe.URG != 0 || sg.urg != 0 {
		b = append(b, " urg "...)
		b = strconv.AppendUint(b, uint64(sg.urg), 10)
	}
	return append(b, opts...)
}

// appendOptions writes an option area as probe.FormatOptions writes the
// options the codec decodes from it ("<mss 1460,sackOK,TS val 1 ecr 0>"),
// without allocating for the usual kinds.
func appendOptions(b, area []byte) []byte {
	b = append(b, '<')
	for i, n := 0, 0; i < len(area); n++ {
		if n > 0 {
			b = append(b, ',')
		}
		k := probe.OptionKind(area[i])
		if k == probe.OptionEOL {
			return append(b, "eol>"...)
		}
		if k == probe.OptionNOP {
			b = append(b, "nop"...)
			i++
			continue
		}
		if i+1 >= len(area) || area[i+1] < 2 || i+int(area[i+1]) > len(area) {
			b = append(b, probe.RawOption(area[i:]).String()...)
			break
		}
		l := int(area[i+1])
		d := area[i+2 : i+l]
		switch {
		case k == probe.OptionMSS && len(d) == 2:
			b = append(b, "mss "...)
			b = strconv.AppendUint(b, uint64(binary.BigEndian.Uint16(d)), 10)
		case k == probe.OptionWScale && len(d) == 1:
			b = append(b, "wscale "...)
			b = strconv.AppendUint(b, uint64(d[0]), 10)
		case k == probe.OptionSACKPermitted && len(d) == 0:
			b = append(b, "sackOK"...)
		case k == probe.OptionTimestamps && len(d) == 8:
			b = append(b, "TS val "...)
			b = strconv.AppendUint(b, uint64(binary.BigEndian.Uint32(d)), 10)
			b = append(b, " ecr "...)
			b = strconv.AppendUint(b, uint64(binary.BigEndian.Uint32(d[4:])), 10)
		default:
			b = append(b, probe.Option{Kind: k, Data: d}.String()...)
		}
		i += l
	}
	return append(b, '>')
}

// resultNotes says what the capture showed of the connection as a whole.
func (c *conn) resultNotes() []string {
	s0, s1 := &c.s[0], &c.s[1]
	notes := make([]string, 0, 4)
	add := func(format string, args ...any) { notes = append(notes, fmt.Sprintf(format, args...)) }

	// The opening.
	switch {
	case !c.hsSeen:
		notes = append(notes, "handshake not in the capture")
	case !s0.synSeen && s1.synackSeen:
		add("handshake partly in the capture: the SYN is not, %s's SYN-ACK is", c.role(1))
	case c.how == closeRefused:
		add("connection refused: %s answered the SYN with RST (port closed)", c.role(int(c.closedBy)))
	case !s1.synackSeen && !s1.synSeen:
		add("no answer to the SYN in the capture")
	}
	if c.simOpen {
		notes = append(notes, "simultaneous open: both sides sent a SYN")
	}
	for i := range c.s {
		s := &c.s[i]
		if s.synRetrans > 0 {
			add("%s sent its SYN %s more (retransmitted)", c.role(i), plural(s.synRetrans, "time"))
		}
		if s.synackRetrans > 0 {
			add("%s sent its SYN-ACK %s more (retransmitted)", c.role(i), plural(s.synackRetrans, "time"))
		}
	}

	// The close.
	if c.firstCloser >= 0 {
		first := int(c.firstCloser)
		f, o := &c.s[first], &c.s[1-first]
		if c.rolesKnown {
			notes = append(notes, closedFirst[first])
		} else {
			notes = append(notes, c.role(first)+" closed first (active close)")
		}
		switch {
		case c.simClose:
			notes = append(notes, "simultaneous close: each side sent its FIN before it had the other's")
		case o.finSeen && f.finAcked && f.finAckPkt == o.finPkt:
			add("three-segment close: %s's FIN carried the ACK of %s's FIN", c.role(1-first), c.role(first))
		case o.finSeen && f.finAcked && o.finAcked:
			notes = append(notes, "four-segment close: FIN, ACK, FIN, ACK")
		}
		if o.afterPeerFIN > 0 {
			add("half close: %s sent %d octets after %s's FIN", c.role(1-first), o.afterPeerFIN, c.role(first))
		}
	}
	for i := range c.s {
		if n := c.s[i].finRetrans; n > 0 {
			add("%s sent its FIN %s more (retransmitted)", c.role(i), plural(n, "time"))
		}
	}
	if c.how == closeRST {
		add("reset by %s", c.role(int(c.closedBy)))
	}
	if c.how == closeNone {
		var detail string
		switch {
		case s0.finSeen && s1.finSeen:
			detail = "both sides sent FIN; the last ACK is not in the capture"
		case s0.finSeen || s1.finSeen:
			i := 0
			if s1.finSeen {
				i = 1
			}
			detail = c.role(i) + " closed its side, " + c.role(1-i) + " did not"
		}
		switch c.end {
		case endIdle:
			detail = joinDetail(detail, "idle too long in capture time: reported before the capture ended")
		case endDamage:
			detail = joinDetail(detail, "the capture ends in damage")
		case endReplaced:
			detail = joinDetail(detail, "a SYN with a new ISN started another connection on the 4-tuple")
		case endCrowded:
			detail = joinDetail(detail, "judged early: too many connections were open at once")
		}
		if detail != "" {
			notes = append(notes, "no close in the capture: "+detail)
		} else {
			notes = append(notes, "no close in the capture")
		}
	}
	if c.droppedBad+c.droppedPass > 0 {
		add("%d more steps not listed (%d of them with problems): a result lists at most %d", c.droppedBad+c.droppedPass, c.droppedBad, c.maxSteps)
	}
	for i := range c.s {
		if n := c.s[i].partialSums; n > 0 {
			verb := "carry"
			if n == 1 {
				verb = "carries"
			}
			add("%s from %s %s a partial checksum (the pseudo-header sum): checksum offload, captured before the network card completed it; not a fault", plural(n, "segment"), c.role(i), verb)
		}
	}
	for i := range c.s {
		if h := c.s[i].holes; h > 0 {
			add("the capture misses data of %s in %s (capture loss or reordering)", c.role(i), plural(h, "place"))
		}
	}
	notes = append(notes, c.notes...)
	if c.s[0].haveISN || c.s[1].haveISN {
		x := c.tx
		start := len(x.buf)
		x.buf = append(x.buf, "ISNs: "...)
		for i := range c.s {
			if c.s[i].haveISN {
				if len(x.buf) > start+len("ISNs: ") {
					x.buf = append(x.buf, ", "...)
				}
				x.buf = append(x.buf, c.role(i)...)
				x.buf = append(x.buf, ' ')
				x.buf = strconv.AppendUint(x.buf, uint64(uint32(c.s[i].isn)), 10)
			}
		}
		// Last: x keeps a pointer into notes, which must not grow after.
		notes = append(notes, "")
		x.set(&notes[len(notes)-1], start)
	}
	return notes
}

var closedFirst = [2]string{"client closed first (active close)", "server closed first (active close)"}

// plural writes "1 place", "2 places".
func plural[N int | uint64](n N, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.FormatUint(uint64(n), 10) + " " + word + "s"
}

func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

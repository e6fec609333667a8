package trace

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"synprobe/conformance/report"
	"synprobe/internal/plural"
	"synprobe/probe"
)

// reflectMargin is added to the trace's duration for the reflector's
// window: the capture lags the traffic a little, and the hosts' clocks
// may run at slightly different rates.
const reflectMargin = 2 * time.Second

// ageSlack is how much older than the time since it was sent a segment
// the reflector recorded may look: the query's one-way delay (the age is
// measured when the reflector answers).
const ageSlack = 100 * time.Millisecond

// arrival is what the reflector recorded of one walk.
type arrival struct {
	in *Reflected
	// ttl is the TTL the arrived probe was sent with (its IP ID or TSval
	// names it; else the first TTL that reached the target).
	ttl int
	// byPayload: found by its payload alone (its seq and 4-tuple are
	// another connection's: a box's own).
	byPayload bool
	// out are the segments the target's host sent on its 4-tuple.
	out []*Reflected
}

// reflect asks the reflector what reached the target on the target port
// and what the target's host sent back, and compares: each walk's probe as
// it arrived against the probe as sent and the last router's quote (c2s),
// and the target's SYN-ACK as sent against what arrived here (s2c).
// What only the reflector shows is placed after the last router, before
// the target; what differs on the way back, on the reverse path.
func (t *tracer) reflect(ctx context.Context, r *Result, started time.Time, cw *connWalks) {
	rf := t.cfg.Reflector
	port := t.cfg.Target.Port()
	t.mu.Lock()
	var walks []*walk
	q := ReflectorQuery{Port: port, Within: time.Since(started) + t.cfg.Wait + reflectMargin}
	for _, w := range t.walks {
		if w.port != port || w.fam == familyClosed || len(w.sent) == 0 && w.control == nil {
			continue
		}
		walks = append(walks, w)
		if !slices.Contains(q.Seq, w.frame.TCP.Seq) {
			q.Seq = append(q.Seq, w.frame.TCP.Seq)
		}
		if p := w.frame.TCP.Payload; len(p) > 0 && !slices.ContainsFunc(q.Payloads, func(b []byte) bool { return string(b) == string(p) }) {
			q.Payloads = append(q.Payloads, p)
		}
	}
	t.mu.Unlock()
	if len(walks) == 0 {
		return
	}
	ans, err := rf.Received(ctx, q)
	if err != nil {
		for i, l := range r.Coverage {
			if l == noReflectorLine {
				r.Coverage[i] = "reverse path not observed (the reflector could not be asked): what the SYN-ACK carries is the target's or the path's"
			}
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "reflector") {
			msg = fmt.Sprintf("reflector %s: %s", rf, msg)
		}
		r.Coverage = append(r.Coverage, "blind segment not observed: "+msg)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	got := t.arrivals(walks, ans)
	a := &reflectAnalysis{t: t, r: r, fs: &findings{list: r.Findings}, got: got, cw: cw, src: t.p.Path().Source,
		lost: ans.KernelDrops > 0 || ans.Overwritten > 0 || ans.Truncated, name: rf.String()}
	for _, w := range walks {
		switch {
		case w.name == string(FamilySYN):
			a.syn = view(w)
		case w.name == connData:
			a.data = w
		}
	}
	// The handshake of the data's connection (conn has one per walk).
	for _, w := range walks {
		if w.name == "conn" && (a.hs == nil || a.data != nil && w.sess == a.data.sess) {
			a.hs = w
		}
	}
	if a.syn == nil && a.data != nil {
		a.syn = view(a.data)
	}
	if a.syn == nil {
		a.syn = view(walks[0])
	}
	a.last = a.syn.lastRouter()
	a.dest = a.syn.dest
	if r.Has(TerminatingProxy) || r.Has(SYNProxy) {
		a.proxied(walks)
	} else {
		for _, w := range walks {
			a.walk(w)
		}
	}
	a.supersede()
	r.Findings = a.fs.list
	a.coverage(walks, ans)
}

// arrivals finds each walk's probe among the segments the reflector
// recorded: by its seq and flags (the TTL by the IP ID or TSval it was
// sent with), else, for the in-window data, by its payload.
func (t *tracer) arrivals(walks []*walk, ans *ReflectorAnswer) map[*walk]*arrival {
	got := map[*walk]*arrival{}
	used := map[*Reflected]bool{}
	// firstAge is how long before the answer the walk's first probe arrived.
	firstAge := map[*arrival]time.Duration{}
	for _, w := range walks {
		oldest := time.Duration(0)
		for i := range ans.Segments {
			s := &ans.Segments[i]
			if s.Out || !w.owns(s) {
				continue
			}
			oldest = max(oldest, s.Age)
			ttl, known := w.ttlOf(&s.Frame)
			if a := got[w]; a != nil && (!known || a.ttl <= ttl) {
				continue
			}
			got[w] = &arrival{in: s, ttl: ttl}
			used[s] = true
		}
		if a := got[w]; a != nil {
			firstAge[a] = oldest
		}
	}
	for _, w := range walks {
		if got[w] != nil || w.name != connData || len(w.sentAt) == 0 {
			continue
		}
		// Only what arrived after the data left: the same payload from an
		// earlier trace is another's.
		first := time.Now()
		for _, at := range w.sentAt {
			if at.Before(first) {
				first = at
			}
		}
		maxAge := time.Since(first) + ageSlack
		sum := sha256.Sum256(w.frame.TCP.Payload)
		for i := range ans.Segments {
			s := &ans.Segments[i]
			if !s.Out && !used[s] && s.Age <= maxAge && s.PayloadLen == len(w.frame.TCP.Payload) && s.PayloadSHA256 == sum {
				ttl, _ := w.ttlOf(&s.Frame)
				got[w] = &arrival{in: s, ttl: ttl, byPayload: true}
				firstAge[got[w]] = s.Age
				break
			}
		}
	}
	// The target's host answers a probe after it arrived: what it sent on
	// the 4-tuple before is an earlier trace's (a reflector serves many,
	// and source ports come round again).
	for _, a := range got {
		in := &a.in.Frame
		for i := range ans.Segments {
			s := &ans.Segments[i]
			o := &s.Frame
			if s.Out && s.Age <= firstAge[a] && o.IP.Src == in.IP.Dst && o.IP.Dst == in.IP.Src && o.TCP.SrcPort == in.TCP.DstPort && o.TCP.DstPort == in.TCP.SrcPort {
				a.out = append(a.out, s)
			}
		}
	}
	return got
}

// owns reports whether a recorded segment is this walk's probe: its seq
// and SYN, RST, FIN and ACK flags, and (conn) whether it carries data.
func (w *walk) owns(s *Reflected) bool {
	ft, wt := &s.Frame.TCP, &w.frame.TCP
	const kinds = probe.SYN | probe.RST | probe.FIN
	if ft.Seq != wt.Seq || ft.Flags&kinds != wt.Flags&kinds {
		return false
	}
	if w.fam == FamilyConn && w.name != "conn" {
		// The handshake's ACK shares the seq of a walk on its connection:
		// its IPv4 ID or its TSval tell it apart.
		if !w.v6 && s.Frame.IP.ID == handshakeACKID {
			return false
		}
		if v, _, ok := ft.Timestamps(); ok && w.handshakeTSval != 0 && v == w.handshakeTSval {
			return false
		}
		return ft.Flags&probe.ACK == wt.Flags&probe.ACK && (s.PayloadLen > 0) == (len(wt.Payload) > 0)
	}
	return true
}

// ttlOf is the TTL a probe of this walk was sent with, from the IPv4 ID
// or the IPv6 TSval; known is false when neither names one (the first TTL
// that reached the target is returned).
func (w *walk) ttlOf(f *probe.Frame) (ttl int, known bool) {
	if !w.v6 && f.IP.ID&0xff00 == ipIDTag {
		ttl = int(f.IP.ID & 0xff)
	}
	if w.v6 && w.hasTS {
		if v, _, ok := f.TCP.Timestamps(); ok && v-w.tsBase < 256 {
			ttl = int(v - w.tsBase)
		}
	}
	if ttl != 0 && w.sentWith(ttl) != nil {
		return ttl, true
	}
	if len(w.sent) == 0 {
		return controlTTL, false
	}
	v := view(w)
	if v.dest > 0 {
		return v.dest, false
	}
	for _, ttl := range v.ttls {
		if ttl >= w.reach && w.reach > 0 {
			return ttl, false
		}
	}
	return v.lastTTL(), false
}

// sentWith is the probe as sent with ttl (the control at controlTTL).
func (w *walk) sentWith(ttl int) *probe.Sent {
	if ttl == controlTTL {
		return w.control
	}
	return w.sent[ttl]
}

type reflectAnalysis struct {
	t    *tracer
	r    *Result
	fs   *findings
	got  map[*walk]*arrival
	cw   *connWalks
	src  netip.Addr
	lost bool
	name string
	// syn is the walk the places come from: the last router that quoted
	// and the TTL the target answered.
	syn        *walkView
	last, dest int
	data, hs   *walk
	// kinds are those the reflector placed; reverse: the walks whose
	// answers were compared with what the target's host sent.
	kinds   []Kind
	reverse []string
	// fields are the fields whose evidence is given (one example each:
	// NAT gives every walk other ports).
	fields map[string]bool
}

// example reports whether a change of field (in a direction) is the
// first: later walks with the same change add only their name.
func (a *reflectAnalysis) example(field string) bool {
	if a.fields == nil {
		a.fields = map[string]bool{}
	}
	if a.fields[field] {
		return false
	}
	a.fields[field] = true
	return true
}

// where is the place of what only the reflector shows: after the last
// router, before the target.
func (a *reflectAnalysis) where(after int, afterAddr netip.Addr) Where {
	at := a.dest
	if at == 0 {
		at = a.last + 1
	}
	w := Where{AfterHop: after, AtHop: at, Reflector: true}
	if !afterAddr.IsValid() {
		afterAddr = a.src
	}
	w.Between = []netip.Addr{afterAddr, a.t.cfg.Target.Addr()}
	return w
}

func (a *reflectAnalysis) add(k Kind, v report.Verdict, w Where, probe string, evidence ...string) {
	a.fs.add(k, v, w, probe, evidence...)
	if !slices.Contains(a.kinds, k) {
		a.kinds = append(a.kinds, k)
	}
}

// walk compares one walk's arrival with what was sent (or says it never
// arrived) and the target's answer as sent with what arrived here.
func (a *reflectAnalysis) walk(w *walk) {
	got := a.got[w]
	if w.name == "conn" {
		// The handshake's SYN is the syn family's; only its SYN-ACK
		// (seq translation) is compared.
		if got != nil && len(w.tcp) > 0 {
			a.compareBack(w, got, w.tcp[0], "conn")
		}
		return
	}
	if got == nil {
		a.missing(w)
		return
	}
	sent := w.sentWith(got.ttl)
	if sent == nil {
		return
	}
	ev := " (seen by the reflector)"
	if got.byPayload {
		ev = fmt.Sprintf(" (the reflector found it by its payload only, from %v: another connection)", netip.AddrPortFrom(got.in.Frame.IP.Src, got.in.Frame.TCP.SrcPort))
	}
	// The arrival is one more hop after the last router's quote: each
	// change is placed once, after the last hop whose quote did not show
	// it.
	var hq []HopQuote
	for _, ttl := range slices.Sorted(maps.Keys(w.sent)) {
		if ttl >= got.ttl {
			break
		}
		h := HopQuote{TTL: ttl, Sent: &w.sent[ttl].Frame, SumValid: w.sumValid}
		if hs := w.hops[ttl]; hs != nil {
			h.From = hs.reply.Frame.IP.Src
			h.Quote = hs.quote
		}
		hq = append(hq, h)
	}
	q := reflectedQuote(got.in, &sent.Frame, w.sumValid)
	hq = append(hq, HopQuote{TTL: got.ttl, From: a.t.cfg.Target.Addr(), Sent: &sent.Frame, SumValid: w.sumValid, Quote: &q})
	as := Attribute(hq, a.src)[got.ttl]
	broken := false
	for _, at := range as {
		broken = broken || at.c.Field == "tcp.checksum" && at.c.Got == "invalid"
	}
	for _, at := range as {
		k, e, ok := kindOf(at.c)
		if !ok {
			continue
		}
		verdict := VerdictOf(k)
		var extra []string
		if a.example(at.c.Field + "/" + at.c.Kind) {
			extra = append(extra, e+ev)
		}
		if broken && k != ChecksumBroken {
			verdict = report.Fail
			extra = append(extra, "the TCP checksum is left invalid: the target drops the segment")
		}
		if w.name == connData && k == OptionStripped.With("ts") && a.cw != nil && a.cw.tsOK {
			verdict = report.Fail
			extra = append(extra, "TS was negotiated in the handshake and is stripped from data: PAWS and RTT measurement break")
		}
		wh := a.where(at.after, at.addrAfter)
		if k == NAT {
			// A NAT translates the routers' quotes back: no quote shows it,
			// so it may sit anywhere before the target.
			wh = a.where(0, a.src)
			if len(extra) > 0 {
				extra = append(extra, "no router's quote shows a NAT (it translates them back): it is somewhere between this host and the target")
			}
		}
		a.add(k, verdict, wh, w.name, extra...)
	}
	if c, ok := payloadChange(got.in, &sent.Frame); ok {
		a.add(PayloadRewrite, VerdictOf(PayloadRewrite), a.where(a.last, a.syn.addr(a.last)), w.name, "payload "+c.Sent+" -> "+c.Got+ev)
	}
	if len(w.tcp) > 0 && w.expectTCP && !got.byPayload {
		a.compareBack(w, got, w.tcp[0], w.name)
	}
}

// missing: a probe the reflector did not record, while it recorded the
// control (another SYN family; the in-window data for the conn walks), was
// dropped after the last router, unless a router's quote already placed
// the drop or the reflector lost records.
func (a *reflectAnalysis) missing(w *walk) {
	detail, control := "", ""
	switch w.name {
	case string(FamilyECN), string(FamilyExotic), string(FamilySYNData), string(FamilyBadSum), string(FamilySYN):
		detail = w.name
		for o, g := range a.got {
			if g != nil && o.fam != FamilyConn && o != w {
				control = o.name
				break
			}
		}
	case connOutOfWin, connAckAbove, connNoConn, connFIN, connNull, connSYNACK:
		detail = "out-of-window"
		if w.name != connOutOfWin && w.name != connAckAbove {
			detail = "no-connection"
		}
		if a.data != nil && a.got[a.data] != nil && !a.got[a.data].byPayload {
			control = connData
		}
	}
	if detail == "" || control == "" || a.lost {
		return
	}
	k := Drop.With(detail)
	for _, f := range a.fs.list {
		if f.Kind == k && !f.Where.Blind {
			return // placed by the quotes already
		}
	}
	a.add(k, VerdictOf(k), a.where(a.last, a.syn.addr(a.last)), w.name,
		fmt.Sprintf("the reflector received no %s probe (it received %s's)", w.name, control))
}

// compareBack compares what the target's host sent in answer to the
// walk's probe (the reflector's record) with what arrived here (got).
func (a *reflectAnalysis) compareBack(w *walk, g *arrival, got *probe.Reply, name string) {
	gf := &got.Frame
	var sent *Reflected
	for _, o := range g.out {
		if o.Frame.TCP.Flags != gf.TCP.Flags {
			continue
		}
		if sent == nil {
			sent = o
		}
		// Retransmitted answers differ in their TSval: take the one that
		// arrived.
		v1, _, ok1 := o.Frame.TCP.Timestamps()
		v2, _, ok2 := gf.TCP.Timestamps()
		if ok1 && ok2 && v1 == v2 {
			sent = o
			break
		}
	}
	if sent == nil {
		return
	}
	a.reverse = appendNew(a.reverse, name)
	sumValid := sent.Checksum != probe.ChecksumInvalid
	q := probe.QuotedPacket{IP: gf.IP, TCP: gf.TCP, Class: probe.QuoteFull, OptionsComplete: true, Checksum: gf.Checksum}
	q.TCPLen = int(gf.TCP.DataOffset)*4 + len(gf.TCP.Payload)
	sf := sent.Frame
	sf.TCP.Payload = gf.TCP.Payload // the reflector keeps none
	if q.Checksum != probe.ChecksumValid && q.Checksum != probe.ChecksumInvalid || sent.Checksum != probe.ChecksumValid && sent.Checksum != probe.ChecksumInvalid {
		q.Checksum = probe.ChecksumInvalid
		if sumValid {
			q.Checksum = probe.ChecksumValid
		}
	}
	what := replyName(gf)
	for _, c := range Compare(&sf, sumValid, &q) {
		if c.Field == "ip.length" && (len(sf.TCP.Payload) != sent.PayloadLen) {
			continue
		}
		k, e, ok := kindOf(c)
		if !ok {
			continue
		}
		e = fmt.Sprintf("the target's %s: %s (sent by the target's host, as it arrived here)", what, e)
		var evs []string
		if a.example("reverse " + c.Field + "/" + c.Kind) {
			evs = append(evs, e)
		}
		// The same change on the way there: the same box, most likely.
		merged := false
		for i := range a.fs.list {
			f := &a.fs.list[i]
			if f.Kind == k {
				f.Probes = appendNew(f.Probes, name+" (reverse)")
				for _, e := range evs {
					f.Evidence = appendNew(f.Evidence, e)
				}
				merged = true
				break
			}
		}
		if !merged {
			wh := Where{Reverse: true, Reflector: true, Between: []netip.Addr{a.t.cfg.Target.Addr(), a.src}}
			a.add(k, VerdictOf(k), wh, name+" (reverse)", evs...)
		}
	}
}

// proxied: a box answers for the target. The reflector shows what reached
// the target instead: the box's own connection, or the handshake's SYN
// only after the ACK (a SYN proxy); that is evidence of the box's finding,
// not findings of their own.
func (a *reflectAnalysis) proxied(walks []*walk) {
	var f *Finding
	for i := range a.fs.list {
		if k := a.fs.list[i].Kind; k == TerminatingProxy || k == SYNProxy {
			f = &a.fs.list[i]
			break
		}
	}
	var none []string
	for _, w := range walks {
		if w.fam != FamilyConn && a.got[w] == nil {
			none = append(none, w.name)
		}
	}
	var ev []string
	if len(none) > 0 {
		ev = append(ev, fmt.Sprintf("the reflector received none of the SYN probes (%s): they were answered before the target", strings.Join(none, ", ")))
	}
	if g := a.got[a.hs]; a.hs != nil && g != nil && a.hs.control != nil {
		var cs []string
		for _, c := range Compare(&a.hs.control.Frame, true, ptr(reflectedQuote(g.in, &a.hs.control.Frame, true))) {
			if c.Field != "ip.id" && c.Field != "ip.length" && c.Field != "tcp.doff" {
				cs = append(cs, changeString(c))
			}
		}
		ev = append(ev, fmt.Sprintf("the reflector received the handshake's SYN (its ISN kept) from %v, changed: %s", g.in.Frame.IP.Src, orNone(strings.Join(cs, "; "))))
		if sa := a.cw.synack; sa != nil {
			for _, o := range g.out {
				if o.Frame.TCP.Flags&(probe.SYN|probe.ACK) == probe.SYN|probe.ACK {
					if o.Frame.TCP.Seq != sa.Frame.TCP.Seq {
						ev = append(ev, fmt.Sprintf("the target's SYN-ACK seq %d arrived here as %d, window %d as %d: the box translates the sequence numbers", uint32(o.Frame.TCP.Seq), uint32(sa.Frame.TCP.Seq), o.Frame.TCP.Window, sa.Frame.TCP.Window))
						a.reverse = appendNew(a.reverse, "conn")
					}
					break
				}
			}
		}
	}
	if g := a.got[a.data]; a.data != nil && g != nil && g.byPayload {
		ev = append(ev, fmt.Sprintf("the data arrived at the target from %v with seq %d (sent with %d): the box opened a connection of its own",
			netip.AddrPortFrom(g.in.Frame.IP.Src, g.in.Frame.TCP.SrcPort), uint32(g.in.Frame.TCP.Seq), uint32(a.data.frame.TCP.Seq)))
	}
	if f != nil {
		for _, e := range ev {
			f.Evidence = appendNew(f.Evidence, e)
		}
		f.Where.Reflector = len(ev) > 0
	}
	// Behind a SYN proxy the connection reaches the target: its walks'
	// drops are the reflector's to place (f is not used after this: add
	// may move the list).
	for _, w := range walks {
		if w.fam == FamilyConn && w.name != "conn" && a.got[w] == nil {
			a.missing(w)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// supersede removes what the reflector's observations replace: the blind
// findings of a kind it placed, and the "unobserved" symptoms of walks it
// saw arrive (the target's answer was compared with what arrived: a
// symptom left is the target's own choice).
func (a *reflectAnalysis) supersede() {
	seen := map[string]bool{}
	for w, g := range a.got {
		if g != nil && !g.byPayload {
			seen[w.name] = true
		}
	}
	var keep []Finding
	for _, f := range a.fs.list {
		if f.Where.Blind && slices.Contains(a.kinds, f.Kind) {
			continue
		}
		if f.Kind == Unobserved {
			all := true
			for _, p := range f.Probes {
				all = all && seen[p]
			}
			if all {
				continue
			}
		}
		keep = append(keep, f)
	}
	if keep == nil {
		keep = []Finding{}
	}
	a.fs.list = keep
}

// coverage replaces the lines a reflector answers: the blind segment, the
// reverse path, a checksum filter after the last router.
func (a *reflectAnalysis) coverage(walks []*walk, ans *ReflectorAnswer) {
	arrived := 0
	for _, g := range a.got {
		if g != nil {
			arrived++
		}
	}
	var cov []string
	for _, l := range a.r.Coverage {
		switch {
		case l == noReflectorLine:
			if len(a.reverse) > 0 {
				l = fmt.Sprintf("reverse path observed: what the target's host sent (%s) compared with what arrived here, by the reflector %s", strings.Join(a.reverse, ", "), a.name)
			} else {
				l = fmt.Sprintf("reverse path not observed: the reflector %s recorded no answer of the target's host that arrived here", a.name)
			}
		case arrived > 0 && strings.HasPrefix(l, "after hop ") && strings.Contains(l, "blind"):
			from := fmt.Sprintf("after hop %d (%v)", a.last, a.syn.addr(a.last))
			if a.last == 0 {
				from = fmt.Sprintf("from this host (%v)", a.src)
			}
			l = fmt.Sprintf("%s to the target: blind segment observed by the reflector %s (%d of %s recorded there, compared with what was sent)", from, a.name, arrived, plural.N(len(walks), "probe", "probes"))
		case arrived > 0 && strings.HasPrefix(l, "badsum:"):
			continue
		case arrived > 0 && strings.HasPrefix(l, "NAT is invisible"):
			l += "; the reflector shows addresses and ports as they arrived"
		}
		cov = append(cov, l)
	}
	if arrived == 0 {
		cov = append(cov, fmt.Sprintf("the reflector %s recorded none of the probes to port %d (does it record this port? was it running?)", a.name, a.t.cfg.Target.Port()))
	}
	if a.lost {
		cov = append(cov, fmt.Sprintf("the reflector %s lost %d captures, overwrote %d records, truncated %v: a probe it did not record is not called a drop",
			a.name, ans.KernelDrops, ans.Overwritten, ans.Truncated))
	}
	a.r.Coverage = cov
}

// reflectedQuote makes a segment the reflector recorded look like a full
// quote, for Compare: its payload is only a length and a digest, so the
// payload as sent stands in (payloadChange tells a difference), and a
// checksum the reflector could not check counts as sent.
func reflectedQuote(s *Reflected, sent *probe.Frame, sumValid bool) probe.QuotedPacket {
	q := probe.QuotedPacket{IP: s.Frame.IP, TCP: s.Frame.TCP, Class: probe.QuoteFull, OptionsComplete: true, Checksum: s.Checksum}
	q.TCPLen = int(s.Frame.TCP.DataOffset)*4 + s.PayloadLen
	q.TCP.Payload = sent.TCP.Payload
	if s.PayloadLen != len(sent.TCP.Payload) {
		q.TCP.Payload = make([]byte, s.PayloadLen)
	}
	if s.Checksum != probe.ChecksumValid && s.Checksum != probe.ChecksumInvalid {
		q.Checksum = probe.ChecksumInvalid
		if sumValid {
			q.Checksum = probe.ChecksumValid
		}
	}
	return q
}

// payloadChange tells a payload of the length sent but other bytes (its
// digest differs); a length change is Compare's.
func payloadChange(s *Reflected, sent *probe.Frame) (Change, bool) {
	p := sent.TCP.Payload
	if s.PayloadLen != len(p) || len(p) == 0 || s.PayloadSHA256 == sha256.Sum256(p) {
		return Change{}, false
	}
	return Change{Field: "tcp.payload", Kind: Modified, Sent: fmt.Sprintf("%d bytes", len(p)), Got: fmt.Sprintf("%d other bytes", s.PayloadLen)}, true
}

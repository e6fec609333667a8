package trace

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"synprobe/conformance/report"
	"synprobe/internal/plural"
	"synprobe/probe"
)

// Has reports whether the trace found k (a kind with or without detail:
// Has(OptionStripped) matches option-stripped(ts)).
func (r *Result) Has(k Kind) bool {
	for _, f := range r.Findings {
		if f.Kind == k || k.Detail() == "" && f.Kind.Base() == k {
			return true
		}
	}
	return false
}

// FindingsOf returns the findings whose kind has base as its base.
func (r *Result) FindingsOf(base Kind) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Kind.Base() == base.Base() {
			out = append(out, f)
		}
	}
	return out
}

// finish sorts the findings and sets the verdict.
func (r *Result) finish() {
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if a.Where.AfterHop != b.Where.AfterHop {
			return a.Where.AfterHop < b.Where.AfterHop
		}
		return a.Kind < b.Kind
	})
	r.Verdict = report.Pass
	for _, f := range r.Findings {
		r.Verdict = report.Worst(r.Verdict, f.Verdict)
	}
	r.DurationMS = report.Millis(r.Duration)
}

// attributed is a change first seen at hop at, last unseen at hop after.
type attributed struct {
	c         Change
	after, at int
	addrAfter netip.Addr
	addrAt    netip.Addr
}

// covers reports whether a quote holds the field a change names.
func covers(q *probe.QuotedPacket, field string) bool {
	switch {
	case strings.HasPrefix(field, "ip."):
		return true
	case field == "tcp.sport" || field == "tcp.dport":
		return q.Covers(probe.QuotedTCPPorts)
	case field == "tcp.seq":
		return q.Covers(probe.QuotedTCPSeq)
	case field == "tcp.ack":
		return q.Covers(probe.QuotedTCPAck)
	case field == "tcp.doff" || field == "tcp.reserved" || strings.HasPrefix(field, "tcp.flags."):
		return q.Covers(probe.QuotedTCPFlags)
	case field == "tcp.window":
		return q.Covers(probe.QuotedTCPWindow)
	case field == "tcp.urgent":
		return q.Covers(probe.QuotedTCPUrgent)
	case strings.HasPrefix(field, "tcp.option"):
		return q.OptionsComplete
	}
	return q.Class == probe.QuoteFull // payload, checksum
}

// HopQuote is one hop's answer as the attribution sees it: the probe as
// sent with that TTL, and the quote (nil: silent, or not a quote).
type HopQuote struct {
	TTL      int
	From     netip.Addr
	Sent     *probe.Frame
	SumValid bool
	Quote    *probe.QuotedPacket
}

// Attribute compares each hop's quote with what was sent, and with the
// quotes of the hops before it, so that each change is reported once: at
// the first hop that shows it, "between" the last hop whose quote covered
// the field unchanged (0: this host, from) and that hop. hops are in TTL
// order. It returns, per hop, the changes first seen there.
func Attribute(hops []HopQuote, from netip.Addr) map[int][]attributed {
	out := map[int][]attributed{}
	all := map[int][]Change{}
	for i, h := range hops {
		if h.Quote == nil {
			continue
		}
		cs := Compare(h.Sent, h.SumValid, h.Quote)
		all[h.TTL] = cs
		for _, c := range cs {
			after, addr, seen := 0, from, false
			for j := i - 1; j >= 0; j-- {
				p := hops[j]
				if p.Quote == nil || !covers(p.Quote, c.Field) {
					continue
				}
				for _, pc := range all[p.TTL] {
					if pc.Field == c.Field && pc.Got == c.Got && pc.Kind == c.Kind {
						seen = true
					}
				}
				after, addr = p.TTL, p.From
				break
			}
			if seen {
				continue
			}
			out[h.TTL] = append(out[h.TTL], attributed{c: c, after: after, at: h.TTL, addrAfter: addr, addrAt: h.From})
		}
	}
	return out
}

// kindOf maps a change to the finding kind it is evidence of, with a line
// of evidence; ok is false for changes that follow from others (lengths).
func kindOf(c Change) (k Kind, evidence string, ok bool) {
	evidence = fmt.Sprintf("%s %s -> %s (%s)", c.Field, orNone(c.Sent), orNone(c.Got), c.Kind)
	opt := strings.TrimPrefix(c.Field, "tcp.option.")
	switch {
	case c.Field == "tcp.option.mss":
		switch c.Kind {
		case Modified:
			var s, g int
			fmt.Sscanf(c.Sent, "mss %d", &s)
			fmt.Sscanf(c.Got, "mss %d", &g)
			evidence = fmt.Sprintf("MSS %d -> %d", s, g)
			if g < s {
				return MSSClamp, evidence, true
			}
			return MSSRaise, evidence, true
		case Added:
			return MSSAdded, "MSS added: " + c.Got, true
		}
		return OptionStripped.With("mss"), "MSS " + c.Kind, true
	case c.Field == "tcp.options":
		return OptionModified.With("order"), "options reordered: " + c.Sent + " -> " + c.Got, true
	case strings.HasPrefix(c.Field, "tcp.option."):
		detail := opt
		if strings.HasPrefix(opt, "kind-") {
			detail = "unknown"
		}
		switch c.Kind {
		case Removed, NOPReplaced:
			name := optionName(c.Sent)
			return OptionStripped.With(detail), fmt.Sprintf("%s %s", name, c.Kind), true
		}
		return OptionModified.With(detail), evidence, true
	case c.Field == "tcp.flags.ece" || c.Field == "tcp.flags.cwr":
		if c.Got == "clear" {
			return ECNFlagsCleared, strings.ToUpper(strings.TrimPrefix(c.Field, "tcp.flags.")) + " cleared", true
		}
		return HeaderRewrite.With("flags"), evidence, true
	case strings.HasPrefix(c.Field, "tcp.flags."):
		return HeaderRewrite.With("flags"), evidence, true
	case c.Field == "ip.ecn":
		return ECNBleached, "IP ECN " + c.Sent + " -> " + c.Got, true
	case c.Field == "ip.dscp":
		return DSCPRewrite, "DSCP " + c.Sent + " -> " + c.Got, true
	case c.Field == "ip.id":
		return IPIDRewrite, "IP ID " + c.Sent + " -> " + c.Got, true
	case c.Field == "tcp.window":
		return WindowRewrite, "window " + c.Sent + " -> " + c.Got, true
	case c.Field == "tcp.seq" || c.Field == "tcp.ack":
		return SeqTranslation, evidence, true
	case c.Field == "ip.src" || c.Field == "ip.dst" || c.Field == "tcp.sport" || c.Field == "tcp.dport":
		return NAT, evidence, true
	case c.Field == "tcp.checksum":
		if c.Got == "valid" {
			return ChecksumFixed, "a wrong TCP checksum was made valid", true
		}
		return ChecksumBroken, "the TCP checksum is invalid after the change", true
	case c.Field == "tcp.payload":
		return PayloadRewrite, "payload " + c.Sent + " -> " + c.Got, true
	case c.Field == "ip.length" || c.Field == "tcp.doff":
		return "", "", false
	}
	return HeaderRewrite.With(strings.TrimPrefix(strings.TrimPrefix(c.Field, "ip."), "tcp.")), evidence, true
}

// optionName is the name of an option as Option.String writes it: "TS"
// of "TS val 1 ecr 0", "kind 253" of "kind 253 len 4 5350".
func optionName(s string) string {
	if strings.HasPrefix(s, "kind ") {
		f := strings.Fields(s)
		return f[0] + " " + f[1]
	}
	name, _, _ := strings.Cut(s, " ")
	return name
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// findings collects findings, merging those of one kind and place.
type findings struct {
	list []Finding
}

func (fs *findings) add(k Kind, v report.Verdict, w Where, probe string, evidence ...string) *Finding {
	for i := range fs.list {
		f := &fs.list[i]
		if f.Kind == k && f.Where.AfterHop == w.AfterHop && f.Where.AtHop == w.AtHop && f.Where.Blind == w.Blind && f.Where.Reverse == w.Reverse {
			f.Probes = appendNew(f.Probes, probe)
			for _, e := range evidence {
				f.Evidence = appendNew(f.Evidence, e)
			}
			f.Verdict = report.Worst(f.Verdict, v)
			return f
		}
	}
	fs.list = append(fs.list, Finding{Kind: k, Verdict: v, Where: w, Probes: []string{probe}, Evidence: append([]string(nil), evidence...)})
	return &fs.list[len(fs.list)-1]
}

func appendNew(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func between(after, at int, a, b netip.Addr) Where {
	w := Where{AfterHop: after, AtHop: at}
	if a.IsValid() || b.IsValid() {
		w.Between = []netip.Addr{a, b}
	}
	return w
}

// walkView is what the analysis needs of a walk after it ended.
type walkView struct {
	w *walk
	// dest is the TTL at which the target (or what answers for it)
	// answered; 0 when it never did.
	dest int
	// ttls are the TTLs sent, in order.
	ttls []int
}

func view(w *walk) *walkView {
	v := &walkView{w: w}
	for ttl := range w.sent {
		v.ttls = append(v.ttls, ttl)
	}
	sort.Ints(v.ttls)
	if len(w.tcp) > 0 {
		lastTE := 0
		for ttl, h := range w.hops {
			if h.kind == "time-exceeded" {
				lastTE = max(lastTE, ttl)
			}
		}
		v.dest = max(lastTE+1, distance(w.tcp[0].Frame.IP.TTL))
	}
	return v
}

// answered reports whether TTL ttl got a time-exceeded, or (at the
// target) a TCP answer.
func (v *walkView) answered(ttl int) bool {
	if h := v.w.hops[ttl]; h != nil {
		return h.kind == "time-exceeded"
	}
	return v.dest > 0 && ttl >= v.dest && len(v.w.tcp) > 0
}

// addr is the address that answered TTL ttl (invalid: none).
func (v *walkView) addr(ttl int) netip.Addr {
	if h := v.w.hops[ttl]; h != nil {
		return h.reply.Frame.IP.Src
	}
	if v.dest > 0 && ttl >= v.dest && len(v.w.tcp) > 0 {
		return v.w.tcp[0].Frame.IP.Src
	}
	return netip.Addr{}
}

// lastRouter is the highest TTL below the target that a router answered.
func (v *walkView) lastRouter() int {
	last := 0
	for ttl, h := range v.w.hops {
		if h.kind == "time-exceeded" && (v.dest == 0 || ttl < v.dest) {
			last = max(last, ttl)
		}
	}
	return last
}

func replyName(f *probe.Frame) string {
	switch fl := f.TCP.Flags; {
	case fl&(probe.SYN|probe.ACK) == probe.SYN|probe.ACK:
		return "syn-ack"
	case fl&probe.RST != 0:
		return "rst"
	case fl&probe.ACK != 0:
		return "ack"
	}
	return "tcp " + f.TCP.Flags.String()
}

// sentString is a probe in packetdrill notation with its IP fields.
func sentString(f *probe.Frame) string {
	ip := &f.IP
	extra := []string{fmt.Sprintf("tos 0x%02x", ip.TOS), ecnString(ip.ECN())}
	if ip.Src.Is4() {
		if ip.DF() {
			extra = append(extra, "df")
		}
	} else {
		extra = append(extra, fmt.Sprintf("flowlabel 0x%05x", ip.FlowLabel))
	}
	return fmt.Sprintf("%v [%s]", &f.TCP, strings.Join(extra, ", "))
}

// result turns the walks into the report: probes and hops, changes,
// findings, the destination and coverage.
func (t *tracer) result(cw *connWalks) *Result {
	t.mu.Lock()
	defer t.mu.Unlock()
	src := t.p.Path().Source
	r := &Result{Target: t.cfg.Target.String(), Source: src.String(), Via: t.p.Path().Interface}
	fs := &findings{}
	views := map[string]*walkView{}
	var order []*walkView
	for _, w := range t.walks {
		if w.name == "conn" || w.fam == familyClosed { // controls, not walks
			continue
		}
		v := view(w)
		views[w.name] = v
		order = append(order, v)
	}
	for _, v := range order {
		r.Probes = append(r.Probes, t.probeOf(v, src, fs, cw))
	}
	// Drops: silence where the control (syn; conn/data for the conn
	// walks) was answered at the same TTL.
	synCtl := nonNil(views[string(FamilySYN)], views[string(FamilyAlt)])
	for _, v := range order {
		var ctls []*walkView
		detail := ""
		switch v.w.name {
		case string(FamilyECN), string(FamilyExotic), string(FamilySYNData), string(FamilyBadSum):
			ctls, detail = synCtl, v.w.name
		case connOutOfWin, connAckAbove:
			ctls, detail = nonNil(views[connData]), "out-of-window"
		case connNoConn, connFIN, connNull, connSYNACK:
			ctls, detail = nonNil(views[connData]), "no-connection"
		case string(FamilySYN):
			// The port itself filtered: the alt port's walk is the control.
			ctls, detail = nonNil(views[string(FamilyAlt)]), "syn"
		}
		if len(ctls) > 0 {
			t.drop(fs, v, ctls, detail, src)
		}
	}
	var closed *walk
	for _, w := range t.walks {
		if w.fam == familyClosed {
			closed = w
		}
	}
	t.destination(r, fs, views, cw, closed, src)
	r.Findings = fs.list
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	r.Coverage = t.coverage(r, views, order, cw)
	return r
}

// probeOf builds a family's report and adds the findings its quotes show.
func (t *tracer) probeOf(v *walkView, src netip.Addr, fs *findings, cw *connWalks) Probe {
	w := v.w
	p := Probe{Family: Family(w.name), Port: w.port}
	if f := w.sent[v.firstTTL()]; f != nil {
		p.Sent = sentString(&f.Frame)
	}
	var hq []HopQuote
	for _, ttl := range v.ttls {
		h := HopQuote{TTL: ttl, Sent: &w.sent[ttl].Frame, SumValid: w.sumValid}
		if hs := w.hops[ttl]; hs != nil {
			h.From = hs.reply.Frame.IP.Src
			h.Quote = hs.quote
		}
		hq = append(hq, h)
	}
	attr := Attribute(hq, src)
	for _, ttl := range v.ttls {
		if v.dest > 0 && ttl > v.dest {
			break
		}
		hop := Hop{TTL: ttl, Reply: "none", Changes: []Change{}}
		if hs := w.hops[ttl]; hs != nil {
			hop.From = hs.reply.Frame.IP.Src
			hop.RTTus = float64(hs.rtt.Microseconds())
			hop.Reply = hs.kind
			if hs.byOrder {
				hop.Notes = append(hop.Notes, "matched to this TTL by arrival order (the quoted IP ID and TSval name no TTL)")
			}
			if q := hs.quote; q != nil {
				hop.Quote = &Quote{Class: q.Class.String(), Bytes: len(hs.reply.Frame.ICMP.Body)}
				if !q.OptionsComplete {
					hop.Quote.Unchecked = append(hop.Quote.Unchecked, "options")
				}
				if q.Class != probe.QuoteFull {
					hop.Quote.Unchecked = append(hop.Quote.Unchecked, "payload", "checksum")
				}
				if n := QuotedTTLNote(q); n != "" {
					hop.Notes = append(hop.Notes, n)
				}
			} else if hs.qerr != nil {
				hop.Notes = append(hop.Notes, hs.qerr.Error())
			}
			for _, a := range attr[ttl] {
				hop.Changes = append(hop.Changes, a.c)
			}
		} else if v.dest > 0 && ttl >= v.dest {
			tr := w.tcp[0]
			hop.From = tr.Frame.IP.Src
			hop.Reply = replyName(&tr.Frame)
			if at, ok := w.sentAt[ttl]; ok {
				for _, r := range w.tcp {
					if r.Time.After(at) {
						hop.RTTus = float64(r.Time.Sub(at).Microseconds())
						break
					}
				}
			}
		}
		p.Hops = append(p.Hops, hop)
	}
	// Findings from the changes, one per kind and place; a change whose
	// checksum is left invalid fails.
	for ttl, as := range attr {
		broken := false
		for _, a := range as {
			if a.c.Field == "tcp.checksum" && a.c.Got == "invalid" {
				broken = true
			}
		}
		for _, a := range as {
			k, ev, ok := kindOf(a.c)
			if !ok {
				continue
			}
			verdict := VerdictOf(k)
			var extra []string
			if broken && k != ChecksumBroken {
				verdict = report.Fail
				extra = append(extra, "the TCP checksum is left invalid: the target drops the segment")
			}
			if w.name == connData && k == OptionStripped.With("ts") && cw != nil && cw.tsOK {
				verdict = report.Fail
				extra = append(extra, "TS was negotiated in the handshake and is stripped from data: PAWS and RTT measurement break")
			}
			wh := between(a.after, ttl, a.addrAfter, a.addrAt)
			fs.add(k, verdict, wh, w.name, append([]string{ev}, extra...)...)
		}
	}
	if v.dest > 0 {
		tr := w.tcp[0]
		d := &Destination{Hop: v.dest, Reply: replyName(&tr.Frame), IPTTL: int(tr.Frame.IP.TTL), Inferences: []string{}}
		ft := &tr.Frame.TCP
		d.Inferences = append(d.Inferences, fmt.Sprintf("%s from %v: %v, ip ttl %d (%s by the usual initial TTLs)", d.Reply, tr.Frame.IP.Src, ft, tr.Frame.IP.TTL, plural.N(distance(tr.Frame.IP.TTL), "hop", "hops")))
		p.Destination = d
	}
	return p
}

func (v *walkView) firstTTL() int {
	if len(v.ttls) == 0 {
		return 0
	}
	return v.ttls[0]
}

// drop finds the first TTL where v is silent while the control ctl was
// answered: the probe is dropped after the last hop v reached.
func (t *tracer) drop(fs *findings, v *walkView, ctls []*walkView, detail string, src netip.Addr) {
	for _, ttl := range v.ttls {
		if v.answered(ttl) {
			continue
		}
		// The control at this TTL: one a router answered (the probe got
		// as far), else one the target answered.
		var ctl *walkView
		for _, c := range ctls {
			if h := c.w.hops[ttl]; c != v && h != nil && h.kind == "time-exceeded" {
				ctl = c
				break
			}
		}
		for _, c := range ctls {
			if ctl == nil && c != v && c.answered(ttl) {
				ctl = c
			}
		}
		if ctl == nil {
			return // no control answered either: nothing to say
		}
		atTarget := ctl.w.hops[ttl] == nil
		if atTarget && !v.w.expectTCP {
			return // the target need not answer this probe
		}
		after, afterAddr := 0, src
		for _, p := range v.ttls {
			if p < ttl && v.answered(p) {
				after, afterAddr = p, v.addr(p)
			}
		}
		why := fmt.Sprintf("%s: no answer at TTL %d where %s was answered by %v", v.w.name, ttl, ctl.w.name, ctl.addr(ttl))
		if h := v.w.hops[ttl]; h != nil {
			why = fmt.Sprintf("%s: %s from %v at TTL %d where %s passed", v.w.name, h.kind, h.reply.Frame.IP.Src, ttl, ctl.w.name)
		}
		wh := between(after, ttl, afterAddr, ctl.addr(ttl))
		if atTarget {
			wh = Where{AfterHop: after, Blind: true}
			if afterAddr.IsValid() {
				wh.Between = []netip.Addr{afterAddr, ctl.addr(ttl)}
			}
			why += " (the target, or a box after the last router)"
		}
		fs.add(Drop.With(detail), VerdictOf(Drop), wh, v.w.name, why)
		return
	}
}

// destination compares what answered with what the target's own stack
// would send: who answers the SYN (versus the alt port's RST), the SYN-ACK's
// options versus those offered, ECN, window 0; and the NAT leak of conn.
func (t *tracer) destination(r *Result, fs *findings, views map[string]*walkView, cw *connWalks, closed *walk, src netip.Addr) {
	// The closed port: a SYN-ACK there means something answers for every
	// port (a proxy), or the port is not closed.
	var closedEv string
	if closed != nil && len(closed.tcp) > 0 {
		ca := &closed.tcp[0].Frame
		closedEv = fmt.Sprintf("closed port %d: %s, ip ttl %d", closed.port, replyName(ca), ca.IP.TTL)
		if ca.TCP.Flags&(probe.SYN|probe.ACK) == probe.SYN|probe.ACK {
			closedEv += " (a closed port answered by a SYN-ACK: something answers for every port, or the port is not closed)"
		}
		for i := range r.Probes {
			if d := r.Probes[i].Destination; r.Probes[i].Family == FamilySYN && d != nil {
				d.Inferences = append(d.Inferences, closedEv)
			}
		}
	}
	syn, alt, ecn := views[string(FamilySYN)], views[string(FamilyAlt)], views[string(FamilyECN)]
	proxied := false
	if syn != nil && alt != nil && syn.dest > 0 && alt.dest > 0 {
		sa, rst := syn.w.tcp[0], alt.w.tcp[0]
		ks, ka := min(distance(sa.Frame.IP.TTL), syn.dest), max(distance(rst.Frame.IP.TTL), alt.dest)
		for i := range r.Probes {
			if d := r.Probes[i].Destination; r.Probes[i].Family == FamilySYN && d != nil {
				d.Inferences = append(d.Inferences, fmt.Sprintf("who answers: the SYN's %s from hop %d (by its TTL position), %d (by its ip ttl); the alt port's %s from hop %d, %d",
					replyName(&sa.Frame), syn.dest, distance(sa.Frame.IP.TTL), replyName(&rst.Frame), alt.dest, distance(rst.Frame.IP.TTL)))
				if sa.Frame.TCP.Window == 0 && sa.Frame.TCP.Flags&probe.SYN != 0 {
					d.Inferences = append(d.Inferences, "SYN-ACK window 0 (a SYN proxy's signature)")
				}
			}
		}
		if ks < ka && sa.Frame.TCP.Flags&probe.SYN != 0 {
			proxied = true
			kind := TerminatingProxy
			ev := []string{fmt.Sprintf("the SYN is answered from hop %d (%s at TTL %d, ip ttl %d) but the alt port's RST comes from hop %d (ip ttl %d): something at hop %d answers for the target",
				ks, replyName(&sa.Frame), syn.dest, sa.Frame.IP.TTL, ka, rst.Frame.IP.TTL, ks)}
			if sa.Frame.TCP.Window == 0 {
				kind = SYNProxy
				ev = append(ev, "SYN-ACK window 0 (a SYN proxy's signature)")
			}
			if strings.Contains(closedEv, "SYN-ACK") {
				ev = append(ev, closedEv)
			}
			fs.add(kind, VerdictOf(kind), between(ks-1, ks, alt.addrOr(ks-1, src), alt.addr(ks)), string(FamilySYN), ev...)
		}
	}
	// Symptoms at the target of a change in the blind segment: what the
	// SYN-ACK lacks of what was offered, unless a finding explains it.
	type symptom struct{ fam, text string }
	var symptoms []symptom
	last := 0
	if syn != nil && !proxied && syn.dest > 0 {
		last = syn.lastRouter()
		sa := &syn.w.tcp[0].Frame.TCP
		if sa.Flags&(probe.SYN|probe.ACK) == probe.SYN|probe.ACK {
			if _, _, ok := sa.Timestamps(); !ok && !hasKind(fs, OptionStripped.With("ts")) {
				symptoms = append(symptoms, symptom{string(FamilySYN), "the SYN-ACK carries no TS though TS was offered"})
			}
			if !sa.SACKPermitted() && !hasKind(fs, OptionStripped.With("sack")) {
				symptoms = append(symptoms, symptom{string(FamilySYN), "the SYN-ACK carries no sackOK though it was offered"})
			}
			if _, ok := sa.WScale(); !ok && !hasKind(fs, OptionStripped.With("ws")) {
				symptoms = append(symptoms, symptom{string(FamilySYN), "the SYN-ACK carries no wscale though it was offered"})
			}
			if m, ok := sa.MSS(); ok && m < mssFor(t.v6) && !hasKind(fs, MSSClamp) {
				symptoms = append(symptoms, symptom{string(FamilySYN), fmt.Sprintf("the SYN-ACK's MSS is %d, below the %d offered", m, mssFor(t.v6))})
			}
		}
	}
	if ecn != nil && !proxied && ecn.dest > 0 {
		sa := &ecn.w.tcp[0].Frame.TCP
		if sa.Flags&(probe.SYN|probe.ACK) == probe.SYN|probe.ACK && sa.Flags&probe.ECE == 0 && !hasKind(fs, ECNFlagsCleared) {
			symptoms = append(symptoms, symptom{string(FamilyECN), "the SYN-ACK to the ECN-setup SYN does not set ECE"})
		}
	}
	if data := views[connData]; cw != nil && cw.tsOK && data != nil && data.dest > 0 && !hasKind(fs, OptionStripped.With("ts")) {
		for _, r := range data.w.tcp {
			ft := &r.Frame.TCP
			if ft.Flags&(probe.SYN|probe.RST) != 0 || ft.Flags&probe.ACK == 0 {
				continue
			}
			_, ecr, ok := ft.Timestamps()
			switch {
			case !ok:
				symptoms = append(symptoms, symptom{connData, fmt.Sprintf("the target's %v carries no TS though TS was negotiated", ft)})
			case ecr == cw.ackTSval && ft.Ack.Sub(cw.isn.Add(1)) > 0:
				symptoms = append(symptoms, symptom{connData, fmt.Sprintf("the target acknowledges the data with TSecr %d, the handshake's TSval, not the data's: the data arrived without TS", ecr)})
			default:
				continue
			}
			if last == 0 {
				last = data.lastRouter()
			}
			break
		}
	}
	if len(symptoms) > 0 {
		wh := Where{AfterHop: last, Blind: true}
		ref := syn
		if ref == nil {
			ref = views[connData]
		}
		if a := ref.addr(last); a.IsValid() {
			wh.Between = []netip.Addr{a, t.cfg.Target.Addr()}
		}
		for _, sy := range symptoms {
			fs.add(Unobserved, VerdictOf(Unobserved), wh, sy.fam, sy.text+fmt.Sprintf(" (the target's choice, or a box after hop %d)", last))
		}
	}
	if cw != nil && cw.leak != nil {
		dest := 0
		if v := views[connData]; v != nil {
			dest = v.dest
		}
		fs.add(NATLeak, VerdictOf(NATLeak), Where{AfterHop: 0, AtHop: dest, Between: []netip.Addr{src, t.cfg.Target.Addr()}}, connAckAbove,
			fmt.Sprintf("the host answered the ACK above SND.NXT with %v from %v: the segment reached it untranslated (an address translator on the path let an out-of-state segment through)", &cw.leak.Frame.TCP, cw.leak.Frame.IP.Src))
	}
}

func nonNil(vs ...*walkView) []*walkView {
	var out []*walkView
	for _, v := range vs {
		if v != nil {
			out = append(out, v)
		}
	}
	return out
}

// addrOr is addr(ttl), or def for TTL 0 and silent hops.
func (v *walkView) addrOr(ttl int, def netip.Addr) netip.Addr {
	if a := v.addr(ttl); a.IsValid() {
		return a
	}
	return def
}

func hasKind(fs *findings, k Kind) bool {
	for _, f := range fs.list {
		if f.Kind == k {
			return true
		}
	}
	return false
}

// noReflectorLine is the coverage line a reflector's answers remove.
const noReflectorLine = "reverse path not observed (no --reflector): what the SYN-ACK carries is the target's or the path's"

// coverage says what the trace could not see.
func (t *tracer) coverage(r *Result, views map[string]*walkView, order []*walkView, cw *connWalks) []string {
	var cov []string
	// The walk that reached the host: the syn family's, or the alt
	// port's when something nearer answered the SYN.
	syn := views[string(FamilySYN)]
	if alt := views[string(FamilyAlt)]; alt != nil && (syn == nil || alt.dest > syn.dest) {
		syn = alt
	}
	if syn == nil && len(order) > 0 {
		syn = order[0]
	}
	if syn != nil {
		if syn.dest == 0 {
			cov = append(cov, fmt.Sprintf("the target did not answer %s up to TTL %d: drops cannot be told from silence beyond the last answer", syn.w.name, syn.lastTTL()))
		}
		var silentTTLs []int
		var partial []string
		for _, ttl := range syn.ttls {
			if syn.dest > 0 && ttl >= syn.dest {
				break
			}
			h := syn.w.hops[ttl]
			switch {
			case h == nil:
				silentTTLs = append(silentTTLs, ttl)
			case h.quote != nil && h.quote.Class != probe.QuoteFull:
				partial = append(partial, fmt.Sprintf("%d (%s)", ttl, h.quote.Class))
			}
		}
		silent := ranges(silentTTLs)
		if len(silent) > 0 {
			cov = append(cov, "hop "+silent+": no answer (rate limited or silent hop)")
		}
		if len(partial) > 0 {
			cov = append(cov, "hop "+strings.Join(partial, ", ")+" quoted in part: only the fields quoted were compared")
		}
		if syn.dest > 0 && len(silent) == 0 && len(partial) == 0 && syn.dest > t.cfg.FirstHop {
			cov = append(cov, "every hop up to the target quoted in full")
		}
		if syn.dest > 0 && syn.dest <= t.cfg.FirstHop {
			cov = append(cov, "no router answered before the target: nothing on the path quotes")
		} else if syn.dest > 0 {
			last := syn.lastRouter()
			cov = append(cov, fmt.Sprintf("after hop %d (%v) to the target: blind (no router after it quotes); changes there show only as symptoms at the target, and DSCP rewrites, checksum filters and IP ID rewrites there show none", last, syn.addr(last)))
		}
	}
	// Load balancing: families that met different routers at one TTL.
	if syn != nil {
		for _, ttl := range syn.ttls {
			a := syn.w.hops[ttl]
			if a == nil {
				continue
			}
			var other []string
			for _, v := range order {
				if h := v.w.hops[ttl]; h != nil && v != syn && h.kind == "time-exceeded" && h.reply.Frame.IP.Src != a.reply.Frame.IP.Src {
					other = append(other, fmt.Sprintf("%s: %v", v.w.name, h.reply.Frame.IP.Src))
				}
			}
			if len(other) > 0 {
				cov = append(cov, fmt.Sprintf("hop %d: the families met different routers (%s: %v, %s): each family is compared with itself only", ttl, syn.w.name, a.reply.Frame.IP.Src, strings.Join(other, ", ")))
			}
		}
	}
	if views[string(FamilyBadSum)] != nil {
		cov = append(cov, "badsum: the target's silence is its own stack's; a checksum filter after the last router is not seen")
	}
	cov = append(cov, noReflectorLine)
	cov = append(cov, "NAT is invisible in quotes (a conformant NAT translates them back)")
	var missing []string
	for _, f := range Families {
		if !t.cfg.has(f) {
			missing = append(missing, string(f))
		}
	}
	if len(missing) > 0 {
		cov = append(cov, "not sent: "+strings.Join(missing, ", ")+" (see --probes)")
	}
	if cw != nil && cw.err != nil {
		cov = append(cov, "conn: "+cw.err.Error()+": TS on data, ECN of data, stateful drops and NAT leaks not checked")
	}
	return cov
}

// ranges writes sorted TTLs as ranges: "2, 5-30".
func ranges(ttls []int) string {
	var parts []string
	for i := 0; i < len(ttls); {
		j := i
		for j+1 < len(ttls) && ttls[j+1] == ttls[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", ttls[i], ttls[j]))
		} else {
			parts = append(parts, fmt.Sprint(ttls[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

func (v *walkView) lastTTL() int {
	if len(v.ttls) == 0 {
		return 0
	}
	return v.ttls[len(v.ttls)-1]
}

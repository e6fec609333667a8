package fingerprint

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"synprobe/internal/plural"
	"synprobe/probe"
)

// Measure measures the TCP stack behind cfg.Target through p. The parts
// run concurrently, each on its own probe connections, so that the whole
// takes about as long as the slowest part, the SYN-ACK retransmission
// schedule (about 3.5 s). Every probe connection is reset at the end: the
// target keeps no state of it. Measure always returns a fingerprint;
// what could not be measured says why.
func Measure(ctx context.Context, p *probe.Prober, cfg Config) *Fingerprint {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	start := time.Now()
	m := &measurer{p: p, cfg: cfg, v4: cfg.Target.Addr().Is4(), start: start, ts0: rand.Uint32() >> 1}
	m.mss = pathMSS(p.Path(), m.v4)
	drops0 := p.Stats().Drops

	var (
		rt  retransResult
		one oneTupleResult
		nm  nmapResult
		ecn synAnswer
		fo  synAnswer
		rst rstResult
		ch  challengeResult
		wg  sync.WaitGroup
	)
	run := func(fn func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn()
		}()
	}
	// The slowest parts first: they ask the pacer first.
	run(func() { rt = m.retransmission(ctx) })
	run(func() { one = m.oneTuple(ctx) })
	run(func() { ch = m.challenge(ctx) })
	run(func() { nm = m.nmapSeq(ctx) })
	run(func() {
		ecn = m.single(ctx, func(isn probe.Seq) probe.TCP {
			t := m.linuxSYN(isn, m.mss)
			t.Flags |= probe.ECE | probe.CWR
			return t
		})
	})
	run(func() {
		fo = m.single(ctx, func(isn probe.Seq) probe.TCP {
			t := m.linuxSYN(isn, m.mss)
			t.Options = append(t.Options, probe.NOPOption(), probe.NOPOption(), probe.FastOpenOption(nil))
			return t
		})
	})
	run(func() { rst = m.rsts(ctx) })
	wg.Wait()

	f := &Fingerprint{Target: cfg.Target.String()}
	f.fillTTL(&rt.first, &rst)
	f.fillDF(m.v4, &rt.first, &rst)
	f.fillIPID(m.v4, &nm, &rst, &ch)
	f.fillSYNACK(&rt.first)
	f.fillNmap(&nm)
	f.fillISN(&one, &nm, m.mss)
	f.fillTimestamps(&rt, &one, &nm, []*synAnswer{&ecn, &fo})
	f.fillSupport(&rt.first, &ecn, &fo)
	f.fillRetransmission(&rt)
	f.fillCookies(&rt, &one, m.mss)
	f.ChallengeACK = ch.c

	if n := p.Stats().Drops - drops0; n > 0 {
		f.Notes = append(f.Notes, fmt.Sprintf("the local socket dropped %s meanwhile: counts of replies may be low", plural.N(n, "frame", "frames")))
		if f.SYNCookies.InUse != nil && *f.SYNCookies.InUse {
			f.SYNCookies.InUse = nil
			f.SYNCookies.Why = "a missing retransmission cannot be told from a frame the local socket dropped"
		}
	}
	if !nm.adjacent && nm.why == "" {
		f.Notes = append(f.Notes, "nmap's probes went from non-adjacent source ports: adjacent ones were taken")
	}
	f.Notes = append(f.Notes, m.disturbed...)
	f.SYNs = int(m.syns.Load())
	f.DurationMS = millis(time.Since(start))
	return f
}

// pathMSS is the MSS synprobe offers: the path's MTU less the headers.
func pathMSS(path probe.Path, v4 bool) uint16 {
	mtu := path.MTU
	if mtu <= 0 {
		mtu = 1500
	}
	if v4 {
		return uint16(mtu - 40)
	}
	return uint16(mtu - 60)
}

func (f *Fingerprint) fillTTL(first *synAnswer, rst *rstResult) {
	var why []string
	if t := first.synack(); t != nil {
		ttl := int(first.reply.Frame.IP.TTL)
		initial, hops := guessInitialTTL(uint8(ttl))
		f.TTL.SYNACK, f.TTL.Initial, f.TTL.Hops = &ttl, &initial, &hops
	} else {
		why = append(why, "syn-ack: "+first.why)
	}
	if len(rst.replies) > 0 {
		ttl := int(rst.replies[0].Frame.IP.TTL)
		initial, _ := guessInitialTTL(uint8(ttl))
		f.TTL.RST, f.TTL.RSTInitial = &ttl, &initial
	} else {
		why = append(why, "rst: "+rst.why)
	}
	f.TTL.Why = strings.Join(why, "; ")
}

func (f *Fingerprint) fillDF(v4 bool, first *synAnswer, rst *rstResult) {
	if !v4 {
		f.DF.Why = "IPv6 has no DF bit"
		return
	}
	var why []string
	if first.synack() != nil {
		f.DF.SYNACK = ptr(first.reply.Frame.IP.DF())
	} else {
		why = append(why, "syn-ack: "+first.why)
	}
	if len(rst.replies) > 0 {
		f.DF.RST = ptr(rst.replies[0].Frame.IP.DF())
	} else {
		why = append(why, "rst: "+rst.why)
	}
	f.DF.Why = strings.Join(why, "; ")
}

func (f *Fingerprint) fillIPID(v4 bool, nm *nmapResult, rst *rstResult, ch *challengeResult) {
	if !v4 {
		f.IPID.Why = "IPv6 has no IP ID"
		return
	}
	var ids []uint16
	for _, a := range nm.answers {
		if a.reply != nil {
			ids = append(ids, a.reply.Frame.IP.ID)
		}
	}
	f.IPID.SYNACK = classifyIPIDs(ids)
	if len(ids) < minIPIDs {
		for _, a := range nm.answers {
			if a.reply == nil {
				f.IPID.SYNACK.Why += ": " + a.why
				break
			}
		}
	}
	ids = ids[:0]
	for _, r := range rst.replies {
		ids = append(ids, r.Frame.IP.ID)
	}
	f.IPID.RST = classifyIPIDs(ids)
	if len(ids) < minIPIDs && rst.why != "" {
		f.IPID.RST.Why += ": " + rst.why
	}
	ids = ids[:0]
	for _, r := range ch.replies {
		ids = append(ids, r.Frame.IP.ID)
	}
	f.IPID.Connection = classifyIPIDs(ids)
	if len(ids) < minIPIDs && ch.c.Why != "" {
		f.IPID.Connection.Why += ": " + ch.c.Why
	}
}

func (f *Fingerprint) fillSYNACK(first *synAnswer) {
	t := first.synack()
	if t == nil {
		f.SYNACK.Why = first.why
		return
	}
	f.SYNACK.Window = ptr(int(t.Window))
	if ws, ok := t.WScale(); ok {
		f.SYNACK.WScale = ptr(int(ws))
	}
	if mss, ok := t.MSS(); ok {
		f.SYNACK.MSS = ptr(int(mss))
	}
	f.SYNACK.Options = probe.FormatOptions(t.Options)
	f.SYNACK.NmapOptions = nmapOptions(t.Options)
}

func (f *Fingerprint) fillNmap(nm *nmapResult) {
	var ops, win []string
	for i, a := range nm.answers {
		p := NmapProbe{Probe: i + 1, Port: a.port, Why: a.why}
		o, w := "", ""
		if t := a.synack(); t != nil {
			p.Options = nmapOptions(t.Options)
			p.Window = ptr(int(t.Window))
			o, w = p.Options, fmt.Sprintf("%X", t.Window)
		}
		f.Nmap.Probes = append(f.Nmap.Probes, p)
		ops = append(ops, fmt.Sprintf("O%d=%s", i+1, o))
		win = append(win, fmt.Sprintf("W%d=%s", i+1, w))
	}
	f.Nmap.OPS, f.Nmap.WIN = strings.Join(ops, "%"), strings.Join(win, "%")
}

// sameMSS returns the one-tuple samples whose SYN offered mss.
func (one *oneTupleResult) sameMSS(mss uint16) []isnSample {
	var out []isnSample
	for i, a := range one.answers {
		if a.reply != nil && one.mss[i] == mss {
			out = append(out, isnSample{uint32(a.reply.Frame.TCP.Seq), a.reply.Time})
		}
	}
	return out
}

func (f *Fingerprint) fillISN(one *oneTupleResult, nm *nmapResult, mss uint16) {
	o := &f.ISN.OneTuple
	o.Port = one.port
	var t0 time.Time
	for i, a := range one.answers {
		if a.reply == nil {
			continue
		}
		if t0.IsZero() {
			t0 = a.reply.Time
		}
		o.Samples = append(o.Samples, ISNSample{ISN: uint32(a.reply.Frame.TCP.Seq), AtMS: millis(a.reply.Time.Sub(t0)), MSS: one.mss[i]})
	}
	clockHz := 0.0
	samples := one.sameMSS(mss)
	switch {
	case one.why != "":
		o.Why = one.why
	case len(samples) < 2:
		o.Why = fmt.Sprintf("%s with the same MSS on one 4-tuple, need 2", plural.N(len(samples), "SYN-ACK", "SYN-ACKs"))
	default:
		rate, intervals := isnRate(samples)
		for _, r := range intervals {
			o.IntervalRatesHz = append(o.IntervalRatesHz, math.Round(r))
		}
		if steady(rate, intervals) {
			o.RateHz = ptr(math.Round(rate))
			clockHz = rate
		} else {
			o.Why = "the ISN does not advance steadily on one 4-tuple: the interval rates differ by more than 25%"
		}
	}

	ad := &f.ISN.Adjacent
	var adj []isnSample
	for _, a := range nm.answers {
		if a.reply != nil {
			ad.Ports = append(ad.Ports, a.port)
			ad.ISNs = append(ad.ISNs, uint32(a.reply.Frame.TCP.Seq))
			adj = append(adj, isnSample{uint32(a.reply.Frame.TCP.Seq), a.reply.Time})
		}
	}
	if len(adj) < 3 {
		ad.Why = fmt.Sprintf("%s to nmap's probes, need 3", plural.N(len(adj), "SYN-ACK", "SYN-ACKs"))
		for _, a := range nm.answers {
			if a.reply == nil {
				ad.Why += ": " + a.why
				break
			}
		}
		return
	}
	var g uint32
	for i := 1; i < len(adj); i++ {
		d := modDiff(adj[i].isn, adj[i-1].isn)
		ad.Differences = append(ad.Differences, d)
		g = gcd(g, d)
	}
	ad.GCD = &g
	bits := math.Round(randomBits(adj, clockHz)*10) / 10
	ad.RandomBits = &bits
}

// tsOf returns the TSval of a's SYN-ACK and whether it had one.
func tsOf(a *synAnswer) (tsSample, bool) {
	t := a.synack()
	if t == nil {
		return tsSample{}, false
	}
	val, _, ok := t.Timestamps()
	return tsSample{val: val, at: a.reply.Time, port: a.port}, ok
}

// checkEcho counts a SYN-ACK whose SYN offered timestamps: TSecr must be
// the TSval synprobe sent.
func (ts *Timestamps) checkEcho(a *synAnswer, r *probe.Reply) {
	if a.sent == nil || r == nil {
		return
	}
	sentVal, _, offered := a.sent.Frame.TCP.Timestamps()
	_, ecr, answered := r.Frame.TCP.Timestamps()
	if !offered || !answered {
		return
	}
	ts.TSecrChecked++
	if ecr != sentVal {
		ts.TSecrWrong++
		if ts.TSecrExample == "" {
			ts.TSecrExample = fmt.Sprintf("port %d: sent TSval %d, got TSecr %d", a.port, sentVal, ecr)
		}
	}
}

func (f *Fingerprint) fillTimestamps(rt *retransResult, one *oneTupleResult, nm *nmapResult, others []*synAnswer) {
	ts := &f.Timestamps
	first := &rt.first
	if t := first.synack(); t != nil {
		_, _, ok := t.Timestamps()
		ts.Answered = &ok
	}

	// TSecr echo, on every SYN-ACK to a SYN that offered timestamps.
	all := []*synAnswer{first}
	for i := range one.answers {
		all = append(all, &one.answers[i])
	}
	for i := range nm.answers {
		all = append(all, &nm.answers[i])
	}
	all = append(all, others...)
	for _, a := range all {
		ts.checkEcho(a, a.reply)
	}
	for _, r := range rt.retrans {
		ts.checkEcho(first, r)
	}

	// The reference clock: one connection's SYN-ACK and its last
	// retransmission, else the first and last SYN-ACK on one 4-tuple.
	// A stack may retransmit its SYN-ACK as it was, TSval and all (gVisor
	// does): that says nothing of the clock.
	var ref, last tsSample
	haveRate := false
	if r0, ok := tsOf(first); ok && len(rt.retrans) > 0 {
		r := rt.retrans[len(rt.retrans)-1]
		if val, _, ok := r.Frame.TCP.Timestamps(); ok {
			ts.RetransSameTSval = ptr(val == r0.val)
			if val != r0.val {
				ref, last = r0, tsSample{val: val, at: r.Time, port: first.port}
				_, haveRate = tsRate(ref, last)
				ts.RateFrom = fmt.Sprintf("a SYN-ACK and its retransmission %s later (one connection)", fmtMS(millis(last.at.Sub(ref.at))))
			}
		}
	}
	if !haveRate {
		var series []tsSample
		for i := range one.answers {
			if s, ok := tsOf(&one.answers[i]); ok {
				series = append(series, s)
			}
		}
		if len(series) >= 2 {
			ref, last = series[0], series[len(series)-1]
			_, haveRate = tsRate(ref, last)
			ts.RateFrom = fmt.Sprintf("SYN-ACKs on one 4-tuple %s apart", fmtMS(millis(last.at.Sub(ref.at))))
		}
	}
	switch {
	case ts.Answered == nil:
		ts.Why = "no SYN-ACK to a SYN offering timestamps: " + first.why
		return
	case !*ts.Answered:
		ts.Why = "the SYN-ACK carried no timestamps option"
		return
	case !haveRate:
		ts.RateFrom = ""
		ts.Why = "no two TSvals of one 4-tuple at least 200 ms apart"
		return
	}
	hz, _ := tsRate(ref, last)
	ts.RateHz = ptr(math.Round(hz*10) / 10)
	clock := hz
	if nominal, ok := nearestCommonRate(hz); ok {
		ts.NominalHz, clock = nominal, nominal
	}
	if clock <= 0 {
		ts.UptimeWhy = "the clock does not advance"
		return
	}

	// Other 4-tuples against the reference clock.
	var others2 []tsSample
	ports := map[uint16]bool{}
	for _, a := range all {
		if s, ok := tsOf(a); ok && a.port != ref.port {
			others2 = append(others2, s)
			ports[a.port] = true
		}
	}
	ts.Compared = len(ports)
	maxOff := 0.0
	for _, r := range tsResiduals(ref, clock, others2) {
		maxOff = max(maxOff, math.Abs(r))
	}
	ts.MaxOffsetTicks = math.Round(maxOff)
	if ts.Compared > 0 {
		ts.PerTupleOffsets = ptr(maxOff > tsTolerance(clock))
	}
	if ts.PerTupleOffsets != nil && *ts.PerTupleOffsets {
		ts.UptimeWhy = "each 4-tuple sees its own clock offset: the TSval says nothing of the uptime"
		return
	}
	ts.UptimeS = ptr(math.Round(float64(ref.val) / clock))
	if ts.Compared == 0 {
		ts.UptimeWhy = "no other 4-tuple to compare: a per-connection offset cannot be ruled out"
	}
}

func (f *Fingerprint) fillSupport(first, ecn, fo *synAnswer) {
	if t := first.synack(); t != nil {
		ok := t.SACKPermitted()
		f.SACK.Supported = &ok
		f.SACK.Detail = "SYN-ACK options " + probe.FormatOptions(t.Options)
	} else {
		f.SACK.Why = first.why
	}

	if t := ecn.synack(); t != nil {
		ok := t.Flags&probe.ECE != 0 && t.Flags&probe.CWR == 0
		f.ECN.Supported = &ok
		f.ECN.Detail = fmt.Sprintf("SYN with ECE and CWR answered %s, IP ECN field %d", t.Flags, ecn.reply.Frame.IP.ECN())
	} else {
		f.ECN.Why = ecn.why
	}

	t := fo.synack()
	if t == nil {
		f.FastOpen.Why = fo.why
		return
	}
	no := false
	f.FastOpen.Supported = &no
	f.FastOpen.Detail = "no Fast Open option in the SYN-ACK to a cookie request"
	for _, o := range t.Options {
		cookie, ok := o.FastOpenCookie()
		if !ok {
			continue
		}
		kind := "kind 34"
		if o.IsExpFastOpen() {
			kind = "experimental kind 254"
		}
		if len(cookie) == 0 {
			f.FastOpen.Detail = "a Fast Open option (" + kind + ") without a cookie"
			continue
		}
		f.FastOpen.Supported = ptr(true)
		f.FastOpen.Detail = fmt.Sprintf("a cookie of %d bytes in a Fast Open option (%s)", len(cookie), kind)
		_, _, offered := fo.sent.Frame.TCP.Timestamps()
		if _, _, answered := t.Timestamps(); offered && !answered {
			// Linux 6.18 does this: the option space is not the reason.
			f.FastOpen.Detail += "; that SYN-ACK left out the timestamps option offered"
		}
		return
	}
}

func (f *Fingerprint) fillRetransmission(rt *retransResult) {
	r := &f.Retransmission
	if rt.why != "" || rt.first.reply == nil {
		r.Why = rt.why
		return
	}
	r.AtMS = []float64{}
	for _, x := range rt.retrans {
		r.AtMS = append(r.AtMS, millis(x.Time.Sub(rt.first.reply.Time)))
	}
	r.WaitedMS = millis(rt.watched)
}

// maxCookieShift is how far an MSS class can move a SYN cookie's ISN.
const maxCookieShift = 3

func (f *Fingerprint) fillCookies(rt *retransResult, one *oneTupleResult, mss uint16) {
	c := &f.SYNCookies
	retransKnown := rt.why == "" && rt.first.reply != nil
	noRetrans := retransKnown && len(rt.retrans) == 0
	switch {
	case noRetrans:
		c.Evidence = append(c.Evidence, fmt.Sprintf("no SYN-ACK retransmission within %s: no state kept for the half-open connection", fmtMS(millis(rt.watched))))
	case retransKnown:
		c.Evidence = append(c.Evidence, fmt.Sprintf("the SYN-ACK was retransmitted after %s: state kept for the half-open connection", fmtMS(millis(rt.retrans[0].Time.Sub(rt.first.reply.Time)))))
	}

	// A cookie is a function of the 4-tuple, the client's ISN, the minute
	// and the MSS class: on one 4-tuple with one client ISN it repeats,
	// and the MSS moves it by its class.
	repeats, encoded := false, false
	same := one.sameMSS(mss)
	for i := range same {
		for j := i + 1; j < len(same); j++ {
			if same[i].isn == same[j].isn {
				repeats = true
			}
		}
	}
	if repeats {
		c.Evidence = append(c.Evidence, "the ISN repeated on one 4-tuple for the same client ISN and MSS: no clock in it")
	}
	for i, a := range one.answers {
		if a.reply == nil || one.mss[i] != cookieMSS {
			continue
		}
		for j, b := range one.answers {
			if b.reply == nil || one.mss[j] != mss || (j != i-1 && j != i+1) {
				continue
			}
			d := int32(uint32(a.reply.Frame.TCP.Seq) - uint32(b.reply.Frame.TCP.Seq))
			if d != 0 && d >= -maxCookieShift && d <= maxCookieShift && !encoded {
				encoded = true
				c.Evidence = append(c.Evidence, fmt.Sprintf("offering MSS %d instead of %d moved the ISN by %d: the MSS is encoded in it", cookieMSS, mss, d))
			}
		}
	}

	switch {
	case rt.disturbed:
		c.Evidence = nil
		c.Why = rt.why
	case retransKnown && !noRetrans:
		c.InUse = ptr(false)
	case noRetrans || (repeats && encoded):
		c.InUse = ptr(true)
	default:
		c.Why = "retransmissions not watched: " + rt.why
	}
}

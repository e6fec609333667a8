package trace

import (
	"context"
	"fmt"
	"time"

	"synprobe/probe"
)

// reflect asks the reflector what each SYN family's probe looked like when
// it reached the target, and compares it with what was sent: the blind
// segment after the last router, seen from the far end. A change found
// there is attributed between the last router that quoted and the target.
func (t *tracer) reflect(ctx context.Context, r *Result) {
	rf := t.cfg.Reflector
	t.mu.Lock()
	var views []*walkView
	for _, w := range t.walks {
		if w.fam != FamilyConn && len(w.sent) > 0 {
			views = append(views, view(w))
		}
	}
	t.mu.Unlock()
	fs := &findings{list: r.Findings}
	seen := false
	for _, v := range views {
		w := v.w
		// The probe that reached the target: the first TTL at or beyond
		// it (or the last sent, when the target did not answer).
		ttl := v.lastTTL()
		if v.dest > 0 {
			ttl = v.dest
		}
		sent := w.sent[ttl]
		if sent == nil {
			continue
		}
		tsv, _, _ := sent.Frame.TCP.Timestamps()
		got, err := rf.Received(ctx, ReflectorQuery{Port: w.port, Since: w.firstSent().Add(-t.cfg.Wait), Until: sent.Time.Add(2 * t.cfg.Wait),
			ISN: w.frame.TCP.Seq, TSval: tsv, Payload: w.frame.TCP.Payload})
		if err != nil {
			r.Coverage = append(r.Coverage, fmt.Sprintf("reflector %s: %v", rf, err))
			return
		}
		seen = true
		last := v.lastRouter()
		wh := between(last, ttl, v.addrOr(last, t.p.Path().Source), t.cfg.Target.Addr())
		if len(got) == 0 {
			if w.expectTCP || w.fam == FamilyBadSum {
				fs.add(Drop.With(w.name), VerdictOf(Drop), wh, w.name, fmt.Sprintf("the reflector received no %s probe", w.name))
			}
			continue
		}
		rec := got[0].Frame
		q := quoteOf(&rec)
		for _, c := range Compare(&sent.Frame, w.sumValid, &q) {
			if c.Field == "ip.id" && rec.IP.ID&0xff00 == ipIDTag {
				continue // another TTL's probe, unchanged
			}
			k, ev, ok := kindOf(c)
			if !ok {
				continue
			}
			fs.add(k, VerdictOf(k), wh, w.name, ev+" (seen by the reflector)")
		}
	}
	r.Findings = fs.list
	if seen {
		r.Coverage = append(r.Coverage, fmt.Sprintf("the segment after the last router was seen by the reflector %s (what it received; what it sent is not compared yet)", rf))
	}
}

// quoteOf makes what a reflector received look like a full quote, for
// Compare.
func quoteOf(f *probe.Frame) probe.QuotedPacket {
	q := probe.QuotedPacket{IP: f.IP, TCP: f.TCP, Class: probe.QuoteFull, OptionsComplete: true, Checksum: f.Checksum}
	q.TCPLen = int(f.TCP.DataOffset)*4 + len(f.TCP.Payload)
	return q
}

// firstSent is when the walk's first probe left.
func (w *walk) firstSent() (first time.Time) {
	for _, s := range w.sent {
		if first.IsZero() || s.Time.Before(first) {
			first = s.Time
		}
	}
	return first
}

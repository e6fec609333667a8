package trace

import (
	"context"
	"fmt"

	"synprobe/probe"
)

// reflect asks the reflector what each SYN family's probe looked like when
// it reached the target, and compares it with what was sent: the blind
// segment after the last router, seen from the far end. A change found
// there is attributed between the last router and the target.
func (t *tracer) reflect(ctx context.Context, r *Result) {
	rf := t.cfg.Reflector
	t.mu.Lock()
	var walks []*walk
	for _, w := range t.walks {
		if w.name != "conn" && w.control != nil || len(w.sent) > 0 {
			walks = append(walks, w)
		}
	}
	t.mu.Unlock()
	fs := &findings{list: r.Findings}
	for _, w := range walks {
		var sent *probe.Sent
		last := 0
		for ttl, s := range w.sent {
			if ttl > last {
				last, sent = ttl, s
			}
		}
		if sent == nil {
			continue
		}
		tsv, _, _ := sent.Frame.TCP.Timestamps()
		got, err := rf.Received(ctx, ReflectorQuery{Port: w.sess.Remote().Port(), Since: sent.Time.Add(-t.cfg.Wait), Until: sent.Time.Add(2 * t.cfg.Wait),
			ISN: w.frame.TCP.Seq, TSval: tsv, Payload: w.frame.TCP.Payload})
		if err != nil {
			r.Coverage = append(r.Coverage, fmt.Sprintf("reflector %s: %v", rf, err))
			return
		}
		if len(got) == 0 {
			continue
		}
		q := quoteOf(&got[0].Frame)
		for _, c := range Compare(&sent.Frame, w.sumValid, &q) {
			if c.Field == "ip.id" {
				continue // the reflector saw another TTL's probe
			}
			k, ev, ok := kindOf(c)
			if !ok {
				continue
			}
			fs.add(k, VerdictOf(k), Where{AfterHop: last - 1, AtHop: last}, w.name, ev+" (seen by the reflector)")
		}
	}
	r.Findings = fs.list
}

// quoteOf makes what a reflector received look like a full quote, for
// Compare.
func quoteOf(f *probe.Frame) probe.QuotedPacket {
	q := probe.QuotedPacket{IP: f.IP, TCP: f.TCP, Class: probe.QuoteFull, OptionsComplete: true, Checksum: f.Checksum}
	q.TCPLen = int(f.TCP.DataOffset)*4 + len(f.TCP.Payload)
	return q
}

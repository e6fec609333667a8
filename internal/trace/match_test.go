package trace

import (
	"testing"
	"time"

	"synprobe/probe"
)

// TestAddICMP: a quote names its TTL by the IP ID; a quote whose ID was
// rewritten goes to the lowest TTL still unanswered (arrival order); an
// answer for a TTL already answered is counted, not recorded again.
func TestAddICMP(t *testing.T) {
	w := newWalk(FamilySYN, "syn", nil, false)
	now := time.Now()
	for ttl := 1; ttl <= 3; ttl++ {
		w.sentAt[ttl] = now
	}
	reply := func(ttl int, id uint16) (*probe.Reply, probe.QuotedPacket) {
		sent := testSYN(t, ttl, func(f *probe.Frame) { f.IP.ID = id })
		q := testQuote(t, sent, -1, nil)
		r := &probe.Reply{Time: now.Add(time.Millisecond)}
		r.Frame.IP.Src = testHop1
		r.Frame.ICMP.Type = probe.ICMPv4TimeExceeded
		return r, *q
	}
	r, q := reply(2, ipIDTag|2)
	w.addICMP(r, q, nil, false)
	if h := w.hops[2]; h == nil || h.byOrder || h.kind != "time-exceeded" {
		t.Fatalf("TTL 2 by IP ID: got %+v, want a time-exceeded matched by ID", h)
	}
	r, q = reply(1, 0x1234)
	w.addICMP(r, q, nil, false)
	if h := w.hops[1]; h == nil || !h.byOrder {
		t.Fatalf("rewritten ID: got TTL 1 %+v, want matched by arrival order", h)
	}
	r, q = reply(3, 0x4321)
	w.addICMP(r, q, nil, false)
	if h := w.hops[3]; h == nil || !h.byOrder {
		t.Fatalf("rewritten ID: got TTL 3 %+v, want the next unanswered TTL", h)
	}
	r, q = reply(2, ipIDTag|2)
	w.addICMP(r, q, nil, false)
	if w.hops[2].answers != 2 {
		t.Errorf("a second answer for TTL 2: got %d answers, want 2", w.hops[2].answers)
	}
}

// TestAddICMPv6: IPv6 carries the hop limit in the TSval.
func TestAddICMPv6(t *testing.T) {
	w := newWalk(FamilySYN, "syn", nil, true)
	w.tsBase, w.hasTS = 0x1000, true
	now := time.Now()
	for ttl := 1; ttl <= 3; ttl++ {
		w.sentAt[ttl] = now
	}
	sent := testSYN(t, 3, func(f *probe.Frame) { f.TCP.Options[2] = probe.TimestampsOption(0x1000+3, 0) })
	q := testQuote(t, sent, -1, nil)
	r := &probe.Reply{Time: now}
	r.Frame.ICMP.Type = probe.ICMPv6TimeExceeded
	w.addICMP(r, *q, nil, true)
	if h := w.hops[3]; h == nil || h.byOrder {
		t.Errorf("TSval names TTL 3: got hops %v", w.hops)
	}
}

package trace

import (
	"testing"

	"synprobe/probe"
)

// FuzzCompareOptions: any two option areas compare without panic; an area
// compared with itself shows no change.
func FuzzCompareOptions(f *testing.F) {
	syn := []byte{2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 7, 0, 0, 0, 0, 1, 3, 3, 7}
	f.Add(syn, syn)
	f.Add(syn, []byte{2, 4, 4, 0xb0, 4, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 7})
	f.Add([]byte{253, 4, 0x53, 0x50, 34, 2}, []byte{1, 1, 1, 1, 34, 2})
	f.Add([]byte{8, 40}, []byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, sent, got []byte) {
		CompareOptions(sent, got)
		if cs := CompareOptions(sent, sent); len(cs) != 0 {
			t.Errorf("% x with itself: got changes %+v, want none", sent, cs)
		}
	})
}

// FuzzCompareQuote: whatever a router quotes, comparing it with the probe
// as sent never panics, and an unchanged full quote shows no change.
func FuzzCompareQuote(f *testing.F) {
	sent := testSYN(f, 2, nil)
	pkt, err := sent.EncodeIP()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pkt)
	f.Add(pkt[:28])
	f.Add(pkt[:40])
	f.Fuzz(func(t *testing.T, body []byte) {
		c := probe.ICMP{Type: probe.ICMPv4TimeExceeded, Body: body}
		q, err := c.QuotedPacket()
		if err != nil {
			return
		}
		Compare(&sent, true, &q)
		QuotedTTLNote(&q)
	})
}

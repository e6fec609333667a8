package trace

import (
	"net/netip"
	"testing"
	"time"

	"synprobe/probe"
)

// TestArrivalsAnswerAfterProbe: what the target's host sent on a walk's
// 4-tuple before the walk's probe arrived (an earlier trace's, on a source
// port that came round again) is not taken for the answer to it.
func TestArrivalsAnswerAfterProbe(t *testing.T) {
	client, target := netip.MustParseAddr("10.79.1.1"), netip.MustParseAddr("10.79.3.1")
	w := &walk{fam: FamilyConn, name: connNoConn, frame: probe.Frame{TCP: probe.TCP{Seq: 100, Ack: 5000, Flags: probe.ACK}}}
	in := func(age time.Duration) Reflected {
		return Reflected{Age: age, Frame: probe.Frame{IP: probe.IP{Src: client, Dst: target, ID: ipIDTag | 3},
			TCP: probe.TCP{SrcPort: 61000, DstPort: 8080, Seq: 100, Ack: 5000, Flags: probe.ACK}}}
	}
	rst := func(age time.Duration, seq probe.Seq) Reflected {
		return Reflected{Out: true, Age: age, Frame: probe.Frame{IP: probe.IP{Src: target, Dst: client},
			TCP: probe.TCP{SrcPort: 8080, DstPort: 61000, Seq: seq, Flags: probe.RST}}}
	}
	ans := &ReflectorAnswer{Segments: []Reflected{
		rst(3*time.Second, 4000), // an earlier trace's
		in(50 * time.Millisecond),
		rst(49*time.Millisecond, 5000),
		in(40 * time.Millisecond), // the probe again, at another TTL
		rst(39*time.Millisecond, 5000),
	}}
	got := (&tracer{}).arrivals([]*walk{w}, ans)[w]
	if got == nil {
		t.Fatal("the walk's probe was not found among the recorded segments")
	}
	if len(got.out) != 2 {
		t.Fatalf("got %d answers, want the 2 sent after the probe arrived", len(got.out))
	}
	for _, o := range got.out {
		if o.Frame.TCP.Seq != 5000 {
			t.Errorf("got the answer with seq %d (recorded %v before), want only seq 5000", uint32(o.Frame.TCP.Seq), o.Age)
		}
	}
}

package scenarios

import (
	"testing"

	"synprobe/conformance/script"
)

func TestLowersPathMTU(t *testing.T) {
	const open = "0 < S 0:0(0) win 1000 <mss 1460>\n+0 > S. 0:0(0) ack 1 <...>\n+0 < . 1:1(0) ack 1 win 1000\n"
	tests := []struct {
		name, line string
		ipv6       bool
		want       bool
		wantMTU    uint32
	}{
		{"frag needed", "+0 < icmp unreachable frag_needed mtu 1200 [1:1(0)]", false, true, 1200},
		{"frag needed by number", "+0 < icmp type_3 code_4 mtu 576 [1:1(0)]", false, true, 576},
		{"packet too big", "+0 < icmp packet_too_big mtu 1280 [1:1(0)]", true, true, 1280},
		{"host unreachable", "+0 < icmp unreachable host_unreachable [1:1(0)]", false, false, 0},
		{"frag needed, IPv6 target", "+0 < icmp unreachable frag_needed mtu 1200 [1:1(0)]", true, false, 0},
		{"no ICMP", "+0 < . 1:1(0) ack 1 win 1000", false, false, 0},
	}
	for _, tt := range tests {
		s, err := script.Parse("t.pkt", []byte(open+tt.line+"\n"))
		if err != nil {
			t.Fatalf("%s: parse: %v", tt.name, err)
		}
		ev, ok := lowersPathMTU(FromScript(s), tt.ipv6)
		if ok != tt.want || ev.mtu != tt.wantMTU || (ok && ev.line != 4) {
			t.Errorf("%s: got %+v, %v; want line 4, MTU %d: %v", tt.name, ev, ok, tt.wantMTU, tt.want)
		}
	}
}

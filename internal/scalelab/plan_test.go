package scalelab

import (
	"net/netip"
	"testing"
)

func TestPlanExpect(t *testing.T) {
	p, err := NewPlan(netip.MustParsePrefix("10.200.0.0/24"), []uint16{80, 443})
	if err != nil {
		t.Fatalf("NewPlan: %v", err)
	}
	tests := []struct {
		addr  string
		port  uint16
		state string
		code  uint8
		mss   uint16
	}{
		{"10.200.0.1", 80, "open", 0, 0},
		{"10.200.0.1", 81, "closed", 0, 0},
		{"10.200.0.64", 443, "open", 0, RewrittenMSS},
		{"10.200.0.96", 80, "open", 0, 0},
		{"10.200.0.128", 80, "closed", 0, 0},
		{"10.200.0.160", 80, "silent", 0, 0},
		{"10.200.0.192", 80, "filtered", 3, 0},
		{"10.200.0.255", 80, "filtered", 13, 0},
		{"10.201.0.1", 80, "silent", 0, 0},
	}
	for _, tt := range tests {
		e := p.Expect(netip.MustParseAddr(tt.addr), tt.port)
		if e.State != tt.state || e.ICMPCode != tt.code || e.MSS != tt.mss {
			t.Errorf("Expect(%s, %d) = %s code %d mss %d; want %s code %d mss %d", tt.addr, tt.port, e.State, e.ICMPCode, e.MSS, tt.state, tt.code, tt.mss)
		}
	}
}

func TestNewPlanRefuses(t *testing.T) {
	for _, s := range []string{"10.0.0.0/30", "2001:db8::/64", "10.0.0.0/7"} {
		if _, err := NewPlan(netip.MustParsePrefix(s), []uint16{80}); err == nil {
			t.Errorf("NewPlan(%s) succeeded, want an error", s)
		}
	}
}

package script

import (
	"strings"
	"testing"
)

func TestICMPTypeCode(t *testing.T) {
	tests := []struct {
		v6         bool
		typ, code  string
		wantT      uint8
		wantC      uint8
		errContain string
	}{
		{false, "echo_reply", "", 0, 0, ""},
		{false, "unreachable", "", 3, 0, ""},
		{false, "unreachable", "net_unreachable", 3, 0, ""},
		{false, "unreachable", "port_unreachable", 3, 3, ""},
		{false, "unreachable", "frag_needed", 3, 4, ""},
		{false, "unreachable", "precedence_cutoff", 3, 15, ""},
		{false, "source_quench", "", 4, 0, ""},
		{false, "redirect", "", 5, 0, ""},
		{false, "echo_request", "", 8, 0, ""},
		{false, "time_exceeded", "code_1", 11, 1, ""},
		{false, "parameter_problem", "", 12, 0, ""},
		{false, "address_mask_reply", "", 18, 0, ""},
		{false, "type_42", "code_7", 42, 7, ""},
		{false, "type_255", "code_255", 255, 255, ""},
		{true, "unreachable", "no_route", 1, 0, ""},
		{true, "unreachable", "admin_prohibited", 1, 1, ""},
		{true, "unreachable", "not_neighbour", 1, 2, ""},
		{true, "unreachable", "address_unreachable", 1, 3, ""},
		{true, "unreachable", "port_unreachable", 1, 4, ""},
		{true, "packet_too_big", "", 2, 0, ""},
		{true, "time_exceeded", "exceeded_frag_time", 3, 1, ""},
		{true, "parameter_problem", "unknown_option", 4, 2, ""},
		{true, "echo_request", "", 128, 0, ""},
		{true, "echo_reply", "", 129, 0, ""},
		{true, "type_135", "", 135, 0, ""},

		{true, "source_quench", "", 0, 0, `unknown ICMPv6 type "source_quench"`},
		{false, "packet_too_big", "", 0, 0, `unknown ICMPv4 type "packet_too_big"`},
		{false, "unreachable", "admin_prohibited", 0, 0, `unknown ICMPv4 code "admin_prohibited" for type "unreachable"`},
		{true, "unreachable", "frag_needed", 0, 0, `unknown ICMPv6 code "frag_needed" for type "unreachable"`},
		{false, "echo_request", "port_unreachable", 0, 0, `it has no named codes (write code_N)`},
		{false, "type_256", "", 0, 0, `"type_256": want type_N with N from 0 to 255`},
		{false, "type_", "", 0, 0, `want type_N`},
		{false, "type_+1", "", 0, 0, `want type_N`},
		{false, "unreachable", "code_-1", 0, 0, `want code_N`},
		{false, "", "", 0, 0, `unknown ICMPv4 type ""`},
	}
	for _, tt := range tests {
		gotT, gotC, err := ICMPTypeCode(tt.v6, tt.typ, tt.code)
		if tt.errContain != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errContain) {
				t.Errorf("ICMPTypeCode(%v, %q, %q) error %v, want one containing %q", tt.v6, tt.typ, tt.code, err, tt.errContain)
			}
			continue
		}
		if err != nil || gotT != tt.wantT || gotC != tt.wantC {
			t.Errorf("ICMPTypeCode(%v, %q, %q) = %d, %d, %v; want %d, %d", tt.v6, tt.typ, tt.code, gotT, gotC, err, tt.wantT, tt.wantC)
		}
	}
}

// TestICMPMTU: mtu goes only with IPv4 frag_needed or IPv6 packet_too_big.
func TestICMPMTU(t *testing.T) {
	tests := []struct {
		typ, code string
		ok        bool
		max       uint32
	}{
		{"unreachable", "frag_needed", true, 0xffff},
		{"type_3", "code_4", true, 0xffff},
		{"packet_too_big", "", true, 0xffffffff},
		{"packet_too_big", "code_0", true, 0xffffffff},
		{"type_2", "", true, 0xffffffff},
		{"packet_too_big", "code_1", false, 0},
		{"unreachable", "port_unreachable", false, 0},
		{"unreachable", "", false, 0},
	}
	for _, tt := range tests {
		ok, max := icmpMTUAllowed(tt.typ, tt.code)
		if ok != tt.ok || max != tt.max {
			t.Errorf("icmpMTUAllowed(%q, %q) = %v, %d; want %v, %d", tt.typ, tt.code, ok, max, tt.ok, tt.max)
		}
	}
}

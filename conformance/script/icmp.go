package script

import (
	"fmt"
	"strconv"
	"strings"
)

// icmpName is one entry of packetdrill's ICMP tables (icmp_packet.c).
type icmpName struct {
	name  string
	value uint8
	codes []icmpName // codes of a type; nil: only code_N (or none) names one
}

var icmpv4UnreachableCodes = []icmpName{
	{name: "net_unreachable", value: 0},
	{name: "host_unreachable", value: 1},
	{name: "protocol_unreachable", value: 2},
	{name: "port_unreachable", value: 3},
	{name: "frag_needed", value: 4},
	{name: "source_route_failed", value: 5},
	{name: "net_unknown", value: 6},
	{name: "host_unknown", value: 7},
	{name: "source_host_isolated", value: 8},
	{name: "net_prohibited", value: 9},
	{name: "host_prohibited", value: 10},
	{name: "net_unreachable_for_tos", value: 11},
	{name: "host_unreachable_for_tos", value: 12},
	{name: "packet_filtered", value: 13},
	{name: "precedence_violation", value: 14},
	{name: "precedence_cutoff", value: 15},
}

var icmpv4Types = []icmpName{
	{name: "echo_reply", value: 0},
	{name: "unreachable", value: 3, codes: icmpv4UnreachableCodes},
	{name: "source_quench", value: 4},
	{name: "redirect", value: 5},
	{name: "echo_request", value: 8},
	{name: "time_exceeded", value: 11},
	{name: "parameter_problem", value: 12},
	{name: "timestamp_request", value: 13},
	{name: "timestamp_reply", value: 14},
	{name: "information_request", value: 15},
	{name: "information_reply", value: 16},
	{name: "address_mask_request", value: 17},
	{name: "address_mask_reply", value: 18},
}

var icmpv6Types = []icmpName{
	{name: "unreachable", value: 1, codes: []icmpName{
		{name: "net_unreachable", value: 0},
		{name: "no_route", value: 0},
		{name: "admin_prohibited", value: 1},
		{name: "not_neighbour", value: 2},
		{name: "address_unreachable", value: 3},
		{name: "port_unreachable", value: 4},
	}},
	{name: "packet_too_big", value: 2},
	{name: "time_exceeded", value: 3, codes: []icmpName{
		{name: "exceeded_hop_limit", value: 0},
		{name: "exceeded_frag_time", value: 1},
	}},
	{name: "parameter_problem", value: 4, codes: []icmpName{
		{name: "header_field", value: 0},
		{name: "unknown_next_header", value: 1},
		{name: "unknown_option", value: 2},
	}},
	{name: "echo_request", value: 128},
	{name: "echo_reply", value: 129},
}

// ICMPTypeCode resolves an ICMP type and code written in a script to their
// values for IPv4 (ipv6 false) or IPv6. Names are packetdrill's
// ("unreachable", "port_unreachable", "packet_too_big", ...); "type_N" and
// "code_N" give a value directly (0 to 255). An empty code is 0, as in
// packetdrill.
func ICMPTypeCode(ipv6 bool, typ, code string) (uint8, uint8, error) {
	family := "ICMPv4"
	types := icmpv4Types
	if ipv6 {
		family, types = "ICMPv6", icmpv6Types
	}
	var t uint8
	var codes []icmpName
	if n, ok, err := icmpNumber(typ, "type_"); ok {
		if err != nil {
			return 0, 0, err
		}
		t = n
	} else {
		found := false
		for _, e := range types {
			if e.name == typ {
				t, codes, found = e.value, e.codes, true
				break
			}
		}
		if !found {
			return 0, 0, fmt.Errorf("unknown %s type %q (known: %s, or type_N)", family, typ, icmpNames(types))
		}
	}
	if code == "" {
		return t, 0, nil
	}
	if n, ok, err := icmpNumber(code, "code_"); ok {
		if err != nil {
			return 0, 0, err
		}
		return t, n, nil
	}
	for _, e := range codes {
		if e.name == code {
			return t, e.value, nil
		}
	}
	if codes == nil {
		return 0, 0, fmt.Errorf("unknown %s code %q for type %q: it has no named codes (write code_N)", family, code, typ)
	}
	return 0, 0, fmt.Errorf("unknown %s code %q for type %q (known: %s, or code_N)", family, code, typ, icmpNames(codes))
}

// icmpNumber parses "type_N" or "code_N". ok reports whether s has the
// prefix at all.
func icmpNumber(s, prefix string) (n uint8, ok bool, err error) {
	digits, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return 0, false, nil
	}
	v, perr := strconv.ParseUint(digits, 10, 8)
	if perr != nil || digits == "" || digits[0] == '+' {
		return 0, true, fmt.Errorf("%q: want %sN with N from 0 to 255", s, prefix)
	}
	return uint8(v), true, nil
}

func icmpNames(l []icmpName) string {
	names := make([]string, len(l))
	for i, e := range l {
		names[i] = e.name
	}
	return strings.Join(names, ", ")
}

// checkICMPNames reports why typ and code name nothing in either IPv4 or
// IPv6 (the family is known only when the script runs), or "".
func checkICMPNames(typ, code string) (typeErr, codeErr string) {
	_, _, e4 := ICMPTypeCode(false, typ, code)
	_, _, e6 := ICMPTypeCode(true, typ, code)
	if e4 == nil || e6 == nil {
		return "", ""
	}
	_, _, t4 := ICMPTypeCode(false, typ, "")
	_, _, t6 := ICMPTypeCode(true, typ, "")
	if t4 != nil && t6 != nil {
		if _, ok, err := icmpNumber(typ, "type_"); ok && err != nil {
			return "bad ICMP type " + err.Error(), ""
		}
		return fmt.Sprintf("unknown ICMP type '%s' (IPv4: %s; IPv6: %s; or type_N)", typ, icmpNames(icmpv4Types), icmpNames(icmpv6Types)), ""
	}
	if _, ok, err := icmpNumber(code, "code_"); ok && err != nil {
		return "", "bad ICMP code " + err.Error()
	}
	var known []string
	for _, types := range [][]icmpName{icmpv4Types, icmpv6Types} {
		for _, e := range types {
			if e.name == typ {
				for _, c := range e.codes {
					known = append(known, c.name)
				}
			}
		}
	}
	if len(known) == 0 {
		return "", fmt.Sprintf("ICMP type '%s' has no named codes: write code_N", typ)
	}
	return "", fmt.Sprintf("unknown ICMP code '%s' for type '%s' (known: %s; or code_N)", code, typ, strings.Join(dedup(known), ", "))
}

// icmpMTUAllowed reports whether an "mtu" fits typ and code in some family:
// IPv4 unreachable/frag_needed or IPv6 packet_too_big (code 0), as in
// packetdrill. max is the largest MTU that family can carry.
func icmpMTUAllowed(typ, code string) (ok bool, max uint32) {
	if t, c, err := ICMPTypeCode(true, typ, code); err == nil && t == 2 && c == 0 {
		ok, max = true, 0xffffffff
	}
	if t, c, err := ICMPTypeCode(false, typ, code); err == nil && t == 3 && c == 4 {
		if !ok {
			max = 0xffff
		}
		ok = true
	}
	return ok, max
}

func dedup(s []string) []string {
	seen := make(map[string]bool, len(s))
	out := s[:0]
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

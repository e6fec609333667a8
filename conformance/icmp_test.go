package conformance

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"synprobe/conformance/report"
	"synprobe/internal/lab"
	"synprobe/probe"
)

// testRouter is the address of the router routerPath puts on the path.
var testRouter = netip.MustParseAddr("10.79.2.253")

// routerPath is a path to a gVisor lab with one router before the target
// (at hop 1) and, before it, optionally a box that clamps the MSS of SYNs:
// a packet synprobe sends with TTL 1 expires at the router, which answers
// with ICMP time exceeded quoting it as it saw it (TTL 1, the MSS
// clamped), as Linux does.
type routerPath struct {
	clampMSS uint16 // 0: no box
	// quoteTCP cuts the quote to this many bytes of TCP (0: the whole
	// datagram, as Linux quotes; 8: RFC 792).
	quoteTCP int
	// from is the router's address; the target's makes the target's host
	// the one that answers.
	from netip.Addr
	// mtu, when set, makes the router answer "fragmentation needed" with
	// this MTU instead of time exceeded.
	mtu uint32
}

// onPath is what a frame of synprobe's looks like after the box.
func (rp routerPath) onPath(f *probe.Frame) {
	if rp.clampMSS == 0 || !f.Has(probe.LayerTCP) || f.TCP.Flags&probe.SYN == 0 {
		return
	}
	for i, o := range f.TCP.Options {
		if v, ok := o.MSS(); ok && v > rp.clampMSS {
			f.TCP.Options[i] = probe.MSSOption(rp.clampMSS)
		}
	}
}

func (rp routerPath) tamper() *lab.Tamper {
	expires := func(f *probe.Frame) bool { return f.Has(probe.LayerTCP) && f.IP.TTL <= 1 }
	return &lab.Tamper{
		ToTarget: func(b []byte) [][]byte {
			var f probe.Frame
			if err := f.Decode(b); err != nil || !f.Has(probe.LayerTCP) {
				return [][]byte{b}
			}
			if expires(&f) {
				return nil
			}
			rp.onPath(&f)
			out, err := f.Encode()
			if err != nil {
				panic(err)
			}
			return [][]byte{out}
		},
		Answer: func(b []byte) [][]byte {
			var f probe.Frame
			if err := f.Decode(b); err != nil || !expires(&f) {
				return nil
			}
			rp.onPath(&f)
			quoted, err := f.EncodeIP()
			if err != nil {
				panic(err)
			}
			if rp.quoteTCP > 0 {
				quoted = quoted[:f.IP.HeaderLen+rp.quoteTCP]
			}
			from := rp.from
			if !from.IsValid() {
				from = testRouter
			}
			icmp := probe.Frame{
				Ethernet: probe.Ethernet{Src: f.Ethernet.Dst, Dst: f.Ethernet.Src},
				IP:       probe.IP{Src: from, Dst: f.IP.Src, Protocol: probe.ProtocolICMP, TTL: 64},
				ICMP:     probe.ICMP{Type: probe.ICMPv4TimeExceeded, Body: quoted},
			}
			if rp.mtu > 0 {
				icmp.ICMP.Type, icmp.ICMP.Code, icmp.ICMP.Rest = probe.ICMPv4DestUnreachable, 4, rp.mtu
			}
			out, err := icmp.Encode()
			if err != nil {
				panic(err)
			}
			return [][]byte{out}
		},
	}
}

// TestICMPLines: "> icmp" lines check the ICMP's source, its own IP
// header and the segment it quotes, field by field, as far as the quote
// goes; "> none" ignores a router's ICMP unless the script expects one.
func TestICMPLines(t *testing.T) {
	const ttl1SYN = "0 < [ttl 1] S 0:0(0) win 65535 <mss 1460>\n"
	const handshake = "0 < S 0:0(0) win 65535 <mss 1460>\n+0 > S. 0:0(0) ack 1 <...>\n+0 < . 1:1(0) ack 1 win 65535\n"
	tests := []struct {
		name    string
		path    routerPath
		src     string
		verdict report.Verdict
		reason  string // in the result's reason
		note    string // in one of the result's notes
		cause   report.Cause
	}{
		{"clamped mss seen in the quote", routerPath{clampMSS: 1200}, ttl1SYN +
			"+0 > icmp time_exceeded from 10.79.2.253 [S 0:0(0) win * <mss 1200,...>]", report.Pass, "", "", ""},
		{"no box: the quote says mss 1460", routerPath{}, ttl1SYN +
			"+0 > icmp time_exceeded from 10.79.2.253 [S 0:0(0) win * <mss 1200,...>]", report.Fail,
			"quote from router 10.79.2.253: options: expected <mss 1200,...> got <mss 1460> (mss: expected mss 1200 got mss 1460)", "", ""},
		{"another router", routerPath{}, ttl1SYN +
			"+0 > icmp time_exceeded from 10.79.2.1", report.Fail, "icmp from: expected 10.79.2.1 got router 10.79.2.253", "", ""},
		{"type and code", routerPath{}, ttl1SYN +
			"+0 > icmp unreachable host_unreachable", report.Fail, "icmp: expected type 3 code 1, got type 11 code 0 from router 10.79.2.253", "", ""},
		{"mtu", routerPath{mtu: 1400}, ttl1SYN +
			"+0 > icmp unreachable frag_needed from 10.79.2.253 mtu 1400 [S 0:0(0) win 65535 <mss 1460>]", report.Pass, "", "", ""},
		{"mtu differs", routerPath{mtu: 1400}, ttl1SYN +
			"+0 > icmp unreachable frag_needed mtu 1280", report.Fail, "icmp mtu: expected 1280 got 1400 from router 10.79.2.253", "", ""},
		{"echoed segment", routerPath{}, ttl1SYN +
			"+0 > icmp time_exceeded [0:0(0)]", report.Pass, "", "", ""},
		{"echoed segment differs", routerPath{}, ttl1SYN +
			"+0 > icmp time_exceeded [1:1(0)]", report.Fail, "quote from router 10.79.2.253: seq: expected 1 (abs 1) got 0", "", ""},
		{"the ICMP's own ip header", routerPath{}, ttl1SYN +
			"+0 > [ttl 64, tos 0] icmp time_exceeded", report.Pass, "", "", ""},
		{"the ICMP's own ip header differs", routerPath{}, ttl1SYN +
			"+0 > [ttl 9] icmp time_exceeded", report.Fail, "icmp ip ttl: expected 9 got 64", "", ""},
		{"the quoted ip header", routerPath{}, ttl1SYN +
			"+0 > icmp time_exceeded [(ttl 1, df) S 0:0(0) win 65535 <mss 1460>]", report.Pass, "", "", ""},
		{"the quoted ip header differs", routerPath{}, ttl1SYN +
			"+0 > icmp time_exceeded [(ttl 2) S 0:0(0) win 65535 <mss 1460>]", report.Fail, "quote from router 10.79.2.253: ttl: expected 2 got 1", "", ""},
		{"quoted window differs", routerPath{}, ttl1SYN +
			"+0 > icmp time_exceeded [S 0:0(0) win 1000 <...>]", report.Fail, "quote from router 10.79.2.253: win: expected 1000 got 65535", "", ""},
		{"rfc 792 quote: what it lacks is noted, not judged", routerPath{quoteTCP: 8}, ttl1SYN +
			"+0 > icmp time_exceeded from 10.79.2.253 [S 0:0(0) win 65535 <mss 1200>]", report.Pass, "",
			"line 2: the quote from router 10.79.2.253 is too short to hold flags, win, len, options: not checked (rfc792 quote, 8 bytes of TCP)", ""},
		{"rfc 792 quote still holds seq", routerPath{quoteTCP: 8}, ttl1SYN +
			"+0 > icmp time_exceeded [S 5:5(0)]", report.Fail, "quote from router 10.79.2.253: seq: expected 5 got 0", "", ""},
		{"a later segment, relative numbers", routerPath{}, handshake +
			"+0 < [ttl 1] P. 1:11(10) ack 1 win 1000 \"helloworld\"\n" +
			"+0 > icmp time_exceeded from 10.79.2.253 [P. 1:11(10) ack 1 win 1000 \"hello\"]", report.Pass, "", "", ""},
		{"a later segment, ack differs", routerPath{}, handshake +
			"+0 < [ttl 1] . 1:1(0) ack 1 win 1000\n" +
			"+0 > icmp time_exceeded [. 1:1(0) ack 2 win 1000]", report.Fail, "quote from router 10.79.2.253: ack: expected 2", "", ""},
		{"silence despite a router's ICMP", routerPath{}, ttl1SYN +
			"+0.2 > none", report.Pass, "", "line 2: ignored ICMP type 11 code 0 from 10.79.2.253 quoting [ttl 1] S 0:0(0) win 65535 <mss 1460> (full quote, 24 bytes of TCP) during the silence", ""},
		{"silence before an expected ICMP", routerPath{}, ttl1SYN +
			"+0.2 > none\n+0 > icmp time_exceeded", report.Fail, "got an ICMP error from router 10.79.2.253 at", "", ""},
		{"silence broken by an ICMP error from the target's address (a firewall there)", routerPath{from: lab.TargetAddr4}, ttl1SYN +
			"+0.2 > none", report.Skip, "answered instead of the target's TCP stack", "", report.CausePathICMP},
		{"a router answers where the stack should", routerPath{}, ttl1SYN +
			"+0 > S. 0:0(0) ack 1 <...>", report.Skip, "ICMP type 11 code 0 from 10.79.2.253 answered instead of the target's TCP stack", "", report.CausePathICMP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := runTampered(t, tt.path.tamper(), time.Second, mustParse(t, "icmp.pkt", tt.src))
			if res.Verdict != tt.verdict || !strings.Contains(res.Reason, tt.reason) || res.Cause != tt.cause && tt.cause != "" {
				t.Errorf("got %s %q (cause %q), want %s with %q\n%s", res.Verdict, res.Reason, res.Cause, tt.verdict, tt.reason, dump(res))
			}
			if tt.note != "" && !containsNote(res.Notes, tt.note) {
				t.Errorf("notes %q, want one with %q", res.Notes, tt.note)
			}
		})
	}
}

func containsNote(notes []string, want string) bool {
	for _, n := range notes {
		if strings.Contains(n, want) {
			return true
		}
	}
	return false
}

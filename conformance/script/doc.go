// Package script parses synprobe's scripts: packetdrill's packet-line
// language, so that packetdrill users feel at home and published
// packetdrill scripts that need only a listening target parse unchanged,
// plus a few extensions for testing a remote black box. Parse turns a
// script into a Script (see ast.go); nothing here sends a packet.
//
// # The packetdrill language
//
// A script is header options, then timed events, one per line:
//
//	--tolerance_usecs=10000           // header options come first
//	`./set-sysctls.sh`                // shell commands: recorded, never run
//	0    socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
//	+0   < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>
//	+0   > S. 0:0(0) ack 1 <...>
//	+.1  < . 1:1(0) ack 1 win 257
//	+0   accept(3, ..., ...) = 4
//	+0~+.04 > . 1:1(0) ack 1
//
// Direction is seen from the target: "<" is a segment synprobe injects,
// ">" one it expects. Sequence numbers follow packetdrill: SYN lines are
// absolute, every other line is relative to the two ISNs.
//
// Comments are "// ..." and "/* ... */" (which may span lines). "#" is not
// a comment. packetdrill is token-based; synprobe is line-based, for
// precise error positions: an event is one line, continued onto the next
// lines while a parenthesis, bracket, brace or option list "<...>" is
// open, or inside a /* */ comment. Event.Text is the event's text with
// comments removed and every gap written as one space.
//
// Header options are "--name=value" or "--name" lines before the first
// event; values may be quoted ("--tolerance_percent=\"12.5\""). synprobe
// honours --tolerance_usecs, --tolerance_percent (0 to 100), --ip_version
// (ipv4, ipv6, ipv4-mapped-ipv6, which is 4 on the wire), --mss (see
// Config) and --define (symbols, below). packetdrill's other options are
// accepted and listed in Script.Ignored with the reason; an unknown option
// is an error.
//
// Times are absolute ("0", "0.100", ".1": seconds from the start),
// relative ("+0", "+.01": from the previous event), "*" (any time) or
// ranges ("0.1~0.2", "+0~+.04"). "*" and ranges are for outbound packet
// lines only. A system call that blocks is written "+0...0.100": it
// returns at the end time, which counts from the same point as the start.
// Absolute times may not go backwards.
//
// Packet lines are
//
//	TIME DIR [ip_info] FLAGS start:end(len) [ack N] [win N] [urg N] [<options>]
//
// in that order. FLAGS are letters of "FSRP.UEWA" (A is AccECN's AE) or
// one AccECN digit 0-7 standing for the AE, CWR and ECE bits ("S.5"), or
// "-" for none. end must equal start+len. Inbound lines need "win". The
// option list is "<...>" (any options; outbound only) or options separated
// by commas: nop, eol, mss N, wscale N, sackOK, sack L:R L:R (blocks
// separated by spaces), TS val N ecr N, FO [cookie], FOEXP [cookie], md5
// DIGEST (hex, at most 16 bytes), ECN e1b N ceb N e0b N (AccECN, below).
// Without a list an outbound segment must carry no options. Inbound option
// lists must take a multiple of 4 bytes, as in packetdrill (there is no
// automatic padding). Numbers are decimal or
// 0x hex. ip_info is "[...]" or "(...)": noecn, ect0, ect1, ce, ect01
// (outbound only), tos 0xNN, ttl N, flowlabel 0xN.
//
// ICMP lines give a type, a code, an MTU and the quoted TCP segment, in
// that order, with packetdrill's names (or type_N and code_N):
//
//	+0 < icmp unreachable frag_needed mtu 1200 [1:1461(1460)]
//	+0 < icmp packet_too_big mtu 1280 [1:1461(1460)]
//
// The names are resolved for the family in use when the script runs (see
// ICMPTypeCode); Parse only checks that they exist in IPv4 or IPv6. IP
// information before "icmp" ("< [tos 0x10, ttl 9] icmp ...") is the ICMP
// message's own IP header: sent on "<" lines, checked on ">" lines.
//
// System call lines ("NAME(args) = result [ERRNO (note)]") describe what
// the target application does. synprobe never executes them. Shell
// commands in backquotes and %{ }% code blocks are parsed and listed in
// Script.Ignored; a timed one still takes its time, which is added to the
// next relative event so that the events after it keep their places.
//
// Valid packetdrill that a remote black box cannot honour parses to a
// Script whose Unsupported names the first such line, and the runner
// skips it: encapsulation prefixes ("ipv4 A > B :", gre, mpls), "encap
// psp", udp lines, explicit ports ("1234>8080"), ICMP echo or ICMP
// quoting a UDP packet.
//
// Symbols are packetdrill's: ParseConfig.Defines (-D NAME=VALUE on the
// command line) and "--define=NAME=VALUE" header lines, the former
// winning. A word of the script that names a symbol stands for its value,
// lexed as packetdrill's lexer does: an integer (strtol's decimal, 0x hex,
// 0 octal), a "string", a `command`, or else a word; keywords are never
// symbols. An upper-case word where a value is needed and no symbol is
// defined is an "undefined symbol" error.
//
// The AccECN option is "ECN e0b N [ceb N [e1b N]]" (kind 172) or "ECN e1b
// N [ceb N [e0b N]]" (kind 174), counters of 24 bits.
//
// Limits (ParseConfig): DefaultMaxSize bytes, DefaultMaxLineLength bytes
// a line, DefaultMaxEvents timed lines; each is one error.
//
// # synprobe's extensions
//
// Wildcards, on outbound lines: any value of a field, each independently.
//
//	+0 > S. 0:0(0) ack 1 win * <mss *,sackOK,TS val * ecr 100,nop,wscale *>
//	+0 > P. 1:*(*) ack 1 urg *      // any payload length: end and len both *
//	+0 > S. 0:0(0) ack 1 <FO *,nop,nop>  // any Fast Open cookie
//	+0 > [ttl *, id *] . 1:1(0) ack 1
//
// Silence: nothing of this connection may arrive until the line's time.
// It takes nothing else. ICMP errors from a router (any source but the
// target) do not break it, unless the next packet line expects ICMP ("> icmp
// ..."): the runner notes them. An ICMP error from the target does break
// it, as any packet the target sends breaks a packetdrill script.
//
//	+0.5 > none
//
// Options then any, on outbound lines and quoted segments: the listed
// options first, in order; any options may follow.
//
//	+0 > S. 0:0(0) ack 1 <mss 1460,sackOK,...>
//
// Outbound ICMP lines: the source the ICMP error must come from (a router
// on the path), and the segment it quotes written like an outbound TCP
// line, with wildcards and IP information for the quoted IP header, as
// the router saw it:
//
//	+0   < [ttl 2] S 0:0(0) win 65535 <mss 1460>
//	+0   > icmp time_exceeded from 10.79.2.253 [S 0:0(0) win * <mss 1200,...>]
//	+0   > [ttl *] icmp time_exceeded from 10.79.2.253 [(ttl 1, tos 0x0) S 0:0(0) win 65535]
//	+0   > icmp unreachable frag_needed from 10.0.0.1 mtu 1400 [. 1:1461(1460) ack 1]
//	+0   > icmp time_exceeded from 10.79.2.253 [0:0(0)]
//
// The order is TYPE [CODE] [from ADDR] [mtu N] [QUOTE]. ADDR is IPv4 or
// IPv6 (or a symbol: "from ROUTER" with -D ROUTER=10.79.2.253). The quote
// is of a segment synprobe sent, so its numbers are written as on the "<"
// line that sent it: a SYN's sequence number as written (absolute), other
// sequence numbers relative to synprobe's ISN, acknowledgments relative
// to the target's ISN. The "[seq:end(len)]" form counts seq relative to
// synprobe's ISN always, as packetdrill's echoed sequence number on its
// "<" ICMP lines counts from the ISN of the side that sent the quoted
// segment (there, the kernel's: run_packet.c, map_inbound_icmp_tcp_packet).
// Fields left out of a quote are not checked (no options list means
// none, as on outbound lines); fields the router's quote is too short to
// hold are not checked either, and the runner notes them. "from" and
// quotes with flags are for ">" lines: synprobe sends ICMP from its own
// address, and "<" ICMP lines quote the target's segment as
// "[seq:end(len)]".
//
// Payload bytes, after the options (or after win/urg when there are none):
// a double-quoted string with Go escapes, or 0x hex. Inbound, len must be
// the payload's length; outbound, the payload is a prefix the segment must
// start with.
//
//	+0 < P. 1:19(18) ack 1 win 257 "GET / HTTP/1.0\r\n\r\n"
//	+0 < P. 1:5(4) ack 1 win 257 0xdeadbeef
//	+0 > P. 1:*(*) ack 19 "HTTP/1.0 200"
//
// Malformed segments, inbound only: a last "{...}" group of overrides
// separated by commas, applied after encoding: tcpsum 0xNNNN or tcpsum bad
// (the right checksum plus one), doff N (0-15), reserved 0xN (the four
// reserved bits, 0-15), ipsum 0xNNNN or ipsum bad, iplen N, ihl N, ipver N.
// A line with overrides is exempt from the option padding check.
//
//	+0 < . 1:1(0) ack 1 win 257 {tcpsum bad}
//	+0 < S 0:0(0) win 1000 <mss 1460> {doff 4, reserved 0x2}
//
// Raw options: "raw" and the option's exact bytes in hex, legal or not
// (any kind, any length byte). A list with a raw option is exempt from
// the padding check.
//
//	+0 < S 0:0(0) win 1000 <raw 0x0203ff,nop>
//
// More IP information, combined with commas: df, nodf, id N; and "*"
// values on outbound lines.
//
//	+0 < [ttl 64, df, id 7, ect0] S 0:0(0) win 1000
//
// Metadata, in "// @key value" comments anywhere in the script:
//
//	// @name listen-ack-gets-rst
//	// @description An ACK to a listener is answered with a RST
//	// @description whose seq is the ACK's ack.
//	// @rfc 9293 3.10.7.2
//	// @level MUST
//	// @needs open-port
//	// @tags listen rst
//
// @level is MUST, SHOULD or info. @description lines are joined with
// spaces; @needs and @tags add words. @name, @rfc and @level may be given
// once. Unknown keys and levels are errors.
package script

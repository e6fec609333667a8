package script

import (
	"errors"
	"strings"
	"testing"
)

// TestErrors checks every error the parser reports: its message, line and
// column (1-based, in characters).
func TestErrors(t *testing.T) {
	const syn = "0 < S 0:0(0) win 1\n" // a valid first line
	tests := []struct {
		name      string
		src       string
		line, col int
		msg       string // the whole message
	}{
		// Lexical.
		{"hash comment", "# hi\n" + syn, 1, 1, "'#' does not start a comment in packetdrill scripts: write // or /* */"},
		{"hash after event", syn + "+0 > S. 0:0(0) ack 1 # SYN-ACK", 2, 22, "'#' does not start a comment in packetdrill scripts: write // or /* */"},
		{"unterminated block comment", syn + "/* never\nclosed", 2, 1, "unterminated /* comment: it needs a closing */"},
		{"unterminated string", "0 < P. 1:2(1) ack 1 win 1 \"x\n", 1, 27, "unterminated string: it needs a closing \" on the same line"},
		{"unterminated command", syn + "+0 `echo", 2, 4, "unterminated `command`: it needs a closing `"},
		{"unterminated code", syn + "+0 %{ x = 1\n", 2, 4, "unterminated %{ code block: it needs a closing }%"},
		{"unterminated option value", "--local_ip=\"1.2.3.4\n" + syn, 1, 12, "unterminated string: it needs a closing \" on the same line"},

		// Statements.
		{"no events", "// nothing\n--mss=1000\n", 3, 1, "the script has no events: it needs at least one timed line such as '0 < S 0:0(0) win 65535'"},
		{"no time", "< S 0:0(0) win 1", 1, 1, "expected a time (such as '0', '0.100', '+0.1' or '*') to start an event, found '<' (every event starts with its time, e.g. '+0 < S 0:0(0) win 65535')"},
		{"word first", syn + "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3", 2, 1, "expected a time (such as '0', '0.100', '+0.1' or '*') to start an event, found 'socket'"},
		{"junk after command", "`x` y\n" + syn, 1, 5, "expected end of line after the `command`, found 'y'"},
		{"junk after timed code", syn + "+0 %{ x }% y", 2, 12, "expected end of line after the %{ }% code block, found 'y'"},
		{"no action", syn + "+0 win", 2, 4, "expected '<', '>', a system call, a `command` or a %{ }% block after the time, found 'win'"},
		{"no action at all", syn + "+0", 2, 3, "expected '<', '>', a system call, a `command` or a %{ }% block after the time, found end of line"},

		// Times.
		{"dot time", "1. < S 0:0(0) win 1", 1, 1, "'1.' is not a valid time: write '1' or '1.0'"},
		{"negative time", "-1 < S 0:0(0) win 1", 1, 1, "negative time: times count from the start of the script (absolute) or from the previous event ('+0.1')"},
		{"negative relative", syn + "+-1 > S. 0:0(0) ack 1", 2, 2, "negative time: times count from the start of the script (absolute) or from the previous event ('+0.1')"},
		{"not a number", syn + "+x > S. 0:0(0) ack 1", 2, 2, "expected a time in seconds (such as '0', '0.100' or '.1'), found 'x'"},
		{"hex time", "0x1 < S 0:0(0) win 1", 1, 1, "expected a time (such as '0', '0.100', '+0.1' or '*') to start an event, found '0x1'"},
		{"time too large", "10000000 < S 0:0(0) win 1", 1, 1, "time 10000000 is too large (at most 1000000 seconds)"},
		{"star inbound", "* < S 0:0(0) win 1", 1, 1, "time '*' (any time) is only for outbound packet lines ('>')"},
		{"star syscall", syn + "* close(3) = 0", 2, 1, "time '*' (any time) is only for outbound packet lines ('>')"},
		{"range inbound", "0~1 < S 0:0(0) win 1", 1, 1, "a time range is only for outbound packet lines ('>')"},
		{"range syscall", syn + "+0~+1 close(3) = 0", 2, 1, "a time range is only for outbound packet lines ('>')"},
		{"range command", syn + "+0~+1 `x`", 2, 1, "a time range is only for outbound packet lines ('>')"},
		{"range silence", syn + "+0~+1 > none", 2, 1, "'> none' (silence) needs a plain time: nothing may arrive until then"},
		{"star silence", syn + "* > none", 2, 1, "'> none' (silence) needs a plain time: nothing may arrive until then"},
		{"relative range half", syn + "+0~1 > S. 0:0(0) ack 1", 2, 4, "a relative time range needs '+' on both ends: '+0.1~+0.2'"},
		{"absolute range half", syn + "0~+1 > S. 0:0(0) ack 1", 2, 3, "an absolute time range ends with an absolute time: '0.1~0.2' (or write '+0.1~+0.2')"},
		{"range backwards", syn + "0.2~0.1 > S. 0:0(0) ack 1", 2, 5, "time range is backwards: it ends (0.1 s) before it starts (0.2 s)"},
		{"range end negative", syn + "0~-1 > S. 0:0(0) ack 1", 2, 3, "negative time: times count from the start of the script (absolute) or from the previous event ('+0.1')"},
		{"backwards", "0.2 < S 0:0(0) win 1\n0.1 > S. 0:0(0) ack 1", 2, 1, "time goes backwards: 0.1 s is earlier than 0.2 s, the time of the event on line 1"},
		{"backwards after relative", syn + "+0.5 > S. 0:0(0) ack 1\n0.3 < . 1:1(0) ack 1 win 1", 3, 1, "time goes backwards: 0.3 s is earlier than 0.5 s, the time of the event on line 2"},
		{"blocking range", syn + "0~1...2 read(4, ..., 1) = 1", 2, 4, "a blocking system call ('start...end') needs a plain start time"},
		{"blocking end plus", syn + "+0...+0.1 read(4, ..., 1) = 1", 2, 6, "the end of a blocking call is written without '+': '+0...0.100' (it is relative to the same point as the start)"},
		{"blocking backwards", syn + "+0.2...0.1 read(4, ..., 1) = 1", 2, 8, "the blocking call ends (0.1 s) before it starts (0.2 s)"},
		{"blocking packet", syn + "+0...0.1 > S. 0:0(0) ack 1", 2, 3, "'start...end' (a blocking call) is only for system calls"},
		{"blocking command", syn + "+0...0.1 `x`", 2, 3, "'start...end' (a blocking call) is only for system calls"},

		// Packet lines.
		{"none inbound", syn + "+0 < none", 2, 6, "'none' (silence) is only for outbound lines: '+0.5 > none'"},
		{"none extra", syn + "+0 > none ack 1", 2, 11, "expected end of line after '> none' (silence takes nothing else), found 'ack'"},
		{"none after ip info", syn + "+0 > [ttl 3] none", 2, 14, "'> none' (silence) takes nothing else: no IP information"},
		{"no flags", syn + "+0 <", 2, 5, "expected TCP flags (such as 'S', 'S.', '.', 'F.', 'R' or '-'), found end of line"},
		{"seq for flags", syn + "+0 < 1:1(0) win 1", 2, 6, "expected TCP flags (such as 'S', 'S.', '.', 'F.', 'R' or '-') before the sequence numbers, found '1:1(0)'"},
		{"bad flag", "0 < SX 0:0(0) win 1", 1, 6, "invalid TCP flag 'X' in 'SX' (flags are F S R P . U E W A, one AccECN digit 0-7, or - for none)"},
		{"C flag", "0 < S.C 0:0(0) win 1", 1, 7, "invalid TCP flag 'C' in 'S.C' (flags are F S R P . U E W A, one AccECN digit 0-7, or - for none)"},
		{"digit 8", "0 < S8 0:0(0) win 1", 1, 6, "invalid TCP flag '8' in 'S8' (flags are F S R P . U E W A, one AccECN digit 0-7, or - for none)"},
		{"non-ASCII flag", "0 < Sé 0:0(0) win 1", 1, 6, "invalid TCP flag 'é' in 'Sé' (flags are F S R P . U E W A, one AccECN digit 0-7, or - for none)"},
		{"dash with flags", "0 < S- 0:0(0) win 1", 1, 6, "'-' means no flags and stands alone: 'S-'"},
		{"flag twice", "0 < SS 0:0(0) win 1", 1, 6, "flag 'S' given twice in 'SS'"},
		{"ack flag twice", "0 < S.. 0:0(0) win 1", 1, 7, "flag '.' given twice in 'S..'"},
		{"AE twice", "0 < AA 0:0(0) win 1", 1, 6, "flag 'A' given twice in 'AA'"},
		{"two digits", "0 < S12 0:0(0) win 1", 1, 7, "only one AccECN digit is allowed in 'S12'"},
		{"digit after E", "0 < SE1 0:0(0) win 1", 1, 7, "AccECN digit '1' cannot be combined with 'E' in 'SE1': the digit sets AE, CWR and ECE"},
		{"W after digit", "0 < S1W 0:0(0) win 1", 1, 7, "'W' cannot be combined with the AccECN digit '1' in 'S1W': the digit sets AE, CWR and ECE"},
		{"no seq", "0 < S win 1", 1, 7, "expected the sequence numbers 'start:end(length)' after the flags, found 'win'"},
		{"no colon", "0 < S 0 0(0) win 1", 1, 9, "expected ':' between the start and end sequence numbers, found '0'"},
		{"no end", "0 < S 0:(0) win 1", 1, 9, "expected the end sequence number after ':', found '('"},
		{"no paren", "0 < S 0:0 win 1", 1, 11, "expected '(' before the payload length, found 'win'"},
		{"no length", "0 < S 0:0() win 1", 1, 11, "expected the payload length inside '( )', found ')'"},
		{"no close paren", "0 < S 0:0(0 win 1", 1, 13, "expected ')' after the payload length, found 'win'"},
		{"inconsistent", "0 < . 1:11(5) win 1", 1, 9, "inconsistent sequence numbers: 1:11(5): end should be 6"},
		{"seq too big", "0 < . 4294967296:4294967296(0) win 1", 1, 7, "sequence number 4294967296 is out of range (0 to 4294967295)"},
		{"length too big", "0 < . 1:70001(70000) win 1", 1, 15, "payload length 70000 is out of range (0 to 65535)"},
		{"star end only", syn + "+0 > . 1:*(5)", 2, 12, "write 'start:*(*)' for any payload length: end and length are both '*' or both numbers"},
		{"star length only", syn + "+0 > . 1:6(*)", 2, 10, "write 'start:*(*)' for any payload length: end and length are both '*' or both numbers"},
		{"star length inbound", syn + "+0 < . 1:*(*) win 1", 2, 10, "'start:*(*)' (any payload length) is only for outbound lines ('>'): synprobe must know what to send"},
		{"unknown after seq", "0 < S 0:0(0) wn 100", 1, 14, "expected 'ack', 'win', 'urg', '<' or end of line after the sequence numbers, found 'wn' (did you mean 'win'?)"},
		{"unknown after ack", "0 < . 1:1(0) ack 1 window 100", 1, 20, "expected 'win', 'urg', '<' or end of line after the ack number, found 'window'"},
		{"unknown after win", "0 < . 1:1(0) ack 1 win 100 urgent 1", 1, 28, "expected 'urg', '<' or end of line after the window, found 'urgent'"},
		{"unknown after urg", "0 < . 1:1(0) ack 1 win 100 urg 1 uhm", 1, 34, "expected '<' or end of line after the urgent pointer, found 'uhm'"},
		{"unknown after options", "0 < S 0:0(0) win 1 <nop,nop,nop,nop> x", 1, 38, "expected a payload (\"...\" or 0x...), '{' or end of line after the options, found 'x'"},
		{"unknown after payload", "0 < P. 1:2(1) win 1 \"x\" y", 1, 25, "expected '{' or end of line after the payload, found 'y'"},
		{"unknown after overrides", "0 < . 1:1(0) win 1 {tcpsum bad} z", 1, 33, "expected end of line after the overrides, found 'z'"},
		{"ack twice", "0 < . 1:1(0) ack 1 ack 2 win 1", 1, 20, "'ack' given twice"},
		{"order", "0 < S 0:0(0) win 100 ack 1", 1, 22, "'ack' must come before 'win' (packetdrill's order is ack, win, urg)"},
		{"urg before win", "0 < S 0:0(0) urg 1 win 100", 1, 20, "'win' must come before 'urg' (packetdrill's order is ack, win, urg)"},
		{"no win inbound", "0 < S 0:0(0) <mss 1460>", 1, 14, "inbound lines need 'win N' (the window synprobe sends) after the sequence numbers and ack, found '<'"},
		{"no win at all", "0 < . 1:1(0) ack 1", 1, 19, "inbound lines need 'win N' (the window synprobe sends) after the sequence numbers and ack, found end of line"},
		{"win value missing", "0 < S 0:0(0) win", 1, 17, "expected a number after 'win', found end of line"},
		{"win not a number", "0 < S 0:0(0) win big", 1, 18, "expected a number after 'win', found 'big'"},
		{"win too big", "0 < S 0:0(0) win 65536", 1, 18, "win 65536 is out of range (0 to 65535)"},
		{"ack too big", "0 < . 1:1(0) ack 0x100000000 win 1", 1, 18, "ack 0x100000000 is out of range (0 to 4294967295)"},
		{"urg too big", "0 < . 1:1(0) win 1 urg 65536", 1, 24, "urg 65536 is out of range (0 to 65535)"},
		{"ack star inbound", "0 < . 1:1(0) ack * win 1", 1, 18, "'ack *' is only for outbound lines ('>'): synprobe must know what to send"},
		{"win star inbound", "0 < . 1:1(0) win *", 1, 18, "'win *' is only for outbound lines ('>'): synprobe must know what to send"},
		{"padding", "0 < S 0:0(0) win 1 <mss 1460,nop>", 1, 20, "TCP options are not padded correctly: they take 5 bytes, not a multiple of 4 (add nop or eol)"},
		{"payload length inbound", "0 < P. 1:3(2) win 1 \"abc\"", 1, 21, "the payload is 3 bytes but the sequence numbers say 2: 1:3(2)"},
		{"payload prefix too long", syn + "+0 > P. 1:3(2) \"abc\"", 2, 16, "the payload prefix is 3 bytes, longer than the 2 the sequence numbers say: 1:3(2)"},
		{"payload bad escape", "0 < P. 1:2(1) win 1 \"\\q\"", 1, 21, "bad payload string '\"\\q\"': write it as a Go string (\\r, \\n, \\x00, \\\")"},
		{"payload odd hex", "0 < P. 1:2(1) win 1 0xabc", 1, 21, "payload '0xabc' has an odd number of hex digits"},

		// IP information.
		{"ip info not a word", "0 < [1] S 0:0(0) win 1", 1, 6, "expected IP information (noecn, ect0, ect1, ce, ect01, tos, ttl, flowlabel, id, df or nodf), found '1'"},
		{"ip info unknown", "0 < [ecn0] S 0:0(0) win 1", 1, 6, "unknown IP information 'ecn0' (noecn, ect0, ect1, ce, ect01, tos, ttl, flowlabel, id, df, nodf) (did you mean 'ect0'?)"},
		{"ecn twice", "0 < [ect0, ce] S 0:0(0) win 1", 1, 12, "'ce': ecn given twice in the IP information"},
		{"df twice", "0 < [df, nodf] S 0:0(0) win 1", 1, 10, "'nodf': df given twice in the IP information"},
		{"ttl twice", "0 < [ttl 1, ttl 2] S 0:0(0) win 1", 1, 13, "'ttl': ttl given twice in the IP information"},
		{"ect01 inbound", "0 < [ect01] S 0:0(0) win 1", 1, 6, "'ect01' (ECT(0) or ECT(1)) is only for outbound lines ('>'): synprobe must know what to send"},
		{"tos and ecn", "0 < [ect0, tos 0x10] S 0:0(0) win 1", 1, 6, "'tos' sets the ECN bits too: give either tos or 'ect0'"},
		{"ip info unclosed", "0 < [ect0 S 0:0(0) win 1", 1, 11, "expected ',' or ']' in the IP information, found 'S'"},
		{"ip info wrong closer", "0 < (ect0] S 0:0(0) win 1", 1, 10, "expected ',' or ')' in the IP information, found ']'"},
		{"ttl too big", "0 < [ttl 256] S 0:0(0) win 1", 1, 10, "ttl 256 is out of range (0 to 255)"},
		{"flowlabel too big", "0 < [flowlabel 0x100000] S 0:0(0) win 1", 1, 16, "flowlabel 0x100000 is out of range (0 to 1048575)"},
		{"id star inbound", "0 < [id *] S 0:0(0) win 1", 1, 9, "'id *' is only for outbound lines ('>'): synprobe must know what to send"},

		// ICMP.
		{"icmp no type", "0 < icmp", 1, 9, "expected an ICMP type (such as 'unreachable', 'packet_too_big' or 'type_3') after 'icmp', found end of line"},
		{"icmp unknown type", "0 < icmp unreach", 1, 10, "unknown ICMP type 'unreach' (IPv4: echo_reply, unreachable, source_quench, redirect, echo_request, time_exceeded, parameter_problem, timestamp_request, timestamp_reply, information_request, information_reply, address_mask_request, address_mask_reply; IPv6: unreachable, packet_too_big, time_exceeded, parameter_problem, echo_request, echo_reply; or type_N)"},
		{"icmp type number", "0 < icmp type_256", 1, 10, "bad ICMP type \"type_256\": want type_N with N from 0 to 255"},
		{"icmp unknown code", "0 < icmp time_exceeded too_slow", 1, 24, "unknown ICMP code 'too_slow' for type 'time_exceeded' (known: exceeded_hop_limit, exceeded_frag_time; or code_N)"},
		{"icmp code without names", "0 < icmp source_quench port_unreachable", 1, 24, "ICMP type 'source_quench' has no named codes: write code_N"},
		{"icmp code number", "0 < icmp unreachable code_x", 1, 22, "bad ICMP code \"code_x\": want code_N with N from 0 to 255"},
		{"icmp mtu wrong type", "0 < icmp unreachable port_unreachable mtu 1200", 1, 39, "'mtu' is only for 'unreachable frag_needed' (IPv4) or 'packet_too_big' (IPv6)"},
		{"icmp mtu v4 too big", "0 < icmp unreachable frag_needed mtu 65536", 1, 38, "mtu 65536 is out of range (0 to 65535)"},
		{"icmp quote unclosed", "0 < icmp unreachable [1:1(0)", 1, 29, "expected ']' after the quoted segment '[seq:end(len)]', found end of line"},
		{"icmp from inbound", "0 < icmp unreachable from 10.0.0.1", 1, 22, "'from' is only for outbound ICMP lines ('> icmp ... from ADDR'): synprobe sends its ICMP from its own address"},
		{"icmp from bad address", "0 > icmp time_exceeded from 10.0.0", 1, 29, "'10.0.0' after 'from' is not an IP address (write e.g. '10.0.0.1' or 'fd00::1')"},
		{"icmp from zone", "0 > icmp time_exceeded from fe80::1%eth0", 1, 29, "'fe80::1%eth0' after 'from' is not an IP address (write e.g. '10.0.0.1' or 'fd00::1')"},
		{"icmp from nothing", "0 > icmp time_exceeded from", 1, 28, "expected an address after 'from' (such as '10.0.0.1' or 'fd00::1'), found end of line"},
		{"icmp from undefined", "0 > icmp time_exceeded from ROUTER", 1, 29, "undefined symbol 'ROUTER': give its value with --define ROUTER=VALUE (packetdrill's -D) or a '--define=ROUTER=VALUE' line at the top of the script"},
		{"icmp from twice", "0 > icmp time_exceeded from 10.0.0.1 from 10.0.0.2", 1, 38, "expected 'mtu', '[quoted segment]' or end of line after the ICMP type and code, found 'from'"},
		{"icmp inbound quote with flags", "0 < icmp unreachable [S 0:0(0)]", 1, 23, "an inbound ICMP line quotes '[seq:end(len)]' (the segment of the target's it is about), found 'S': a quoted segment with flags is for outbound ICMP lines ('>')"},
		{"icmp quote junk", "0 > icmp time_exceeded [S 0:0(0) win 1 x]", 1, 40, "expected 'urg', '<' or ']' (the end of the quoted segment) after the window, found 'x'"},
		{"icmp quote with flags unclosed", "0 > icmp time_exceeded [S 0:0(0)", 1, 33, "expected ']' after the quoted segment, found end of line"},
		{"icmp quote overrides", "0 > icmp time_exceeded [S 0:0(0) {tcpsum bad}]", 1, 34, "'{...}' overrides are only for inbound lines ('<'): they damage what synprobe sends"},
		{"icmp quote then junk", "0 > icmp time_exceeded [S 0:0(0)] x", 1, 35, "expected end of line after the quoted segment, found 'x'"},
		{"icmp quote bad ip info", "0 > icmp time_exceeded [(tos 0x10, bogus) S 0:0(0)]", 1, 36, "unknown IP information 'bogus' (noecn, ect0, ect1, ce, ect01, tos, ttl, flowlabel, id, df, nodf)"},
		{"icmp quote no numbers", "0 > icmp time_exceeded [S]", 1, 26, "expected the sequence numbers 'start:end(length)' after the flags, found ']'"},
		{"icmp quote empty", "0 > icmp time_exceeded []", 1, 25, "expected TCP flags (such as 'S', 'S.', '.', 'F.', 'R' or '-'), found ']'"},
		{"icmp echoed star", "0 > icmp time_exceeded [1:*(*)]", 1, 27, "'[seq:end(len)]' takes numbers: for any length write the quoted segment with its flags, e.g. '[. 1:*(*)]'"},
		{"options then any inbound", "0 < S 0:0(0) win 1 <mss 1460,...>", 1, 30, "'...' after options (any options may follow) is only for outbound lines and quoted segments ('>'): synprobe must know what to send"},
		{"options then any not last", "0 > S. 0:0(0) ack 1 <mss 1460,...,nop>", 1, 34, "expected '>' after '...' (it ends the option list: '<mss 1200,...>'), found ','"},
		{"icmp quote inconsistent", "0 < icmp unreachable [1:5(0)]", 1, 25, "inconsistent sequence numbers: 1:5(0): end should be 1"},
		{"icmp junk", "0 < icmp unreachable port_unreachable [1:1(0)] x", 1, 48, "expected end of line after the quoted segment, found 'x'"},
		{"icmp junk before quote", "0 < icmp unreachable port_unreachable x", 1, 39, "expected 'mtu', '[seq:end(len)]' or end of line after the ICMP type and code, found 'x'"},

		// TCP options.
		{"any options inbound", "0 < S 0:0(0) win 1 <...>", 1, 20, "'<...>' (any options) is only for outbound lines ('>'): synprobe must know what to send"},
		{"any options unclosed", syn + "+0 > S. 0:0(0) ack 1 <...", 2, 26, "expected '>' after '<...', found end of line"},
		{"empty options", "0 < S 0:0(0) win 1 <>", 1, 21, "empty option list: leave it out (no options) or write '<...>' (any options, outbound lines)"},
		{"option not a word", "0 < S 0:0(0) win 1 <1460>", 1, 21, "expected a TCP option (nop, eol, mss, wscale, sackOK, sack, TS, FO, FOEXP, md5, ECN, raw), found '1460'"},
		{"unknown option", syn + "+0 > S. 0:0(0) ack 1 <mss 1460, wscal 7>", 2, 33, "unknown TCP option 'wscal' (options: nop, eol, mss, wscale, sackOK, sack, TS, FO, FOEXP, md5, ECN, raw) (did you mean 'wscale'?)"},
		{"option list unclosed", "0 < S 0:0(0) win 1 <mss 1460,\n+0 > S. 0:0(0) ack 1", 1, 30, "expected a TCP option (nop, eol, mss, wscale, sackOK, sack, TS, FO, FOEXP, md5, ECN, raw), found end of line"},
		{"option list no comma", "0 < S 0:0(0) win 1 <mss 1460 nop>", 1, 30, "expected ',' or '>' after the option, found 'nop'"},
		{"options too long", "0 < . 1:1(0) win 1 <sack 1:2 3:4 5:6 7:8 9:10>", 1, 20, "the TCP options take 42 bytes, more than the 40 a TCP header can hold"},
		{"mss too big", "0 < S 0:0(0) win 1 <mss 65536>", 1, 25, "mss 65536 is out of range (0 to 65535)"},
		{"mss star inbound", "0 < S 0:0(0) win 1 <mss *>", 1, 25, "'mss *' is only for outbound lines ('>'): synprobe must know what to send"},
		{"wscale too big", "0 < S 0:0(0) win 1 <wscale 256,nop>", 1, 28, "wscale 256 is out of range (0 to 255)"},
		{"sack no blocks", "0 < . 1:1(0) win 1 <sack>", 1, 25, "expected SACK blocks 'left:right' (separated by spaces) after 'sack', found '>'"},
		{"sack half block", "0 < . 1:1(0) win 1 <sack 1:>", 1, 28, "expected a number for SACK right edge, found '>'"},
		{"sack no colon", "0 < . 1:1(0) win 1 <sack 1 2>", 1, 28, "expected ':' between the edges of a SACK block, found '2'"},
		{"TS no val", "0 < S 0:0(0) win 1 <TS 1 ecr 0>", 1, 24, "expected 'val' after 'TS' ('TS val N ecr N'), found '1'"},
		{"TS no ecr", "0 < S 0:0(0) win 1 <TS val 1>", 1, 29, "expected 'ecr' after the TS value ('TS val N ecr N'), found '>'"},
		{"TS val not a number", "0 < S 0:0(0) win 1 <TS val x ecr 0>", 1, 28, "expected a number after 'val', found 'x'"},
		{"TS ecr star inbound", "0 < S. 0:0(0) win 1 <TS val 1 ecr *,nop,nop>", 1, 35, "'TS ecr *' is only for outbound lines ('>'): synprobe must know what to send"},
		{"FO star inbound", "0 < S 0:0(0) win 1 <FO *>", 1, 24, "'FO *' is only for outbound lines ('>'): synprobe must know what to send"},
		{"FO odd cookie", "0 < S 0:0(0) win 1 <FO abc>", 1, 24, "TCP Fast Open cookie 'abc' has an odd number of hex digits"},
		{"FO bad cookie", "0 < S 0:0(0) win 1 <FO zz>", 1, 24, "TCP Fast Open cookie 'zz' is not hex"},
		{"md5 missing", "0 < S 0:0(0) win 1 <md5>", 1, 24, "expected the MD5 digest in hex after 'md5', found '>'"},
		{"md5 too long", "0 < S 0:0(0) win 1 <md5 000102030405060708090a0b0c0d0e0f10>", 1, 25, "MD5 digest is 17 bytes, more than 16"},
		{"md5 not hex", "0 < S 0:0(0) win 1 <md5 xy>", 1, 25, "MD5 digest 'xy' is not hex"},
		{"raw missing", "0 < S 0:0(0) win 1 <raw>", 1, 24, "expected the option's bytes in hex after 'raw' ('raw 0x020405b4'), found '>'"},
		{"raw empty", "0 < S 0:0(0) win 1 <raw 0x>", 1, 25, "raw option needs at least one byte (its kind)"},
		{"raw odd", "0 < S 0:0(0) win 1 <raw 0x123>", 1, 25, "raw option bytes '0x123' has an odd number of hex digits"},

		// Overrides.
		{"overrides outbound", syn + "+0 > . 1:1(0) {tcpsum bad}", 2, 15, "'{...}' overrides are only for inbound lines ('<'): they damage what synprobe sends"},
		{"overrides empty", "0 < . 1:1(0) win 1 {}", 1, 21, "empty override list: leave it out or write e.g. '{tcpsum bad}'"},
		{"override not a word", "0 < . 1:1(0) win 1 {1}", 1, 21, "expected an override (tcpsum, ipsum, doff, reserved, iplen, ihl, ipver), found '1'"},
		{"override unknown", "0 < S 0:0(0) win 1 {tcpsum bad, dof 3}", 1, 33, "unknown override 'dof' (overrides: tcpsum, ipsum, doff, reserved, iplen, ihl, ipver) (did you mean 'doff'?)"},
		{"override twice", "0 < . 1:1(0) win 1 {doff 5, doff 6}", 1, 29, "'doff' given twice"},
		{"override no comma", "0 < . 1:1(0) win 1 {doff 5 ihl 4}", 1, 28, "expected ',' or '}' after the override, found 'ihl'"},
		{"override unclosed", "0 < . 1:1(0) win 1 {doff 5", 1, 27, "expected ',' or '}' after the override, found end of line"},
		{"doff too big", "0 < . 1:1(0) win 1 {doff 16}", 1, 26, "doff 16 is out of range (0 to 15)"},
		{"reserved too big", "0 < . 1:1(0) win 1 {reserved 0x10}", 1, 30, "reserved 0x10 is out of range (0 to 15)"},
		{"tcpsum not a number", "0 < . 1:1(0) win 1 {tcpsum good}", 1, 28, "expected a number for tcpsum, found 'good'"},
		{"ipsum too big", "0 < . 1:1(0) win 1 {ipsum 0x10000}", 1, 27, "ipsum 0x10000 is out of range (0 to 65535)"},

		// System calls.
		{"syscall unclosed", "0 read(4, ..., 1000\n0 close(3) = 0", 1, 7, "unclosed '(' in the arguments of read()"},
		{"syscall mismatched", "0 write(4, [1, 2), 2) = 2", 1, 17, "expected ']' to close '[', found ')'"},
		{"syscall no result", "0 read(4, ..., 1000)", 1, 21, "expected '=' and the result after read(...), found end of line"},
		{"syscall empty result", "0 read(4, ..., 1000) =", 1, 23, "expected the result after '=' (such as '0' or '-1 ECONNREFUSED (Connection refused)'), found end of line"},
		{"syscall result unbalanced", "0 read(4, ..., 1000) = 0 x)", 1, 27, "unbalanced ')' in the result of read()"},
		{"syscall result unclosed", "0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now", 1, 55, "unclosed '(' in the result of connect()"},

		// Header options.
		{"option after event", syn + "--mss=1000", 2, 1, "header option --mss must come before the first event (line 1)"},
		{"option then junk", "--mss=1000 x\n" + syn, 1, 12, "expected another --option or end of line, found 'x'"},
		{"unknown header option", "--tolerance_usec=1\n" + syn, 1, 1, "unknown option --tolerance_usec (did you mean --tolerance_usecs?)"},
		{"unknown header option no hint", "--frobnicate\n" + syn, 1, 1, "unknown option --frobnicate"},
		{"option needs value", "--mss\n" + syn, 1, 1, "--mss needs a value: --mss=1460"},
		{"option empty value", "--tolerance_usecs=\n" + syn, 1, 1, "--tolerance_usecs needs a value: --tolerance_usecs=4000"},
		{"tolerance_usecs bad", "--tolerance_usecs=-5\n" + syn, 1, 19, "--tolerance_usecs wants a whole number of microseconds (0 or more), found '-5'"},
		{"tolerance_percent bad", "--tolerance_percent=120\n" + syn, 1, 21, "--tolerance_percent wants a percentage from 0 to 100, found '120'"},
		{"tolerance_percent NaN", "--tolerance_percent=NaN\n" + syn, 1, 21, "--tolerance_percent wants a percentage from 0 to 100, found 'NaN'"},
		{"ip_version bad", "--ip_version=ipv5\n" + syn, 1, 14, "--ip_version wants ipv4, ipv6 or ipv4-mapped-ipv6, found 'ipv5'"},
		{"mss bad", "--mss=0\n" + syn, 1, 7, "--mss wants a segment size from 1 to 65535, found '0'"},
		{"option bad quote", "--mss=\"1\\q\"\n" + syn, 1, 7, "bad quoted value for --mss"},

		// Metadata.
		{"meta unknown", "// @author me\n" + syn, 1, 4, "unknown metadata key '@author' (keys: @name, @description, @rfc, @level, @needs, @tags)"},
		{"meta unknown hint", "// @tag x\n" + syn, 1, 4, "unknown metadata key '@tag' (keys: @name, @description, @rfc, @level, @needs, @tags) (did you mean @tags?)"},
		{"meta level", "// @level may\n" + syn, 1, 4, "@level wants MUST, SHOULD or info, found 'may'"},
		{"meta empty", "//@name\n" + syn, 1, 3, "@name needs a value"},
		{"meta twice", "// @name a\n// @name b\n" + syn, 2, 4, "@name given twice (first on line 1)"},
		{"meta rfc", "// @rfc RFC9293\n" + syn, 1, 4, "@rfc wants an RFC number and optionally a section, e.g. '@rfc 9293 3.10.7.2', found 'RFC9293'"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		if seen[tt.name] {
			t.Fatalf("duplicate test name %q", tt.name)
		}
		seen[tt.name] = true
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse("t.pkt", []byte(tt.src))
			if err == nil {
				t.Fatalf("%q: no error, want %q", tt.src, tt.msg)
			}
			if s != nil {
				t.Errorf("%q: a Script along with an error", tt.src)
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("%q: error %T is not a non-empty ErrorList", tt.src, err)
			}
			e := list[0]
			if e.Msg != tt.msg || e.Line != tt.line || e.Col != tt.col {
				t.Errorf("%q:\n got %d:%d: %s\nwant %d:%d: %s", tt.src, e.Line, e.Col, e.Msg, tt.line, tt.col, tt.msg)
			}
			if e.File != "t.pkt" {
				t.Errorf("File %q, want t.pkt", e.File)
			}
			lines := strings.Split(tt.src, "\n")
			if e.Line <= len(lines) && e.Source != lines[e.Line-1] {
				t.Errorf("Source %q, want line %d %q", e.Source, e.Line, lines[e.Line-1])
			}
		})
	}
}

package script

import (
	"net/netip"
	"time"

	"synprobe/probe"
)

// Script is a parsed script.
type Script struct {
	// File names the script in messages ("listen/ack.pkt").
	File string
	Meta Meta
	// Options are the --name=value lines at the top, in order.
	Options []HeaderOption
	// Config is what the options mean for synprobe.
	Config Config
	// Events are the timed lines, in order.
	Events []Event
	// Ignored lists what was parsed but will never run: shell commands in
	// backquotes, %{ }% code blocks, header options synprobe does not use.
	Ignored []Note
	// Unsupported, when set, says why the script cannot run against a
	// remote black box: it is valid packetdrill but needs what synprobe
	// cannot send or see ("not supported by a remote black box: an
	// encapsulation prefix ... (line 12)"). Events then lacks such lines.
	Unsupported string
}

// Length is how long the script runs when every reply comes at once: the
// time of its last event. Schedulers use it to start long scripts first.
func (s *Script) Length() time.Duration {
	var t time.Duration
	for _, ev := range s.Events {
		end := ev.Time.Start
		if ev.Time.Range || (ev.Syscall != nil && ev.Syscall.Blocking) {
			end = max(end, ev.Time.End)
		}
		switch ev.Time.Kind {
		case Absolute:
			t = max(t, end)
		case Relative:
			t += end
		}
	}
	return t
}

// Meta is the script's metadata, from "// @key value" comment lines.
type Meta struct {
	Name        string   // @name: defaults to the file name without .pkt
	Description string   // @description
	RFC         string   // @rfc, e.g. "9293 3.10.7.2"
	Level       string   // @level: "MUST", "SHOULD" or "info" (empty: MUST)
	Needs       []string // @needs: open-port, closed-port, app-closes-on-eof, ipv6, ...
	Tags        []string // @tags: free-form words (area, ...)
}

// HeaderOption is one --name[=value] line.
type HeaderOption struct {
	Line        int
	Name, Value string
}

// Config holds the header options synprobe honours.
type Config struct {
	// ToleranceUsecs and TolerancePercent set the timing tolerance:
	// max(ToleranceUsecs, TolerancePercent% of the gap to the previous
	// event). packetdrill's defaults: 4000 us and 12.5%.
	ToleranceUsecs   int
	TolerancePercent float64
	// IPVersion is 4 or 6 when the script demands one (--ip_version), else 0.
	IPVersion int
	// MSS, when set (--mss), is packetdrill's GSO size for inbound
	// segments. packetdrill hands each segment to the stack whole (one GSO
	// packet); synprobe sends it whole too (as IP fragments when the path
	// needs), so nothing is cut to it.
	MSS int
}

// Note is a line that was parsed but will not run, and why.
type Note struct {
	Line   int
	Text   string
	Reason string
}

// TimeKind is how an event's time is written.
type TimeKind uint8

const (
	// Absolute: "0.100", from the start of the script.
	Absolute TimeKind = iota
	// Relative: "+0.1", from the previous event.
	Relative
	// Any: "*", any time (outbound lines only).
	Any
)

// Time is an event's time. Ranges ("0.1~0.2", "+0~+0.04") set Range and
// End; a blocking system call ("+0...0.100") sets End too.
type Time struct {
	Kind  TimeKind
	Start time.Duration
	End   time.Duration
	Range bool
}

// Event is one timed line (or several lines joined, when parentheses or an
// option list span lines).
type Event struct {
	Line int    // the event's first line
	Text string // its source text, whitespace collapsed, comments removed
	Time Time
	// Exactly one of Packet and Syscall is set.
	Packet  *Packet
	Syscall *Syscall
}

// Direction is seen from the target, as in packetdrill.
type Direction uint8

const (
	// Inbound ("<"): a segment synprobe injects into the target.
	Inbound Direction = iota
	// Outbound (">"): a segment synprobe expects from the target.
	Outbound
)

// Num is a number in a packet line: unset (not written), a value, or "*"
// (any value: outbound lines only).
type Num struct {
	Set   bool
	Any   bool
	Value uint32
}

// Packet is a packet line.
type Packet struct {
	Dir Direction
	// Silence is "> none": no segment of this connection may arrive until
	// the event's time.
	Silence bool
	// ICMP is set for "< icmp ..." and "> icmp ..." lines; the TCP fields
	// below are then unused.
	ICMP *ICMP

	IP IPSpec

	Flags probe.Flags
	// AE is the AccECN flag ("A"), the lowest reserved bit.
	AE bool
	// Seq is the start sequence number; End and Len as written
	// ("1:1001(1000)"). LenAny is "start:*(*)": any payload length
	// (outbound lines only).
	Seq, End, Len uint32
	LenAny        bool
	Ack           Num
	Win           Num
	Urg           Num
	Options       OptionList
	// Payload is the data, when given as a quoted string or 0x hex: sent
	// on inbound lines (Len must match), a prefix to match on outbound
	// lines. Without it inbound data is zeros and outbound data unchecked.
	Payload []byte
	// Overrides rewrite header fields after encoding ("{tcpsum bad}"):
	// inbound lines only.
	Overrides []probe.Override
	// Reserved is "{reserved 0xN}" (0 to 15, inbound lines only): the four
	// reserved bits of the TCP header (probe.TCP.Reserved) to send. AE is
	// the lowest of them: send Reserved | 1 when AE is set.
	Reserved uint8
}

// OptionListKind says whether a packet line lists options.
type OptionListKind uint8

const (
	// NoOptions: no list written; outbound, the segment must carry none.
	NoOptions OptionListKind = iota
	// AnyOptions: "<...>"; outbound only, options not checked.
	AnyOptions
	// Listed: "<mss 1460,nop,...>", checked in order kind by kind.
	Listed
)

// OptionList is the options of a packet line.
type OptionList struct {
	Kind OptionListKind
	List []OptionSpec
	// More is a trailing "..." after listed options ("<mss 1200,...>",
	// outbound lines only): the segment's options start with List, and
	// any may follow.
	More bool
}

// OptionSpec is one option of a list. Option holds the concrete option
// (what an inbound line sends); the Any fields mark wildcards ("mss *",
// "wscale *", "TS val * ecr *") that outbound lines accept any value for.
type OptionSpec struct {
	Option probe.Option
	// AnyValue: "mss *", "wscale *", "FO *" (any cookie).
	AnyValue bool
	// AnyVal, AnyEcr: "TS val * ecr *".
	AnyVal, AnyEcr bool
}

// ECN is an IP ECN expectation or setting.
type ECN uint8

const (
	ECNUnset ECN = iota
	ECNNotECT
	ECNECT0
	ECNECT1
	ECNCE
	// ECNECT01: either ECT(0) or ECT(1) (outbound only).
	ECNECT01
)

// IPSpec is the bracketed IP information of a packet line, packetdrill's
// "[ect0]", "[tos 0x10]", "[ttl 64]", "[flowlabel 0x1]" and synprobe's
// additions, comma-separated: "[ttl 64, df, id 7]" ("nodf" for DF clear).
type IPSpec struct {
	ECN       ECN
	TOS       Num
	TTL       Num
	FlowLabel Num
	ID        Num
	// DF is Set with Value 1 for "df", Value 0 for "nodf".
	DF Num
}

// ICMP is an ICMP line: "< icmp unreachable port_unreachable [1:1(0)]",
// "> icmp time_exceeded from 10.0.0.1 [S 0:0(0) win * <mss 1200,...>]".
// The Packet's IPSpec applies to the ICMP message's own IP header: sent
// on "<" lines, checked on ">" lines.
type ICMP struct {
	// Type and Code are packetdrill's names ("unreachable",
	// "port_unreachable", or "type_3", "code_1"); they are resolved for
	// IPv4 or IPv6 when the script runs (see ICMPTypeCode).
	Type, Code string
	// From is the source the ICMP message must come from ("from ADDR",
	// outbound lines only): a router on the path. Invalid when not
	// written (any source).
	From netip.Addr
	MTU  Num
	// Echoed is the quoted segment "[seq:end(len)]", when written.
	Echoed *EchoedSegment
	// Quote is the quoted segment written like an outbound TCP line
	// ("[S 0:0(0) win * <mss 1200,...>]", outbound ICMP lines only), with
	// its wildcards: unset fields match anything. Its IP holds the quoted
	// IP header's expectations ("[(ttl 1, tos 0x10) S 0:0(0)]"). At most
	// one of Echoed and Quote is set.
	Quote *Packet
}

// EchoedSegment is the TCP segment an ICMP line quotes.
type EchoedSegment struct {
	Seq, End, Len uint32
}

// Syscall is a system call line. synprobe never runs it: it describes what
// the target application does.
type Syscall struct {
	Name string
	Args string // as written, between the parentheses
	// Result is what follows "=", as written ("0", "-1 ECONNREFUSED (...)").
	Result string
	// Blocking is set for "start...end" times.
	Blocking bool
}

// AppActs reports whether the call is one the target application must
// perform for the next expectations to come (it writes, reads, closes or
// shuts down): an unmet expectation after it is the application's doing,
// not the stack's.
func (s *Syscall) AppActs() bool {
	switch s.Name {
	case "write", "writev", "send", "sendto", "sendmsg", "sendfile", "splice",
		"read", "readv", "recv", "recvfrom", "recvmsg",
		"close", "shutdown":
		return true
	}
	return false
}

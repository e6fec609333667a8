package trace

import (
	"net/netip"
	"strings"

	"synprobe/conformance/report"
)

// Kind names what a finding says the path does. Kinds with a detail are
// written "kind(detail)": option-stripped(ts), drop(syndata).
type Kind string

// Finding kinds (TRACE.md, "Finding kinds").
const (
	MSSClamp         Kind = "mss-clamp"
	MSSRaise         Kind = "mss-raise"
	MSSAdded         Kind = "mss-added"
	OptionStripped   Kind = "option-stripped" // (ts|sack|ws|unknown|tfo)
	ECNFlagsCleared  Kind = "ecn-flags-cleared"
	ECNBleached      Kind = "ecn-bleached"
	DSCPRewrite      Kind = "dscp-rewrite"
	IPIDRewrite      Kind = "ipid-rewrite"
	WindowRewrite    Kind = "window-rewrite"
	SeqTranslation   Kind = "seq-translation"
	NAT              Kind = "nat"
	NATLeak          Kind = "nat-leak"
	Drop             Kind = "drop" // (syndata|exotic|badsum|out-of-window|no-connection)
	ChecksumFixed    Kind = "checksum-fixed"
	TerminatingProxy Kind = "terminating-proxy"
	SYNProxy         Kind = "syn-proxy"
	// Unobserved: no change seen, but the target's answer shows a symptom
	// of one in the blind segment after the last quoting router.
	Unobserved Kind = "unobserved"

	// Kinds beyond TRACE.md's table, for changes it does not name.

	// OptionModified: an option's value changed, or options were added
	// or reordered, other than the MSS (option-modified(ts|ws|...)).
	OptionModified Kind = "option-modified"
	// HeaderRewrite: another header field changed (header-rewrite(flags),
	// (df), (urgent), ...).
	HeaderRewrite Kind = "header-rewrite"
	// PayloadRewrite: the payload was changed or cut.
	PayloadRewrite Kind = "payload-rewrite"
	// ChecksumBroken: a segment left a hop with an invalid TCP checksum
	// (fail: the target drops it).
	ChecksumBroken Kind = "checksum-broken"
)

// With returns the kind with a detail: OptionStripped.With("ts").
func (k Kind) With(detail string) Kind { return k + "(" + Kind(detail) + ")" }

// Base returns the kind without its detail.
func (k Kind) Base() Kind {
	if i := strings.IndexByte(string(k), '('); i >= 0 {
		return k[:i]
	}
	return k
}

// Detail returns what is in the parentheses, or "".
func (k Kind) Detail() string {
	s := string(k)
	i := strings.IndexByte(s, '(')
	if i < 0 || !strings.HasSuffix(s, ")") {
		return ""
	}
	return s[i+1 : len(s)-1]
}

// Where says where on the path a finding was made. Hops count from 1 (the
// first router); the target is the last hop.
type Where struct {
	// AfterHop is the last hop that saw the segment unchanged (0: the
	// change was made before hop 1, at or next to this host).
	AfterHop int `json:"after_hop"`
	// AtHop is the first hop that saw the change (0 when none did: blind).
	AtHop int `json:"at_hop,omitempty"`
	// Between are the addresses of AfterHop and AtHop (either may be
	// invalid: this host, a silent hop).
	Between []netip.Addr `json:"between,omitempty"`
	// Blind: the change happened after the last hop that quoted, where
	// only the target (or a reflector) sees.
	Blind bool `json:"blind,omitempty"`
	// Reflector: the change or drop was seen by the reflector on the
	// target host, in the segment after hop AfterHop that no router
	// quotes.
	Reflector bool `json:"reflector,omitempty"`
	// Reverse: seen on the way back (what the reflector's host sent
	// against what arrived here), somewhere between the target and this
	// host: nothing quotes the reverse path.
	Reverse bool `json:"reverse,omitempty"`
}

// Finding is one thing the path does to TCP.
type Finding struct {
	Kind    Kind           `json:"kind"`
	Verdict report.Verdict `json:"verdict"`
	Where   Where          `json:"where"`
	// Probes are the probe families that showed it.
	Probes []string `json:"probes"`
	// Evidence says what was seen, one line each: "MSS 1460 -> 1200".
	Evidence []string `json:"evidence"`
}

// VerdictOf is the path verdict a kind earns (TRACE.md): info for the
// common and harmless, warn for what loses a TCP feature or changes who
// answers. Fail is decided per finding (a feature stripped mid-connection,
// a checksum left invalid, translation of one direction only).
func VerdictOf(k Kind) report.Verdict {
	switch k.Base() {
	case MSSClamp, MSSAdded, DSCPRewrite, IPIDRewrite, NAT, Unobserved:
		return report.Info
	case ChecksumBroken:
		return report.Fail
	}
	return report.Warn
}

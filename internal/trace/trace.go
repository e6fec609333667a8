package trace

import (
	"context"
	"net/netip"
	"time"

	"synprobe/conformance/report"
	"synprobe/probe"
)

// Family is a probe family: one 5-tuple and one ISN walked over the TTLs.
type Family string

// The probe families (TRACE.md, "Probes sent per hop").
const (
	FamilySYN     Family = "syn"     // P1: a SYN with Linux's options
	FamilyAlt     Family = "alt"     // P1': the same SYN to a closed port (where the host answers)
	FamilyECN     Family = "ecn"     // P2: SYN|ECE|CWR, DSCP AF11
	FamilyExotic  Family = "exotic"  // P3: P1 plus a TFO cookie request and an RFC 6994 option
	FamilySYNData Family = "syndata" // P4: P1 plus 16 bytes of data
	FamilyBadSum  Family = "badsum"  // P5: P1 with a wrong checksum
	FamilyConn    Family = "conn"    // P6: walks inside and outside one connection
)

// Families lists every family in the order a full trace sends them.
var Families = []Family{FamilySYN, FamilyAlt, FamilyECN, FamilyExotic, FamilySYNData, FamilyBadSum, FamilyConn}

// QuickFamilies are what --path-check auto sends alongside the suite.
var QuickFamilies = []Family{FamilySYN, FamilyAlt}

// Config says what to trace.
type Config struct {
	Target netip.AddrPort
	// ClosedPort is a closed port of the target; AltPort one expected to
	// be closed and not intercepted (0: ClosedPort+1, or Target port+2).
	ClosedPort, AltPort uint16
	Families            []Family // nil: all
	FirstHop, MaxHops   int      // defaults 1 and 30
	Tries               int      // probes per TTL, default 2
	Wait                time.Duration
	// Rate caps the probes per second that can reach the target (SYNs
	// that may elicit a SYN-ACK or RST); probes that expire before the
	// target do not count.
	Rate float64
	// Pace, if set, replaces the Rate pacer: it is called before each
	// probe that can reach the target (the path check passes the
	// conformance runner's, so that the suite and the trace share one
	// rate).
	Pace func(context.Context) error
	// Reflector is a cooperating endpoint on the target host (synprobe
	// reflect, --reflector H:P); nil: none. With one, what the target
	// received is compared with what was sent, which covers the blind
	// segment after the last router.
	Reflector Reflector
}

// Reflector asks a cooperating endpoint (synprobe reflect) what it
// recorded. NewReflectorClient makes one from package reflector's client;
// the trace only asks it questions.
type Reflector interface {
	// Received returns the segments the reflector recorded that match q,
	// and what its host sent back on their connections.
	Received(ctx context.Context, q ReflectorQuery) (*ReflectorAnswer, error)
	// String names the reflector for the report ("10.79.3.1:9001").
	String() string
}

// ReflectorQuery names the segments of a trace: the port they went to,
// how long ago, and what identifies them across NAT and seq translation.
type ReflectorQuery struct {
	Port uint16
	// Within is how far back to look, measured by the reflector on its own
	// clock (the two hosts' clocks are never compared): the trace's own
	// duration and a margin.
	Within time.Duration
	// Seq, TSval and Payloads are the keys: a segment whose seq, TSval or
	// payload is one of them is selected.
	Seq      []probe.Seq
	TSval    []uint32
	Payloads [][]byte
}

// ReflectorAnswer is what a reflector recorded.
type ReflectorAnswer struct {
	// Segments are the selected segments, oldest first.
	Segments []Reflected
	// KernelDrops and Overwritten count captures the reflector lost and
	// records it overwrote; Truncated is set when it answered only the
	// newest. With any of them, a segment it did not record may be its own
	// loss, not the path's.
	KernelDrops, Overwritten uint64
	Truncated                bool
}

// Reflected is a segment as the reflector recorded it: arrived (Out false)
// or sent by the target's host (Out true).
type Reflected struct {
	Out bool
	// Age is how long before the reflector's answer it was recorded (the
	// reflector's clock measures it).
	Age time.Duration
	// Frame is the IP header and the TCP header with options, as
	// captured; the payload is only its length and digest.
	Frame         probe.Frame
	PayloadLen    int
	PayloadSHA256 [32]byte
	// Checksum is the TCP checksum's status as the reflector found it.
	Checksum probe.ChecksumStatus
}

// Result is what a trace found.
type Result struct {
	Target   string    `json:"target"`
	Source   string    `json:"source"`
	Probes   []Probe   `json:"probes"`
	Findings []Finding `json:"findings"`
	// Coverage says what could not be seen, one line each.
	Coverage []string `json:"coverage"`
	// Verdict is the worst verdict of the findings (pass when none).
	Verdict report.Verdict `json:"verdict"`
	// DurationMS is how long the trace took.
	DurationMS float64       `json:"duration_ms"`
	Duration   time.Duration `json:"-"`
	// Via is the interface the probes left on.
	Via string `json:"via,omitempty"`
}

// Probe is one family's walk.
type Probe struct {
	Family Family `json:"family"`
	// Sent is the probe as sent, in packetdrill notation with IP fields.
	Sent string `json:"sent"`
	// Port is the target port the family went to.
	Port        uint16       `json:"port"`
	Hops        []Hop        `json:"hops"`
	Destination *Destination `json:"destination,omitempty"`
}

// Hop is what came back for one TTL.
type Hop struct {
	TTL   int        `json:"ttl"`
	From  netip.Addr `json:"from,omitzero"`
	RTTus float64    `json:"rtt_us,omitempty"`
	// Reply: time-exceeded, unreachable, syn-ack, rst or none.
	Reply string `json:"reply"`
	Quote *Quote `json:"quote,omitempty"`
	// Changes are those first seen at this hop.
	Changes []Change `json:"changes"`
	// Notes say what else is odd about the answer (a quoted TTL other
	// than 1, a TTL matched by arrival order).
	Notes []string `json:"notes,omitempty"`
}

// Quote describes a quoted packet.
type Quote struct {
	Class string `json:"class"` // full, partial, rfc792
	Bytes int    `json:"bytes"`
	// Unchecked names what the quote lacks (options, payload, checksum).
	Unchecked []string `json:"unchecked,omitempty"`
}

// Change is one field of a quote (or of what the reflector received)
// that differs from what was sent.
type Change struct {
	// Field: tcp.option.mss, tcp.option.ts, tcp.flags.ece, ip.dscp, ...
	Field string `json:"field"`
	Sent  string `json:"sent"`
	Got   string `json:"got"`
	// Kind: modified, removed, nop-replaced, added or translated.
	Kind string `json:"kind"`
}

// Destination is what the target's answer says.
type Destination struct {
	Hop        int      `json:"hop"`
	Reply      string   `json:"reply"`
	IPTTL      int      `json:"ip_ttl"`
	Inferences []string `json:"inferences"`
}

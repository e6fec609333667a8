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
	// Reflector is a cooperating endpoint on the target host (synprobe
	// reflect, --reflector H:P); nil: none. With one, what the target
	// received is compared with what was sent, which covers the blind
	// segment after the last router.
	Reflector Reflector
}

// Reflector asks a cooperating endpoint (synprobe reflect) what it
// received. The integration fills it from package reflector's client; the
// trace only asks it questions.
type Reflector interface {
	// Received returns the segments the reflector recorded that match q.
	Received(ctx context.Context, q ReflectorQuery) ([]Reflected, error)
	// String names the reflector for the report ("10.79.3.1:9999").
	String() string
}

// ReflectorQuery names the segments of one probe family: the port they
// went to, when, and what identifies them across NAT and seq translation.
type ReflectorQuery struct {
	Port         uint16
	Since, Until time.Time
	ISN          probe.Seq
	TSval        uint32 // with IPv6 the TTL is added to it
	Payload      []byte
}

// Reflected is a segment as the reflector received it (IP header and TCP
// segment, decoded).
type Reflected struct {
	Time  time.Time
	Frame probe.Frame
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
	Reply   string   `json:"reply"`
	Quote   *Quote   `json:"quote,omitempty"`
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

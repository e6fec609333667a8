package fingerprint

import (
	"context"
	"net/netip"
	"time"
)

// Config says what to measure and how gently.
type Config struct {
	// Target is an open port of the host.
	Target netip.AddrPort
	// ClosedPort is a port of the same host with no listener; 0 if none is
	// known (the RSTs are then drawn from the open port by bare ACKs).
	ClosedPort uint16
	// Pace is called before every SYN sent to the target (the audit's
	// per-target SYN pacer, shared with the scenarios); nil: no pacing.
	Pace func(context.Context) error
	// Timeout is how long to wait for each expected reply (default 1s).
	Timeout time.Duration
}

// DefaultTimeout is the wait for each expected reply.
const DefaultTimeout = time.Second

// Fingerprint is what the target's TCP stack is like: numbers, with units
// in the field names, and for every value that could not be measured a
// "why". It judges nothing.
//
// Pointers are nil when a value was not measured; the section's Why says
// why. A nil pointer in a section without a Why means the reply lacked the
// thing (a SYN-ACK without a window scale option, say).
type Fingerprint struct {
	Target     string  `json:"target"`
	DurationMS float64 `json:"duration_ms"`
	// SYNs is how many SYNs the measurement sent.
	SYNs int `json:"syns_sent"`

	TTL  TTL  `json:"ttl"`
	DF   DF   `json:"df"`
	IPID IPID `json:"ip_id"`
	// SYNACK is the answer to a SYN with the options of a current Linux.
	SYNACK SYNACK `json:"syn_ack"`
	// Nmap is the answer to each of nmap's six SEQ probes.
	Nmap       Nmap       `json:"nmap_seq"`
	ISN        ISN        `json:"isn"`
	Timestamps Timestamps `json:"timestamps"`
	ECN        Support    `json:"ecn"`
	SACK       Support    `json:"sack"`
	FastOpen   Support    `json:"fast_open"`
	// Retransmission is the SYN-ACK retransmission schedule.
	Retransmission Retransmission `json:"syn_ack_retransmission"`
	SYNCookies     SYNCookies     `json:"syn_cookies"`
	ChallengeACK   ChallengeACK   `json:"challenge_ack"`

	// Notes are facts about the measurement itself (local drops, ports).
	Notes []string `json:"notes,omitempty"`
}

// TTL is the IPv4 time to live (IPv6 hop limit) of the target's replies.
type TTL struct {
	// SYNACK is the TTL the SYN-ACK arrived with; Initial the nearest of
	// 32, 64, 128 and 255 at or above it, and Hops the difference.
	SYNACK  *int `json:"syn_ack,omitempty"`
	Initial *int `json:"initial,omitempty"`
	Hops    *int `json:"hops,omitempty"`
	// RST is the TTL a RST arrived with; RSTInitial its initial guess
	// (some stacks send RSTs with another TTL).
	RST        *int   `json:"rst,omitempty"`
	RSTInitial *int   `json:"rst_initial,omitempty"`
	Why        string `json:"why,omitempty"`
}

// DF is the IPv4 don't-fragment bit on the target's replies.
type DF struct {
	SYNACK *bool  `json:"syn_ack,omitempty"`
	RST    *bool  `json:"rst,omitempty"`
	Why    string `json:"why,omitempty"`
}

// IPID is the IPv4 identification of the target's replies, by kind of
// reply: stacks treat them differently.
type IPID struct {
	// SYNACK: the SYN-ACKs of successive connections (nmap's six probes).
	SYNACK IPIDSeries `json:"syn_ack"`
	// RST: successive RSTs to bare ACKs.
	RST IPIDSeries `json:"rst"`
	// Connection: the segments of one established connection.
	Connection IPIDSeries `json:"connection"`
	Why        string     `json:"why,omitempty"`
}

// IPIDSeries is one series of IP IDs in arrival order and how it behaves:
// zero, constant, incrementing (StepMin..StepMax per reply) or random.
type IPIDSeries struct {
	Values    []uint16 `json:"values,omitempty"`
	Behaviour string   `json:"behaviour,omitempty"`
	StepMin   int      `json:"step_min,omitempty"`
	StepMax   int      `json:"step_max,omitempty"`
	Why       string   `json:"why,omitempty"`
}

// SYNACK is the answer to a SYN carrying what a current Linux offers (MSS
// for the path, SACK permitted, timestamps, window scale 7; window 64240).
type SYNACK struct {
	Window *int `json:"window,omitempty"`
	// WScale and MSS are nil when the SYN-ACK lacks the option.
	WScale *int `json:"window_scale,omitempty"`
	MSS    *int `json:"mss,omitempty"`
	// WScaleWhy says why the window scale is unknown, MSSWhy what the
	// path did to the MSS (--path-check).
	WScaleWhy string `json:"window_scale_why,omitempty"`
	MSSWhy    string `json:"mss_why,omitempty"`
	// Options are the SYN-ACK's options in packetdrill's notation, and in
	// nmap's.
	Options     string `json:"options,omitempty"`
	NmapOptions string `json:"nmap_options,omitempty"`
	Why         string `json:"why,omitempty"`
}

// Nmap is the answer to nmap's six SEQ probes, sent 100 ms apart or more
// from adjacent source ports.
type Nmap struct {
	Probes []NmapProbe `json:"probes"`
	// OPS and WIN are nmap's lines: "O1=M5B4ST11NW7%O2=...",
	// "W1=FE88%W2=..." (empty fields for probes without an answer).
	OPS string `json:"ops"`
	WIN string `json:"win"`
}

// NmapProbe is one SEQ probe and its SYN-ACK.
type NmapProbe struct {
	Probe int    `json:"probe"`
	Port  uint16 `json:"port,omitempty"`
	// Options in nmap's letters, and the window.
	Options string `json:"options,omitempty"`
	Window  *int   `json:"window,omitempty"`
	Why     string `json:"why,omitempty"`
}

// ISN is how the target picks initial sequence numbers.
type ISN struct {
	// OneTuple: SYNs on one 4-tuple, the target's state reset by a RST in
	// between, the same client ISN each time.
	OneTuple ISNOneTuple `json:"one_4tuple"`
	// Adjacent: the SYN-ACKs to nmap's six probes, from adjacent ports.
	Adjacent ISNAdjacent `json:"adjacent_ports"`
}

// ISNOneTuple is the ISN's growth on one 4-tuple over time.
type ISNOneTuple struct {
	Port    uint16      `json:"port,omitempty"`
	Samples []ISNSample `json:"samples,omitempty"`
	// RateHz is how fast the ISN grows (first sample to last, samples
	// with the same MSS), and IntervalRatesHz between successive ones.
	RateHz          *float64  `json:"rate_hz,omitempty"`
	IntervalRatesHz []float64 `json:"interval_rates_hz,omitempty"`
	Why             string    `json:"why,omitempty"`
}

// ISNSample is one SYN-ACK of the one-4-tuple series.
type ISNSample struct {
	ISN uint32 `json:"isn"`
	// AtMS is when the SYN-ACK arrived, from the first one.
	AtMS float64 `json:"at_ms"`
	// MSS is the MSS synprobe's SYN offered.
	MSS uint16 `json:"mss"`
}

// ISNAdjacent is how the ISNs of connections from adjacent source ports
// relate.
type ISNAdjacent struct {
	Ports []uint16 `json:"ports,omitempty"`
	ISNs  []uint32 `json:"isns,omitempty"`
	// Differences are between successive ISNs, the shorter way round the
	// sequence space (nmap's MOD_DIFF).
	Differences []uint32 `json:"differences,omitempty"`
	// RandomBits estimates the unpredictable bits between successive
	// ISNs (an upper bound; 32 is fully random).
	RandomBits *float64 `json:"random_bits,omitempty"`
	GCD        *uint32  `json:"gcd,omitempty"`
	Why        string   `json:"why,omitempty"`
}

// Timestamps is the target's RFC 7323 timestamp clock.
type Timestamps struct {
	// Answered says whether the SYN-ACK to an offered timestamps option
	// carried one.
	Answered *bool `json:"answered,omitempty"`
	// RateHz is the clock rate measured, RateFrom from what; NominalHz
	// the common rate it is within 5% of (0: none).
	RateHz    *float64 `json:"rate_hz,omitempty"`
	NominalHz float64  `json:"nominal_hz,omitempty"`
	RateFrom  string   `json:"rate_from,omitempty"`
	// RetransSameTSval says whether a retransmitted SYN-ACK carried the
	// first one's TSval again instead of the clock's current value.
	RetransSameTSval *bool `json:"retransmission_same_tsval,omitempty"`
	// PerTupleOffsets says whether different 4-tuples see different
	// clocks (a random offset per connection), judged from Compared
	// 4-tuples at nearly the same time; MaxOffsetTicks is the largest
	// distance of one from the reference clock.
	PerTupleOffsets *bool   `json:"per_4tuple_offsets,omitempty"`
	Compared        int     `json:"compared_4tuples,omitempty"`
	MaxOffsetTicks  float64 `json:"max_offset_ticks,omitempty"`
	// UptimeS is TSval/rate: the uptime the clock implies (a stack may
	// add an offset per host pair that no probe from one address can see,
	// as Linux since 4.12 and gVisor do); UptimeWhy says why it is
	// missing.
	UptimeS   *float64 `json:"implied_uptime_s,omitempty"`
	UptimeWhy string   `json:"uptime_why,omitempty"`
	// TSecr: of TSecrChecked SYN-ACKs, TSecrWrong did not echo the TSval
	// synprobe sent; TSecrExample shows the first.
	TSecrChecked int    `json:"tsecr_checked"`
	TSecrWrong   int    `json:"tsecr_wrong"`
	TSecrExample string `json:"tsecr_example,omitempty"`
	Why          string `json:"why,omitempty"`
}

// Support says whether the target took up an offered extension.
type Support struct {
	Supported *bool  `json:"supported,omitempty"`
	Detail    string `json:"detail,omitempty"`
	Why       string `json:"why,omitempty"`
}

// Retransmission is the SYN-ACK retransmission schedule: a SYN left
// unanswered, the arrival of each SYN-ACK.
type Retransmission struct {
	// AtMS are the arrival times of the retransmitted SYN-ACKs, from the
	// first SYN-ACK.
	AtMS []float64 `json:"at_ms"`
	// WaitedMS is how long synprobe watched after the first SYN-ACK.
	WaitedMS float64 `json:"waited_ms"`
	Why      string  `json:"why,omitempty"`
}

// SYNCookies says whether the target answered from a SYN cookie, inferred
// from the retransmission schedule and the ISNs of one 4-tuple.
type SYNCookies struct {
	InUse    *bool    `json:"in_use,omitempty"`
	Evidence []string `json:"evidence,omitempty"`
	Why      string   `json:"why,omitempty"`
}

// ChallengeACK is the RFC 5961 challenge-ACK rate limit: in-window RSTs
// with a sequence number one past the exact one, sent at a fixed interval
// on an established connection, and the challenge ACKs they drew.
type ChallengeACK struct {
	RSTs       int     `json:"rsts_sent"`
	IntervalMS float64 `json:"rst_interval_ms"`
	// SpanMS is from the first RST to the last.
	SpanMS float64 `json:"span_ms"`
	ACKs   int     `json:"challenge_acks"`
	// AtMS are the arrival times of the challenge ACKs, from the first RST.
	AtMS []float64 `json:"at_ms,omitempty"`
	// MinGapMS is the shortest time between two challenge ACKs.
	MinGapMS float64 `json:"min_gap_ms,omitempty"`
	// AliveAfter says whether the connection still answered afterwards.
	AliveAfter *bool  `json:"alive_after,omitempty"`
	Summary    string `json:"summary,omitempty"`
	Why        string `json:"why,omitempty"`
}

func ptr[T any](v T) *T { return &v }

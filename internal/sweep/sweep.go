package sweep

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"synprobe/internal/siphash"
)

// State is what a probe found.
type State string

// The states of a probe.
const (
	// Open: the target answered with a SYN-ACK.
	Open State = "open"
	// Closed: the target answered with a RST.
	Closed State = "closed"
	// Filtered: an ICMP destination unreachable came back.
	Filtered State = "filtered"
	// Silent: nothing came back, after every retry and the final wait.
	Silent State = "silent"
)

// Result is one classified (address, port): a line of the sweep's JSONL
// output, which --targets reads back (addr and port).
type Result struct {
	Addr  netip.Addr `json:"addr"`
	Port  uint16     `json:"port"`
	State State      `json:"state"`
	// ICMPType and ICMPCode are the ICMP error's, for Filtered; ICMPFrom
	// is the address that sent it when it is not Addr (a router).
	ICMPType *uint8     `json:"icmp_type,omitempty"`
	ICMPCode *uint8     `json:"icmp_code,omitempty"`
	ICMPFrom netip.Addr `json:"icmp_from,omitzero"`
	// The SYN-ACK's fingerprint fields, for Open: the IP TTL as received,
	// the window, the MSS and window scale options (absent when the
	// SYN-ACK had none) and the options in order (MSS Mnnn, SACK permitted
	// S, timestamps T, NOP N, window scale Wn, end of list E, others Kn).
	TTL     uint8   `json:"ttl,omitempty"`
	Window  *uint16 `json:"window,omitempty"`
	MSS     *uint16 `json:"mss,omitempty"`
	WScale  *uint8  `json:"wscale,omitempty"`
	Options *string `json:"options,omitempty"`
	// Attempt is the SYN the answer answers (1 = the first, 2 = the
	// first retry...): each attempt's SYN has its own ISN, so a late
	// answer to the first SYN still says 1. A Silent result has the
	// number of SYNs sent to the probe (0 for an on-link address that
	// did not answer ARP).
	Attempt int `json:"attempt"`
}

// Config is a sweep.
type Config struct {
	// Targets are IPv4 prefixes, disjoint (exclude.Set.Prefixes).
	Targets []netip.Prefix
	// Ports are the destination ports, each once.
	Ports []uint16
	// Rate is the send rate in probes per second.
	Rate int
	// Retries is how many more SYNs go to a probe that got no answer.
	Retries int
	// Wait is how long to wait for replies after each pass.
	Wait time.Duration
	// NetNS is the namespace to sweep from (0: this one); Interface and
	// Source narrow the path as in probe.PathOptions.
	NetNS     int
	Interface string
	Source    netip.Addr
	// Key keys the ISN hash; the zero Key means a random one.
	Key siphash.Key
	// Emit receives every result, from one goroutine, as soon as it is
	// known.
	Emit func(Result)
	// Progress, if set, is called about every ProgressEvery from another
	// goroutine.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// Progress is where a running sweep stands.
type Progress struct {
	Total   uint64        // probes (addresses times ports)
	Done    uint64        // classified
	Sent    uint64        // SYNs sent, retries included
	Pass    int           // 1 for the first send
	Elapsed time.Duration // since the first SYN
	Rate    float64       // SYNs per second so far
	ETA     time.Duration // estimate; 0 when unknown
	RxDrops uint64        // frames the receive socket dropped
	// LinkTxDrops and LinkRxDrops are the interface's drops so far.
	LinkTxDrops, LinkRxDrops uint64
	Finished                 bool
}

// Stats sum up a sweep.
type Stats struct {
	Total                          uint64
	Open, Closed, Filtered, Silent uint64
	Sent                           uint64
	// Retried counts probes that needed more than one SYN and were
	// answered: their results have Attempt > 1.
	Retried uint64
	// Invalid counts replies to the sweep's port that failed validation
	// (a wrong ACK or quoted ISN), Duplicates answers to a probe that was
	// already classified.
	Invalid, Duplicates uint64
	// RxDrops are the receive socket's drops (PACKET_STATISTICS);
	// LinkTxDrops and LinkRxDrops the interface's counters over the run.
	RxDrops                  uint64
	LinkTxDrops, LinkRxDrops uint64
	// SendTime is the time spent sending (all passes, without the waits);
	// Duration is the whole run.
	SendTime, Duration time.Duration
	SourcePort         uint16
	Interface          string
	NextHopMAC         string
	Notes              []string
}

// SendRate is the rate achieved while sending, in SYNs per second.
func (s Stats) SendRate() float64 {
	if s.SendTime <= 0 {
		return 0
	}
	return float64(s.Sent) / s.SendTime.Seconds()
}

// ErrNotSupported is returned where sweeping needs Linux.
var ErrNotSupported = errors.New("sweep: not supported on this platform (needs Linux AF_PACKET)")

// ParsePorts reads a port list: "80,443,8000-8100". Ports are returned
// sorted, each once; port 0 is refused.
func ParsePorts(s string) ([]uint16, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty port list")
	}
	var set [65536 / 64]uint64
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		lo, hi, isRange := strings.Cut(item, "-")
		a, err := parsePort(lo, item)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = parsePort(hi, item); err != nil {
				return nil, err
			}
			if b < a {
				return nil, fmt.Errorf("port range %q runs backwards", item)
			}
		}
		for p := int(a); p <= int(b); p++ {
			set[p/64] |= 1 << (p % 64)
		}
	}
	var out []uint16
	for p := 1; p < 65536; p++ {
		if set[p/64]&(1<<(p%64)) != 0 {
			out = append(out, uint16(p))
		}
	}
	return out, nil
}

func parsePort(s, item string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q in port list: ports are numbers from 1 to 65535", item)
	}
	return uint16(n), nil
}

// space numbers the probes: probe i is address i / len(ports) of the
// sorted targets and port i % len(ports).
type space struct {
	prefixes []netip.Prefix // sorted, disjoint, IPv4
	starts   []uint64       // index of each prefix's first address
	first    []uint32       // each prefix's first address
	nAddrs   uint64
	ports    []uint16
	portIdx  [65536]int32 // -1 for a port not swept
}

func newSpace(targets []netip.Prefix, ports []uint16) (*space, error) {
	s := &space{ports: ports}
	s.prefixes = slices.Clone(targets)
	for _, p := range s.prefixes {
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("target %s: sweep supports IPv4 only", p)
		}
	}
	slices.SortFunc(s.prefixes, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	for i, p := range s.prefixes {
		if i > 0 && s.prefixes[i-1].Overlaps(p) {
			return nil, fmt.Errorf("targets %s and %s overlap", s.prefixes[i-1], p)
		}
		s.starts = append(s.starts, s.nAddrs)
		s.first = append(s.first, u32(p.Addr()))
		s.nAddrs += 1 << (32 - p.Bits())
	}
	for i := range s.portIdx {
		s.portIdx[i] = -1
	}
	for i, p := range ports {
		s.portIdx[p] = int32(i)
	}
	return s, nil
}

func (s *space) total() uint64 { return s.nAddrs * uint64(len(s.ports)) }

// probe returns probe i's address (as a number) and port.
func (s *space) probe(i uint64) (uint32, uint16) {
	ai, pi := i/uint64(len(s.ports)), i%uint64(len(s.ports))
	k := sort.Search(len(s.starts), func(k int) bool { return s.starts[k] > ai }) - 1
	return s.first[k] + uint32(ai-s.starts[k]), s.ports[pi]
}

// index is the inverse of probe; ok is false for a probe not in the space.
func (s *space) index(addr uint32, port uint16) (uint64, bool) {
	pi := s.portIdx[port]
	if pi < 0 {
		return 0, false
	}
	k := sort.Search(len(s.first), func(k int) bool { return s.first[k] > addr }) - 1
	if k < 0 {
		return 0, false
	}
	off := uint64(addr - s.first[k])
	if off >= 1<<(32-s.prefixes[k].Bits()) {
		return 0, false
	}
	return (s.starts[k]+off)*uint64(len(s.ports)) + uint64(pi), true
}

func u32(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func addrOf(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// permutation walks 0..n-1 in a scrambled order: a full-period linear
// congruential generator modulo the next power of two, skipping values of
// n and above (fewer than half). Spreading the probes over the targets
// keeps any one of them from seeing a burst.
type permutation struct {
	n, mask, a, c, x uint64
	left             uint64 // values of the period not yet produced
}

func newPermutation(n, seed uint64) *permutation {
	m := uint64(1)
	for m < n {
		m <<= 1
	}
	// Hull-Dobell: c odd and a-1 divisible by 4 give the full period m.
	return &permutation{
		n:    n,
		mask: m - 1,
		a:    (seed<<2 | 1) & (m - 1),
		c:    (seed>>17 | 1) & (m - 1),
		x:    (seed >> 31) & (m - 1),
		left: m,
	}
}

// next returns the next probe index; ok is false after the last.
func (p *permutation) next() (i uint64, ok bool) {
	for p.left > 0 {
		p.left--
		v := p.x
		p.x = (p.a*p.x + p.c) & p.mask
		if v < p.n {
			return v, true
		}
	}
	return 0, false
}

// ISN is the ISN of the SYN from src:sport to dst:dport under key.
func ISN(key siphash.Key, src, dst uint32, sport, dport uint16) uint32 {
	var b [12]byte
	binary.BigEndian.PutUint32(b[0:], src)
	binary.BigEndian.PutUint32(b[4:], dst)
	binary.BigEndian.PutUint16(b[8:], sport)
	binary.BigEndian.PutUint16(b[10:], dport)
	return uint32(key.Sum64(b[:]))
}

package reflector

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"synprobe/probe"
)

// record is one captured segment as the store keeps it: the headers and
// what the payload was, never the payload.
type record struct {
	n          uint64
	time       time.Time
	dir        Direction
	header     []byte // IP and TCP headers as captured
	payloadLen int
	digest     [32]byte
	ipSum      probe.ChecksumStatus
	tcpSum     probe.ChecksumStatus

	// Keys, decoded once at capture.
	seq      probe.Seq
	tsval    uint32
	hasTS    bool
	src, dst netip.AddrPort
}

// maxHeaderLen bounds a record's header bytes: 60 bytes of IPv4 header or
// 40 of IPv6 (the filter passes no extension headers) and 60 of TCP.
const maxHeaderLen = 120

// errNotTCP is the cause of newRecord's errors for frames that are not a
// whole TCP segment's headers.
var errNotTCP = errors.New("not a TCP segment")

// newRecord makes a record of a captured Ethernet frame.
func newRecord(c probe.Capture, f *probe.Frame) (record, error) {
	if err := f.Decode(c.Data); err != nil {
		return record{}, err
	}
	if !f.Has(probe.LayerIP|probe.LayerTCP) || f.IP.IsFragment() {
		return record{}, errNotTCP
	}
	off := ipOffset(c.Data)
	hl := f.IP.HeaderLen + int(f.TCP.DataOffset)*4
	if off+hl > len(c.Data) || hl > maxHeaderLen {
		return record{}, fmt.Errorf("%w: %d bytes of headers", errNotTCP, hl)
	}
	r := record{
		time:       c.Time,
		dir:        In,
		header:     append([]byte(nil), c.Data[off:off+hl]...),
		payloadLen: len(f.TCP.Payload),
		digest:     sha256.Sum256(f.TCP.Payload),
		ipSum:      f.IPChecksum,
		tcpSum:     f.Checksum,
		seq:        f.TCP.Seq,
		src:        f.Src(),
		dst:        f.Dst(),
	}
	if c.Outgoing {
		r.dir = Out
	}
	if c.ChecksumPartial && r.tcpSum == probe.ChecksumInvalid {
		r.tcpSum = probe.ChecksumNotFinal
	}
	if f.Truncated {
		// The payload was cut by the snapshot length: its length is what
		// the IP header says, its digest is of the part captured.
		r.payloadLen = f.IP.TotalLength - hl
	}
	r.tsval, _, r.hasTS = f.TCP.Timestamps()
	return r, nil
}

// ipOffset is where the IP header starts in an Ethernet frame: after the
// header and up to two VLAN tags (as probe decodes them).
func ipOffset(data []byte) int {
	off := probe.EthernetHeaderLen
	for tags := 0; tags < 2 && len(data) >= off; tags++ {
		switch probe.EtherType(uint16(data[off-2])<<8 | uint16(data[off-1])) {
		case probe.EtherTypeVLAN, probe.EtherTypeQinQ, 0x9100: // 0x9100: pre-standard 802.1ad
			off += 4
		default:
			return off
		}
	}
	return off
}

// store is a bounded ring of records, oldest first, that expire.
type store struct {
	mu          sync.Mutex
	ring        []record
	head        int // index of the oldest record
	n           int // records kept
	next        uint64
	expiry      time.Duration
	overwritten uint64
}

func newStore(capacity int, expiry time.Duration) *store {
	return &store{ring: make([]record, capacity), expiry: expiry, next: 1}
}

// add keeps r, overwriting the oldest record when the ring is full.
func (s *store) add(r record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.n = s.next
	s.next++
	if s.n == len(s.ring) {
		s.ring[s.head] = r
		s.head = (s.head + 1) % len(s.ring)
		s.overwritten++
		return
	}
	s.ring[(s.head+s.n)%len(s.ring)] = r
	s.n++
}

// expire drops records older than the expiry; s.mu must be held.
func (s *store) expire(now time.Time) {
	cut := now.Add(-s.expiry)
	for s.n > 0 && s.ring[s.head].time.Before(cut) {
		s.ring[s.head] = record{} // let the header go
		s.head = (s.head + 1) % len(s.ring)
		s.n--
	}
}

// at returns the i-th oldest record; s.mu must be held.
func (s *store) at(i int) *record { return &s.ring[(s.head+i)%len(s.ring)] }

// found is a record selected by a request, and why.
type found struct {
	rec   record
	match Match
}

// storeStats describes the store at the time of an answer.
type storeStats struct {
	kept        int
	oldest      time.Time
	overwritten uint64
}

type tuple struct{ src, dst netip.AddrPort }

// find selects the records req asks for, oldest first; truncated is set
// when more than limit matched, and then the newest limit are returned.
func (s *store) find(now time.Time, req Request, limit int) (out []found, truncated bool, st storeStats) {
	seqs := make(map[probe.Seq]bool, len(req.Seq))
	for _, k := range req.Seq {
		seqs[k] = true
	}
	tsvals := make(map[uint32]bool, len(req.TSval))
	for _, k := range req.TSval {
		tsvals[k] = true
	}
	digests := make(map[[32]byte]bool, len(req.PayloadSHA256))
	for _, k := range req.PayloadSHA256 {
		digests[k] = true
	}
	all := req.keys() == 0

	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	st = storeStats{kept: s.n, overwritten: s.overwritten}
	if s.n > 0 {
		st.oldest = s.at(0).time
	}
	// The window's first record: records are in capture order, and so in
	// time order (the kernel's clock may step back; then a record or two
	// at the edge is missed, never one outside the window returned).
	first := 0
	if req.Within > 0 {
		cut := now.Add(-req.Within)
		for first < s.n && s.at(first).time.Before(cut) {
			first++
		}
	}
	matches := make([]Match, s.n-first)
	tuples := map[tuple]bool{}
	for i := first; i < s.n; i++ {
		r := s.at(i)
		var m Match
		if seqs[r.seq] {
			m |= MatchSeq
		}
		if r.hasTS && tsvals[r.tsval] {
			m |= MatchTSval
		}
		if r.payloadLen > 0 && digests[r.digest] {
			m |= MatchPayload
		}
		matches[i-first] = m
		if m != 0 && r.dir == In {
			// What the reflector's host sent back on this connection: the
			// reverse 4-tuple.
			tuples[tuple{src: r.dst, dst: r.src}] = true
		}
	}
	count := 0
	for i := first; i < s.n; i++ {
		r := s.at(i)
		if r.dir == Out && tuples[tuple{src: r.src, dst: r.dst}] {
			matches[i-first] |= MatchTuple
		}
		if all || matches[i-first] != 0 {
			count++
		}
	}
	skip := 0
	if count > limit {
		skip, truncated = count-limit, true
	}
	out = make([]found, 0, min(count, limit))
	for i := first; i < s.n; i++ {
		if m := matches[i-first]; all || m != 0 {
			if skip > 0 {
				skip--
				continue
			}
			out = append(out, found{rec: *s.at(i), match: m})
		}
	}
	return out, truncated, st
}

// len reports the records kept after expiry at now.
func (s *store) len(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	return s.n
}

package sweep

import (
	"encoding/binary"
	"fmt"
	"strings"

	"synprobe/internal/siphash"
)

// The SYN frame: Ethernet, IPv4 without options, TCP with Linux's SYN
// options (MSS, SACK permitted, timestamps, NOP, window scale), so that
// the SYN-ACK shows which of them the target (or a middlebox) keeps.
const (
	ethLen   = 14
	ipOff    = ethLen
	tcpOff   = ipOff + 20
	tcpLen   = 40
	frameLen = tcpOff + tcpLen

	synWindow = 64240
	synMSS    = 1460
	synTTL    = 64
	synWScale = 7
)

// template is a SYN frame with everything but the destination address,
// the destination port and the ISN filled in, and the checksums' sums over
// the fixed part, so that a frame is patched, not encoded.
type template struct {
	frame  [frameLen]byte
	ipSum  uint32 // IP header without daddr and checksum
	tcpSum uint32 // pseudo-header and TCP header without daddr, dport, seq, checksum
}

func newTemplate(dstMAC, srcMAC [6]byte, src uint32, sport uint16, tsval uint32) *template {
	t := &template{}
	f := t.frame[:]
	copy(f[0:], dstMAC[:])
	copy(f[6:], srcMAC[:])
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[ipOff:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 20+tcpLen)
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF, as Linux sends SYNs
	ip[8] = synTTL
	ip[9] = 6
	binary.BigEndian.PutUint32(ip[12:], src)
	tcp := f[tcpOff:]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	tcp[12] = tcpLen / 4 << 4
	tcp[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(tcp[14:], synWindow)
	copy(tcp[20:], []byte{2, 4, synMSS >> 8, synMSS & 0xff, 4, 2, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 3, synWScale})
	binary.BigEndian.PutUint32(tcp[28:], tsval)
	t.ipSum = sum16(ip[:20])
	t.tcpSum = sum16(tcp[:tcpLen]) + src>>16 + src&0xffff + 6 + tcpLen
	return t
}

// patch writes the SYN to dst:dport with ISN isn into f, a copy of the
// template's frame.
func (t *template) patch(f []byte, dst uint32, dport uint16, isn uint32) {
	binary.BigEndian.PutUint32(f[ipOff+16:], dst)
	binary.BigEndian.PutUint16(f[ipOff+10:], ^fold(t.ipSum+dst>>16+dst&0xffff))
	binary.BigEndian.PutUint16(f[tcpOff+2:], dport)
	binary.BigEndian.PutUint32(f[tcpOff+4:], isn)
	s := t.tcpSum + dst>>16 + dst&0xffff + uint32(dport) + isn>>16 + isn&0xffff
	binary.BigEndian.PutUint16(f[tcpOff+16:], ^fold(s))
}

func sum16(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// verdict is what a received frame is to the sweep.
type verdict int

const (
	notOurs verdict = iota // not a reply to the sweep's port
	invalid                // to the sweep's port, but its ACK or quote fails validation
	valid
)

// classifier validates replies against the keyed ISNs.
type classifier struct {
	key   siphash.Key
	src   uint32
	sport uint16
	space *space
	// retries is how many SYNs after the first a probe may get: the SYN
	// of attempt k carries the keyed ISN + k-1, so a reply names the SYN
	// it answers.
	retries int
}

// attempt is the attempt (1-based) whose SYN carried seq, or 0 when seq
// is none of the probe's ISNs.
func (c *classifier) attempt(seq uint32, dst uint32, port uint16) int {
	d := seq - ISN(c.key, c.src, dst, c.sport, port)
	if d > uint32(c.retries) {
		return 0
	}
	return int(d) + 1
}

// classify reads a frame. For a valid reply it returns the probe's index
// and its result, with the attempt whose SYN it answers.
func (c *classifier) classify(f []byte) (verdict, uint64, Result) {
	if len(f) < ipOff+20 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		return notOurs, 0, Result{}
	}
	ip := f[ipOff:]
	ihl := int(ip[0]&0xf) * 4
	if ip[0]>>4 != 4 || ihl < 20 || len(ip) < ihl+8 || binary.BigEndian.Uint16(ip[6:])&0x1fff != 0 {
		return notOurs, 0, Result{}
	}
	if binary.BigEndian.Uint32(ip[16:]) != c.src {
		return notOurs, 0, Result{}
	}
	from := binary.BigEndian.Uint32(ip[12:])
	switch ip[9] {
	case 6:
		return c.tcp(ip[ihl:], from, ip[8])
	case 1:
		return c.icmp(ip[ihl:], from)
	}
	return notOurs, 0, Result{}
}

func (c *classifier) tcp(tcp []byte, from uint32, ttl uint8) (verdict, uint64, Result) {
	if len(tcp) < 20 || binary.BigEndian.Uint16(tcp[2:]) != c.sport {
		return notOurs, 0, Result{}
	}
	port := binary.BigEndian.Uint16(tcp[0:])
	idx, ok := c.space.index(from, port)
	if !ok {
		return invalid, 0, Result{}
	}
	flags := tcp[13]
	ack := binary.BigEndian.Uint32(tcp[8:])
	attempt := c.attempt(ack-1, from, port)
	if flags&0x10 == 0 || attempt == 0 {
		return invalid, 0, Result{}
	}
	r := Result{Addr: addrOf(from), Port: port, Attempt: attempt}
	switch {
	case flags&0x04 != 0:
		r.State = Closed
	case flags&0x12 == 0x12:
		r.State = Open
		r.TTL = ttl
		win := binary.BigEndian.Uint16(tcp[14:])
		r.Window = &win
		doff := int(tcp[12]>>4) * 4
		if doff >= 20 && doff <= len(tcp) {
			fillOptions(&r, tcp[20:doff])
		}
	default:
		return invalid, 0, Result{}
	}
	return valid, idx, r
}

// fillOptions sets the result's MSS, WScale and Options from the SYN-ACK's
// option area.
func fillOptions(r *Result, opts []byte) {
	var sb strings.Builder
	add := func(s string) {
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(s)
	}
	for i := 0; i < len(opts); {
		kind := opts[i]
		if kind == 0 {
			add("E")
			break
		}
		if kind == 1 {
			add("N")
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			add("?") // a malformed option area: say so, stop
			break
		}
		data := opts[i+2 : i+int(opts[i+1])]
		switch {
		case kind == 2 && len(data) == 2:
			mss := binary.BigEndian.Uint16(data)
			r.MSS = &mss
			add(fmt.Sprintf("M%d", mss))
		case kind == 3 && len(data) == 1:
			ws := data[0]
			r.WScale = &ws
			add(fmt.Sprintf("W%d", ws))
		case kind == 4:
			add("S")
		case kind == 8:
			add("T")
		default:
			add(fmt.Sprintf("K%d", kind))
		}
		i += int(opts[i+1])
	}
	s := sb.String()
	r.Options = &s
}

// icmp classifies a destination unreachable that quotes one of the
// sweep's SYNs (its ISN checked).
func (c *classifier) icmp(icmp []byte, from uint32) (verdict, uint64, Result) {
	if len(icmp) < 8+20+8 || icmp[0] != 3 {
		return notOurs, 0, Result{}
	}
	q := icmp[8:]
	qihl := int(q[0]&0xf) * 4
	if q[0]>>4 != 4 || q[9] != 6 || qihl < 20 || len(q) < qihl+8 {
		return notOurs, 0, Result{}
	}
	qtcp := q[qihl:]
	if binary.BigEndian.Uint32(q[12:]) != c.src || binary.BigEndian.Uint16(qtcp[0:]) != c.sport {
		return notOurs, 0, Result{}
	}
	dst := binary.BigEndian.Uint32(q[16:])
	port := binary.BigEndian.Uint16(qtcp[2:])
	idx, ok := c.space.index(dst, port)
	if !ok {
		return invalid, 0, Result{}
	}
	attempt := c.attempt(binary.BigEndian.Uint32(qtcp[4:]), dst, port)
	if attempt == 0 {
		return invalid, 0, Result{}
	}
	typ, code := icmp[0], icmp[1]
	r := Result{Addr: addrOf(dst), Port: port, State: Filtered, ICMPType: &typ, ICMPCode: &code, Attempt: attempt}
	if from != dst {
		r.ICMPFrom = addrOf(from)
	}
	return valid, idx, r
}

package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// ipv6FragmentHeaderLen is the length of an IPv6 Fragment header.
const ipv6FragmentHeaderLen = 8

// Fragment cuts an encoded Ethernet frame that carries one IP packet
// into IP fragments of at most mtu bytes of IP packet each, the first
// fragment first. IPv4 fragments keep the packet's identification; IPv6
// ones carry id. The
// receiver reassembles them into the packet as it was: one TCP segment
// longer than the path carries whole arrives as that one segment, not as
// several. IPv4 fragments have DF clear (the header checksum is
// recomputed); IPv6 fragments get a Fragment header after the fixed header,
// which must be followed directly by the transport header. A packet that
// fits comes back alone and unchanged.
func Fragment(frame []byte, mtu int, id uint32) ([][]byte, error) {
	l2 := EthernetHeaderLen
	if len(frame) >= l2 && EtherType(binary.BigEndian.Uint16(frame[12:])) == EtherTypeVLAN {
		l2 += 4
	}
	if len(frame) < l2+1 {
		return nil, errors.New("fragment: frame too short for an IP header")
	}
	switch frame[l2] >> 4 {
	case 4:
		return fragment4(frame, l2, mtu)
	case 6:
		return fragment6(frame, l2, mtu, id)
	}
	return nil, fmt.Errorf("fragment: IP version %d", frame[l2]>>4)
}

func fragment4(frame []byte, l2, mtu int) ([][]byte, error) {
	if len(frame) < l2+IPv4HeaderLen {
		return nil, errors.New("fragment: frame too short for an IPv4 header")
	}
	ihl := int(frame[l2]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(frame[l2+2:]))
	if ihl < IPv4HeaderLen || total < ihl || len(frame) < l2+total {
		return nil, fmt.Errorf("fragment: IPv4 header length %d, total length %d in a %d-byte frame", ihl, total, len(frame)-l2)
	}
	if total <= mtu {
		return [][]byte{frame}, nil
	}
	chunk := (mtu - ihl) &^ 7
	if chunk <= 0 {
		return nil, fmt.Errorf("fragment: MTU %d leaves no room after a %d-byte header", mtu, ihl)
	}
	payload := frame[l2+ihl : l2+total]
	var out [][]byte
	for off := 0; off < len(payload); off += chunk {
		n := min(chunk, len(payload)-off)
		f := make([]byte, 0, l2+ihl+n)
		f = append(f, frame[:l2+ihl]...)
		f = append(f, payload[off:off+n]...)
		ip := f[l2:]
		binary.BigEndian.PutUint16(ip[2:], uint16(ihl+n))
		flags := uint16(off / 8)
		if off+n < len(payload) {
			flags |= 0x2000 // MF
		}
		binary.BigEndian.PutUint16(ip[6:], flags)
		binary.BigEndian.PutUint16(ip[10:], 0)
		binary.BigEndian.PutUint16(ip[10:], Checksum(ip[:ihl]))
		out = append(out, f)
	}
	return out, nil
}

func fragment6(frame []byte, l2, mtu int, id uint32) ([][]byte, error) {
	if len(frame) < l2+IPv6HeaderLen {
		return nil, errors.New("fragment: frame too short for an IPv6 header")
	}
	plen := int(binary.BigEndian.Uint16(frame[l2+4:]))
	if len(frame) < l2+IPv6HeaderLen+plen {
		return nil, fmt.Errorf("fragment: IPv6 payload length %d in a %d-byte frame", plen, len(frame)-l2)
	}
	if IPv6HeaderLen+plen <= mtu {
		return [][]byte{frame}, nil
	}
	next := frame[l2+6]
	switch next {
	case ipv6HopByHop, ipv6Routing, ipv6DestOpts, ipv6Fragment:
		return nil, errors.New("fragment: IPv6 extension headers are not supported")
	}
	chunk := (mtu - IPv6HeaderLen - ipv6FragmentHeaderLen) &^ 7
	if chunk <= 0 {
		return nil, fmt.Errorf("fragment: MTU %d leaves no room after the IPv6 headers", mtu)
	}
	payload := frame[l2+IPv6HeaderLen : l2+IPv6HeaderLen+plen]
	var out [][]byte
	for off := 0; off < len(payload); off += chunk {
		n := min(chunk, len(payload)-off)
		f := make([]byte, 0, l2+IPv6HeaderLen+ipv6FragmentHeaderLen+n)
		f = append(f, frame[:l2+IPv6HeaderLen]...)
		ip := f[l2:]
		binary.BigEndian.PutUint16(ip[4:], uint16(ipv6FragmentHeaderLen+n))
		ip[6] = ipv6Fragment
		offFlags := uint16(off/8) << 3
		if off+n < len(payload) {
			offFlags |= 1 // M
		}
		f = append(f, next, 0, byte(offFlags>>8), byte(offFlags))
		f = binary.BigEndian.AppendUint32(f, id)
		f = append(f, payload[off:off+n]...)
		out = append(out, f)
	}
	return out, nil
}

// SendFragmented sends f like Send, as IP fragments of at most mtu bytes
// when its IP packet is longer (see Fragment): the later fragments first,
// then the first, whose leaving is the send time for IPv4 (the packet is
// whole at the receiver when its last fragment comes; the flow filter sees
// only first IPv4 fragments); for IPv6 the time before the first write. It
// reports how many fragments went. A recording (--pcap) holds the first
// IPv4 fragment only.
func (s *Session) SendFragmented(f *Frame, mtu int, ov ...Override) (*Sent, int, error) {
	if s.closed.Load() {
		return nil, 0, fmt.Errorf("send on session %v > %v: session closed", s.local, s.remote)
	}
	g := *f
	s.Complete(&g)
	data, err := g.Encode(ov...)
	if err != nil {
		return nil, 0, fmt.Errorf("send on session %v > %v: %w", s.local, s.remote, err)
	}
	frags, err := Fragment(data, mtu, uint32(s.NextIPID())|uint32(s.local.Port())<<16)
	if err != nil {
		return nil, 0, fmt.Errorf("send on session %v > %v: %w", s.local, s.remote, err)
	}
	if len(frags) == 1 {
		sent, err := s.Send(f, ov...)
		return sent, 1, err
	}
	// The flow filter passes no IPv6 fragment: no echo times the send. The
	// time before the first write is then the send time, so that no reply
	// seems to come before it.
	before := time.Now()
	for _, fr := range frags[1:] {
		if err := s.p.writeRemembered(fr); err != nil {
			return nil, 0, fmt.Errorf("send on session %v > %v: fragment: %w", s.local, s.remote, err)
		}
	}
	var ts time.Time
	if s.remote.Addr().Is6() {
		err = s.p.writeRemembered(frags[0])
		ts = before
	} else {
		ts, err = s.p.send(frags[0])
	}
	if err != nil {
		return nil, 0, fmt.Errorf("send on session %v > %v: %w", s.local, s.remote, err)
	}
	sent := &Sent{Data: data, Time: ts}
	sent.Frame.Decode(data)
	s.noteSent(sent)
	return sent, len(frags), nil
}

// writeRemembered writes a frame without waiting for its echo, remembered
// as synprobe's: where the link shows it leaving, it is never taken for
// the local host's.
func (p *Prober) writeRemembered(frame []byte) error {
	_, err := p.write(frame)
	return err
}

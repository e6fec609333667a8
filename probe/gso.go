package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// GSOType is the kind of a super-frame, as the kernel names it in the
// struct virtio_net_hdr in front of a frame (VIRTIO_NET_HDR_GSO_*).
type GSOType uint8

const (
	GSONone  GSOType = 0 // an ordinary frame
	GSOTCPv4 GSOType = 1
	GSOUDP   GSOType = 3
	GSOTCPv6 GSOType = 4
	GSOUDPL4 GSOType = 5
	// GSOECN is a flag on the others: the first segment carries CWR,
	// which the later ones must not repeat.
	GSOECN GSOType = 0x80
)

func (t GSOType) String() string {
	var s string
	switch t &^ GSOECN {
	case GSONone:
		s = "none"
	case GSOTCPv4:
		s = "tcpv4"
	case GSOUDP:
		s = "udp"
	case GSOTCPv6:
		s = "tcpv6"
	case GSOUDPL4:
		s = "udp_l4"
	default:
		s = fmt.Sprintf("gso type %d", uint8(t&^GSOECN))
	}
	if t&GSOECN != 0 {
		s += "|ecn"
	}
	return s
}

// maxGSOSegments is the most segments a super-frame stands for (the
// kernel's GSO_MAX_SEGS).
const maxGSOSegments = 65535

// ErrNotSplittable is the cause of a SplitSuperFrame error: the frame is
// not a TCP super-frame that can be cut into its segments.
var ErrNotSplittable = errors.New("super-frame cannot be split")

// SplitSuperFrame cuts a super-frame into the segments it stands for.
//
// A super-frame is one frame that carries several segments of one TCP
// connection: the kernel coalesced them on receive (GRO), or the sender's
// segmentation was left to an offload (TSO, GSO) that a capture on the
// host sees before it runs, as on veth. No network carries such a frame:
// judging it would blame the target for the local host's offloads.
//
// The pieces are what the segmentation would have put on the wire: the
// payload cut into pieces of c.GSOSize bytes, each behind a copy of the
// headers, with the TCP sequence number advanced, the IPv4 total length or
// IPv6 payload length fixed, the IPv4 identification incremented per piece
// as TSO does (and the IPv4 header checksum recomputed), FIN and PSH only
// on the last piece and CWR only on the first. Every piece has c's time
// and direction, and ChecksumPartial set: the TCP checksum of a piece was
// never computed by anyone (it is written in the partial form an offload
// leaves, adjusted for the piece's length), so it is never reported bad.
//
// A frame with no GSO type or size comes back alone and unchanged, as does
// a super-frame whose payload fits in one piece (with ChecksumPartial set).
// A frame that is not a whole TCP segment of the version the GSO type
// names, or that would make more than 65535 pieces, is an error wrapping
// ErrNotSplittable. The pieces share no memory with c.Data.
func SplitSuperFrame(c Capture) ([]Capture, error) {
	if c.GSOSize == 0 || c.GSOType == GSONone {
		return []Capture{c}, nil
	}
	piece := c
	piece.GSOSize, piece.GSOType, piece.ChecksumPartial = 0, GSONone, true
	l, err := layoutSuperFrame(c)
	if err != nil {
		return nil, fmt.Errorf("split super-frame (%v, gso size %d): %w: %w", c.GSOType, c.GSOSize, ErrNotSplittable, err)
	}
	data := c.Data
	payload := data[l.payload:l.end]
	size := int(c.GSOSize)
	n := (len(payload) + size - 1) / size
	if n <= 1 {
		return []Capture{piece}, nil
	}
	if n > maxGSOSegments {
		return nil, fmt.Errorf("split super-frame (%v, gso size %d): %w: %d bytes of payload make %d pieces, more than %d",
			c.GSOType, c.GSOSize, ErrNotSplittable, len(payload), n, maxGSOSegments)
	}
	hdr := data[:l.payload]
	tcp := hdr[l.tcp:]
	seq := binary.BigEndian.Uint32(tcp[4:])
	flags := Flags(tcp[13])
	check := binary.BigEndian.Uint16(tcp[16:])
	superLen := l.end - l.tcp // the TCP segment's length, for the pseudo-header
	var id uint16
	if l.v4 {
		id = binary.BigEndian.Uint16(hdr[l.ip+4:])
	}

	buf := make([]byte, n*len(hdr)+len(payload))
	out := make([]Capture, n)
	for i := range n {
		chunk := payload[i*size : min((i+1)*size, len(payload))]
		b := buf[: len(hdr)+len(chunk) : len(hdr)+len(chunk)]
		buf = buf[len(b):]
		copy(b, hdr)
		copy(b[len(hdr):], chunk)

		t := b[l.tcp:]
		binary.BigEndian.PutUint32(t[4:], seq+uint32(i*size))
		f := flags
		if i < n-1 {
			f &^= FIN | PSH
		}
		if i > 0 {
			f &^= CWR
		}
		t[13] = uint8(f)
		segLen := len(b) - l.tcp
		binary.BigEndian.PutUint16(t[16:], adjustPartialChecksum(check, superLen, segLen))

		ip := b[l.ip:l.tcp]
		if l.v4 {
			binary.BigEndian.PutUint16(ip[2:], uint16(len(b)-l.ip))
			binary.BigEndian.PutUint16(ip[4:], id+uint16(i))
			ip[10], ip[11] = 0, 0
			binary.BigEndian.PutUint16(ip[10:], Checksum(ip))
		} else {
			binary.BigEndian.PutUint16(ip[4:], uint16(len(b)-l.ip-IPv6HeaderLen))
		}
		out[i] = piece
		out[i].Data = b
	}
	return out, nil
}

// superFrameLayout is where the layers of a super-frame start, as offsets
// into its data: IP header, TCP header, payload, and the end of the IP
// packet.
type superFrameLayout struct {
	v4                    bool
	ip, tcp, payload, end int
}

func layoutSuperFrame(c Capture) (superFrameLayout, error) {
	var l superFrameLayout
	var f Frame
	if err := f.Decode(c.Data); err != nil {
		return l, err
	}
	var want uint8
	switch c.GSOType &^ GSOECN {
	case GSOTCPv4:
		want = 4
	case GSOTCPv6:
		want = 6
	default:
		return l, errors.New("not a TCP GSO type")
	}
	switch {
	case !f.Has(LayerTCP):
		return l, errors.New("not a TCP segment")
	case f.IP.Version != want:
		return l, fmt.Errorf("an IPv%d packet", f.IP.Version)
	case f.Truncated:
		return l, errors.New("the capture holds less than the IP header claims")
	case f.IP.IsFragment():
		return l, errors.New("an IP fragment")
	}
	var e Ethernet
	ipOff, err := e.decode(c.Data)
	if err != nil {
		return l, err
	}
	l.v4 = want == 4
	l.ip = ipOff
	l.tcp = l.ip + f.IP.HeaderLen
	l.payload = l.tcp + int(f.TCP.DataOffset)*4
	l.end = l.ip + f.IP.TotalLength
	if l.payload > l.end {
		return l, errors.New("TCP header beyond the IP packet")
	}
	return l, nil
}

// adjustPartialChecksum changes the length in a partial TCP checksum (the
// pseudo-header sum, not complemented, that a kernel leaves for an offload
// to finish) from oldLen to newLen, as the kernel's own segmentation does
// (tcp_gso_segment).
func adjustPartialChecksum(check uint16, oldLen, newLen int) uint16 {
	acc := uint64(check) + uint64(^uint16(oldLen)) + uint64(uint16(newLen))
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}

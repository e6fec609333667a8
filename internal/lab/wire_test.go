package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"synprobe/probe"
)

// replyWait is how long a test waits for a reply that should come at once.
// It is a safety net against a hung test, not a measurement.
const replyWait = 20 * time.Second

// wireClient is a minimal TCP client that speaks raw Ethernet frames over a
// probe.Link, built with gVisor's header encoders: it proves from outside
// that a lab answers the way a TCP peer on the wire sees it.
type wireClient struct {
	t      *testing.T
	link   probe.Link
	frames <-chan probe.Capture
	path   probe.Path
	src    netip.AddrPort
	dst    netip.AddrPort

	// Sequence state, as in RFC 9293.
	iss, sndNxt uint32
	irs, rcvNxt uint32
	// Timestamps: once negotiated every segment must carry them (gVisor
	// drops segments without them).
	ts       bool
	tsRecent uint32
}

// readFrames feeds every incoming frame of link to a channel until the link
// is closed.
func readFrames(link probe.Link) <-chan probe.Capture {
	c := make(chan probe.Capture, 1024)
	go func() {
		defer close(c)
		for {
			f, err := link.ReadFrame()
			if err != nil {
				return
			}
			if !f.Outgoing {
				c <- f
			}
		}
	}()
	return c
}

func newWireClient(t *testing.T, link probe.Link, frames <-chan probe.Capture, path probe.Path, dst netip.AddrPort, srcPort uint16, iss uint32) *wireClient {
	return &wireClient{
		t: t, link: link, frames: frames, path: path,
		src: netip.AddrPortFrom(path.Source, srcPort), dst: dst,
		iss: iss, sndNxt: iss,
	}
}

// segment is a decoded TCP segment from the target.
type segment struct {
	flags   header.TCPFlags
	seq     uint32
	ack     uint32
	window  uint16
	opts    []byte
	payload []byte
}

func (s segment) String() string {
	return fmt.Sprintf("[%s] seq %d ack %d win %d len %d", s.flags, s.seq, s.ack, s.window, len(s.payload))
}

func tcpipAddr(a netip.Addr) tcpip.Address { return tcpip.AddrFromSlice(a.AsSlice()) }

// frame builds an Ethernet frame holding one TCP segment with valid
// checksums.
func (c *wireClient) frame(flags header.TCPFlags, seq, ack uint32, opts, payload []byte) []byte {
	tcpLen := header.TCPMinimumSize + len(opts) + len(payload)
	ipLen := header.IPv4MinimumSize
	etherType := header.IPv4ProtocolNumber
	if c.dst.Addr().Is6() {
		ipLen = header.IPv6MinimumSize
		etherType = header.IPv6ProtocolNumber
	}
	b := make([]byte, header.EthernetMinimumSize+ipLen+tcpLen)
	header.Ethernet(b).Encode(&header.EthernetFields{
		SrcAddr: tcpip.LinkAddress(c.path.LocalMAC[:]),
		DstAddr: tcpip.LinkAddress(c.path.NextHopMAC[:]),
		Type:    etherType,
	})
	src, dst := tcpipAddr(c.src.Addr()), tcpipAddr(c.dst.Addr())
	ipb := b[header.EthernetMinimumSize:]
	if c.dst.Addr().Is6() {
		header.IPv6(ipb).Encode(&header.IPv6Fields{
			PayloadLength:     uint16(tcpLen),
			TransportProtocol: header.TCPProtocolNumber,
			HopLimit:          64,
			SrcAddr:           src,
			DstAddr:           dst,
		})
	} else {
		ip := header.IPv4(ipb)
		ip.Encode(&header.IPv4Fields{
			TotalLength: uint16(ipLen + tcpLen),
			Flags:       header.IPv4FlagDontFragment,
			TTL:         64,
			Protocol:    uint8(header.TCPProtocolNumber),
			SrcAddr:     src,
			DstAddr:     dst,
		})
		ip.SetChecksum(^ip.CalculateChecksum())
	}
	tcp := header.TCP(ipb[ipLen:])
	tcp.Encode(&header.TCPFields{
		SrcPort:    c.src.Port(),
		DstPort:    c.dst.Port(),
		SeqNum:     seq,
		AckNum:     ack,
		DataOffset: uint8(header.TCPMinimumSize + len(opts)),
		Flags:      flags,
		WindowSize: 65535,
	})
	copy(tcp[header.TCPMinimumSize:], opts)
	copy(tcp[header.TCPMinimumSize+len(opts):], payload)
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(tcpLen))
	xsum = checksum.Checksum(payload, xsum)
	tcp.SetChecksum(^tcp.CalculateChecksum(xsum))
	return b
}

// send writes one segment; seq and ack come from the connection state.
func (c *wireClient) send(flags header.TCPFlags, payload []byte) {
	c.t.Helper()
	var opts []byte
	if c.ts {
		opts = make([]byte, 12)
		header.EncodeNOP(opts)
		header.EncodeNOP(opts[1:])
		header.EncodeTSOption(c.tsVal(), c.tsRecent, opts[2:])
	}
	ack := uint32(0)
	if flags&header.TCPFlagAck != 0 {
		ack = c.rcvNxt
	}
	if err := c.link.WriteFrame(c.frame(flags, c.sndNxt, ack, opts, payload)); err != nil {
		c.t.Fatalf("write frame: %v", err)
	}
	c.sndNxt += uint32(len(payload))
	if flags&(header.TCPFlagSyn|header.TCPFlagFin) != 0 {
		c.sndNxt++
	}
}

// tsVal is a timestamp clock of the test's own: milliseconds.
func (c *wireClient) tsVal() uint32 { return uint32(time.Now().UnixMilli()) }

// sendSYN opens a connection with the options a modern client offers: MSS,
// SACK permitted, timestamps and window scale, in Linux's order.
func (c *wireClient) sendSYN() {
	c.t.Helper()
	opts := make([]byte, 20)
	n := header.EncodeMSSOption(1460, opts)
	n += header.EncodeSACKPermittedOption(opts[n:])
	n += header.EncodeTSOption(c.tsVal(), 0, opts[n:])
	n += header.EncodeNOP(opts[n:])
	n += header.EncodeWSOption(7, opts[n:])
	if err := c.link.WriteFrame(c.frame(header.TCPFlagSyn, c.iss, 0, opts[:n], nil)); err != nil {
		c.t.Fatalf("write SYN: %v", err)
	}
	c.sndNxt = c.iss + 1
}

// recv returns the next segment of this connection from the target.
func (c *wireClient) recv() segment {
	c.t.Helper()
	timeout := time.After(replyWait)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("link closed while waiting for a segment from %s", c.dst)
			}
			seg, err := c.decode(f.Data)
			if errors.Is(err, errOtherFlow) {
				continue
			}
			if err != nil {
				c.t.Fatalf("bad frame from %s: %v", c.dst, err)
			}
			if opts := header.ParseTCPOptions(seg.opts); opts.TS {
				c.tsRecent = opts.TSVal
			}
			return seg
		case <-timeout:
			c.t.Fatalf("no segment from %s within %v", c.dst, replyWait)
		}
	}
}

var errOtherFlow = errors.New("not this connection")

// decode checks one frame from the target as a receiving stack would: it
// must be addressed to the probe side and carry valid checksums.
func (c *wireClient) decode(b []byte) (segment, error) {
	if len(b) < header.EthernetMinimumSize {
		return segment{}, fmt.Errorf("frame of %d bytes", len(b))
	}
	eth := header.Ethernet(b)
	ipb := b[header.EthernetMinimumSize:]
	var (
		tcpb     []byte
		src, dst tcpip.Address
	)
	switch eth.Type() {
	case header.IPv4ProtocolNumber:
		ip := header.IPv4(ipb)
		if !ip.IsValid(len(ipb)) {
			return segment{}, fmt.Errorf("invalid IPv4 header")
		}
		if !ip.IsChecksumValid() {
			return segment{}, fmt.Errorf("bad IPv4 header checksum")
		}
		if ip.TransportProtocol() != header.TCPProtocolNumber {
			return segment{}, errOtherFlow
		}
		tcpb, src, dst = ip.Payload(), ip.SourceAddress(), ip.DestinationAddress()
	case header.IPv6ProtocolNumber:
		ip := header.IPv6(ipb)
		if !ip.IsValid(len(ipb)) {
			return segment{}, fmt.Errorf("invalid IPv6 header")
		}
		// The lab's stacks send no extension headers: TCP follows the
		// fixed header directly or the frame is something else.
		if ip.NextHeader() != uint8(header.TCPProtocolNumber) {
			return segment{}, errOtherFlow
		}
		tcpb, src, dst = ip.Payload(), ip.SourceAddress(), ip.DestinationAddress()
	default:
		return segment{}, errOtherFlow
	}
	if src != tcpipAddr(c.dst.Addr()) || dst != tcpipAddr(c.src.Addr()) || len(tcpb) < header.TCPMinimumSize {
		return segment{}, errOtherFlow
	}
	tcp := header.TCP(tcpb)
	if tcp.SourcePort() != c.dst.Port() || tcp.DestinationPort() != c.src.Port() {
		return segment{}, errOtherFlow
	}
	if got, want := eth.DestinationAddress(), tcpip.LinkAddress(c.path.LocalMAC[:]); got != want {
		return segment{}, fmt.Errorf("frame to %s, want %s", got, want)
	}
	if got, want := eth.SourceAddress(), tcpip.LinkAddress(c.path.NextHopMAC[:]); got != want {
		return segment{}, fmt.Errorf("frame from %s, want %s", got, want)
	}
	off := int(tcp.DataOffset())
	if off < header.TCPMinimumSize || off > len(tcp) {
		return segment{}, fmt.Errorf("TCP data offset %d in a segment of %d bytes", off, len(tcp))
	}
	payload := tcp[off:]
	if !tcp.IsChecksumValid(src, dst, checksum.Checksum(payload, 0), uint16(len(payload))) {
		return segment{}, fmt.Errorf("bad TCP checksum %#04x", tcp.Checksum())
	}
	return segment{
		flags:   tcp.Flags(),
		seq:     tcp.SequenceNumber(),
		ack:     tcp.AckNumber(),
		window:  tcp.WindowSize(),
		opts:    tcp[header.TCPMinimumSize:off],
		payload: payload,
	}, nil
}

// handshake opens a connection to c.dst and checks the SYN-ACK against RFC
// 9293 and the options offered.
func (c *wireClient) handshake() {
	c.t.Helper()
	c.sendSYN()
	synAck := c.recv()
	if want := header.TCPFlagSyn | header.TCPFlagAck; synAck.flags != want {
		c.t.Fatalf("reply to SYN: got %s, want flags [%s]", synAck, want)
	}
	if synAck.ack != c.iss+1 {
		c.t.Fatalf("SYN-ACK ack: got %d, want ISN+1 (%d)", synAck.ack, c.iss+1)
	}
	opts := header.ParseSynOptions(synAck.opts, true)
	wantMSS := uint16(MTU - header.IPv4MinimumSize - header.TCPMinimumSize)
	if c.dst.Addr().Is6() {
		wantMSS = MTU - header.IPv6MinimumSize - header.TCPMinimumSize
	}
	if opts.MSS != wantMSS {
		c.t.Errorf("SYN-ACK MSS: got %d, want %d", opts.MSS, wantMSS)
	}
	if !opts.SACKPermitted {
		c.t.Errorf("SYN-ACK has no SACK-permitted option; options %x", synAck.opts)
	}
	if !opts.TS {
		c.t.Errorf("SYN-ACK has no timestamps option; options %x", synAck.opts)
	}
	if opts.WS < 0 {
		c.t.Errorf("SYN-ACK has no window scale option; options %x", synAck.opts)
	}
	c.t.Logf("SYN-ACK %s: MSS %d, SACK %v, TS %v (ecr %d), WS %d", synAck, opts.MSS, opts.SACKPermitted, opts.TS, opts.TSEcr, opts.WS)
	c.irs = synAck.seq
	c.rcvNxt = synAck.seq + 1
	c.ts = opts.TS
	c.send(header.TCPFlagAck, nil)
}

// request sends "GET /size" and reads the whole response, acknowledging
// each segment.
func (c *wireClient) request(size int) []byte {
	c.t.Helper()
	c.send(header.TCPFlagPsh|header.TCPFlagAck, fmt.Appendf(nil, "GET /%d\r\n\r\n", size))
	want := fmt.Sprintf("HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n", size)
	var got []byte
	for len(got) < len(want)+size {
		seg := c.recv()
		if seg.flags&(header.TCPFlagRst|header.TCPFlagFin) != 0 {
			c.t.Fatalf("got %s after %d bytes of response, want the rest of %d", seg, len(got), len(want)+size)
		}
		if len(seg.payload) == 0 || seg.seq != c.rcvNxt {
			continue // a pure ACK, or a retransmission
		}
		got = append(got, seg.payload...)
		c.rcvNxt += uint32(len(seg.payload))
		c.send(header.TCPFlagAck, nil)
	}
	head, body := got[:min(len(want), len(got))], got[min(len(want), len(got)):]
	if string(head) != want {
		c.t.Fatalf("response head: got %q, want %q", head, want)
	}
	return body
}

// closeActive sends a FIN and expects the application to close in turn:
// the target acknowledges the FIN and sends its own, which is acknowledged.
func (c *wireClient) closeActive() {
	c.t.Helper()
	c.send(header.TCPFlagFin|header.TCPFlagAck, nil)
	finSeq := c.sndNxt - 1
	acked, finned := false, false
	for !acked || !finned {
		seg := c.recv()
		if seg.flags&header.TCPFlagRst != 0 {
			c.t.Fatalf("got %s, want an ACK of our FIN and the target's FIN", seg)
		}
		if seg.flags&header.TCPFlagAck != 0 && seg.ack == finSeq+1 {
			acked = true
		}
		if seg.flags&header.TCPFlagFin != 0 {
			if seg.seq != c.rcvNxt {
				c.t.Fatalf("target FIN seq: got %d, want %d", seg.seq, c.rcvNxt)
			}
			finned = true
			c.rcvNxt++
		}
	}
	c.send(header.TCPFlagAck, nil)
}

// refused sends a SYN to a port with no listener and expects RST+ACK with
// ack = ISN+1 (RFC 9293 section 3.10.7.1).
func (c *wireClient) refused() {
	c.t.Helper()
	c.sendSYN()
	rst := c.recv()
	if want := header.TCPFlagRst | header.TCPFlagAck; rst.flags != want {
		c.t.Fatalf("reply to SYN to a closed port: got %s, want flags [%s]", rst, want)
	}
	if rst.seq != 0 || rst.ack != c.iss+1 {
		c.t.Fatalf("RST: got seq %d ack %d, want seq 0 ack %d (ISN+1)", rst.seq, rst.ack, c.iss+1)
	}
}

// Package gen writes synthetic captures for benchmarks: many short, correct
// TCP connections, as a busy server's capture holds.
package gen

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"time"

	"synprobe/probe"
	"synprobe/probe/pcap"
)

// PacketsPerConnection is the number of packets of each connection
// ShortConnections writes: SYN, SYN-ACK, ACK, data, ACK, FIN, ACK, FIN, ACK.
const PacketsPerConnection = 9

// Concurrent is how many connections ShortConnections interleaves.
const Concurrent = 16

// Start is the capture time of the first packet.
var Start = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// ShortConnections writes a pcap (Ethernet, IPv4) of n short connections
// to w, Concurrent of them interleaved at a time, 10 µs apart, with the
// options a current Linux uses (MSS, SACK-permitted, timestamps, window
// scale) and 100 octets of request data. It returns the packets written.
func ShortConnections(w io.Writer, n int) (int, error) {
	pw, err := pcap.NewWriter(w, pcap.LinkTypeEthernet)
	if err != nil {
		return 0, err
	}
	server := netip.MustParseAddrPort("198.51.100.1:80")
	payload := make([]byte, 100)
	var f probe.Frame
	var buf []byte
	packets := 0
	ts := Start
	for base := 0; base < n; base += Concurrent {
		group := min(Concurrent, n-base)
		for step := range PacketsPerConnection {
			for j := range group {
				i := base + j
				var a [4]byte
				binary.BigEndian.PutUint32(a[:], 0xc0000200+uint32(i/50000)) // 192.0.2.x
				client := netip.AddrPortFrom(netip.AddrFrom4(a), uint16(10000+i%50000))
				segment(&f, step, client, server, probe.Seq(uint32(i)*7919), probe.Seq(uint32(i)*104729+1), payload)
				if buf, err = f.AppendEncode(buf[:0]); err != nil {
					return packets, fmt.Errorf("encode connection %d step %d: %w", i, step, err)
				}
				if err := pw.WritePacket(ts, buf); err != nil {
					return packets, err
				}
				packets++
				ts = ts.Add(10 * time.Microsecond)
			}
		}
	}
	return packets, pw.Flush()
}

var (
	macClient = probe.MAC{2, 0, 0, 0, 0, 1}
	macServer = probe.MAC{2, 0, 0, 0, 0, 2}
)

// segment fills f with step of one connection.
func segment(f *probe.Frame, step int, client, server netip.AddrPort, isnC, isnS probe.Seq, payload []byte) {
	fromClient := true
	var flags probe.Flags
	var seq, ack uint32 // relative
	var data []byte
	var opts []probe.Option
	// TSval ticks with the step; TSecr echoes the peer's latest TSval.
	tsC, tsS := uint32(1000+step), uint32(7000+step)
	peerLast := func(fromClient bool) uint32 {
		for k := step - 1; k >= 0; k-- {
			if clientSends[k] != fromClient {
				if clientSends[k] {
					return uint32(1000 + k)
				}
				return uint32(7000 + k)
			}
		}
		return 0
	}
	switch step {
	case 0:
		flags = probe.SYN
		opts = []probe.Option{probe.MSSOption(1460), probe.SACKPermittedOption(), probe.TimestampsOption(tsC, 0), probe.NOPOption(), probe.WScaleOption(7)}
	case 1:
		fromClient, flags, ack = false, probe.SYN|probe.ACK, 1
		opts = []probe.Option{probe.MSSOption(1460), probe.SACKPermittedOption(), probe.TimestampsOption(tsS, peerLast(false)), probe.NOPOption(), probe.WScaleOption(7)}
	case 2:
		flags, seq, ack = probe.ACK, 1, 1
	case 3:
		flags, seq, ack, data = probe.ACK|probe.PSH, 1, 1, payload
	case 4:
		fromClient, flags, seq, ack = false, probe.ACK, 1, 101
	case 5:
		flags, seq, ack = probe.FIN|probe.ACK, 101, 1
	case 6:
		fromClient, flags, seq, ack = false, probe.ACK, 1, 102
	case 7:
		fromClient, flags, seq, ack = false, probe.FIN|probe.ACK, 1, 102
	case 8:
		flags, seq, ack = probe.ACK, 102, 2
	}
	if step >= 2 {
		if fromClient {
			opts = tsOpts(tsC, peerLast(true))
		} else {
			opts = tsOpts(tsS, peerLast(false))
		}
	}
	src, dst, smac, dmac := client, server, macClient, macServer
	s, a := isnC.Add(seq), isnS.Add(ack)
	win := uint16(502)
	if !fromClient {
		src, dst, smac, dmac = server, client, macServer, macClient
		s, a = isnS.Add(seq), isnC.Add(ack)
		win = 509
	}
	if step <= 1 {
		win = 64240
	}
	if flags&probe.ACK == 0 {
		a = 0
	}
	*f = probe.Frame{
		Ethernet: probe.Ethernet{Dst: dmac, Src: smac},
		IP:       probe.IP{Src: src.Addr(), Dst: dst.Addr(), Flags: probe.IPFlagDF},
		TCP: probe.TCP{SrcPort: src.Port(), DstPort: dst.Port(), Seq: s, Ack: a, Flags: flags, Window: win,
			Options: opts, Payload: data},
	}
}

// clientSends says which steps the client sends.
var clientSends = [PacketsPerConnection]bool{true, false, true, true, false, true, false, false, true}

// tsOpts is the option block of every Linux segment after the handshake.
func tsOpts(val, ecr uint32) []probe.Option {
	return []probe.Option{probe.NOPOption(), probe.NOPOption(), probe.TimestampsOption(val, ecr)}
}

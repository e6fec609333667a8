package capture

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"synprobe/conformance/report"
	"synprobe/probe"
	"synprobe/probe/pcap"
)

// t0 is the capture time of the first packet of every synthetic capture.
var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// pcapOf writes frames as a pcap of link type lt, one millisecond apart.
func pcapOf(tb testing.TB, lt pcap.LinkType, frames ...[]byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w, err := pcap.NewWriter(&buf, lt)
	if err != nil {
		tb.Fatal(err)
	}
	for i, f := range frames {
		if err := w.WritePacket(t0.Add(time.Duration(i)*time.Millisecond), f); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// analyzeBytes runs Analyze on a capture held in memory.
func analyzeBytes(tb testing.TB, data []byte, opt Options) (*report.Report, error) {
	tb.Helper()
	return Analyze(context.Background(), bytes.NewReader(data), "test.pcap", opt)
}

// mustAnalyze runs Analyze and fails the test on error.
func mustAnalyze(tb testing.TB, data []byte, opt Options) *report.Report {
	tb.Helper()
	rep, err := analyzeBytes(tb, data, opt)
	if err != nil {
		tb.Fatalf("Analyze: %v", err)
	}
	return rep
}

// textOf renders a report with every step, for failure messages.
func textOf(rep *report.Report) string {
	var b strings.Builder
	report.WriteText(&b, rep, report.TextOptions{Steps: true})
	return b.String()
}

// Endpoints of the synthetic connections.
var (
	cli  = netip.MustParseAddrPort("192.0.2.1:40000")
	srv  = netip.MustParseAddrPort("192.0.2.2:80")
	cli6 = netip.MustParseAddrPort("[2001:db8::1]:40000")
	srv6 = netip.MustParseAddrPort("[2001:db8::2]:443")
	macC = probe.MAC{2, 0, 0, 0, 0, 1}
	macS = probe.MAC{2, 0, 0, 0, 0, 2}
	isnC = probe.Seq(1000)
	isnS = probe.Seq(5000)
)

// seg describes a segment of a synthetic connection, in numbers relative
// to the two ISNs (as packetdrill writes them).
type seg struct {
	fromServer bool
	flags      probe.Flags
	seq, ack   uint32 // relative
	data       int
	win        uint16
	opts       []probe.Option
	// absSeq, when set, is used as the absolute seq (for SYNs with other ISNs).
	absSeq *probe.Seq
	ov     []probe.Override
}

// conv builds the frames of a conversation between two endpoints.
type conv struct {
	tb       testing.TB
	c, s     netip.AddrPort
	isnC     probe.Seq
	isnS     probe.Seq
	vlan     uint16
	rawIP    bool // EncodeIP instead of Ethernet
	frames   [][]byte
	snapshot int // cut frames to this many bytes (0: whole)
}

func newConv(tb testing.TB) *conv {
	return &conv{tb: tb, c: cli, s: srv, isnC: isnC, isnS: isnS}
}

func (cv *conv) frame(g seg) *probe.Frame {
	src, dst, smac, dmac := cv.c, cv.s, macC, macS
	seq, ack := cv.isnC.Add(g.seq), cv.isnS.Add(g.ack)
	if g.fromServer {
		src, dst, smac, dmac = cv.s, cv.c, macS, macC
		seq, ack = cv.isnS.Add(g.seq), cv.isnC.Add(g.ack)
	}
	if g.absSeq != nil {
		seq = *g.absSeq
	}
	if g.flags&probe.ACK == 0 {
		ack = 0
	}
	win := g.win
	if win == 0 {
		win = 64240
		if g.fromServer {
			win = 65160
		}
	}
	f := &probe.Frame{
		Ethernet: probe.Ethernet{Dst: dmac, Src: smac, VLAN: cv.vlan, Tagged: cv.vlan != 0},
		IP:       probe.IP{Src: src.Addr(), Dst: dst.Addr(), Flags: probe.IPFlagDF},
		TCP: probe.TCP{SrcPort: src.Port(), DstPort: dst.Port(), Seq: seq, Ack: ack, Flags: g.flags, Window: win,
			Options: g.opts, Payload: make([]byte, g.data)},
	}
	return f
}

// add appends segments to the conversation.
func (cv *conv) add(gs ...seg) *conv {
	cv.tb.Helper()
	for _, g := range gs {
		f := cv.frame(g)
		var b []byte
		var err error
		if cv.rawIP {
			b, err = f.EncodeIP(g.ov...)
		} else {
			b, err = f.Encode(g.ov...)
		}
		if err != nil {
			cv.tb.Fatalf("encode %+v: %v", g, err)
		}
		if cv.snapshot > 0 && len(b) > cv.snapshot {
			b = b[:cv.snapshot]
		}
		cv.frames = append(cv.frames, b)
	}
	return cv
}

// Shorthands for segments. c* come from the client, s* from the server.
func cSYN(opts ...probe.Option) seg { return seg{flags: probe.SYN, win: 64240, opts: opts} }
func sSYNACK(opts ...probe.Option) seg {
	return seg{fromServer: true, flags: probe.SYN | probe.ACK, ack: 1, win: 65160, opts: opts}
}
func cACK(seq, ack uint32, opts ...probe.Option) seg {
	return seg{flags: probe.ACK, seq: seq, ack: ack, opts: opts}
}
func sACK(seq, ack uint32, opts ...probe.Option) seg {
	return seg{fromServer: true, flags: probe.ACK, seq: seq, ack: ack, opts: opts}
}
func cData(seq, ack uint32, n int, opts ...probe.Option) seg {
	return seg{flags: probe.ACK | probe.PSH, seq: seq, ack: ack, data: n, opts: opts}
}
func sData(seq, ack uint32, n int, opts ...probe.Option) seg {
	return seg{fromServer: true, flags: probe.ACK | probe.PSH, seq: seq, ack: ack, data: n, opts: opts}
}
func cFIN(seq, ack uint32, opts ...probe.Option) seg {
	return seg{flags: probe.FIN | probe.ACK, seq: seq, ack: ack, opts: opts}
}
func sFIN(seq, ack uint32, opts ...probe.Option) seg {
	return seg{fromServer: true, flags: probe.FIN | probe.ACK, seq: seq, ack: ack, opts: opts}
}
func cRST(seq uint32) seg { return seg{flags: probe.RST, seq: seq} }
func sRST(seq uint32) seg { return seg{fromServer: true, flags: probe.RST, seq: seq} }

// handshake is a plain handshake with MSS only.
func handshake() []seg {
	return []seg{cSYN(probe.MSSOption(1460)), sSYNACK(probe.MSSOption(1460)), cACK(1, 1)}
}

// close4 is a four-segment close after the client sent c and the server s octets.
func close4(c, s uint32) []seg {
	return []seg{cFIN(1+c, 1+s), sACK(1+s, 2+c), sFIN(1+s, 2+c), cACK(2+c, 2+s)}
}

package capture

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"synprobe/conformance/report"
	"synprobe/probe"
	"synprobe/probe/pcap"
)

// closedConnection is a correct connection: handshake, 100 octets each
// way, four-segment close (10 segments).
func closedConnection() []seg {
	return cat(handshake(), []seg{cData(1, 1, 100), sData(1, 101, 100), cACK(101, 101)}, close4(100, 100))
}

// withHeader puts a link-layer header before every frame.
func withHeader(frames [][]byte, hdr func(ipVersion byte) []byte) [][]byte {
	var out [][]byte
	for _, f := range frames {
		out = append(out, append(hdr(f[0]>>4), f...))
	}
	return out
}

func sllHeader(v byte) []byte {
	h := make([]byte, 16)
	binary.BigEndian.PutUint16(h[0:], 0) // packet type: to us
	binary.BigEndian.PutUint16(h[2:], 1) // ARPHRD_ETHER
	binary.BigEndian.PutUint16(h[4:], 6) // address length
	copy(h[6:], macC[:])                 // address
	binary.BigEndian.PutUint16(h[14:], 0x0800)
	if v == 6 {
		binary.BigEndian.PutUint16(h[14:], 0x86dd)
	}
	return h
}

func sll2Header(v byte) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], 0x0800)
	if v == 6 {
		binary.BigEndian.PutUint16(h[0:], 0x86dd)
	}
	binary.BigEndian.PutUint32(h[4:], 2) // interface index
	binary.BigEndian.PutUint16(h[8:], 1) // ARPHRD_ETHER
	h[11] = 6
	copy(h[12:], macC[:])
	return h
}

func nullHeader(order binary.ByteOrder, af6 uint32) func(byte) []byte {
	return func(v byte) []byte {
		h := make([]byte, 4)
		af := uint32(2)
		if v == 6 {
			af = af6
		}
		order.PutUint32(h, af)
		return h
	}
}

// TestLinkTypes judges the same connection captured on every link type
// analyze takes apart, over IPv4 and IPv6.
func TestLinkTypes(t *testing.T) {
	cases := []struct {
		name string
		lt   pcap.LinkType
		v6   bool
		// ether: frames are Ethernet (else bare IP, then hdr if set)
		ether bool
		vlan  uint16
		hdr   func(byte) []byte
	}{
		{name: "ethernet", lt: pcap.LinkTypeEthernet, ether: true},
		{name: "ethernet ipv6", lt: pcap.LinkTypeEthernet, ether: true, v6: true},
		{name: "ethernet vlan", lt: pcap.LinkTypeEthernet, ether: true, vlan: 100},
		{name: "ethernet vlan ipv6", lt: pcap.LinkTypeEthernet, ether: true, vlan: 4094, v6: true},
		{name: "raw", lt: pcap.LinkTypeRaw},
		{name: "raw ipv6", lt: pcap.LinkTypeRaw, v6: true},
		{name: "ipv4", lt: pcap.LinkTypeIPv4},
		{name: "ipv6", lt: pcap.LinkTypeIPv6, v6: true},
		{name: "linux sll", lt: pcap.LinkTypeLinuxSLL, hdr: sllHeader},
		{name: "linux sll ipv6", lt: pcap.LinkTypeLinuxSLL, hdr: sllHeader, v6: true},
		{name: "linux sll2", lt: pcap.LinkTypeLinuxSLL2, hdr: sll2Header},
		{name: "linux sll2 ipv6", lt: pcap.LinkTypeLinuxSLL2, hdr: sll2Header, v6: true},
		{name: "null little-endian", lt: pcap.LinkTypeNull, hdr: nullHeader(binary.LittleEndian, 24)},
		{name: "null big-endian", lt: pcap.LinkTypeNull, hdr: nullHeader(binary.BigEndian, 24)},
		{name: "null ipv6 netbsd", lt: pcap.LinkTypeNull, hdr: nullHeader(binary.LittleEndian, 24), v6: true},
		{name: "null ipv6 freebsd", lt: pcap.LinkTypeNull, hdr: nullHeader(binary.LittleEndian, 28), v6: true},
		{name: "null ipv6 darwin", lt: pcap.LinkTypeNull, hdr: nullHeader(binary.BigEndian, 30), v6: true},
		{name: "loop", lt: pcap.LinkTypeLoop, hdr: nullHeader(binary.BigEndian, 24)},
		{name: "loop ipv6", lt: pcap.LinkTypeLoop, hdr: nullHeader(binary.BigEndian, 28), v6: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cv := newConv(t)
			if tc.v6 {
				cv.c, cv.s = cli6, srv6
			}
			cv.vlan, cv.rawIP = tc.vlan, !tc.ether
			cv.add(closedConnection()...)
			frames := cv.frames
			if tc.hdr != nil {
				frames = withHeader(frames, tc.hdr)
			}
			a := NewAnalyzer("test.pcap", Options{})
			if err := a.Read(context.Background(), bytes.NewReader(pcapOf(t, tc.lt, frames...))); err != nil {
				t.Fatal(err)
			}
			rep := a.Finish()
			st := a.Stats()
			if st.TCP != 10 || st.Connections != 1 || st.NonTCP+st.Undecodable+st.UnsupportedLink != 0 {
				t.Errorf("stats %+v, want 10 TCP segments in 1 connection, nothing else", st)
			}
			if len(rep.Results) != 1 || rep.Results[0].Verdict != report.Pass {
				t.Fatalf("want one passing result:\n%s", textOf(rep))
			}
			wantName := cv.c.String() + " > " + cv.s.String()
			if got := rep.Results[0].Name; got != wantName {
				t.Errorf("name %q, want %q", got, wantName)
			}
		})
	}
}

func TestUnsupportedAndNonTCP(t *testing.T) {
	cv := newConv(t).add(closedConnection()...)
	arp := make([]byte, 42)
	binary.BigEndian.PutUint16(arp[12:], uint16(probe.EtherTypeARP))
	udp := &probe.Frame{IP: probe.IP{Src: cli.Addr(), Dst: srv.Addr(), Protocol: probe.ProtocolICMP}, ICMP: probe.ICMP{Type: 8}}
	icmp, err := udp.Encode()
	if err != nil {
		t.Fatal(err)
	}
	frames := append([][]byte{arp, icmp, {1, 2, 3}}, cv.frames...)
	a := NewAnalyzer("x", Options{})
	if err := a.Read(context.Background(), bytes.NewReader(pcapOf(t, pcap.LinkTypeEthernet, frames...))); err != nil {
		t.Fatal(err)
	}
	rep := a.Finish()
	if st := a.Stats(); st.NonTCP != 2 || st.Undecodable != 1 || st.TCP != 10 {
		t.Errorf("stats %+v, want 2 non-TCP, 1 undecodable, 10 TCP", st)
	}
	if len(rep.Results) != 1 || rep.Results[0].Verdict != report.Pass {
		t.Errorf("want one passing result:\n%s", textOf(rep))
	}

	// A link type analyze cannot take apart: counted, not fatal.
	a = NewAnalyzer("x", Options{})
	if err := a.Read(context.Background(), bytes.NewReader(pcapOf(t, pcap.LinkType(147), cv.frames...))); err != nil {
		t.Fatal(err)
	}
	rep = a.Finish()
	if st := a.Stats(); st.UnsupportedLink != 10 || len(rep.Results) != 0 {
		t.Errorf("stats %+v, %d results; want 10 packets of an unsupported link type, no result", st, len(rep.Results))
	}
	if !strings.Contains(strings.Join(rep.Notes, "\n"), "10 of link types analyze cannot take apart") {
		t.Errorf("notes %q do not count the unsupported packets", rep.Notes)
	}
}

// ipv6Fragment turns an encoded IPv6 packet (no Ethernet) into a first
// fragment by inserting a fragment header.
func ipv6Fragment(pkt []byte) []byte {
	out := append([]byte(nil), pkt[:40]...)
	frag := []byte{pkt[6], 0, 0, 1, 0, 0, 0, 42} // next header, offset 0, M=1, id 42
	out[6] = 44
	binary.BigEndian.PutUint16(out[4:], uint16(len(pkt)-40+8))
	out = append(out, frag...)
	return append(out, pkt[40:]...)
}

func TestFragments(t *testing.T) {
	cv := newConv(t).add(closedConnection()...)
	g := cData(101, 101, 100)
	f := cv.frame(g)
	f.IP.Flags = probe.IPFlagMF
	first, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	f.IP.Flags, f.IP.FragOffset = 0, 100
	later, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	cv6 := newConv(t)
	cv6.c, cv6.s, cv6.rawIP = cli6, srv6, true
	cv6.add(cData(1, 1, 10))
	frag6 := ipv6Fragment(cv6.frames[0])

	a := NewAnalyzer("x", Options{})
	if err := a.Read(context.Background(), bytes.NewReader(pcapOf(t, pcap.LinkTypeEthernet, append(cv.frames, first, later)...))); err != nil {
		t.Fatal(err)
	}
	rep := a.Finish()
	if st := a.Stats(); st.Fragments != 2 || st.TCP != 10 {
		t.Errorf("stats %+v, want 2 fragments, 10 TCP", st)
	}
	if len(rep.Results) != 1 || rep.Results[0].Verdict != report.Pass {
		t.Errorf("want one passing result:\n%s", textOf(rep))
	}

	a = NewAnalyzer("x", Options{})
	if err := a.Read(context.Background(), bytes.NewReader(pcapOf(t, pcap.LinkTypeIPv6, frag6))); err != nil {
		t.Fatal(err)
	}
	a.Finish()
	if st := a.Stats(); st.Fragments != 1 || st.TCP != 0 {
		t.Errorf("IPv6: stats %+v, want 1 fragment", st)
	}
}

// TestSnapshotLength: packets cut by the snapshot length are judged as far
// as their headers go; the length of cut data still counts in the
// sequence space; packets cut inside the TCP header are counted only.
func TestSnapshotLength(t *testing.T) {
	t.Run("data cut", func(t *testing.T) {
		cv := newConv(t)
		cv.snapshot = 14 + 20 + 32 // Ethernet, IPv4, TCP with 12 option bytes
		cv.add(cat(tsHandshake()[:1], []seg{sSYNACK(ts(500, 100)...), cACK(1, 1, ts(101, 500)...),
			cData(1, 1, 1000, ts(102, 500)...), sACK(1, 1001, ts(501, 102)...),
			cFIN(1001, 1, ts(103, 501)...), sACK(1, 1002, ts(502, 103)...), sFIN(1, 1002, ts(503, 103)...), cACK(1002, 2, ts(104, 503)...)})...)
		a := NewAnalyzer("x", Options{})
		if err := a.Read(context.Background(), bytes.NewReader(pcapOf(t, pcap.LinkTypeEthernet, cv.frames...))); err != nil {
			t.Fatal(err)
		}
		rep := a.Finish()
		if st := a.Stats(); st.Truncated != 2 || st.TCP != 9 {
			t.Errorf("stats %+v, want 2 truncated (the SYN's options and the data), 9 TCP", st)
		}
		if len(rep.Results) != 1 || rep.Results[0].Verdict != report.Pass {
			t.Fatalf("want one passing result:\n%s", textOf(rep))
		}
		if got := rep.Results[0].Steps[0].Actual; got != "S 0:0(0) win 64240 <options not captured>" {
			t.Errorf("SYN shown as %q, want its options marked as not captured", got)
		}
	})
	t.Run("cut inside the TCP header", func(t *testing.T) {
		cv := newConv(t)
		cv.snapshot = 14 + 20 + 10
		cv.add(closedConnection()...)
		a := NewAnalyzer("x", Options{})
		if err := a.Read(context.Background(), bytes.NewReader(pcapOf(t, pcap.LinkTypeEthernet, cv.frames...))); err != nil {
			t.Fatal(err)
		}
		rep := a.Finish()
		if st := a.Stats(); st.Truncated != 10 || st.TCP != 0 || st.Undecodable != 0 {
			t.Errorf("stats %+v, want 10 truncated and nothing judged", st)
		}
		if len(rep.Results) != 0 {
			t.Errorf("%d results, want none", len(rep.Results))
		}
	})
}

// TestDamagedCapture: damage ends the reading with an error naming its byte
// offset; the connections read before it are reported.
func TestDamagedCapture(t *testing.T) {
	good := kbCapture(t)
	// The offset of the fifth record: the file header, then four records.
	off := int64(24)
	frames := [][]byte{}
	{
		r, _ := pcap.NewReader(bytes.NewReader(good))
		var rec pcap.Record
		for r.Next(&rec) == nil {
			frames = append(frames, bytes.Clone(rec.Data))
		}
	}
	for _, f := range frames[:4] {
		off += 16 + int64(len(f))
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"cut in the middle of a record", good[:off+20]},
		{"absurd record length", func() []byte {
			b := bytes.Clone(good)
			binary.LittleEndian.PutUint32(b[off+8:], 1<<30)
			return b
		}()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := analyzeBytes(t, tc.data, Options{})
			var fe *pcap.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v, want a *pcap.FormatError", err)
			}
			if fe.Offset != off || !strings.Contains(err.Error(), "test.pcap") {
				t.Errorf("error %q at offset %d, want offset %d and the file's name", err, fe.Offset, off)
			}
			if rep == nil || len(rep.Results) != 2 {
				t.Fatalf("want the two connections read before the damage, got:\n%s", textOf(rep))
			}
			second := rep.Results[1]
			if !strings.Contains(strings.Join(second.Notes, "\n"), "no close in the capture: 192.94.222.123:2337 closed its side, 192.94.222.87:1352 did not; the capture ends in damage") {
				t.Errorf("notes %q do not say the close is cut by the damage", second.Notes)
			}
			if !strings.Contains(strings.Join(rep.Notes, "\n"), "the capture is damaged") {
				t.Errorf("report notes %q do not mention the damage", rep.Notes)
			}
		})
	}
	t.Run("not a capture", func(t *testing.T) {
		rep, err := analyzeBytes(t, []byte("GET / HTTP/1.1\r\nHost: example\r\n\r\n"), Options{})
		var fe *pcap.FormatError
		if !errors.As(err, &fe) || fe.Offset != 0 {
			t.Fatalf("error %v, want a *pcap.FormatError at byte 0", err)
		}
		if rep == nil || len(rep.Results) != 0 || rep.Command != "analyze" {
			t.Errorf("want an empty analyze report, got %+v", rep)
		}
	})
	t.Run("empty", func(t *testing.T) {
		_, err := analyzeBytes(t, nil, Options{})
		if !errors.Is(err, pcap.ErrTruncated) {
			t.Errorf("error %v, want one wrapping pcap.ErrTruncated", err)
		}
	})
}

// ngBuilder writes a pcapng file, little-endian.
type ngBuilder struct{ b []byte }

func (w *ngBuilder) block(typ uint32, body []byte) {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	n := uint32(12 + len(body))
	w.b = binary.LittleEndian.AppendUint32(w.b, typ)
	w.b = binary.LittleEndian.AppendUint32(w.b, n)
	w.b = append(w.b, body...)
	w.b = binary.LittleEndian.AppendUint32(w.b, n)
}

func newNG() *ngBuilder {
	w := &ngBuilder{}
	body := binary.LittleEndian.AppendUint32(nil, 0x1a2b3c4d)
	body = binary.LittleEndian.AppendUint16(body, 1)
	body = binary.LittleEndian.AppendUint16(body, 0)
	body = binary.LittleEndian.AppendUint64(body, ^uint64(0))
	w.block(0x0a0d0d0a, body)
	return w
}

func (w *ngBuilder) iface(lt pcap.LinkType) {
	body := binary.LittleEndian.AppendUint16(nil, uint16(lt))
	body = binary.LittleEndian.AppendUint16(body, 0)
	body = binary.LittleEndian.AppendUint32(body, 0)
	w.block(1, body)
}

func (w *ngBuilder) packet(iface uint32, ts time.Time, data []byte) {
	us := uint64(ts.UnixMicro())
	body := binary.LittleEndian.AppendUint32(nil, iface)
	body = binary.LittleEndian.AppendUint32(body, uint32(us>>32))
	body = binary.LittleEndian.AppendUint32(body, uint32(us))
	body = binary.LittleEndian.AppendUint32(body, uint32(len(data)))
	body = binary.LittleEndian.AppendUint32(body, uint32(len(data)))
	w.block(6, append(body, data...))
}

// TestPcapng: one connection seen on two interfaces of different link
// types (Ethernet and raw IP) in a pcapng, packets alternating.
func TestPcapng(t *testing.T) {
	eth := newConv(t).add(closedConnection()...)
	raw := newConv(t)
	raw.rawIP = true
	raw.add(closedConnection()...)
	w := newNG()
	w.iface(pcap.LinkTypeEthernet)
	w.iface(pcap.LinkTypeRaw)
	for i := range eth.frames {
		if i%2 == 0 {
			w.packet(0, t0.Add(time.Duration(i)*time.Millisecond), eth.frames[i])
		} else {
			w.packet(1, t0.Add(time.Duration(i)*time.Millisecond), raw.frames[i])
		}
	}
	rep := mustAnalyze(t, w.b, Options{})
	if len(rep.Results) != 1 || rep.Results[0].Verdict != report.Pass {
		t.Fatalf("want one passing result:\n%s", textOf(rep))
	}
	if st := rep.Results[0].Steps[3]; st.Line != 7 || st.AtMS != 6 {
		t.Errorf("step 4 at packet %d, %v ms; want the FIN, packet 7, 6 ms after the first", st.Line, st.AtMS)
	}
}

func TestOnlyFailuresAndOnResult(t *testing.T) {
	good := newConv(t).add(closedConnection()...)
	bad := newConv(t)
	bad.c = netip.MustParseAddrPort("192.0.2.9:41000")
	bad.add(cat(handshake()[:1], []seg{with(sSYNACK(), func(g *seg) { g.ack = 7 })})...)
	frames := append(good.frames, bad.frames...)

	rep := mustAnalyze(t, pcapOf(t, 1, frames...), Options{OnlyFailures: true})
	if len(rep.Results) != 1 || rep.Results[0].Verdict != report.Fail || rep.Summary[report.Pass] != 1 || rep.Summary[report.Fail] != 1 {
		t.Errorf("want the failing result only, summary 1 pass 1 fail; got summary %s:\n%s", rep.Summary.Counts(), textOf(rep))
	}
	if rep.ExitCode() != 1 {
		t.Errorf("exit code %d, want 1", rep.ExitCode())
	}

	var got []string
	rep = mustAnalyze(t, pcapOf(t, 1, frames...), Options{OnResult: func(r report.Result) { got = append(got, r.Name+" "+string(r.Verdict)) }})
	want := []string{"192.0.2.1:40000 > 192.0.2.2:80 pass", "192.0.2.9:41000 > 192.0.2.2:80 fail"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") || len(rep.Results) != 0 {
		t.Errorf("OnResult got %q and the report kept %d results; want %q and none kept", got, len(rep.Results), want)
	}
}

func TestMaxSteps(t *testing.T) {
	segs := handshake()
	for i := range 10 {
		segs = append(segs, cACK(1, 1, probe.WScaleOption(uint8(i))))
	}
	rep := mustAnalyze(t, pcapOf(t, 1, newConv(t).add(segs...).frames...), Options{MaxSteps: 5})
	r := rep.Results[0]
	if len(r.Steps) != 5 || r.Verdict != report.Warn {
		t.Errorf("%d steps, verdict %s; want 5 steps, warn", len(r.Steps), r.Verdict)
	}
	if !strings.Contains(strings.Join(r.Notes, "\n"), "8 more steps not listed (8 of them with problems)") {
		t.Errorf("notes %q do not count the steps left out", r.Notes)
	}
}

// TestIdleTimeout: a connection silent for longer than IdleTimeout (in
// capture time) is reported early; its 4-tuple then starts afresh.
func TestIdleTimeout(t *testing.T) {
	cv := newConv(t).add(cat(handshake(), []seg{cData(1, 1, 10), sACK(1, 11)})...)
	var buf bytes.Buffer
	w, _ := pcap.NewWriter(&buf, pcap.LinkTypeEthernet)
	for i, f := range cv.frames {
		at := t0.Add(time.Duration(i) * time.Second)
		if i >= 3 {
			at = at.Add(10 * time.Minute)
		}
		w.WritePacket(at, f)
	}
	w.Flush()
	rep := mustAnalyze(t, buf.Bytes(), Options{IdleTimeout: time.Minute})
	if len(rep.Results) != 2 {
		t.Fatalf("%d results, want 2:\n%s", len(rep.Results), textOf(rep))
	}
	if n := strings.Join(rep.Results[0].Notes, "\n"); !strings.Contains(n, "idle too long in capture time") {
		t.Errorf("first result's notes %q do not say it went idle", n)
	}
	if n := strings.Join(rep.Results[1].Notes, "\n"); !strings.Contains(n, "handshake not in the capture") {
		t.Errorf("second result's notes %q do not say it was seen from its middle", n)
	}
}

func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := Analyze(ctx, bytes.NewReader(kbCapture(t)), "x", Options{})
	if !errors.Is(err, context.Canceled) || rep == nil {
		t.Errorf("error %v, report %v; want context.Canceled and a report", err, rep != nil)
	}
}

func TestReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	r := io.MultiReader(bytes.NewReader(kbCapture(t)[:200]), iotestErr{boom})
	rep, err := Analyze(context.Background(), r, "x", Options{})
	if !errors.Is(err, boom) || rep == nil {
		t.Errorf("error %v, want one wrapping %v, and a report", err, boom)
	}
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }

// TestAppendOptions: the fast option writer matches probe.FormatOptions
// over the options the codec decodes.
func TestAppendOptions(t *testing.T) {
	areas := [][]byte{
		{2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7},
		{1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6},
		{5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0},
		{34, 2, 0, 0},
		{254, 6, 0xf9, 0x89, 1, 2},
		{99, 4, 1, 2, 0, 0, 0, 0},
		{2, 3, 5, 0},
		{0, 0, 0, 0},
		{3, 3, 14, 0},
	}
	for _, area := range areas {
		f := probe.Frame{IP: probe.IP{Src: cli.Addr(), Dst: srv.Addr()}, TCP: probe.TCP{Options: []probe.Option{probe.RawOption(area)}}}
		b, err := f.Encode()
		if err != nil {
			t.Fatal(err)
		}
		var g probe.Frame
		if err := g.Decode(b); err != nil {
			t.Fatal(err)
		}
		want := probe.FormatOptions(g.TCP.Options)
		if got := string(appendOptions(nil, g.TCP.OptionBytes)); got != want {
			t.Errorf("options % x: got %q, want %q", area, got, want)
		}
	}
}

package probe

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"synprobe/internal/kbframes"
)

func loadKB(t testing.TB) []kbframes.Frame {
	t.Helper()
	frames, err := kbframes.ReadFile("../testdata/kb172983-frames.txt")
	if err != nil {
		t.Fatal(err)
	}
	return frames
}

func mustMAC(s string) MAC {
	m, err := ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// TestKB172983 decodes the reference exchange: every field as printed in the
// article, valid checksums, padding kept apart from the segment.
func TestKB172983(t *testing.T) {
	a214 := netip.MustParseAddr("131.107.2.214")
	a211 := netip.MustParseAddr("131.107.2.211")
	a123 := netip.MustParseAddr("192.94.222.123")
	a87 := netip.MustParseAddr("192.94.222.87")
	macClient := mustMAC("02:60:8c:3b:85:c1")
	macServer := mustMAC("02:60:8c:9e:18:8b")
	mac39 := mustMAC("00:a0:c9:22:f5:39")
	mac58 := mustMAC("00:20:af:47:93:58")
	mac84 := mustMAC("08:00:02:03:ba:84")

	type want struct {
		ethSrc, ethDst     MAC
		id                 uint16
		df                 bool
		ttl                uint8
		ipSum              uint16
		src, dst           netip.Addr
		sport, dport       uint16
		seq, ack           uint32
		flags              Flags
		win, sum           uint16
		mss                uint16 // 0: no MSS option
		padding            string
		dataOffset         uint8
		totalLen, frameLen int
	}
	wants := []want{
		{macClient, macServer, 0x0d01, true, 128, 0xe14b, a214, a211, 1037, 139, 8221822, 0, SYN, 8192, 0xf213, 1460, "\x20\x20", 6, 44, 60},
		{macServer, macClient, 0x5b00, true, 128, 0x934c, a211, a214, 139, 1037, 1109645, 8221823, SYN | ACK, 8760, 0x012d, 1460, "\x20\x20", 6, 44, 60},
		{macClient, macServer, 0x0e01, true, 128, 0xe04f, a214, a211, 1037, 139, 8221823, 1109646, ACK, 8760, 0x18ea, 0, "\x20\x20\x20\x20\x20\x20", 5, 40, 60},
		{mac39, mac58, 0x9bf5, true, 128, 0x214a, a123, a87, 2337, 1352, 186685100, 3462835714, FIN | ACK, 8760, 0x236c, 0, "", 5, 40, 54},
		{mac84, mac39, 0xd282, false, 63, 0x6bbd, a87, a123, 1352, 2337, 3462835714, 186685101, ACK, 28672, 0xd5a3, 0, "\x00\x00\x90\x00\x01\x00\x86\x00"[2:], 5, 40, 60},
		{mac84, mac39, 0xd294, false, 63, 0x6bab, a87, a123, 1352, 2337, 3462835714, 186685101, FIN | ACK, 28672, 0xd5a2, 0, "\x02\x04\x05\xb4\x86\x00", 5, 40, 60},
		{mac39, mac58, 0xbaf5, true, 128, 0x024a, a123, a87, 2337, 1352, 186685101, 3462835715, ACK, 8760, 0x236b, 0, "", 5, 40, 54},
	}
	for i, kb := range loadKB(t) {
		w := wants[i]
		var f Frame
		if err := f.Decode(kb.Data); err != nil {
			t.Fatalf("frame %d: decode: %v", kb.Number, err)
		}
		check := func(field string, got, want any) {
			t.Helper()
			if got != want {
				t.Errorf("frame %d (%s): %s: got %v, want %v", kb.Number, kb.Description, field, got, want)
			}
		}
		check("layers", f.Layers, LayerEthernet|LayerIP|LayerTCP)
		check("frame length", len(kb.Data), w.frameLen)
		check("eth src", f.Ethernet.Src, w.ethSrc)
		check("eth dst", f.Ethernet.Dst, w.ethDst)
		check("ethertype", f.Ethernet.Type, EtherTypeIPv4)
		check("ip version", f.IP.Version, uint8(4))
		check("ip total length", f.IP.TotalLength, w.totalLen)
		check("ip id", f.IP.ID, w.id)
		check("ip DF", f.IP.DF(), w.df)
		check("ip ttl", f.IP.TTL, w.ttl)
		check("ip protocol", f.IP.Protocol, ProtocolTCP)
		check("ip checksum", f.IP.Checksum, w.ipSum)
		check("ip checksum status", f.IPChecksum, ChecksumValid)
		check("ip src", f.IP.Src, w.src)
		check("ip dst", f.IP.Dst, w.dst)
		check("tcp sport", f.TCP.SrcPort, w.sport)
		check("tcp dport", f.TCP.DstPort, w.dport)
		check("tcp seq", f.TCP.Seq, Seq(w.seq))
		check("tcp ack", f.TCP.Ack, Seq(w.ack))
		check("tcp flags", f.TCP.Flags, w.flags)
		check("tcp data offset", f.TCP.DataOffset, w.dataOffset)
		check("tcp reserved", f.TCP.Reserved, uint8(0))
		check("tcp window", f.TCP.Window, w.win)
		check("tcp checksum", f.TCP.Checksum, w.sum)
		check("tcp checksum status", f.Checksum, ChecksumValid)
		check("tcp urgent", f.TCP.Urgent, uint16(0))
		check("tcp payload length", len(f.TCP.Payload), 0)
		check("tcp options error", f.TCP.OptionsErr, nil)
		check("padding", string(f.Padding), w.padding)
		mss, hasMSS := f.TCP.MSS()
		check("mss", mss, w.mss)
		if w.mss == 0 {
			// Frame 6's padding looks like an MSS option: it must not be one.
			check("option count", len(f.TCP.Options), 0)
			check("has mss", hasMSS, false)
		} else {
			check("option count", len(f.TCP.Options), 1)
		}
		enc, err := f.Encode()
		if err != nil {
			t.Fatalf("frame %d: encode: %v", kb.Number, err)
		}
		if !bytes.Equal(enc, kb.Data) {
			t.Errorf("frame %d: re-encoded bytes differ:\n got %x\nwant %x", kb.Number, enc, kb.Data)
		}
	}
}

// TestKBSequenceArithmetic checks the rules the article illustrates on its
// own numbers: the handshake (frames 1-3) and the close (frames 4-7).
func TestKBSequenceArithmetic(t *testing.T) {
	kb := loadKB(t)
	f := make([]Frame, len(kb))
	for i := range kb {
		if err := f[i].Decode(kb[i].Data); err != nil {
			t.Fatal(err)
		}
	}
	syn, synack, ack := &f[0].TCP, &f[1].TCP, &f[2].TCP
	if synack.Ack != syn.End() {
		t.Errorf("SYN-ACK ack: got %d, want client ISN+1 = %d", synack.Ack, syn.End())
	}
	if ack.Seq != syn.End() || ack.Ack != synack.End() {
		t.Errorf("ACK: got seq %d ack %d, want %d and %d", ack.Seq, ack.Ack, syn.End(), synack.End())
	}
	fin, finAck, srvFin, lastAck := &f[3].TCP, &f[4].TCP, &f[5].TCP, &f[6].TCP
	if finAck.Ack != fin.End() {
		t.Errorf("ACK of FIN: got ack %d, want FIN seq+1 = %d", finAck.Ack, fin.End())
	}
	if lastAck.Ack != srvFin.End() {
		t.Errorf("ACK of server FIN: got ack %d, want %d", lastAck.Ack, srvFin.End())
	}
	if f[0].Src() == f[3].Src() || f[0].Src() == f[3].Dst() {
		t.Errorf("frames 1 and 4 share an endpoint (%v); the article's bytes say they do not", f[0].Src())
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	v4s, v4d := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	v6s, v6d := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	allOpts := []Option{
		MSSOption(1460), SACKPermittedOption(), TimestampsOption(1, 0), NOPOption(), WScaleOption(7),
	}
	tests := []struct {
		name string
		f    Frame
	}{
		{"v4 syn with options", Frame{IP: IP{Src: v4s, Dst: v4d, Flags: IPFlagDF, ID: 7}, TCP: TCP{SrcPort: 61000, DstPort: 80, Seq: 1, Flags: SYN, Window: 65535, Options: allOpts}}},
		{"v6 data", Frame{IP: IP{Src: v6s, Dst: v6d, FlowLabel: 0x12345, TOS: 0xb8}, TCP: TCP{SrcPort: 1, DstPort: 2, Seq: 0xfffffff0, Ack: 5, Flags: PSH | ACK, Window: 501, Payload: []byte("hello")}}},
		{"sack and fast open", Frame{IP: IP{Src: v4s, Dst: v4d}, TCP: TCP{Flags: ACK, Options: []Option{NOPOption(), NOPOption(), SACKOption(SACKBlock{10, 20}, SACKBlock{30, 40}), FastOpenOption([]byte{1, 2, 3, 4}), ExpFastOpenOption(nil)}}}},
		{"accecn both orders", Frame{IP: IP{Src: v4s, Dst: v4d, TOS: 2}, TCP: TCP{Flags: ACK | CWR, Reserved: 1, Options: []Option{AccECNOption(true, 1, 0, 0x123456), NOPOption(), AccECNOption(false, 7), NOPOption(), NOPOption(), NOPOption()}}}},
		{"unknown option and eol padding", Frame{IP: IP{Src: v4s, Dst: v4d}, TCP: TCP{Flags: SYN, Options: []Option{{Kind: 99, Data: []byte{0, 0}}, {Kind: OptionEOL, Data: []byte{0, 0, 0}}}}}},
		{"reserved bits and urgent", Frame{IP: IP{Src: v4s, Dst: v4d, TOS: 2}, TCP: TCP{Flags: URG | ACK | ECE | CWR, Reserved: 0xf, Urgent: 1, Payload: []byte{'x'}}}},
		{"ipv4 options", Frame{IP: IP{Src: v4s, Dst: v4d, Options: []byte{1, 1, 1, 0}}, TCP: TCP{Flags: RST}}},
		{"wide data offset", Frame{IP: IP{Src: v4s, Dst: v4d}, TCP: TCP{Flags: SYN, DataOffset: 15, Options: []Option{MSSOption(536)}}}},
		{"icmp quote v4", Frame{IP: IP{Src: v4d, Dst: v4s, Protocol: ProtocolICMP}, ICMP: ICMP{Type: ICMPv4DestUnreachable, Code: 1, Body: make([]byte, 28)}}},
		{"icmp quote v6", Frame{IP: IP{Src: v6d, Dst: v6s, Protocol: ProtocolICMPv6}, ICMP: ICMP{Type: ICMPv6DestUnreachable, Code: 1, Body: make([]byte, 48)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := tt.f.Encode()
			if err != nil {
				t.Fatal(err)
			}
			var got Frame
			if err := got.Decode(enc); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got.Checksum != ChecksumValid {
				t.Errorf("transport checksum: got %v, want valid", got.Checksum)
			}
			if got.IP.Version == 4 && got.IPChecksum != ChecksumValid {
				t.Errorf("ip checksum: got %v, want valid", got.IPChecksum)
			}
			if got.TCP.OptionsErr != nil {
				t.Errorf("options: %v", got.TCP.OptionsErr)
			}
			decoded := got.TCP.Options
			if n := len(decoded); n > 0 && decoded[n-1].Kind == OptionEOL && (len(tt.f.TCP.Options) == 0 || tt.f.TCP.Options[len(tt.f.TCP.Options)-1].Kind != OptionEOL) {
				decoded = decoded[:n-1] // zero padding to a 4-byte boundary
			}
			if g, w := FormatOptions(decoded), FormatOptions(tt.f.TCP.Options); tt.f.TCP.DataOffset == 0 && g != w {
				t.Errorf("options: got %s, want %s", g, w)
			}
			if got.TCP.Flags != tt.f.TCP.Flags || got.TCP.Seq != tt.f.TCP.Seq || got.TCP.Reserved != tt.f.TCP.Reserved&0xf || !bytes.Equal(got.TCP.Payload, tt.f.TCP.Payload) {
				t.Errorf("tcp: got %v, want %v", &got.TCP, &tt.f.TCP)
			}
			again, err := got.Encode()
			if err != nil || !bytes.Equal(again, enc) {
				t.Errorf("second round: got %x (%v), want %x", again, err, enc)
			}
		})
	}
}

func TestOverrides(t *testing.T) {
	base := Frame{
		IP:  IP{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2")},
		TCP: TCP{SrcPort: 1, DstPort: 2, Flags: SYN, Options: []Option{MSSOption(1460)}},
	}
	tests := []struct {
		name    string
		ov      []Override
		check   func(f *Frame, err error) string
		decodes bool
	}{
		{"bad tcp checksum", []Override{{FieldTCPChecksumAdd, 1}}, func(f *Frame, err error) string {
			if f.Checksum != ChecksumInvalid || f.IPChecksum != ChecksumValid {
				return "want tcp checksum invalid, ip checksum valid; got " + f.Checksum.String() + ", " + f.IPChecksum.String()
			}
			return ""
		}, true},
		{"exact tcp checksum", []Override{{FieldTCPChecksum, 0xbeef}}, func(f *Frame, err error) string {
			if f.TCP.Checksum != 0xbeef {
				return "checksum not 0xbeef"
			}
			return ""
		}, true},
		{"data offset too small", []Override{{FieldTCPDataOffset, 3}}, func(f *Frame, err error) string {
			var de *DecodeError
			if !errors.As(err, &de) || de.Field != "data offset" || de.Offset != 14+20+12 || !errors.Is(err, ErrBadLength) {
				return "want a data offset DecodeError at byte 46, got " + errString(err)
			}
			if f.TCP.SrcPort != 1 || f.TCP.DstPort != 2 {
				return "ports lost on a damaged header"
			}
			return ""
		}, false},
		{"data offset past the end", []Override{{FieldTCPDataOffset, 15}}, func(f *Frame, err error) string {
			if !errors.Is(err, ErrTruncated) {
				return "want ErrTruncated, got " + errString(err)
			}
			return ""
		}, false},
		{"data offset hides the option (checksum still right)", []Override{{FieldTCPDataOffset, 5}}, func(f *Frame, err error) string {
			if len(f.TCP.Options) != 0 || len(f.TCP.Payload) != 4 || f.Checksum != ChecksumValid {
				return "want no options, 4 bytes payload, valid checksum; got " + f.TCP.String() + " " + f.Checksum.String()
			}
			return ""
		}, true},
		{"bad ip checksum", []Override{{FieldIPChecksumAdd, 1}}, func(f *Frame, err error) string {
			if f.IPChecksum != ChecksumInvalid || f.Checksum != ChecksumValid {
				return "want ip checksum invalid, tcp valid"
			}
			return ""
		}, true},
		{"ip total length short", []Override{{FieldIPTotalLength, 10}}, func(f *Frame, err error) string {
			if !errors.Is(err, ErrBadLength) {
				return "want ErrBadLength, got " + errString(err)
			}
			return ""
		}, false},
		{"ip total length long", []Override{{FieldIPTotalLength, 100}}, func(f *Frame, err error) string {
			if !f.Truncated || f.Checksum != ChecksumUnchecked {
				return "want a truncated frame with its checksum unchecked"
			}
			return ""
		}, true},
		{"ip version", []Override{{FieldIPVersion, 5}}, func(f *Frame, err error) string {
			if !errors.Is(err, ErrBadVersion) {
				return "want ErrBadVersion, got " + errString(err)
			}
			return ""
		}, false},
		{"ip header length", []Override{{FieldIPHeaderLength, 4}}, func(f *Frame, err error) string {
			if !errors.Is(err, ErrBadLength) {
				return "want ErrBadLength, got " + errString(err)
			}
			return ""
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := base.Encode(tt.ov...)
			if err != nil {
				t.Fatal(err)
			}
			var f Frame
			err = f.Decode(enc)
			if tt.decodes && err != nil {
				t.Fatalf("decode: %v", err)
			}
			if msg := tt.check(&f, err); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

func TestMalformedOptionsEncodeAndDecode(t *testing.T) {
	tests := []struct {
		name      string
		opts      []Option
		wantErr   string // substring of OptionsErr
		wantCount int
		invalid   bool // some decoded option fails Validate
	}{
		{"mss length 0", []Option{RawOption([]byte{2, 0, 5, 0xb4})}, "length 0, below the minimum of 2", 0, false},
		{"mss length 1", []Option{RawOption([]byte{2, 1, 5, 0xb4})}, "length 1", 0, false},
		{"mss length past end", []Option{NOPOption(), RawOption([]byte{2, 8, 5, 0xb4})}, "runs past the end", 1, false},
		{"mss length 3", []Option{RawOption([]byte{2, 3, 5, 1})}, "", 2, true},
		{"length byte missing", []Option{NOPOption(), NOPOption(), NOPOption(), RawOption([]byte{99})}, "length byte missing", 3, false},
		{"unaligned nop,mss", []Option{NOPOption(), MSSOption(100)}, "", 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := Frame{IP: IP{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2")}, TCP: TCP{Flags: SYN, Options: tt.opts}}
			enc, err := f.Encode()
			if err != nil {
				t.Fatal(err)
			}
			var got Frame
			if err := got.Decode(enc); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if tt.wantErr == "" && got.TCP.OptionsErr != nil || tt.wantErr != "" && (got.TCP.OptionsErr == nil || !bytes.Contains([]byte(got.TCP.OptionsErr.Error()), []byte(tt.wantErr))) {
				t.Errorf("options error: got %v, want one containing %q", got.TCP.OptionsErr, tt.wantErr)
			}
			if len(got.TCP.Options) != tt.wantCount {
				t.Errorf("options decoded: got %d (%s), want %d", len(got.TCP.Options), FormatOptions(got.TCP.Options), tt.wantCount)
			}
			invalid := false
			for _, o := range got.TCP.Options {
				if o.Validate() != nil {
					invalid = true
				}
			}
			if invalid != tt.invalid {
				t.Errorf("an invalid option decoded: got %v, want %v", invalid, tt.invalid)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	kb := loadKB(t)[0].Data
	tests := []struct {
		name  string
		data  []byte
		layer string
		err   error
	}{
		{"empty", nil, "ethernet", ErrTruncated},
		{"short ethernet", kb[:10], "ethernet", ErrTruncated},
		{"short ipv4", kb[:20], "ipv4", ErrTruncated},
		{"tcp shorter than its header", shortTCP(kb), "tcp", ErrTruncated},
		{"vlan tag cut", append(append([]byte{}, kb[:12]...), 0x81, 0, 0), "ethernet", ErrTruncated},
		{"ipv6 ethertype, v4 packet", append(append(append([]byte{}, kb[:12]...), 0x86, 0xdd), kb[14:]...), "ipv6", ErrBadVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Frame
			err := f.Decode(tt.data)
			var de *DecodeError
			if !errors.As(err, &de) || de.Layer != tt.layer || !errors.Is(err, tt.err) {
				t.Errorf("got %v, want a %s error wrapping %v", err, tt.layer, tt.err)
			}
		})
	}
}

// shortTCP returns kb with an IP total length that leaves 16 bytes of TCP.
func shortTCP(kb []byte) []byte {
	b := append([]byte{}, kb[:50]...)
	b[16], b[17] = 0, 36
	return b
}

func TestFlagsString(t *testing.T) {
	tests := []struct {
		f Flags
		s string
	}{{SYN, "S"}, {SYN | ACK, "S."}, {FIN | PSH | ACK, "FP."}, {RST | ACK, "R."}, {ACK, "."}, {0, "none"}, {SYN | ECE | CWR, "SEW"}}
	for _, tt := range tests {
		if got := tt.f.String(); got != tt.s {
			t.Errorf("%08b: got %q, want %q", uint8(tt.f), got, tt.s)
		}
		back, err := ParseFlags(tt.s)
		if err != nil || back != tt.f {
			t.Errorf("ParseFlags(%q): got %v, %v; want %v", tt.s, back, err, tt.f)
		}
	}
	for _, bad := range []string{"", "X", "SS"} {
		if _, err := ParseFlags(bad); err == nil {
			t.Errorf("ParseFlags(%q): want an error", bad)
		}
	}
}

func TestICMPQuote(t *testing.T) {
	orig := Frame{IP: IP{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2")}, TCP: TCP{SrcPort: 61000, DstPort: 80, Seq: 12345, Flags: SYN}}
	ip, err := orig.EncodeIP()
	if err != nil {
		t.Fatal(err)
	}
	errFrame := Frame{IP: IP{Src: orig.IP.Dst, Dst: orig.IP.Src, Protocol: ProtocolICMP}, ICMP: ICMP{Type: ICMPv4DestUnreachable, Code: 3, Body: ip[:28]}}
	enc, err := errFrame.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	if err := f.Decode(enc); err != nil {
		t.Fatal(err)
	}
	if !f.Has(LayerICMP) || !f.ICMP.IsError(false) || f.Checksum != ChecksumValid {
		t.Fatalf("got %v (checksum %v), want a valid ICMP error", &f, f.Checksum)
	}
	q, err := f.ICMP.Quote()
	if err != nil {
		t.Fatal(err)
	}
	want := Quote{Protocol: ProtocolTCP, Src: orig.Src(), Dst: orig.Dst(), Seq: 12345}
	if q != want {
		t.Errorf("quote: got %+v, want %+v", q, want)
	}
	short := ICMP{Body: ip[:24]}
	if _, err := short.Quote(); err == nil {
		t.Error("a quote with 4 bytes of TCP: want an error")
	}
}

func TestIPv6ExtensionHeaders(t *testing.T) {
	f := Frame{IP: IP{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2")}, TCP: TCP{SrcPort: 5, DstPort: 6, Flags: SYN}}
	pkt, err := f.EncodeIP()
	if err != nil {
		t.Fatal(err)
	}
	// Insert a destination-options header (8 bytes, PadN) before TCP.
	ext := []byte{ProtocolTCP, 0, 1, 4, 0, 0, 0, 0}
	withExt := append(append(append([]byte{}, pkt[:40]...), ext...), pkt[40:]...)
	withExt[6] = ipv6DestOpts
	withExt[5] += 8
	var g Frame
	if err := g.DecodeIP(withExt); err != nil {
		t.Fatal(err)
	}
	if !g.Has(LayerTCP) || g.TCP.SrcPort != 5 || g.IP.HeaderLen != 48 || g.Checksum != ChecksumValid {
		t.Errorf("got %v header %d checksum %v, want TCP from port 5 after a 48-byte header, valid", &g, g.IP.HeaderLen, g.Checksum)
	}
}

func TestSeq(t *testing.T) {
	tests := []struct {
		a, b      Seq
		less, leq bool
		sub       int32
	}{
		{1, 2, true, true, -1},
		{2, 1, false, false, 1},
		{5, 5, false, true, 0},
		{0xfffffff0, 0x10, true, true, -0x20},
		{0x10, 0xfffffff0, false, false, 0x20},
	}
	for _, tt := range tests {
		if got := tt.a.LessThan(tt.b); got != tt.less {
			t.Errorf("%d.LessThan(%d): got %v, want %v", tt.a, tt.b, got, tt.less)
		}
		if got := tt.a.LessEq(tt.b); got != tt.leq {
			t.Errorf("%d.LessEq(%d): got %v, want %v", tt.a, tt.b, got, tt.leq)
		}
		if got := tt.a.Sub(tt.b); got != tt.sub {
			t.Errorf("%d.Sub(%d): got %d, want %d", tt.a, tt.b, got, tt.sub)
		}
	}
	if !Seq(0xffffffff).InWindow(0xfffffff0, 0x20) || Seq(0x10).InWindow(0xfffffff0, 0x20) || Seq(5).InWindow(5, 0) {
		t.Error("InWindow across the wrap")
	}
	if got := Seq(0xffffffff).Add(2); got != 1 {
		t.Errorf("Add across the wrap: got %d, want 1", got)
	}
	if !Seq(3).InRange(0xfffffffe, 4) || Seq(4).InRange(0xfffffffe, 4) {
		t.Error("InRange across the wrap")
	}
}

package probe

import (
	"net/netip"
	"testing"
)

// quotedSYN is the SYN a trace sends, as a bare IP packet.
func quotedSYN(t testing.TB, v6 bool, ov ...Override) ([]byte, Frame) {
	t.Helper()
	src, dst := netip.MustParseAddr("10.79.1.1"), netip.MustParseAddr("10.79.3.1")
	if v6 {
		src, dst = netip.MustParseAddr("fd79:1::1"), netip.MustParseAddr("fd79:3::1")
	}
	f := Frame{
		IP: IP{Src: src, Dst: dst, TTL: 1, ID: 0x5301, Flags: IPFlagDF, TOS: 0x28},
		TCP: TCP{SrcPort: 61234, DstPort: 8080, Seq: 1000, Flags: SYN | ECE | CWR, Window: 64240,
			Options: []Option{MSSOption(1460), SACKPermittedOption(), TimestampsOption(7, 0), NOPOption(), WScaleOption(7)},
			Payload: []byte("0123456789abcdef")},
	}
	b, err := f.EncodeIP(ov...)
	if err != nil {
		t.Fatal(err)
	}
	return b, f
}

func TestQuotedPacket(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		pkt, sent := quotedSYN(t, v6)
		ipLen := IPv4HeaderLen
		if v6 {
			ipLen = IPv6HeaderLen
		}
		for _, tc := range []struct {
			name      string
			quote     int // bytes of TCP quoted; -1: all
			class     QuoteClass
			covers    int
			options   bool
			checksum  ChecksumStatus
			badsum    bool
			wantError bool
		}{
			{name: "full", quote: -1, class: QuoteFull, covers: QuotedTCPUrgent, options: true, checksum: ChecksumValid},
			{name: "full bad checksum", quote: -1, class: QuoteFull, covers: QuotedTCPUrgent, options: true, checksum: ChecksumInvalid, badsum: true},
			{name: "header and options", quote: 40, class: QuotePartial, covers: QuotedTCPUrgent, options: true},
			{name: "fixed header", quote: 20, class: QuotePartial, covers: QuotedTCPUrgent},
			{name: "up to the window", quote: 16, class: QuotePartial, covers: QuotedTCPWindow},
			{name: "rfc792", quote: 8, class: QuoteRFC792, covers: QuotedTCPSeq},
			{name: "ports only", quote: 4, class: QuoteNone, covers: QuotedTCPPorts},
			{name: "ip header cut", quote: -20, wantError: true},
		} {
			t.Run(map[bool]string{false: "v4 ", true: "v6 "}[v6]+tc.name, func(t *testing.T) {
				p := pkt
				if tc.badsum {
					p, _ = quotedSYN(t, v6, Override{Field: FieldTCPChecksumAdd, Value: 1})
				}
				switch {
				case tc.quote >= 0:
					p = p[:ipLen+tc.quote]
				case tc.quote < -1:
					p = p[:ipLen+tc.quote]
				}
				icmp := ICMP{Type: ICMPv4TimeExceeded, Body: p}
				q, err := icmp.QuotedPacket()
				if tc.wantError {
					if err == nil {
						t.Fatalf("QuotedPacket() = %+v, want an error", q)
					}
					return
				}
				if err != nil {
					t.Fatalf("QuotedPacket(): %v", err)
				}
				if q.Class != tc.class {
					t.Errorf("class: got %v, want %v", q.Class, tc.class)
				}
				if !q.Covers(tc.covers) || tc.covers < QuotedTCPUrgent && q.Covers(tc.covers+1) {
					t.Errorf("covers: got %d bytes, want %d", q.TCPLen, tc.covers)
				}
				if q.OptionsComplete != tc.options {
					t.Errorf("options complete: got %v, want %v", q.OptionsComplete, tc.options)
				}
				if q.Checksum != tc.checksum {
					t.Errorf("checksum: got %v, want %v", q.Checksum, tc.checksum)
				}
				if q.IP.Src != sent.IP.Src || q.IP.Dst != sent.IP.Dst || q.IP.TOS != sent.IP.TOS || q.IP.TTL != 1 {
					t.Errorf("ip: got %v > %v tos %#x ttl %d, want %v > %v tos %#x ttl 1", q.IP.Src, q.IP.Dst, q.IP.TOS, q.IP.TTL, sent.IP.Src, sent.IP.Dst, sent.IP.TOS)
				}
				if !v6 && q.IP.ID != 0x5301 {
					t.Errorf("ip id: got %#x, want 0x5301", q.IP.ID)
				}
				if q.Covers(QuotedTCPPorts) && (q.TCP.SrcPort != 61234 || q.TCP.DstPort != 8080) {
					t.Errorf("ports: got %d > %d, want 61234 > 8080", q.TCP.SrcPort, q.TCP.DstPort)
				}
				if q.Covers(QuotedTCPSeq) && q.TCP.Seq != 1000 {
					t.Errorf("seq: got %d, want 1000", q.TCP.Seq)
				}
				if q.Covers(QuotedTCPFlags) && (q.TCP.Flags != sent.TCP.Flags || q.TCP.DataOffset != 10) {
					t.Errorf("flags: got %v offset %d, want %v offset 10", q.TCP.Flags, q.TCP.DataOffset, sent.TCP.Flags)
				}
				if q.Covers(QuotedTCPWindow) && q.TCP.Window != 64240 {
					t.Errorf("window: got %d, want 64240", q.TCP.Window)
				}
				if tc.options {
					if got, want := FormatOptions(q.TCP.Options), FormatOptions(sent.TCP.Options); got != want {
						t.Errorf("options: got %s, want %s", got, want)
					}
				} else if len(q.TCP.Options) != 0 {
					t.Errorf("options of an incomplete header: got %s, want none", FormatOptions(q.TCP.Options))
				}
				if tc.class == QuoteFull && string(q.TCP.Payload) != string(sent.TCP.Payload) {
					t.Errorf("payload: got %q, want %q", q.TCP.Payload, sent.TCP.Payload)
				}
			})
		}
	}
}

func TestQuotedPacketNotTCP(t *testing.T) {
	f := Frame{IP: IP{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Protocol: ProtocolICMP}, ICMP: ICMP{Type: 8}}
	b, err := f.EncodeIP()
	if err != nil {
		t.Fatal(err)
	}
	icmp := ICMP{Type: ICMPv4TimeExceeded, Body: b}
	if q, err := icmp.QuotedPacket(); err == nil {
		t.Fatalf("QuotedPacket() of an ICMP quote = %+v, want an error", q)
	}
}

// FuzzQuotedPacket: any quote decodes without a panic, and what it claims
// to cover agrees with the bytes it was given.
func FuzzQuotedPacket(f *testing.F) {
	for _, v6 := range []bool{false, true} {
		p, _ := quotedSYN(f, v6)
		for _, n := range []int{len(p), 60, 48, 28, 20} {
			f.Add(p[:min(n, len(p))])
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		icmp := ICMP{Type: ICMPv4TimeExceeded, Body: body}
		q, err := icmp.QuotedPacket()
		if err != nil {
			return
		}
		if q.TCPLen > len(body) {
			t.Fatalf("TCPLen %d beyond the %d bytes quoted", q.TCPLen, len(body))
		}
		if q.Class == QuoteFull && (!q.OptionsComplete || q.Checksum == ChecksumUnchecked) {
			t.Fatalf("full quote with options complete %v, checksum %v", q.OptionsComplete, q.Checksum)
		}
		if q.OptionsComplete && !q.Covers(int(q.TCP.DataOffset)*4) {
			t.Fatalf("options complete but %d bytes of a %d-byte header", q.TCPLen, int(q.TCP.DataOffset)*4)
		}
	})
}

package probe

import (
	"net/netip"
	"testing"
)

func benchSYN() *Frame {
	return &Frame{
		Ethernet: Ethernet{Dst: MAC{2, 0, 0, 0, 0, 2}, Src: MAC{2, 0, 0, 0, 0, 1}},
		IP:       IP{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2"), Flags: IPFlagDF},
		TCP: TCP{SrcPort: 61000, DstPort: 80, Seq: 1, Flags: SYN, Window: 65535,
			Options: []Option{MSSOption(1460), SACKPermittedOption(), TimestampsOption(1, 0), NOPOption(), WScaleOption(7)}},
	}
}

func BenchmarkEncodeSYN(b *testing.B) {
	f := benchSYN()
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = f.AppendEncode(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeSYN(b *testing.B) {
	data, err := benchSYN().Encode()
	if err != nil {
		b.Fatal(err)
	}
	var f Frame
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := f.Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeData1460(b *testing.B) {
	f := benchSYN()
	f.TCP.Flags, f.TCP.Options, f.TCP.Payload = ACK|PSH, []Option{NOPOption(), NOPOption(), TimestampsOption(5, 6)}, make([]byte, 1448)
	data, err := f.Encode()
	if err != nil {
		b.Fatal(err)
	}
	var g Frame
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := g.Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

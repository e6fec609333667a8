package probe

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// TestFragment: a packet longer than the MTU is cut into fragments that
// each fit, carry their offsets and the more-fragments flag, and put back
// together give the packet's payload; one that fits is left alone.
func TestFragment(t *testing.T) {
	for _, tt := range []struct {
		name     string
		src, dst netip.Addr
		hdr      int // IP header length of a fragment, fragment header included
	}{
		{"ipv4", netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), IPv4HeaderLen},
		{"ipv6", netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), IPv6HeaderLen + ipv6FragmentHeaderLen},
	} {
		t.Run(tt.name, func(t *testing.T) {
			payload := make([]byte, 5000)
			for i := range payload {
				payload[i] = byte(i)
			}
			f := Frame{IP: IP{Src: tt.src, Dst: tt.dst, Protocol: ProtocolTCP, Flags: IPFlagDF, ID: 77, TTL: 64},
				TCP: TCP{SrcPort: 40000, DstPort: 80, Seq: 1, Flags: ACK | PSH, Window: 1000, Payload: payload}}
			data, err := f.Encode()
			if err != nil {
				t.Fatal(err)
			}
			whole := data[EthernetHeaderLen:]
			if tt.src.Is4() {
				whole = whole[IPv4HeaderLen:]
			} else {
				whole = whole[IPv6HeaderLen:]
			}
			const mtu = 1500
			frags, err := Fragment(data, mtu, 0xabcd)
			if err != nil {
				t.Fatal(err)
			}
			if len(frags) != 4 {
				t.Fatalf("got %d fragments, want 4", len(frags))
			}
			var got []byte
			for i, fr := range frags {
				ip := fr[EthernetHeaderLen:]
				if n := len(ip); n > mtu {
					t.Errorf("fragment %d: %d bytes, more than the MTU %d", i, n, mtu)
				}
				var off int
				var more bool
				if tt.src.Is4() {
					if Checksum(ip[:IPv4HeaderLen]) != 0 {
						t.Errorf("fragment %d: bad IPv4 header checksum", i)
					}
					if id := binary.BigEndian.Uint16(ip[4:]); id != 77 {
						t.Errorf("fragment %d: id %d, want the packet's 77", i, id)
					}
					fl := binary.BigEndian.Uint16(ip[6:])
					off, more = int(fl&0x1fff)*8, fl&0x2000 != 0
					if fl&0x4000 != 0 {
						t.Errorf("fragment %d: DF set", i)
					}
				} else {
					if ip[6] != ipv6Fragment || ip[IPv6HeaderLen] != byte(ProtocolTCP) {
						t.Errorf("fragment %d: next headers %d, %d, want %d then TCP", i, ip[6], ip[IPv6HeaderLen], ipv6Fragment)
					}
					fl := binary.BigEndian.Uint16(ip[IPv6HeaderLen+2:])
					off, more = int(fl>>3)*8, fl&1 != 0
					if id := binary.BigEndian.Uint32(ip[IPv6HeaderLen+4:]); id != 0xabcd {
						t.Errorf("fragment %d: id %#x, want 0xabcd", i, id)
					}
				}
				if off != len(got) {
					t.Errorf("fragment %d: offset %d, want %d", i, off, len(got))
				}
				if want := i < len(frags)-1; more != want {
					t.Errorf("fragment %d: more fragments %v, want %v", i, more, want)
				}
				got = append(got, ip[tt.hdr:]...)
			}
			if !bytes.Equal(got, whole) {
				t.Errorf("the fragments' payloads put together differ from the packet's (%d bytes, want %d)", len(got), len(whole))
			}
			if one, err := Fragment(data, 6000, 1); err != nil || len(one) != 1 || !bytes.Equal(one[0], data) {
				t.Errorf("a packet that fits: got %d frames (%v), want itself", len(one), err)
			}
		})
	}
}

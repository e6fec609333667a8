package probe

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

// mac02608c is the client's MAC in the KB 172983 capture.
var mac02608c = MAC{0x02, 0x60, 0x8c, 0x9e, 0x18, 0x8b}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

func TestAppendARPRequest(t *testing.T) {
	want := unhex(t, `
		ffffffffffff 02608c9e188b 0806
		0001 0800 06 04 0001 02608c9e188b c0000201 000000000000 c0000209
		000000000000000000000000000000000000`) // padding to 60 bytes
	prefix := []byte("kept")
	got, err := AppendARPRequest(prefix, mac02608c, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("::ffff:192.0.2.9"))
	if err != nil {
		t.Fatalf("AppendARPRequest: %v", err)
	}
	if !bytes.Equal(got[:4], prefix) || !bytes.Equal(got[4:], want) {
		t.Errorf("AppendARPRequest:\n got  %x\n want kept+%x", got, want)
	}
	if _, err := AppendARPRequest(nil, mac02608c, netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.9")); err == nil {
		t.Errorf("AppendARPRequest with an IPv6 source: got no error, want one")
	}
}

// arpReply is the reply Linux sends to the request above.
const arpReply = `02608c9e188b 0a0b0c0d0e0f 0806 0001 0800 06 04 0002 0a0b0c0d0e0f c0000209 02608c9e188b c0000201`

func TestParseARPReply(t *testing.T) {
	ip, mac, err := ParseARPReply(unhex(t, arpReply+"0000")) // with padding
	if err != nil {
		t.Fatalf("ParseARPReply: %v", err)
	}
	if want := netip.MustParseAddr("192.0.2.9"); ip != want {
		t.Errorf("ParseARPReply ip = %s, want %s", ip, want)
	}
	if want := (MAC{0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f}); mac != want {
		t.Errorf("ParseARPReply mac = %s, want %s", mac, want)
	}
}

func TestParseARPReplyErrors(t *testing.T) {
	valid := unhex(t, arpReply)
	tests := []struct {
		name    string
		edit    func(b []byte) []byte
		wantMsg string
	}{
		{"empty", func(b []byte) []byte { return nil }, "frame is 0 bytes"},
		{"short", func(b []byte) []byte { return b[:41] }, "frame is 41 bytes, want at least 42"},
		{"IPv4 EtherType", func(b []byte) []byte { b[12], b[13] = 0x08, 0x00; return b }, "EtherType 0x0800 at byte 12"},
		{"not Ethernet", func(b []byte) []byte { b[15] = 6; return b }, "hardware type 6 at byte 14"},
		{"not IPv4", func(b []byte) []byte { b[16], b[17] = 0x86, 0xdd; return b }, "protocol type 0x86dd at byte 16"},
		{"address lengths", func(b []byte) []byte { b[19] = 16; return b }, "address lengths 6/16 at byte 18"},
		{"request", func(b []byte) []byte { b[21] = 1; return b }, "operation 1 at byte 20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := tt.edit(bytes.Clone(valid))
			_, _, err := ParseARPReply(frame)
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("ParseARPReply(%x): got error %v, want one containing %q", frame, err, tt.wantMsg)
			}
		})
	}
}

func TestNDPSolicitedNode(t *testing.T) {
	group, mac := ndpSolicitedNode(netip.MustParseAddr("2001:db8::1:2345:6789"))
	if want := netip.MustParseAddr("ff02::1:ff45:6789"); group != want {
		t.Errorf("solicited-node group = %s, want %s", group, want)
	}
	if want := (MAC{0x33, 0x33, 0xff, 0x45, 0x67, 0x89}); mac != want {
		t.Errorf("solicited-node MAC = %s, want %s", mac, want)
	}
}

func TestAppendNeighborSolicitation(t *testing.T) {
	// The checksum 0x769e was computed independently of ndpChecksum.
	want := unhex(t, `
		3333ff000002 02608c9e188b 86dd
		60000000 0020 3a ff 20010db8000000000000000000000001 ff0200000000000000000001ff000002
		87 00 769e 00000000 20010db8000000000000000000000002 01 01 02608c9e188b`)
	got, err := AppendNeighborSolicitation(nil, mac02608c, netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"))
	if err != nil {
		t.Fatalf("AppendNeighborSolicitation: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("AppendNeighborSolicitation:\n got  %x\n want %x", got, want)
	}

	bad := []struct{ src, target string }{
		{"::", "2001:db8::2"},             // a duplicate address probe, not a resolution
		{"192.0.2.1", "2001:db8::2"},      // IPv4 source
		{"2001:db8::1", "ff02::1"},        // multicast target
		{"2001:db8::1", "::ffff:1.2.3.4"}, // IPv4-mapped target
	}
	for _, b := range bad {
		if _, err := AppendNeighborSolicitation(nil, mac02608c, netip.MustParseAddr(b.src), netip.MustParseAddr(b.target)); err == nil {
			t.Errorf("AppendNeighborSolicitation(%s -> %s): got no error, want one", b.src, b.target)
		}
	}
}

// kernelNA is a Neighbor Advertisement Linux 6.18 sent in answer to
// synprobe's solicitation for fd00:9::2 (flags S and O, with a target
// link-layer address option).
const kernelNA = `7a6f84075730 de231759ef1c 86dd
	60000000 0020 3a ff fd000009000000000000000000000002 fd000009000000000000000000000001
	88 00 39e7 60000000 fd000009000000000000000000000002 02 01 de231759ef1c`

func TestParseNeighborAdvertisement(t *testing.T) {
	target, mac, err := ParseNeighborAdvertisement(unhex(t, kernelNA))
	if err != nil {
		t.Fatalf("ParseNeighborAdvertisement: %v", err)
	}
	if want := netip.MustParseAddr("fd00:9::2"); target != want {
		t.Errorf("target = %s, want %s", target, want)
	}
	if want := (MAC{0xde, 0x23, 0x17, 0x59, 0xef, 0x1c}); mac != want {
		t.Errorf("mac = %s, want %s", mac, want)
	}
}

// buildNA makes an advertisement for target from src to dst with the given
// options, sent from ethSrc, with a correct checksum.
func buildNA(src, dst, target string, ethSrc MAC, opts []byte) []byte {
	s, d, tg := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16(), netip.MustParseAddr(target).As16()
	b := append([]byte{0x02, 0, 0, 0, 0, 1}, ethSrc[:]...)
	b = binary.BigEndian.AppendUint16(b, ndpEtherV6)
	b = append(b, 0x60, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(ndpMessageLen+len(opts)))
	b = append(b, ndpICMPv6, 255)
	b = append(b, s[:]...)
	b = append(b, d[:]...)
	icmp := len(b)
	b = append(b, ndpTypeNA, 0, 0, 0, 0x60, 0, 0, 0)
	b = append(b, tg[:]...)
	b = append(b, opts...)
	binary.BigEndian.PutUint16(b[icmp+2:], ^ndpChecksum(s, d, b[icmp:]))
	return b
}

func TestParseNeighborAdvertisementVariants(t *testing.T) {
	eth := MAC{0x0a, 0, 0, 0, 0, 0xee}
	tll := []byte{ndpOptTgtLL, 1, 0x0a, 0, 0, 0, 0, 0x77}
	nonce := []byte{14, 1, 1, 2, 3, 4, 5, 6} // RFC 3971 nonce: skipped
	tests := []struct {
		name    string
		frame   []byte
		wantMAC MAC
	}{
		{"target link-layer option", buildNA("fd00::2", "fd00::1", "fd00::2", eth, tll), MAC{0x0a, 0, 0, 0, 0, 0x77}},
		{"no option: Ethernet source", buildNA("fd00::2", "fd00::1", "fd00::2", eth, nil), eth},
		{"unknown option first", buildNA("fd00::2", "fd00::1", "fd00::2", eth, append(bytes.Clone(nonce), tll...)), MAC{0x0a, 0, 0, 0, 0, 0x77}},
		{"Ethernet padding", append(buildNA("fd00::2", "fd00::1", "fd00::2", eth, tll), 0, 0, 0, 0), MAC{0x0a, 0, 0, 0, 0, 0x77}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, mac, err := ParseNeighborAdvertisement(tt.frame)
			if err != nil {
				t.Fatalf("ParseNeighborAdvertisement(%x): %v", tt.frame, err)
			}
			if want := netip.MustParseAddr("fd00::2"); target != want || mac != tt.wantMAC {
				t.Errorf("ParseNeighborAdvertisement = %s %s, want %s %s", target, mac, want, tt.wantMAC)
			}
		})
	}
}

func TestParseNeighborAdvertisementErrors(t *testing.T) {
	eth := MAC{0x0a, 0, 0, 0, 0, 0xee}
	tll := []byte{ndpOptTgtLL, 1, 0x0a, 0, 0, 0, 0, 0x77}
	valid := func() []byte { return unhex(t, kernelNA) }
	edit := func(f func(b []byte)) []byte { b := valid(); f(b); return b }
	tests := []struct {
		name    string
		frame   []byte
		wantMsg string
	}{
		{"short", valid()[:77], "frame is 77 bytes, want at least 78"},
		{"ARP EtherType", edit(func(b []byte) { b[12], b[13] = 0x08, 0x06 }), "EtherType 0x0806 at byte 12"},
		{"IPv4 header", edit(func(b []byte) { b[14] = 0x45 }), "IP version 4 at byte 14"},
		{"payload longer than frame", edit(func(b []byte) { b[19] = 0x40 }), "payload length 64 at byte 18"},
		{"payload shorter than message", edit(func(b []byte) { b[19] = 20 }), "payload length 20 at byte 18"},
		{"extension header", edit(func(b []byte) { b[20] = 0 }), "next header 0 at byte 20"},
		{"routed", edit(func(b []byte) { b[21] = 64 }), "hop limit 64 at byte 21"},
		{"solicitation", edit(func(b []byte) { b[54] = ndpTypeNS }), "type 135 code 0 at byte 54"},
		{"bad code", edit(func(b []byte) { b[55] = 1 }), "type 136 code 1 at byte 54"},
		{"bad checksum", edit(func(b []byte) { b[57]++ }), "bad ICMPv6 checksum 0x39e8 at byte 56"},
		{"multicast target", buildNA("fd00::2", "fd00::1", "ff02::1", eth, tll), "target ff02::1 at byte 62 is multicast"},
		{"zero-length option", buildNA("fd00::2", "fd00::1", "fd00::2", eth, []byte{2, 0, 0, 0, 0, 0, 0, 0}), "zero-length option at byte 78"},
		{"truncated option", buildNA("fd00::2", "fd00::1", "fd00::2", eth, []byte{2}), "truncated or zero-length option at byte 78"},
		{"option overruns", buildNA("fd00::2", "fd00::1", "fd00::2", eth, []byte{2, 2, 0, 0, 0, 0, 0, 0}), "option of 16 bytes at byte 78"},
		{"long link-layer option", buildNA("fd00::2", "fd00::1", "fd00::2", eth, []byte{2, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}), "option of 16 bytes at byte 78, want 8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseNeighborAdvertisement(tt.frame)
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("ParseNeighborAdvertisement(%x): got error %v, want one containing %q", tt.frame, err, tt.wantMsg)
			}
		})
	}
}

func FuzzParseARPReply(f *testing.F) {
	f.Add(unhex(f, arpReply))
	f.Fuzz(func(t *testing.T, frame []byte) {
		ip, mac, err := ParseARPReply(frame)
		if err != nil {
			return
		}
		if !ip.Is4() || [4]byte(frame[28:32]) != ip.As4() || !bytes.Equal(mac[:], frame[22:28]) {
			t.Errorf("ParseARPReply(%x) = %s %s, not the sender fields of the frame", frame, ip, mac)
		}
	})
}

func FuzzParseNeighborAdvertisement(f *testing.F) {
	f.Add(unhex(f, kernelNA))
	f.Fuzz(func(t *testing.T, frame []byte) {
		target, _, err := ParseNeighborAdvertisement(frame)
		if err != nil {
			return
		}
		if !target.Is6() || target.IsMulticast() || target.As16() != [16]byte(frame[62:78]) {
			t.Errorf("ParseNeighborAdvertisement(%x) target %s, not the frame's unicast target field", frame, target)
		}
		var s, d [16]byte
		copy(s[:], frame[22:38])
		copy(d[:], frame[38:54])
		plen := int(binary.BigEndian.Uint16(frame[18:]))
		if ndpChecksum(s, d, frame[54:54+plen]) != 0xffff {
			t.Errorf("ParseNeighborAdvertisement(%x) accepted a bad checksum", frame)
		}
	})
}

package probe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"synprobe/internal/fuzzseed"
)

// superFrame encodes what the kernel shows of a super-frame: a TCP segment
// with payload bytes of payload and, as an offload leaves it, a partial
// checksum (the pseudo-header sum over the whole segment's length).
func superFrame(t testing.TB, v6 bool, flags Flags, payload int, edit func(*Frame)) []byte {
	t.Helper()
	src, dst := netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.1")
	if v6 {
		src, dst = netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::1")
	}
	body := make([]byte, payload)
	for i := range body {
		body[i] = byte(i * 7)
	}
	f := &Frame{
		Ethernet: Ethernet{Src: MAC{2, 0, 0, 0, 0, 2}, Dst: MAC{2, 0, 0, 0, 0, 1}},
		IP:       IP{Src: src, Dst: dst, Flags: IPFlagDF, ID: 0x1234, TTL: 64},
		TCP: TCP{SrcPort: 80, DstPort: 61000, Seq: 0xfffff000, Ack: 7, Flags: flags, Window: 501,
			Options: []Option{NOPOption(), NOPOption(), TimestampsOption(11, 22)}, Payload: body},
	}
	if edit != nil {
		edit(f)
	}
	hl, err := f.TCP.headerLen()
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.Encode(Override{Field: FieldTCPChecksum, Value: uint32(partialChecksum(src, dst, hl+payload))})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// partialChecksum is what the kernel leaves in the checksum field of a
// segment of length n whose checksum an offload is to finish.
func partialChecksum(src, dst netip.Addr, n int) uint16 {
	return ^fold(pseudoHeaderSum(src, dst, ProtocolTCP, n))
}

func TestSplitSuperFrame(t *testing.T) {
	at := time.Unix(1700000000, 123)
	for _, c := range []struct {
		name    string
		v6      bool
		flags   Flags
		payload int
		edit    func(*Frame)
		gso     GSOType
		size    uint16
		sizes   []int   // payload of each piece
		flagsOf []Flags // flags of each piece
		ids     []uint16
	}{
		{name: "v4 data, PSH and FIN", flags: ACK | PSH | FIN, payload: 3000, gso: GSOTCPv4, size: 1448,
			sizes: []int{1448, 1448, 104}, flagsOf: []Flags{ACK, ACK, ACK | PSH | FIN}, ids: []uint16{0x1234, 0x1235, 0x1236}},
		{name: "v6 data, exact multiple", v6: true, flags: ACK | PSH, payload: 2880, gso: GSOTCPv6, size: 1440,
			sizes: []int{1440, 1440}, flagsOf: []Flags{ACK, ACK | PSH}},
		{name: "CWR on the first only, ECE on all", flags: ACK | CWR | ECE, payload: 300, gso: GSOTCPv4 | GSOECN, size: 100,
			sizes: []int{100, 100, 100}, flagsOf: []Flags{ACK | CWR | ECE, ACK | ECE, ACK | ECE}, ids: []uint16{0x1234, 0x1235, 0x1236}},
		{name: "IP ID wraps", flags: ACK, payload: 20, gso: GSOTCPv4, size: 10, edit: func(f *Frame) { f.IP.ID = 0xffff },
			sizes: []int{10, 10}, flagsOf: []Flags{ACK, ACK}, ids: []uint16{0xffff, 0}},
		{name: "IPv4 options", flags: ACK, payload: 25, gso: GSOTCPv4, size: 10, edit: func(f *Frame) { f.IP.Options = []byte{1, 1, 1, 0} },
			sizes: []int{10, 10, 5}, flagsOf: []Flags{ACK, ACK, ACK}, ids: []uint16{0x1234, 0x1235, 0x1236}},
		{name: "VLAN tag", flags: ACK | FIN, payload: 15, gso: GSOTCPv4, size: 10, edit: func(f *Frame) { f.Ethernet.Tagged, f.Ethernet.VLAN = true, 7 },
			sizes: []int{10, 5}, flagsOf: []Flags{ACK, ACK | FIN}, ids: []uint16{0x1234, 0x1235}},
		{name: "fits in one piece", flags: ACK | PSH, payload: 1000, gso: GSOTCPv4, size: 1448,
			sizes: []int{1000}, flagsOf: []Flags{ACK | PSH}, ids: []uint16{0x1234}},
		{name: "one-byte pieces", v6: true, flags: ACK | FIN, payload: 3, gso: GSOTCPv6, size: 1,
			sizes: []int{1, 1, 1}, flagsOf: []Flags{ACK, ACK, ACK | FIN}},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := superFrame(t, c.v6, c.flags, c.payload, c.edit)
			var orig Frame
			if err := orig.Decode(data); err != nil {
				t.Fatal(err)
			}
			in := Capture{Data: data, Time: at, Outgoing: true, GSOSize: c.size, GSOType: c.gso}
			pieces, err := SplitSuperFrame(in)
			if err != nil {
				t.Fatal(err)
			}
			if len(pieces) != len(c.sizes) {
				t.Fatalf("got %d pieces, want %d", len(pieces), len(c.sizes))
			}
			if len(pieces) == 1 && !bytes.Equal(pieces[0].Data, data) {
				t.Errorf("a super-frame of one piece changed")
			}
			var payload []byte
			for i, p := range pieces {
				var f Frame
				if err := f.Decode(p.Data); err != nil {
					t.Fatalf("piece %d: %v", i, err)
				}
				if !p.Time.Equal(at) || !p.Outgoing || !p.ChecksumPartial || p.GSOSize != 0 || p.GSOType != GSONone {
					t.Errorf("piece %d: time %v, outgoing %v, partial %v, gso %d %v; want the super-frame's time and direction, a partial checksum, no GSO",
						i, p.Time, p.Outgoing, p.ChecksumPartial, p.GSOSize, p.GSOType)
				}
				if got := len(f.TCP.Payload); got != c.sizes[i] {
					t.Errorf("piece %d: payload %d bytes, want %d", i, got, c.sizes[i])
				}
				if want := orig.TCP.Seq.Add(uint32(len(payload))); f.TCP.Seq != want {
					t.Errorf("piece %d: seq %d, want %d", i, f.TCP.Seq, want)
				}
				if f.TCP.Flags != c.flagsOf[i] {
					t.Errorf("piece %d: flags %v, want %v", i, f.TCP.Flags, c.flagsOf[i])
				}
				if f.TCP.Ack != orig.TCP.Ack || f.TCP.Window != orig.TCP.Window || !bytes.Equal(f.TCP.OptionBytes, orig.TCP.OptionBytes) ||
					f.Ethernet != orig.Ethernet || f.IP.Src != orig.IP.Src || f.IP.TTL != orig.IP.TTL || f.IP.Flags != orig.IP.Flags {
					t.Errorf("piece %d: %v; want the super-frame's other fields (%v)", i, &f, &orig)
				}
				if c.v6 {
					if f.IP.TotalLength != len(p.Data)-EthernetHeaderLen {
						t.Errorf("piece %d: IPv6 length %d, frame %d bytes", i, f.IP.TotalLength, len(p.Data))
					}
				} else {
					if f.IPChecksum != ChecksumValid || f.IP.ID != c.ids[i] || len(f.Padding) != 0 {
						t.Errorf("piece %d: IP checksum %v, ID %#x, padding %d; want valid, %#x, none", i, f.IPChecksum, f.IP.ID, len(f.Padding), c.ids[i])
					}
				}
				segLen := len(f.TCP.Payload) + int(f.TCP.DataOffset)*4
				if want := partialChecksum(f.IP.Src, f.IP.Dst, segLen); f.TCP.Checksum != want {
					t.Errorf("piece %d: TCP checksum %#04x, want the partial one for %d bytes, %#04x", i, f.TCP.Checksum, segLen, want)
				}
				payload = append(payload, f.TCP.Payload...)
			}
			if !bytes.Equal(payload, orig.TCP.Payload) {
				t.Errorf("the pieces' payload differs from the super-frame's")
			}
		})
	}
}

func TestSplitSuperFrameRefuses(t *testing.T) {
	v4 := superFrame(t, false, ACK, 100, nil)
	v6 := superFrame(t, true, ACK, 100, nil)
	icmp, err := (&Frame{
		Ethernet: Ethernet{Src: MAC{2, 0, 0, 0, 0, 2}},
		IP:       IP{Src: netip.MustParseAddr("192.0.2.2"), Dst: netip.MustParseAddr("192.0.2.1"), Protocol: ProtocolICMP},
		ICMP:     ICMP{Type: ICMPv4DestUnreachable, Body: make([]byte, 100)},
	}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		data []byte
		gso  GSOType
		size uint16
	}{
		{"IPv4 frame, IPv6 GSO type", v4, GSOTCPv6, 10},
		{"IPv6 frame, IPv4 GSO type", v6, GSOTCPv4, 10},
		{"UDP GSO type", v4, GSOUDP, 10},
		{"ICMP", icmp, GSOTCPv4, 10},
		{"truncated", v4[:len(v4)-1], GSOTCPv4, 10},
		{"IP header damaged", append(append([]byte(nil), v4[:EthernetHeaderLen]...), 0x41), GSOTCPv4, 10},
	} {
		pieces, err := SplitSuperFrame(Capture{Data: c.data, GSOSize: c.size, GSOType: c.gso})
		if !errors.Is(err, ErrNotSplittable) || pieces != nil {
			t.Errorf("%s: got %d pieces, %v; want ErrNotSplittable", c.name, len(pieces), err)
		}
	}
	// Not a super-frame: returned as it is.
	in := Capture{Data: v4, ChecksumPartial: false}
	if pieces, err := SplitSuperFrame(in); err != nil || len(pieces) != 1 || !bytes.Equal(pieces[0].Data, v4) || pieces[0].ChecksumPartial {
		t.Errorf("an ordinary frame: got %d pieces, %v; want it unchanged", len(pieces), err)
	}
}

func TestAdjustPartialChecksum(t *testing.T) {
	src, dst := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("203.0.113.200")
	for _, n := range []int{20, 21, 1500, 65515} {
		for _, m := range []int{20, 33, 1480, 40000} {
			if got, want := adjustPartialChecksum(partialChecksum(src, dst, n), n, m), partialChecksum(src, dst, m); got != want && got^want != 0xffff {
				t.Errorf("from %d to %d bytes: got %#04x, want %#04x", n, m, got, want)
			}
		}
	}
}

// splitSeed encodes FuzzSplitSuperFrame's input: the GSO size (2 bytes,
// big endian), the GSO type (1 byte), then the frame.
func splitSeed(size uint16, gso GSOType, frame []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, size), append([]byte{byte(gso)}, frame...)...)
}

func splitSeeds(t testing.TB) map[string][]byte {
	tagged := func(f *Frame) { f.Ethernet.Tagged, f.Ethernet.VLAN = true, 7 }
	return map[string][]byte{
		"v4-three-pieces":    splitSeed(1448, GSOTCPv4, superFrame(t, false, ACK|PSH|FIN, 3000, nil)),
		"v6-two-pieces":      splitSeed(1440, GSOTCPv6, superFrame(t, true, ACK|PSH, 2880, nil)),
		"v4-ecn-cwr":         splitSeed(100, GSOTCPv4|GSOECN, superFrame(t, false, ACK|CWR|ECE, 300, nil)),
		"v4-vlan":            splitSeed(10, GSOTCPv4, superFrame(t, false, ACK, 25, tagged)),
		"v4-one-piece":       splitSeed(1448, GSOTCPv4, superFrame(t, false, ACK, 100, nil)),
		"v6-wrong-gso-type":  splitSeed(10, GSOTCPv4, superFrame(t, true, ACK, 100, nil)),
		"v4-not-a-gso-frame": splitSeed(0, GSONone, superFrame(t, false, ACK, 100, nil)),
	}
}

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzSplitSuperFrame from splitSeeds")

// TestFuzzSeedCorpus keeps FuzzSplitSuperFrame's seed corpus on disk in
// step with splitSeeds, so that a plain `go test -fuzz` starts from valid
// super-frames. Run with -update-seeds to rewrite it.
func TestFuzzSeedCorpus(t *testing.T) {
	fuzzseed.Sync(t, filepath.Join("testdata", "fuzz", "FuzzSplitSuperFrame"), splitSeeds(t), *updateSeeds)
}

// FuzzSplitSuperFrame splits arbitrary frames (see splitSeed for the
// input) and checks what the pieces must be: whole frames whose payloads,
// each at most the GSO size, join up to the super-frame's, with contiguous
// sequence numbers.
func FuzzSplitSuperFrame(f *testing.F) {
	for _, s := range splitSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 3 {
			return
		}
		c := Capture{Data: in[3:], GSOSize: binary.BigEndian.Uint16(in), GSOType: GSOType(in[2])}
		orig := append([]byte(nil), c.Data...)
		pieces, err := SplitSuperFrame(c)
		if !bytes.Equal(c.Data, orig) {
			t.Fatalf("the super-frame's data changed")
		}
		if err != nil {
			if !errors.Is(err, ErrNotSplittable) || pieces != nil {
				t.Fatalf("got %d pieces and %v, want none and ErrNotSplittable", len(pieces), err)
			}
			return
		}
		if len(pieces) == 0 {
			t.Fatal("no piece and no error")
		}
		if c.GSOSize == 0 || c.GSOType == GSONone || len(pieces) == 1 {
			if len(pieces) != 1 || !bytes.Equal(pieces[0].Data, c.Data) {
				t.Fatalf("got %d pieces, want the frame alone and unchanged", len(pieces))
			}
			return
		}
		var super Frame
		if err := super.Decode(c.Data); err != nil {
			t.Fatalf("split a frame that does not decode: %v", err)
		}
		var payload []byte
		for i, p := range pieces {
			var f Frame
			if err := f.Decode(p.Data); err != nil {
				t.Fatalf("piece %d does not decode: %v", i, err)
			}
			if n := len(f.TCP.Payload); n == 0 || n > int(c.GSOSize) {
				t.Fatalf("piece %d: %d bytes of payload, gso size %d", i, n, c.GSOSize)
			}
			if want := super.TCP.Seq.Add(uint32(len(payload))); f.TCP.Seq != want {
				t.Fatalf("piece %d: seq %d, want %d", i, f.TCP.Seq, want)
			}
			if last := i == len(pieces)-1; !last && f.TCP.Flags&(FIN|PSH) != 0 || i > 0 && f.TCP.Flags&CWR != 0 {
				t.Fatalf("piece %d of %d: flags %v", i, len(pieces), f.TCP.Flags)
			}
			if f.IP.Version == 4 && f.IPChecksum != ChecksumValid {
				t.Fatalf("piece %d: IP checksum %v", i, f.IPChecksum)
			}
			payload = append(payload, f.TCP.Payload...)
		}
		if !bytes.Equal(payload, super.TCP.Payload) {
			t.Fatalf("the pieces carry %d bytes, the super-frame %d", len(payload), len(super.TCP.Payload))
		}
	})
}

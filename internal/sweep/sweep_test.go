package sweep

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"synprobe/internal/siphash"
)

func TestParsePorts(t *testing.T) {
	tests := []struct {
		in   string
		want []uint16
		err  string
	}{
		{"80", []uint16{80}, ""},
		{"443,80,80", []uint16{80, 443}, ""},
		{" 8000-8002 , 22", []uint16{22, 8000, 8001, 8002}, ""},
		{"65535", []uint16{65535}, ""},
		{"", nil, "empty"},
		{"0", nil, `"0"`},
		{"65536", nil, `"65536"`},
		{"90-80", nil, "backwards"},
		{"80,", nil, `""`},
		{"1-2-3", nil, `"1-2-3"`},
		{"http", nil, `"http"`},
	}
	for _, tt := range tests {
		got, err := ParsePorts(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParsePorts(%q) error = %v, want one with %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParsePorts(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	all, err := ParsePorts("1-65535")
	if err != nil || len(all) != 65535 {
		t.Errorf("ParsePorts(1-65535): %d ports, %v; want 65535", len(all), err)
	}
}

func TestSpaceRoundTrip(t *testing.T) {
	sp, err := newSpace([]netip.Prefix{
		netip.MustParsePrefix("10.0.1.0/30"),
		netip.MustParsePrefix("10.0.0.0/31"),
		netip.MustParsePrefix("10.0.2.9/32"),
	}, []uint16{22, 80, 443})
	if err != nil {
		t.Fatal(err)
	}
	if sp.total() != 7*3 {
		t.Fatalf("total = %d, want 21", sp.total())
	}
	seen := map[[2]uint32]bool{}
	for i := range sp.total() {
		a, p := sp.probe(i)
		if j, ok := sp.index(a, p); !ok || j != i {
			t.Errorf("index(probe(%d) = %v:%d) = %d, %v; want %d", i, addrOf(a), p, j, ok, i)
		}
		seen[[2]uint32{a, uint32(p)}] = true
	}
	if len(seen) != 21 {
		t.Errorf("%d distinct probes, want 21", len(seen))
	}
	for _, c := range []struct {
		a string
		p uint16
	}{{"10.0.0.2", 80}, {"10.0.1.4", 80}, {"10.0.0.1", 81}, {"9.255.255.255", 22}} {
		if _, ok := sp.index(u32(netip.MustParseAddr(c.a)), c.p); ok {
			t.Errorf("index(%s:%d) found a probe; it is outside the space", c.a, c.p)
		}
	}
	if _, err := newSpace([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("10.1.0.0/16")}, []uint16{1}); err == nil {
		t.Error("newSpace with overlapping targets succeeded, want an error")
	}
}

func TestPermutation(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 5, 64, 1000, 65535} {
		for _, seed := range []uint64{0, 1, 0xdeadbeefcafe} {
			p := newPermutation(n, seed)
			seen := make([]bool, n)
			count := uint64(0)
			for {
				i, ok := p.next()
				if !ok {
					break
				}
				if i >= n || seen[i] {
					t.Fatalf("n=%d seed=%d: %d out of range or repeated", n, seed, i)
				}
				seen[i] = true
				count++
			}
			if count != n {
				t.Errorf("n=%d seed=%d: %d values, want %d", n, seed, count, n)
			}
		}
	}
}

var (
	testKey = siphash.Key{K0: 1, K1: 2}
	testSrc = u32(netip.MustParseAddr("10.199.0.1"))
	testMAC = [6]byte{2, 0, 0, 0, 0, 1}
)

const testSport = 40000

// TestTemplateChecksums: a patched SYN has valid IP and TCP checksums and
// carries what was patched in.
func TestTemplateChecksums(t *testing.T) {
	tm := newTemplate(testMAC, testMAC, testSrc, testSport, 12345)
	for _, c := range []struct {
		dst  string
		port uint16
	}{{"10.200.0.1", 80}, {"255.255.255.254", 65535}, {"1.0.0.0", 1}} {
		f := append([]byte(nil), tm.frame[:]...)
		dst := u32(netip.MustParseAddr(c.dst))
		isn := ISN(testKey, testSrc, dst, testSport, c.port)
		tm.patch(f, dst, c.port, isn)
		if s := fold(sum16(f[ipOff:tcpOff])); s != 0xffff {
			t.Errorf("%s:%d: IP header sums to %#x, want 0xffff", c.dst, c.port, s)
		}
		pseudo := testSrc>>16 + testSrc&0xffff + dst>>16 + dst&0xffff + 6 + tcpLen
		if s := fold(sum16(f[tcpOff:]) + pseudo); s != 0xffff {
			t.Errorf("%s:%d: TCP segment sums to %#x, want 0xffff", c.dst, c.port, s)
		}
		if got := binary.BigEndian.Uint32(f[tcpOff+4:]); got != isn {
			t.Errorf("%s:%d: seq %d, want ISN %d", c.dst, c.port, got, isn)
		}
	}
}

// reply builds the frame a target at dst:port would send to the sweep.
func reply(dst uint32, port uint16, flags byte, ack uint32, opts []byte) []byte {
	f := make([]byte, ethLen+20+20+len(opts))
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[ipOff:]
	ip[0], ip[8], ip[9] = 0x45, 63, 6
	binary.BigEndian.PutUint32(ip[12:], dst)
	binary.BigEndian.PutUint32(ip[16:], testSrc)
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], port)
	binary.BigEndian.PutUint16(tcp[2:], testSport)
	binary.BigEndian.PutUint32(tcp[8:], ack)
	tcp[12] = byte((20+len(opts))/4) << 4
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:], 65160)
	copy(tcp[20:], opts)
	return f
}

// unreachable builds an ICMP destination unreachable from router quoting
// the sweep's SYN to dst:port with seq.
func unreachable(router, dst uint32, port uint16, code byte, seq uint32) []byte {
	tm := newTemplate(testMAC, testMAC, testSrc, testSport, 1)
	syn := append([]byte(nil), tm.frame[:]...)
	tm.patch(syn, dst, port, seq)
	f := make([]byte, ethLen+20+8+28)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[ipOff:]
	ip[0], ip[8], ip[9] = 0x45, 64, 1
	binary.BigEndian.PutUint32(ip[12:], router)
	binary.BigEndian.PutUint32(ip[16:], testSrc)
	ip[20], ip[21] = 3, code
	copy(ip[28:], syn[ipOff:ipOff+28])
	return f
}

func TestClassify(t *testing.T) {
	sp, err := newSpace([]netip.Prefix{netip.MustParsePrefix("10.200.0.0/24")}, []uint16{80, 81})
	if err != nil {
		t.Fatal(err)
	}
	c := &classifier{key: testKey, src: testSrc, sport: testSport, space: sp, retries: 2}
	dst := u32(netip.MustParseAddr("10.200.0.7"))
	isn80 := ISN(testKey, testSrc, dst, testSport, 80)
	isn81 := ISN(testKey, testSrc, dst, testSport, 81)
	linuxOpts := []byte{2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 3, 3, 7}
	router := u32(netip.MustParseAddr("10.199.0.2"))
	tests := []struct {
		name    string
		frame   []byte
		verdict verdict
		state   State
		check   func(Result) string
	}{
		{"SYN-ACK", reply(dst, 80, 0x12, isn80+1, linuxOpts), valid, Open, func(r Result) string {
			if r.TTL != 63 || *r.Window != 65160 || *r.MSS != 1460 || *r.WScale != 7 || *r.Options != "M1460,S,T,N,W7" {
				return "fingerprint wrong"
			}
			return ""
		}},
		{"RST-ACK", reply(dst, 81, 0x14, isn81+1, nil), valid, Closed, nil},
		{"SYN-ACK with a wrong ACK", reply(dst, 80, 0x12, isn80, nil), invalid, "", nil},
		{"RST without ACK", reply(dst, 80, 0x04, 0, nil), invalid, "", nil},
		{"SYN-ACK from a port not swept", reply(dst, 82, 0x12, ISN(testKey, testSrc, dst, testSport, 82)+1, nil), invalid, "", nil},
		{"SYN-ACK from outside the targets", reply(dst+1000, 80, 0x12, 0, nil), invalid, "", nil},
		{"port unreachable from the target", unreachable(dst, dst, 80, 3, isn80), valid, Filtered, func(r Result) string {
			if *r.ICMPType != 3 || *r.ICMPCode != 3 || r.ICMPFrom.IsValid() {
				return "ICMP fields wrong"
			}
			return ""
		}},
		{"admin prohibited from a router", unreachable(router, dst, 81, 13, isn81), valid, Filtered, func(r Result) string {
			if *r.ICMPCode != 13 || r.ICMPFrom != addrOf(router) {
				return "ICMP fields wrong"
			}
			return ""
		}},
		{"ICMP quoting a wrong ISN", unreachable(dst, dst, 80, 3, isn80+3), invalid, "", nil},
		// Each attempt's SYN carries ISN + attempt-1: a reply names it.
		{"SYN-ACK to the second SYN", reply(dst, 80, 0x12, isn80+2, nil), valid, Open, func(r Result) string {
			if r.Attempt != 2 {
				return "attempt wrong, want 2"
			}
			return ""
		}},
		{"RST to the third SYN", reply(dst, 81, 0x14, isn81+3, nil), valid, Closed, func(r Result) string {
			if r.Attempt != 3 {
				return "attempt wrong, want 3"
			}
			return ""
		}},
		{"SYN-ACK to a fourth SYN never sent", reply(dst, 80, 0x12, isn80+4, nil), invalid, "", nil},
		{"ICMP quoting the third SYN", unreachable(dst, dst, 80, 3, isn80+2), valid, Filtered, func(r Result) string {
			if r.Attempt != 3 {
				return "attempt wrong, want 3"
			}
			return ""
		}},
		{"truncated", reply(dst, 80, 0x12, isn80+1, nil)[:30], notOurs, "", nil},
	}
	for _, tt := range tests {
		v, i, r := c.classify(tt.frame)
		if v != tt.verdict || r.State != tt.state {
			t.Errorf("%s: verdict %d state %q, want %d %q", tt.name, v, r.State, tt.verdict, tt.state)
			continue
		}
		if v != valid {
			continue
		}
		if a, p := sp.probe(i); addrOf(a) != r.Addr || p != r.Port {
			t.Errorf("%s: index %d is %v:%d, result says %v:%d", tt.name, i, addrOf(a), p, r.Addr, r.Port)
		}
		if tt.check == nil && r.Attempt != 1 {
			t.Errorf("%s: attempt %d, want 1 (the first SYN)", tt.name, r.Attempt)
		}
		if tt.check != nil {
			if msg := tt.check(r); msg != "" {
				t.Errorf("%s: %s: %+v", tt.name, msg, r)
			}
		}
	}
}

func FuzzClassify(f *testing.F) {
	sp, _ := newSpace([]netip.Prefix{netip.MustParsePrefix("10.200.0.0/24")}, []uint16{80})
	c := &classifier{key: testKey, src: testSrc, sport: testSport, space: sp}
	dst := u32(netip.MustParseAddr("10.200.0.7"))
	f.Add(reply(dst, 80, 0x12, ISN(testKey, testSrc, dst, testSport, 80)+1, []byte{2, 4, 5, 0xb4, 1, 3, 3, 7, 0}))
	f.Add(unreachable(dst, dst, 80, 3, ISN(testKey, testSrc, dst, testSport, 80)))
	f.Fuzz(func(t *testing.T, frame []byte) {
		v, i, r := c.classify(frame)
		if v == valid {
			if a, p := sp.probe(i); addrOf(a) != r.Addr || p != r.Port {
				t.Errorf("index %d is %v:%d, result says %v:%d", i, addrOf(a), p, r.Addr, r.Port)
			}
		}
	})
}

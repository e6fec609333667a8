package reflector

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/bpf"

	"synprobe/probe"
)

var (
	srvAddr = netip.MustParseAddr("10.91.0.2")
	cliAddr = netip.MustParseAddr("10.91.0.1")
	srv6    = netip.MustParseAddr("fd91::2")
	cli6    = netip.MustParseAddr("fd91::1")
)

// frame encodes a TCP segment between from and to.
func frame(t testing.TB, from, to netip.AddrPort, tcp probe.TCP, tweak func(*probe.Frame)) []byte {
	t.Helper()
	tcp.SrcPort, tcp.DstPort = from.Port(), to.Port()
	f := probe.Frame{IP: probe.IP{Src: from.Addr(), Dst: to.Addr(), TTL: 61, TOS: 0x28, Flags: probe.IPFlagDF, ID: 0x5303}, TCP: tcp}
	if tweak != nil {
		tweak(&f)
	}
	b, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPortFilter(t *testing.T) {
	srv := netip.AddrPortFrom(srvAddr, 8080)
	cli := netip.AddrPortFrom(cliAddr, 40000)
	other := netip.AddrPortFrom(srvAddr, 8081)
	s6 := netip.AddrPortFrom(srv6, 8080)
	c6 := netip.AddrPortFrom(cli6, 40000)
	syn := probe.TCP{Flags: probe.SYN, Seq: 1}
	icmp := func(f *probe.Frame) { f.IP.Protocol = probe.ProtocolICMP; f.ICMP = probe.ICMP{Type: 3, Code: 1} }
	frag := func(f *probe.Frame) { f.IP.FragOffset = 10 }
	for _, tc := range []struct {
		name   string
		listen netip.AddrPort
		data   []byte
		want   bool
	}{
		{"v4 in", srv, frame(t, cli, srv, syn, nil), true},
		{"v4 out", srv, frame(t, srv, cli, syn, nil), true},
		{"v4 other port in", srv, frame(t, cli, other, syn, nil), false},
		{"v4 other port out", srv, frame(t, other, cli, syn, nil), false},
		{"v4 other address", srv, frame(t, cli, netip.AddrPortFrom(cliAddr, 8080), syn, nil), false},
		{"v4 port as source of an arriving segment", srv, frame(t, netip.AddrPortFrom(cliAddr, 8080), netip.AddrPortFrom(srvAddr, 9), syn, nil), false},
		{"v4 to itself", srv, frame(t, netip.AddrPortFrom(srvAddr, 9), srv, syn, nil), true},
		{"v4 icmp", srv, frame(t, cli, srv, syn, icmp), false},
		{"v4 later fragment", srv, frame(t, cli, srv, syn, frag), false},
		{"v4 ip options", srv, frame(t, cli, srv, syn, func(f *probe.Frame) { f.IP.Options = []byte{1, 1, 1, 0} }), true},
		{"v6 in", s6, frame(t, c6, s6, syn, nil), true},
		{"v6 out", s6, frame(t, s6, c6, syn, nil), true},
		{"v6 other port", s6, frame(t, c6, netip.AddrPortFrom(srv6, 1), syn, nil), false},
		{"v6 frame to a v4 filter", srv, frame(t, c6, s6, syn, nil), false},
		{"v4 frame to a v6 filter", s6, frame(t, cli, srv, syn, nil), false},
		{"runt", srv, []byte{1, 2, 3}, false},
	} {
		prog, err := portFilter(tc.listen)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		n, err := vm.Run(tc.data)
		if err != nil && n != 0 {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := n > 0; got != tc.want {
			t.Errorf("%s: filter passes %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, bad := range []netip.AddrPort{{}, netip.AddrPortFrom(srvAddr, 0), netip.MustParseAddrPort("[::ffff:10.0.0.1]:80")} {
		if _, err := portFilter(bad); err == nil {
			t.Errorf("portFilter(%v): no error, want one", bad)
		}
	}
}

func TestParseRequest(t *testing.T) {
	h := sha256.Sum256([]byte("x"))
	hx := fmt.Sprintf("%x", h)
	for _, tc := range []struct {
		line    string
		want    Request
		wantErr string
	}{
		{`{"v":1}`, Request{}, ""},
		{`{"v":1,"port":8080,"within_ms":1500,"seq":[4294967295,0],"tsval":[7],"payload_sha256":["` + hx + `"]}`,
			Request{Port: 8080, Within: 1500 * time.Millisecond, Seq: []probe.Seq{0xffffffff, 0}, TSval: []uint32{7}, PayloadSHA256: [][32]byte{h}}, ""},
		{`{"v":1,"payload_sha256":["` + strings.ToUpper(hx) + `"]}`, Request{PayloadSHA256: [][32]byte{h}}, ""},
		{``, Request{}, "not one JSON object"},
		{`[]`, Request{}, "not one JSON object"},
		{`null`, Request{}, "not one JSON object"},
		{`{"v":1} {"v":1}`, Request{}, "more than one JSON value"},
		{`{"v":2}`, Request{}, "field v: want 1"},
		{`{}`, Request{}, "field v: want 1"},
		{`{"v":1,"cmd":"rm -rf /"}`, Request{}, "does not have"},
		{`{"v":1,"port":65536}`, Request{}, "field port"},
		{`{"v":1,"seq":[-1]}`, Request{}, "field seq"},
		{`{"v":1,"seq":[4294967296]}`, Request{}, "field seq"},
		{`{"v":1,"tsval":"1"}`, Request{}, "field tsval"},
		{`{"v":1,"within_ms":-5}`, Request{}, "field within_ms"},
		{`{"v":1,"within_ms":1e99}`, Request{}, "field within_ms"},
		{`{"v":1,"payload_sha256":["abc"]}`, Request{}, "payload_sha256[0]"},
		{`{"v":1,"payload_sha256":["` + strings.Repeat("zz", 32) + `"]}`, Request{}, "payload_sha256[0]"},
		{`{"v":1,"seq":[` + strings.Repeat("1,", MaxKeys) + `1]}`, Request{}, "keys, at most"},
		{`{"v":1,"port":` + strings.Repeat(" ", MaxRequestLen) + `1}`, Request{}, "longer than"},
	} {
		got, err := parseRequest([]byte(tc.line))
		name := tc.line
		if len(name) > 60 {
			name = name[:60] + "..."
		}
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, errRequest) {
				t.Errorf("parseRequest(%s): error %v, want one containing %q", name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseRequest(%s): %v", name, err)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("parseRequest(%s) = %+v, want %+v", name, got, tc.want)
		}
	}
}

// TestRequestRoundTrip checks that what the client sends parses to what it
// meant, and that marshal refuses what the protocol cannot carry.
func TestRequestRoundTrip(t *testing.T) {
	req := Request{Port: 80, Within: 1500*time.Millisecond + 1, Seq: []probe.Seq{1, 2}, TSval: []uint32{3}, PayloadSHA256: [][32]byte{sha256.Sum256(nil)}}
	b, err := req.marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseRequest(bytes.TrimSuffix(b, []byte("\n")))
	if err != nil {
		t.Fatal(err)
	}
	req.Within = 1501 * time.Millisecond // rounded up to whole milliseconds
	if fmt.Sprint(got) != fmt.Sprint(req) {
		t.Errorf("round trip: got %+v, want %+v", got, req)
	}
	if _, err := (Request{Seq: make([]probe.Seq, MaxKeys+1)}).marshal(); err == nil {
		t.Errorf("marshal of %d keys: no error, want one", MaxKeys+1)
	}
	if _, err := (Request{Within: -1}).marshal(); err == nil {
		t.Error("marshal of a negative window: no error, want one")
	}
	if _, err := (Request{PayloadSHA256: make([][32]byte, MaxKeys)}).marshal(); err == nil {
		t.Errorf("marshal of %d digests (beyond %d bytes): no error, want one", MaxKeys, MaxRequestLen)
	}
}

// capture makes a probe.Capture of a segment at time at.
func capture(t testing.TB, from, to netip.AddrPort, tcp probe.TCP, at time.Time, out bool) probe.Capture {
	return probe.Capture{Data: frame(t, from, to, tcp, nil), Time: at, Outgoing: out}
}

func addCapture(t testing.TB, s *store, c probe.Capture) {
	t.Helper()
	var f probe.Frame
	r, err := newRecord(c, &f)
	if err != nil {
		t.Fatal(err)
	}
	s.add(r)
}

func TestStoreFind(t *testing.T) {
	now := time.Now()
	srv := netip.AddrPortFrom(srvAddr, 8080)
	c1 := netip.AddrPortFrom(cliAddr, 40001)
	c2 := netip.AddrPortFrom(cliAddr, 40002)
	ts := func(v uint32) []probe.Option { return []probe.Option{probe.TimestampsOption(v, 0)} }
	s := newStore(100, time.Minute)
	// 1: SYN on c1, 2: its SYN-ACK, 3: data on c1, 4: SYN on c2, 5: its
	// SYN-ACK, 6: an old SYN on c2 (a minute and more ago: expired).
	addCapture(t, s, capture(t, c2, srv, probe.TCP{Flags: probe.SYN, Seq: 999}, now.Add(-2*time.Minute), false))
	addCapture(t, s, capture(t, c1, srv, probe.TCP{Flags: probe.SYN, Seq: 100, Options: ts(7)}, now.Add(-10*time.Second), false))
	addCapture(t, s, capture(t, srv, c1, probe.TCP{Flags: probe.SYN | probe.ACK, Seq: 5000, Ack: 101}, now.Add(-10*time.Second), true))
	addCapture(t, s, capture(t, c1, srv, probe.TCP{Flags: probe.ACK | probe.PSH, Seq: 101, Ack: 5001, Payload: []byte("12345678")}, now.Add(-9*time.Second), false))
	addCapture(t, s, capture(t, c2, srv, probe.TCP{Flags: probe.SYN, Seq: 200, Options: ts(8)}, now.Add(-time.Second), false))
	addCapture(t, s, capture(t, srv, c2, probe.TCP{Flags: probe.SYN | probe.ACK, Seq: 6000, Ack: 201}, now.Add(-time.Second), true))
	digest := sha256.Sum256([]byte("12345678"))
	for _, tc := range []struct {
		name string
		req  Request
		want string // n:match, ...
	}{
		{"everything", Request{}, "2:window 3:window 4:window 5:window 6:window"},
		{"window", Request{Within: 5 * time.Second}, "5:window 6:window"},
		{"seq and its SYN-ACK", Request{Seq: []probe.Seq{100}}, "2:seq 3:tuple"},
		{"tsval", Request{TSval: []uint32{8}}, "5:tsval 6:tuple"},
		{"payload", Request{PayloadSHA256: [][32]byte{digest}}, "3:tuple 4:payload"},
		{"several keys", Request{Seq: []probe.Seq{200}, TSval: []uint32{8, 7}}, "2:tsval 3:tuple 5:seq+tsval 6:tuple"},
		{"outbound seq: no tuple", Request{Seq: []probe.Seq{5000}}, "3:seq"},
		{"expired", Request{Seq: []probe.Seq{999}}, ""},
		{"nothing", Request{TSval: []uint32{1}}, ""},
		{"out of window", Request{Within: 5 * time.Second, Seq: []probe.Seq{100}}, ""},
	} {
		out, truncated, st := s.find(now, tc.req, 100)
		var got []string
		for _, f := range out {
			got = append(got, fmt.Sprintf("%d:%v", f.rec.n, f.match))
		}
		if g := strings.Join(got, " "); g != tc.want || truncated {
			t.Errorf("%s: got %q (truncated %v), want %q", tc.name, g, truncated, tc.want)
		}
		if st.kept != 5 {
			t.Errorf("%s: %d kept, want 5", tc.name, st.kept)
		}
	}
	out, truncated, _ := s.find(now, Request{}, 2)
	if len(out) != 2 || !truncated || out[0].rec.n != 5 || out[1].rec.n != 6 {
		t.Errorf("limit 2: got %d records (first n %d), truncated %v; want the newest 2 (5 and 6), truncated", len(out), out[0].rec.n, truncated)
	}
}

// TestStoreBounded adds more records than the store holds: the newest are
// kept, the count of overwritten ones says how many went.
func TestStoreBounded(t *testing.T) {
	now := time.Now()
	s := newStore(10, time.Minute)
	srv := netip.AddrPortFrom(srvAddr, 8080)
	cli := netip.AddrPortFrom(cliAddr, 40001)
	for i := range 25 {
		addCapture(t, s, capture(t, cli, srv, probe.TCP{Flags: probe.SYN, Seq: probe.Seq(i)}, now, false))
	}
	out, _, st := s.find(now, Request{}, 100)
	if len(out) != 10 || out[0].rec.seq != 15 || out[9].rec.seq != 24 || st.overwritten != 15 {
		t.Errorf("got %d records from seq %d, %d overwritten; want 10 from seq 15 to 24, 15 overwritten", len(out), out[0].rec.seq, st.overwritten)
	}
	if got := s.len(now.Add(2 * time.Minute)); got != 0 {
		t.Errorf("after expiry: %d records kept, want 0", got)
	}
}

func TestNewRecord(t *testing.T) {
	srv := netip.AddrPortFrom(srvAddr, 8080)
	cli := netip.AddrPortFrom(cliAddr, 40001)
	payload := []byte("secret payload, never returned")
	data := frame(t, cli, srv, probe.TCP{Flags: probe.ACK, Seq: 9, Options: []probe.Option{probe.TimestampsOption(77, 1)}, Payload: payload}, func(f *probe.Frame) {
		f.Ethernet.Tagged, f.Ethernet.VLAN = true, 5
	})
	data[len(data)-1] ^= 0xff // break the TCP checksum
	var f probe.Frame
	r, err := newRecord(probe.Capture{Data: data, ChecksumPartial: true}, &f)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.header) != 20+32 || r.header[0] != 0x45 || r.payloadLen != len(payload) || !r.hasTS || r.tsval != 77 || r.seq != 9 || r.dir != In {
		t.Errorf("record %+v: want 52 header bytes from the IPv4 header, %d bytes of payload, TSval 77, seq 9, in", r, len(payload))
	}
	if r.tcpSum != probe.ChecksumNotFinal || r.ipSum != probe.ChecksumValid {
		t.Errorf("checksums: ip %v, tcp %v; want valid, not final", r.ipSum, r.tcpSum)
	}
	if bytes.Contains(r.header, payload[:6]) {
		t.Error("the header bytes hold the payload")
	}
	if _, err := newRecord(probe.Capture{Data: data[:30]}, &f); err == nil {
		t.Error("a runt frame makes a record")
	}
}

func TestReadAnswer(t *testing.T) {
	hdr := frame(t, netip.AddrPortFrom(cliAddr, 1), netip.AddrPortFrom(srvAddr, 2), probe.TCP{Flags: probe.SYN, Seq: 42, Options: []probe.Option{probe.MSSOption(1200)}}, nil)[14:]
	rec := fmt.Sprintf(`{"type":"record","n":3,"time":"2026-01-02T03:04:05.5Z","age_us":1500,"dir":"in","header":"%x","payload_len":0,"payload_sha256":"%x","ip_checksum":"valid","tcp_checksum":"not-final","match":["seq"]}`, hdr, sha256.Sum256(nil))
	end := `{"type":"end","v":1,"port":2,"records":1,"truncated":false,"kept":9,"capacity":10,"expiry_ms":1000,"oldest_age_us":7,"overwritten":1,"kernel_drops":2}`
	a, err := readAnswer(strings.NewReader(rec + "\n" + end + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := a.Records[0]
	mss, _ := r.TCP.MSS()
	if len(a.Records) != 1 || r.N != 3 || r.Age != 1500*time.Microsecond || r.Direction != In || r.TCP.Seq != 42 || mss != 1200 ||
		r.IP.TTL != 61 || r.TCPChecksum != probe.ChecksumNotFinal || r.Match != MatchSeq || r.Src() != netip.AddrPortFrom(cliAddr, 1) {
		t.Errorf("record %+v: want n 3, age 1.5ms, in, seq 42, mss 1200, ttl 61, tcp checksum not final, match seq, from %v:1", r, cliAddr)
	}
	if a.Port != 2 || a.Kept != 9 || a.Capacity != 10 || a.Expiry != time.Second || a.Overwritten != 1 || a.KernelDrops != 2 {
		t.Errorf("answer %+v: want the end line's numbers", a)
	}
	for _, tc := range []struct {
		name, text string
		want       error
	}{
		{"nothing", "", ErrRefused},
		{"error line", `{"type":"error","error":"bad request: no"}` + "\n", ErrRejected},
		{"no end", rec + "\n", ErrProtocol},
		{"not json", "hello\n", ErrProtocol},
		{"unknown type", `{"type":"exec"}` + "\n", ErrProtocol},
		{"count", strings.Replace(end, `"records":1`, `"records":2`, 1) + "\n", ErrProtocol},
		{"version", strings.Replace(end, `"v":1`, `"v":9`, 1) + "\n", ErrProtocol},
		{"bad header", strings.Replace(rec, `"header":"`, `"header":"zz`, 1) + "\n", ErrProtocol},
		{"bad dir", strings.Replace(rec, `"in"`, `"up"`, 1) + "\n", ErrProtocol},
		{"unknown field", strings.Replace(rec, `"n":3`, `"x":3`, 1) + "\n", ErrProtocol},
		{"long line", strings.Repeat("x", 70<<10) + "\n", ErrProtocol},
	} {
		if _, err := readAnswer(strings.NewReader(tc.text)); !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
		}
	}
}

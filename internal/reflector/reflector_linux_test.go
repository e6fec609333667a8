package reflector_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"synprobe/internal/netns"
	"synprobe/internal/reflector"
	"synprobe/internal/veth"
	"synprobe/internal/veth/vethtest"
	"synprobe/probe"
)

var (
	cliAddr = netip.MustParseAddr("10.92.0.1")
	srvAddr = netip.MustParseAddr("10.92.0.2")
	listen  = netip.AddrPortFrom(srvAddr, 8080)
	report  = netip.AddrPortFrom(srvAddr, 8081)
)

// bed is a veth pair with a reflector in the target namespace.
type bed struct {
	pair   *veth.Pair
	srv    *reflector.Server
	client reflector.Client
	logs   chan string
}

func newBed(t *testing.T, cfg reflector.Config) *bed {
	t.Helper()
	b := &bed{logs: make(chan string, 1000)}
	b.pair = vethtest.New(t, veth.Config{
		Probe:  veth.End{Name: "rf-cli", Addrs: []netip.Prefix{netip.PrefixFrom(cliAddr, 24)}},
		Target: veth.End{Name: "rf-srv", Addrs: []netip.Prefix{netip.PrefixFrom(srvAddr, 24)}},
	})
	cfg.Listen = listen
	cfg.NetNS = b.pair.Target.NS
	if cfg.Allow == nil {
		cfg.Allow = []netip.Prefix{netip.PrefixFrom(cliAddr, 32)}
	}
	cfg.Logf = func(format string, args ...any) {
		select {
		case b.logs <- fmt.Sprintf(format, args...):
		default:
		}
	}
	var err error
	b.srv, err = reflector.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.srv.Close(); err != nil {
			t.Errorf("close reflector: %v", err)
		}
	})
	if b.srv.Report() != report || b.srv.Interface() != "rf-srv" {
		t.Fatalf("reflector reports on %v, captures on %s; want %v, rf-srv", b.srv.Report(), b.srv.Interface(), report)
	}
	b.client = reflector.Client{NetNS: b.pair.Probe.NS, Timeout: 5 * time.Second}
	return b
}

// await asks until ok accepts the answer: the capture runs behind the
// traffic.
func (b *bed) await(t *testing.T, req reflector.Request, what string, ok func(*reflector.Answer) bool) *reflector.Answer {
	t.Helper()
	return b.awaitAt(t, report, req, what, ok)
}

func (b *bed) awaitAt(t *testing.T, report netip.AddrPort, req reflector.Request, what string, ok func(*reflector.Answer) bool) *reflector.Answer {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		a, err := b.client.Ask(context.Background(), report, req)
		if err != nil {
			t.Fatal(err)
		}
		if ok(a) {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not in the answer after 5s: %s", what, describe(a))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func describe(a *reflector.Answer) string {
	var s []string
	for _, r := range a.Records {
		s = append(s, fmt.Sprintf("#%d %v %v>%v %v ttl %d match %v", r.N, r.Direction, r.Src(), r.Dst(), &r.TCP, r.IP.TTL, r.Match))
	}
	return fmt.Sprintf("%d records [%s]", len(a.Records), strings.Join(s, "; "))
}

// dialProbe is a prober in the client namespace.
func (b *bed) dialProbe(t *testing.T) *probe.Prober {
	t.Helper()
	p, err := probe.Dial(context.Background(), srvAddr, probe.DialConfig{NetNS: b.pair.Probe.NS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// sendSYN sends a crafted SYN (TSval tsval, TTL ttl, DSCP AF11, DF) with
// payload and returns the session and what went out.
func sendSYN(t *testing.T, p *probe.Prober, isn probe.Seq, tsval uint32, ttl uint8, payload []byte) (*probe.Session, *probe.Sent) {
	t.Helper()
	s, err := p.Open(probe.SessionConfig{Remote: listen})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	sent, err := s.Send(&probe.Frame{
		IP: probe.IP{TTL: ttl, TOS: 0x28, ID: 0x5300 | uint16(ttl), Flags: probe.IPFlagDF},
		TCP: probe.TCP{Flags: probe.SYN, Seq: isn, Window: 64240, Payload: payload, Options: []probe.Option{
			probe.MSSOption(1460), probe.SACKPermittedOption(), probe.TimestampsOption(tsval, 0), probe.NOPOption(), probe.WScaleOption(7),
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, sent
}

func find(a *reflector.Answer, ok func(*reflector.Record) bool) *reflector.Record {
	for i := range a.Records {
		if ok(&a.Records[i]) {
			return &a.Records[i]
		}
	}
	return nil
}

// TestRecords sends crafted SYNs and a kernel connection with data, and
// finds each by its ISN, TSval and payload digest, with the SYN-ACK the
// reflector's kernel sent back on the same 4-tuple.
func TestRecords(t *testing.T) {
	b := newBed(t, reflector.Config{})
	p := b.dialProbe(t)
	const isn, tsval = probe.Seq(0xdeadbeef), uint32(0x5350_0001)
	sess, sent := sendSYN(t, p, isn, tsval, 47, nil)
	synData := []byte("0123456789abcdef")
	sess2, _ := sendSYN(t, p, 0x1000, 2, 64, synData)

	// By ISN: the SYN as it arrived, and the SYN-ACK on its 4-tuple.
	a := b.await(t, reflector.Request{Seq: []probe.Seq{isn}, Within: 10 * time.Second}, "SYN by ISN and its SYN-ACK", func(a *reflector.Answer) bool {
		return len(a.Records) >= 2
	})
	in := find(a, func(r *reflector.Record) bool { return r.Direction == reflector.In })
	out := find(a, func(r *reflector.Record) bool { return r.Direction == reflector.Out })
	if in == nil || out == nil {
		t.Fatalf("by ISN: want the SYN in and the SYN-ACK out; got %s", describe(a))
	}
	if in.Match != reflector.MatchSeq || in.Src() != sess.Local() || in.TCP.Seq != isn || in.TCP.Flags != probe.SYN {
		t.Errorf("SYN record %v from %v match %v: want seq %v from %v, match seq", &in.TCP, in.Src(), in.Match, isn, sess.Local())
	}
	// The IP header as received: nothing between the two namespaces
	// changes it, so it is the header as sent.
	if in.IP.TTL != 47 || in.IP.TOS != 0x28 || in.IP.ID != 0x532f || !in.IP.DF() || in.IP.TotalLength != sent.Frame.IP.TotalLength {
		t.Errorf("SYN's IP header: ttl %d tos %#x id %#x df %v length %d; want ttl 47 tos 0x28 id 0x532f df, length %d",
			in.IP.TTL, in.IP.TOS, in.IP.ID, in.IP.DF(), in.IP.TotalLength, sent.Frame.IP.TotalLength)
	}
	if got, want := probe.FormatOptions(in.TCP.Options), probe.FormatOptions(sent.Frame.TCP.Options); got != want {
		t.Errorf("SYN's options: got %s, want %s", got, want)
	}
	if !strings.EqualFold(hex.EncodeToString(in.Header), hex.EncodeToString(sent.Data[probe.EthernetHeaderLen:])) {
		t.Errorf("SYN's header bytes:\n got %x\nwant %x", in.Header, sent.Data[probe.EthernetHeaderLen:])
	}
	if in.TCPChecksum != probe.ChecksumValid || in.PayloadLen != 0 {
		t.Errorf("SYN: checksum %v, %d payload bytes; want valid, 0", in.TCPChecksum, in.PayloadLen)
	}
	if out.Match != reflector.MatchTuple || out.TCP.Flags != probe.SYN|probe.ACK || out.TCP.Ack != isn+1 || out.Dst() != sess.Local() || out.IP.TTL != 64 {
		t.Errorf("SYN-ACK record %v to %v ttl %d match %v: want SYN-ACK ack %v to %v, ttl 64, match tuple", &out.TCP, out.Dst(), out.IP.TTL, out.Match, isn+1, sess.Local())
	}
	if out.TCPChecksum == probe.ChecksumInvalid {
		t.Errorf("SYN-ACK's checksum %v: an offloaded checksum must show as not final", out.TCPChecksum)
	}
	if a.Port != listen.Port() || a.Capacity != reflector.DefaultMaxRecords || a.Expiry != reflector.DefaultExpiry || a.Truncated {
		t.Errorf("answer: port %d capacity %d expiry %v truncated %v; want %d, %d, %v, not truncated", a.Port, a.Capacity, a.Expiry, a.Truncated, listen.Port(), reflector.DefaultMaxRecords, reflector.DefaultExpiry)
	}

	// By TSval: the same SYN.
	b.await(t, reflector.Request{TSval: []uint32{tsval}}, "SYN by TSval", func(a *reflector.Answer) bool {
		return find(a, func(r *reflector.Record) bool { return r.Match&reflector.MatchTSval != 0 && r.TCP.Seq == isn }) != nil
	})

	// By payload: the SYN with data, its length and digest.
	digest := sha256.Sum256(synData)
	a = b.await(t, reflector.Request{PayloadSHA256: [][32]byte{digest}}, "SYN with data by digest", func(a *reflector.Answer) bool {
		return find(a, func(r *reflector.Record) bool { return r.Match == reflector.MatchPayload }) != nil
	})
	r := find(a, func(r *reflector.Record) bool { return r.Match == reflector.MatchPayload })
	if r.PayloadLen != len(synData) || r.PayloadSHA256 != digest || r.Src() != sess2.Local() {
		t.Errorf("SYN with data: %d bytes, digest %x, from %v; want %d, %x, from %v", r.PayloadLen, r.PayloadSHA256, r.Src(), len(synData), digest, sess2.Local())
	}

	// A kernel connection with data: the data by its digest, and what the
	// reflector's host sent on that connection.
	payload := []byte("kernel payload, never echoed")
	var conn net.Conn
	err := netns.Do(b.pair.Probe.NS, func() error {
		var err error
		conn, err = net.DialTimeout("tcp", listen.String(), 5*time.Second)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(payload); err != nil {
		t.Fatal(err)
	}
	local := netip.MustParseAddrPort(conn.LocalAddr().String())
	a = b.await(t, reflector.Request{PayloadSHA256: [][32]byte{sha256.Sum256(payload)}}, "kernel data, its SYN-ACK and ACK", func(a *reflector.Answer) bool {
		synack := find(a, func(r *reflector.Record) bool { return r.Direction == reflector.Out && r.TCP.Flags.Has(probe.SYN) })
		ack := find(a, func(r *reflector.Record) bool {
			return r.Direction == reflector.Out && !r.TCP.Flags.Has(probe.SYN) && r.TCP.Flags.Has(probe.ACK)
		})
		return synack != nil && ack != nil
	})
	data := find(a, func(r *reflector.Record) bool { return r.Match == reflector.MatchPayload })
	if data == nil || data.Src() != local || data.PayloadLen != len(payload) {
		t.Errorf("kernel data from %v: want a payload match of %d bytes; got %s", local, len(payload), describe(a))
	}

	// Nothing is echoed: the probed port never sends data, and the
	// report never holds the payload.
	conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := conn.Read(make([]byte, 100)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read on the probed port: %d bytes, %v; want nothing (a timeout)", n, err)
	}
	raw := b.raw(t, fmt.Sprintf(`{"v":1,"payload_sha256":["%x"]}`+"\n", sha256.Sum256(payload)))
	if strings.Contains(raw, string(payload)) || strings.Contains(raw, hex.EncodeToString(payload)) || strings.Contains(raw, hex.EncodeToString(payload[:8])) {
		t.Errorf("the answer holds the payload: %s", raw)
	}
	// Bound to the given address only: not reachable on another address
	// of its host.
	for _, port := range []uint16{listen.Port(), report.Port()} {
		other := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
		err := netns.Do(b.pair.Target.NS, func() error {
			c, err := net.DialTimeout("tcp", other.String(), time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil {
			t.Errorf("%v accepts a connection: want the reflector bound to %v only", other, srvAddr)
		}
	}
	st := b.srv.Stats()
	if st.Captured < 5 || st.Queries < 4 || st.ProbeConns != 1 || st.Refused != 0 || st.BadRequests != 0 {
		t.Errorf("stats %+v: want at least 5 captured, 4 queries, 1 probe connection, none refused or bad", st)
	}
}

// raw sends text to the report port from the client namespace and returns
// everything that came back.
func (b *bed) raw(t *testing.T, text string) string {
	t.Helper()
	var conn net.Conn
	err := netns.Do(b.pair.Probe.NS, func() error {
		var err error
		conn, err = net.DialTimeout("tcp", report.String(), 5*time.Second)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, text); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(text, "\n") {
		conn.(*net.TCPConn).CloseWrite()
	}
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read answer to %.40q: %v", text, err)
	}
	return string(got)
}

// TestAllowList: a client outside --allow gets nothing, and is counted.
func TestAllowList(t *testing.T) {
	for _, tc := range []struct {
		name  string
		allow []netip.Prefix
	}{
		{"other address", []netip.Prefix{netip.MustParsePrefix("10.92.0.99/32")}},
		{"empty list", []netip.Prefix{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, reflector.Config{Allow: tc.allow})
			_, err := b.client.Query(context.Background(), report, reflector.Request{})
			if !errors.Is(err, reflector.ErrRefused) || !strings.Contains(err.Error(), report.String()) {
				t.Errorf("query from %v: error %v, want ErrRefused naming %v", cliAddr, err, report)
			}
			if got := b.srv.Stats().Refused; got != 1 {
				t.Errorf("%d refused, want 1", got)
			}
			select {
			case l := <-b.logs:
				if !strings.Contains(l, "refused") || !strings.Contains(l, "1 refused") {
					t.Errorf("log line %q: want a counted refusal", l)
				}
			default:
				t.Error("no log line for the refusal")
			}
		})
	}
}

// TestBoundedAndExpiry: more segments than the capacity keeps the newest;
// records expire.
func TestBoundedAndExpiry(t *testing.T) {
	b := newBed(t, reflector.Config{MaxRecords: 6, Expiry: 1500 * time.Millisecond})
	p := b.dialProbe(t)
	for i := range 12 {
		sendSYN(t, p, probe.Seq(1000+i), uint32(i+1), 64, nil)
		time.Sleep(5 * time.Millisecond) // keep the order of arrival
	}
	a := b.await(t, reflector.Request{}, "the last SYN", func(a *reflector.Answer) bool {
		return find(a, func(r *reflector.Record) bool { return r.TCP.Seq == 1011 }) != nil
	})
	if len(a.Records) != 6 || a.Kept != 6 || a.Overwritten == 0 || a.Capacity != 6 {
		t.Errorf("answer: %d records, %d kept, %d overwritten, capacity %d; want 6, 6, some, 6 (%s)", len(a.Records), a.Kept, a.Overwritten, a.Capacity, describe(a))
	}
	if r := find(a, func(r *reflector.Record) bool { return r.TCP.Seq == 1000 }); r != nil {
		t.Errorf("the first SYN is still kept: %s", describe(a))
	}
	time.Sleep(2 * time.Second)
	a, err := b.client.Ask(context.Background(), report, reflector.Request{})
	if err != nil {
		t.Fatal(err)
	}
	// The reflector's kernel retransmits its SYN-ACKs (the prober's guard
	// keeps the client's kernel from resetting them), so new records come;
	// the SYNs must be gone, and nothing older than the expiry kept.
	if r := find(a, func(r *reflector.Record) bool { return r.Direction == reflector.In || r.Age > 1500*time.Millisecond }); r != nil || a.OldestAge > 1500*time.Millisecond {
		t.Errorf("after the expiry: want no SYN and nothing older than 1.5s, oldest %v (%s)", a.OldestAge, describe(a))
	}
}

// TestMalformedRequests: one error line, then the connection closes; the
// error never repeats the request.
func TestMalformedRequests(t *testing.T) {
	b := newBed(t, reflector.Config{})
	for _, tc := range []struct {
		name, text, want string
	}{
		{"not json", "$(touch /tmp/reflector-was-here)\n", "not one JSON object"},
		{"unknown field", `{"v":1,"exec":"touch /tmp/reflector-was-here"}` + "\n", "does not have"},
		{"other port", `{"v":1,"port":22}` + "\n", "records port 8080 only"},
		{"too long", strings.Repeat("x", 5000), "longer than 4095 bytes"},
		{"no newline", `{"v":1}`, "no complete line"},
	} {
		got := b.raw(t, tc.text)
		lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		if len(lines) != 1 || !strings.HasPrefix(got, `{"type":"error","error":"bad request: `) || !strings.Contains(got, tc.want) {
			t.Errorf("%s: got %q, want one error line containing %q", tc.name, got, tc.want)
		}
		if strings.Contains(got, "reflector-was-here") {
			t.Errorf("%s: the answer %q repeats the request", tc.name, got)
		}
	}
	if got := b.srv.Stats().BadRequests; got != 5 {
		t.Errorf("%d bad requests counted, want 5", got)
	}
	// A client that says nothing is cut off after the read timeout.
	var conn net.Conn
	err := netns.Do(b.pair.Probe.NS, func() error {
		var err error
		conn, err = net.Dial("tcp", report.String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(reflector.ReportReadTimeout + 5*time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(line, "no request line within") {
		t.Errorf("silent client: got %q, %v; want an error line about the timeout", line, err)
	}
}

// TestStartErrors: an address that is not here, a wildcard.
func TestStartErrors(t *testing.T) {
	ns := vethtest.Namespace(t)
	_, err := reflector.Start(reflector.Config{Listen: netip.MustParseAddrPort("10.92.9.9:80"), NetNS: ns, Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	if !errors.Is(err, reflector.ErrNotLocal) {
		t.Errorf("address not here: error %v, want ErrNotLocal", err)
	}
	_, err = reflector.Start(reflector.Config{Listen: netip.MustParseAddrPort("0.0.0.0:80"), NetNS: ns})
	if err == nil || !strings.Contains(err.Error(), "wildcard") {
		t.Errorf("wildcard: error %v, want one about the wildcard", err)
	}
}

// TestRecordsIPv6: a kernel connection over IPv6, its data found by digest
// with the SYN-ACK on its 4-tuple.
func TestRecordsIPv6(t *testing.T) {
	cli6, srv6 := netip.MustParseAddr("fd92::1"), netip.MustParseAddr("fd92::2")
	pair := vethtest.New(t, veth.Config{
		Probe:  veth.End{Name: "rf6-cli", Addrs: []netip.Prefix{netip.PrefixFrom(cli6, 64)}},
		Target: veth.End{Name: "rf6-srv", Addrs: []netip.Prefix{netip.PrefixFrom(srv6, 64)}},
	})
	l6 := netip.AddrPortFrom(srv6, 8080)
	srv, err := reflector.Start(reflector.Config{Listen: l6, NetNS: pair.Target.NS, Allow: []netip.Prefix{netip.MustParsePrefix("fd92::/64")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	payload := []byte("over IPv6")
	err = netns.Do(pair.Probe.NS, func() error {
		c, err := net.DialTimeout("tcp", l6.String(), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(payload)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	b := &bed{srv: srv, client: reflector.Client{NetNS: pair.Probe.NS}}
	a := b.awaitAt(t, srv.Report(), reflector.Request{PayloadSHA256: [][32]byte{sha256.Sum256(payload)}}, "IPv6 data and its SYN-ACK", func(a *reflector.Answer) bool {
		return find(a, func(r *reflector.Record) bool { return r.Direction == reflector.Out && r.TCP.Flags.Has(probe.SYN) }) != nil &&
			find(a, func(r *reflector.Record) bool { return r.Match == reflector.MatchPayload }) != nil
	})
	r := find(a, func(r *reflector.Record) bool { return r.Match == reflector.MatchPayload })
	if r.IP.Version != 6 || r.IP.TTL != 64 || r.PayloadLen != len(payload) || r.Dst() != l6 || r.Src().Addr() != cli6 {
		t.Errorf("IPv6 data record: version %d hop limit %d, %d bytes, %v > %v; want 6, 64, %d bytes, from %v to %v", r.IP.Version, r.IP.TTL, r.PayloadLen, r.Src(), r.Dst(), len(payload), cli6, l6)
	}
}

// TestCaptureOnly: with CaptureOnly the reflector does not listen (the
// port stays free for the host's own server, here none: the kernel
// resets) and still records what arrives and what the host sends back.
func TestCaptureOnly(t *testing.T) {
	b := newBed(t, reflector.Config{CaptureOnly: true})
	// The port is free: the reflector does not hold it.
	err := netns.Do(b.pair.Target.NS, func() error {
		l, err := net.Listen("tcp4", listen.String())
		if err == nil {
			l.Close()
		}
		return err
	})
	if err != nil {
		t.Fatalf("listen on %v next to a capture-only reflector: %v, want the port free", listen, err)
	}
	p := b.dialProbe(t)
	const isn = probe.Seq(0xc0ffee)
	sendSYN(t, p, isn, 7, 64, nil)
	a := b.await(t, reflector.Request{Seq: []probe.Seq{isn}}, "SYN and the kernel's RST", func(a *reflector.Answer) bool {
		return len(a.Records) >= 2
	})
	in := find(a, func(r *reflector.Record) bool { return r.Direction == reflector.In })
	out := find(a, func(r *reflector.Record) bool { return r.Direction == reflector.Out })
	if in == nil || out == nil || in.TCP.Seq != isn || out.TCP.Flags&probe.RST == 0 {
		t.Errorf("got %s; want the SYN in and the kernel's RST out", describe(a))
	}
}

package probe

import (
	"context"
	"errors"
	"hash/maphash"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// wire is the far end of a MemoryLink in these tests: it keeps what synprobe
// sent. It is not a TCP stack; the tests here are about demultiplexing.
type wire struct {
	mu   sync.Mutex
	sent [][]byte
}

func (w *wire) deliver(b []byte) {
	w.mu.Lock()
	w.sent = append(w.sent, b)
	w.mu.Unlock()
}

func testProber(t *testing.T) (*Prober, *MemoryLink, *wire) {
	t.Helper()
	w := &wire{}
	l := NewMemoryLink(MAC{2, 0, 0, 0, 0, 1}, 1500, w.deliver)
	p := NewProber(ProberConfig{Link: l, Path: Path{
		Source: netip.MustParseAddr("192.0.2.1"), LocalMAC: MAC{2, 0, 0, 0, 0, 1},
		NextHop: netip.MustParseAddr("192.0.2.2"), NextHopMAC: MAC{2, 0, 0, 0, 0, 2}, MTU: 1500,
	}})
	t.Cleanup(func() { p.Close() })
	return p, l, w
}

func reply(t *testing.T, from, to netip.AddrPort, tcp TCP) []byte {
	t.Helper()
	tcp.SrcPort, tcp.DstPort = from.Port(), to.Port()
	f := Frame{Ethernet: Ethernet{Src: MAC{2, 0, 0, 0, 0, 2}, Dst: MAC{2, 0, 0, 0, 0, 1}}, IP: IP{Src: from.Addr(), Dst: to.Addr()}, TCP: tcp}
	b, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProberDemultiplexes(t *testing.T) {
	p, l, w := testProber(t)
	target := netip.MustParseAddrPort("192.0.2.2:80")
	a, err := p.Open(SessionConfig{Remote: target})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Open(SessionConfig{Remote: target, LocalPort: 50001})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Open(SessionConfig{Remote: target, LocalPort: 50001}); err == nil {
		t.Error("a second session on port 50001: want an error")
	}
	sent, err := a.Send(&Frame{IP: IP{Flags: IPFlagDF}, TCP: TCP{Seq: 100, Flags: SYN, Window: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	if sent.Time.IsZero() || sent.Frame.TCP.SrcPort != a.Local().Port() || sent.Frame.IP.Dst != target.Addr() || !sent.Frame.IP.DF() {
		t.Errorf("sent %v at %v: want the session's ports, the target, DF and a time", &sent.Frame, sent.Time)
	}
	w.mu.Lock()
	if len(w.sent) != 1 {
		t.Errorf("far end got %d frames, want 1", len(w.sent))
	}
	w.mu.Unlock()

	l.Inject(reply(t, target, b.Local(), TCP{Seq: 7, Flags: SYN | ACK}))
	l.Inject(reply(t, target, a.Local(), TCP{Seq: 9, Ack: 101, Flags: SYN | ACK}))
	l.Inject(reply(t, netip.MustParseAddrPort("192.0.2.2:81"), a.Local(), TCP{Flags: RST}))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := a.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Frame.TCP.Seq != 9 || r.Frame.TCP.Ack != 101 {
		t.Errorf("session a got %v, want its SYN-ACK seq 9 ack 101", &r.Frame)
	}
	if !r.Time.After(sent.Time) && !r.Time.Equal(sent.Time) {
		t.Errorf("reply time %v before send time %v", r.Time, sent.Time)
	}
	r, err = b.Recv(ctx)
	if err != nil || r.Frame.TCP.Seq != 7 {
		t.Errorf("session b got %v, %v; want its SYN-ACK seq 7", r, err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if r, err := a.Recv(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a frame from another port reached session a: %v", r)
	}
	if st := p.Stats(); st.Unmatched != 1 {
		t.Errorf("unmatched frames: got %d, want 1", st.Unmatched)
	}
}

func TestProberICMPAndLocalHostFrames(t *testing.T) {
	p, l, _ := testProber(t)
	target := netip.MustParseAddrPort("192.0.2.2:80")
	s, err := p.Open(SessionConfig{Remote: target})
	if err != nil {
		t.Fatal(err)
	}
	sent, err := s.Send(&Frame{TCP: TCP{Seq: 1, Flags: SYN}})
	if err != nil {
		t.Fatal(err)
	}
	// A router's ICMP error quoting the SYN.
	quoted, _ := sent.Frame.EncodeIP()
	icmp := Frame{Ethernet: Ethernet{Src: MAC{2, 0, 0, 0, 0, 2}}, IP: IP{Src: netip.MustParseAddr("198.51.100.1"), Dst: s.Local().Addr(), Protocol: ProtocolICMP},
		ICMP: ICMP{Type: ICMPv4DestUnreachable, Code: 1, Body: quoted[:28]}}
	b, err := icmp.Encode()
	if err != nil {
		t.Fatal(err)
	}
	l.Inject(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := s.Recv(ctx)
	if err != nil || !r.Frame.Has(LayerICMP) {
		t.Fatalf("got %v, %v; want the ICMP error", r, err)
	}
	// The local kernel's RST on our 4-tuple, seen leaving (not sent by us).
	rst := Frame{Ethernet: Ethernet{Src: MAC{2, 0, 0, 0, 0, 1}}, IP: IP{Src: s.Local().Addr(), Dst: target.Addr()}, TCP: TCP{SrcPort: s.Local().Port(), DstPort: 80, Flags: RST, Seq: 2}}
	rb, _ := rst.Encode()
	l.enqueue(Capture{Data: rb, Time: time.Now(), Outgoing: true})
	deadline := time.Now().Add(5 * time.Second)
	for len(s.LocalHostFrames()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := s.LocalHostFrames(); len(got) != 1 || got[0].Frame.TCP.Flags != RST {
		t.Errorf("local host frames: got %d, want the kernel's RST", len(got))
	}
	if s.Pending() != 0 {
		t.Error("the local host's RST was queued as a reply from the target")
	}
}

func TestProberCloseUnblocksRecv(t *testing.T) {
	p, _, _ := testProber(t)
	s, err := p.Open(SessionConfig{Remote: netip.MustParseAddrPort("192.0.2.2:80")})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := s.Recv(context.Background())
		errc <- err
	}()
	p.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrLinkClosed) {
			t.Errorf("got %v, want ErrLinkClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Recv still blocked after Close")
	}
	if _, err := p.Open(SessionConfig{Remote: netip.MustParseAddrPort("192.0.2.2:80")}); err == nil {
		t.Error("Open after Close: want an error")
	}
}

// lateEchoLink is a MemoryLink whose echoes of synprobe's own frames come
// late, as on a loaded host whose reader falls behind.
type lateEchoLink struct {
	*MemoryLink
	delay time.Duration
}

func (l *lateEchoLink) WriteFrame(frame []byte) error {
	echo := append([]byte(nil), frame...)
	now := time.Now()
	time.AfterFunc(l.delay, func() {
		l.enqueue(Capture{Data: echo, Time: now, Outgoing: true})
	})
	return nil
}

// TestProberLateEcho sends with echoes that come well after echoWait: they
// must be recognised as synprobe's own frames, not reported as frames the
// local host sent, while a frame the kernel really sent still is.
func TestProberLateEcho(t *testing.T) {
	const delay = 4 * echoWait
	l := &lateEchoLink{MemoryLink: NewMemoryLink(MAC{2, 0, 0, 0, 0, 1}, 1500, func([]byte) {}), delay: delay}
	p := NewProber(ProberConfig{Link: l, Path: Path{
		Source: netip.MustParseAddr("192.0.2.1"), LocalMAC: MAC{2, 0, 0, 0, 0, 1},
		NextHop: netip.MustParseAddr("192.0.2.2"), NextHopMAC: MAC{2, 0, 0, 0, 0, 2}, MTU: 1500,
	}})
	t.Cleanup(func() { p.Close() })
	target := netip.MustParseAddrPort("192.0.2.2:80")
	s, err := p.Open(SessionConfig{Remote: target})
	if err != nil {
		t.Fatal(err)
	}
	const sends = 5
	for i := range sends {
		start := time.Now()
		sent, err := s.Send(&Frame{TCP: TCP{Seq: Seq(100 + i), Flags: SYN, Window: 1000}})
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took >= delay {
			t.Errorf("send %d: Send took %v, want it to stop waiting after echoWait (%v)", i, took, echoWait)
		}
		if sent.Time.Before(start) {
			t.Errorf("send %d: time %v before the call (%v), want the write time", i, sent.Time, start)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().LateEchoes < sends && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := p.Stats().LateEchoes; got != sends {
		t.Fatalf("late echoes: got %d, want %d", got, sends)
	}
	if got := s.LocalHostFrames(); len(got) != 0 {
		t.Errorf("local host frames: got %d (first %v), want none: each was synprobe's own late echo", len(got), &got[0].Frame)
	}
	if s.Pending() != 0 {
		t.Errorf("an echo of synprobe's own frame was queued as a reply")
	}

	// The local kernel's own RST on the 4-tuple is still reported.
	rst := Frame{Ethernet: Ethernet{Src: MAC{2, 0, 0, 0, 0, 1}}, IP: IP{Src: s.Local().Addr(), Dst: target.Addr()}, TCP: TCP{SrcPort: s.Local().Port(), DstPort: 80, Flags: RST, Seq: 101}}
	rb, _ := rst.Encode()
	l.enqueue(Capture{Data: rb, Time: time.Now(), Outgoing: true})
	for len(s.LocalHostFrames()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := s.LocalHostFrames(); len(got) != 1 || got[0].Frame.TCP.Flags != RST {
		t.Errorf("local host frames: got %d, want the kernel's RST", len(got))
	}
}

// TestProberForgetsUnechoed checks the bounds on what is remembered of
// frames never seen leaving: by age and by bytes, oldest first.
func TestProberForgetsUnechoed(t *testing.T) {
	p := &Prober{pending: map[uint64][]*pendingSend{}, seed: maphash.MakeSeed()}
	t0 := time.Unix(1700000000, 0)
	add := func(size int, at time.Time) *pendingSend {
		ps := &pendingSend{data: make([]byte, size), written: at}
		ps.data[0] = byte(p.unechoed.Len())
		ps.hash = p.hash(ps.data)
		p.addPendingLocked(ps)
		return ps
	}
	first := add(100, t0)
	second := add(100, t0.Add(time.Second))
	add(100, t0.Add(unechoedFor+time.Second/2)) // first is now too old
	if first.elem != nil || second.elem == nil || p.unechoed.Len() != 2 || p.unechoedSize != 200 {
		t.Errorf("after unechoedFor: remembered %d frames, %d bytes; want the first forgotten", p.unechoed.Len(), p.unechoedSize)
	}
	big := add(unechoedBytes-150, t0.Add(unechoedFor+time.Second))
	if second.elem != nil || big.elem == nil || p.unechoedSize > unechoedBytes {
		t.Errorf("beyond unechoedBytes: remembered %d frames, %d bytes; want the oldest forgotten, at most %d bytes", p.unechoed.Len(), p.unechoedSize, unechoedBytes)
	}
	if n := len(p.pending); n != p.unechoed.Len() {
		t.Errorf("pending map holds %d hashes, the order list %d frames", n, p.unechoed.Len())
	}
}

// recordingPorts is a PortSource that records what is released.
type recordingPorts struct {
	*simplePorts
	released []uint16
}

func (r *recordingPorts) Release(port uint16) {
	r.released = append(r.released, port)
	r.simplePorts.Release(port)
}

// TestProberReleasesRestedPorts checks that ports are handed back once
// their rest is over, and not before, oldest first.
func TestProberReleasesRestedPorts(t *testing.T) {
	ports := &recordingPorts{simplePorts: newSimplePorts()}
	p := &Prober{ports: ports}
	t0 := time.Unix(1700000000, 0)
	for i, port := range []uint16{100, 101, 102} {
		p.resting = append(p.resting, restingPort{sessionKey{local: port}, t0.Add(time.Duration(i) * time.Second)})
	}
	p.releaseRested(t0.Add(1500 * time.Millisecond))
	if !slices.Equal(ports.released, []uint16{100, 101}) || len(p.resting) != 1 {
		t.Errorf("after 1.5 s: released %v, %d resting; want 100 and 101 released, 102 resting", ports.released, len(p.resting))
	}
	if !p.releaseOldest() || !slices.Equal(ports.released, []uint16{100, 101, 102}) {
		t.Errorf("releaseOldest: released %v, want 102 last", ports.released)
	}
	if p.releaseOldest() {
		t.Error("releaseOldest with nothing resting: reported a port")
	}
}

// frameRecorder is a Recorder that keeps what it is given.
type frameRecorder struct {
	mu     sync.Mutex
	frames [][]byte
}

func (r *frameRecorder) WritePacket(ts time.Time, data []byte) error {
	r.mu.Lock()
	r.frames = append(r.frames, data)
	r.mu.Unlock()
	return nil
}

// TestProberSplitsSuperFrames hands the prober a super-frame, as a packet
// link with offloads on would: the session and the recorder see the
// segments, not the super-frame; with the test hook, the super-frame whole.
func TestProberSplitsSuperFrames(t *testing.T) {
	for _, keep := range []bool{false, true} {
		rec := &frameRecorder{}
		l := NewMemoryLink(MAC{2, 0, 0, 0, 0, 1}, 1500, func([]byte) {})
		p := NewProber(ProberConfig{Link: l, Recorder: rec, Path: Path{
			Source: netip.MustParseAddr("192.0.2.1"), LocalMAC: MAC{2, 0, 0, 0, 0, 1},
			NextHop: netip.MustParseAddr("192.0.2.2"), NextHopMAC: MAC{2, 0, 0, 0, 0, 2}, MTU: 1500,
		}})
		defer p.Close()
		p.keepSuperFrames.Store(keep)
		s, err := p.Open(SessionConfig{Remote: netip.MustParseAddrPort("192.0.2.2:80"), LocalPort: 61000})
		if err != nil {
			t.Fatal(err)
		}
		at := time.Unix(1700000000, 0)
		l.enqueue(Capture{Data: superFrame(t, false, ACK|PSH, 3000, nil), Time: at, ChecksumPartial: true, GSOSize: 1448, GSOType: GSOTCPv4})
		want := []int{1448, 1448, 104}
		if keep {
			want = []int{3000}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for i, n := range want {
			r, err := s.Recv(ctx)
			if err != nil {
				t.Fatalf("keep %v: segment %d: %v", keep, i, err)
			}
			if len(r.Frame.TCP.Payload) != n || !r.Time.Equal(at) || r.Frame.Checksum != ChecksumNotFinal {
				t.Errorf("keep %v: segment %d: %v at %v, checksum %v; want %d bytes at %v, checksum not final",
					keep, i, &r.Frame, r.Time, r.Frame.Checksum, n, at)
			}
		}
		rec.mu.Lock()
		if len(rec.frames) != len(want) {
			t.Errorf("keep %v: recorder got %d frames, want %d", keep, len(rec.frames), len(want))
		}
		rec.mu.Unlock()
		if st := p.Stats(); !keep && st.SuperFrames != 1 {
			t.Errorf("SuperFrames: got %d, want 1", st.SuperFrames)
		}
	}
}

// TestProberAnswersEndedSessions: what the target sends on the 4-tuple of
// a session that has ended (a late SYN-ACK, a retransmitted FIN) is
// answered as a closed port answers (RFC 9293 3.10.7.1), so that the
// target lets go of the connection; a RST is not answered, and a 4-tuple
// synprobe never used is left alone.
func TestProberAnswersEndedSessions(t *testing.T) {
	p, l, w := testProber(t)
	target := netip.MustParseAddrPort("192.0.2.2:80")
	s, err := p.Open(SessionConfig{Remote: target})
	if err != nil {
		t.Fatal(err)
	}
	local := s.Local()
	s.Close()
	l.Inject(reply(t, target, local, TCP{Seq: 500, Ack: 1001, Flags: SYN | ACK}))
	l.Inject(reply(t, target, local, TCP{Seq: 700, Flags: FIN}))
	l.Inject(reply(t, target, local, TCP{Seq: 900, Flags: RST}))
	l.Inject(reply(t, target, netip.AddrPortFrom(local.Addr(), local.Port()+1), TCP{Seq: 1, Ack: 2, Flags: SYN | ACK}))
	want := []TCP{
		{SrcPort: local.Port(), DstPort: 80, Seq: 1001, Flags: RST},      // <SEQ=SEG.ACK><CTL=RST>
		{SrcPort: local.Port(), DstPort: 80, Ack: 701, Flags: RST | ACK}, // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		w.mu.Lock()
		n := len(w.sent)
		w.mu.Unlock()
		if n >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // nothing more may come
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.sent) != len(want) {
		t.Fatalf("sent %d frames, want %d", len(w.sent), len(want))
	}
	for i, b := range w.sent {
		var f Frame
		if err := f.Decode(b); err != nil {
			t.Fatal(err)
		}
		got := f.TCP
		if got.SrcPort != want[i].SrcPort || got.DstPort != want[i].DstPort || got.Seq != want[i].Seq || got.Ack != want[i].Ack || got.Flags != want[i].Flags {
			t.Errorf("answer %d: got %d>%d seq %d ack %d %s, want %d>%d seq %d ack %d %s", i,
				got.SrcPort, got.DstPort, got.Seq, got.Ack, got.Flags, want[i].SrcPort, want[i].DstPort, want[i].Seq, want[i].Ack, want[i].Flags)
		}
		if f.IP.Src != local.Addr() || f.IP.Dst != target.Addr() {
			t.Errorf("answer %d: %v > %v, want %v > %v", i, f.IP.Src, f.IP.Dst, local.Addr(), target.Addr())
		}
	}
	if st := p.Stats(); st.ClosedAnswers != 2 {
		t.Errorf("ClosedAnswers = %d, want 2", st.ClosedAnswers)
	}
}

// TestProberWatchICMP: an ICMP error quoting a source port no session has
// (a box rewrote it) goes to the watchers, not to a session.
func TestProberWatchICMP(t *testing.T) {
	p, l, _ := testProber(t)
	target := netip.MustParseAddrPort("192.0.2.2:80")
	s, err := p.Open(SessionConfig{Remote: target})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *Reply, 1)
	stop := p.WatchICMP(func(r *Reply) { got <- r })
	defer stop()
	rewritten := Frame{IP: IP{Src: s.Local().Addr(), Dst: target.Addr()}, TCP: TCP{SrcPort: s.Local().Port() + 1, DstPort: 80, Seq: 7, Flags: SYN}}
	quoted, err := rewritten.EncodeIP()
	if err != nil {
		t.Fatal(err)
	}
	icmp := Frame{Ethernet: Ethernet{Src: MAC{2, 0, 0, 0, 0, 2}}, IP: IP{Src: netip.MustParseAddr("198.51.100.1"), Dst: s.Local().Addr(), Protocol: ProtocolICMP},
		ICMP: ICMP{Type: ICMPv4TimeExceeded, Body: quoted}}
	b, err := icmp.Encode()
	if err != nil {
		t.Fatal(err)
	}
	l.Inject(b)
	select {
	case r := <-got:
		if q, err := r.Frame.ICMP.Quote(); err != nil || q.Seq != 7 {
			t.Errorf("watcher got quote %+v, %v; want seq 7", q, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher got nothing within 5s")
	}
	if s.Pending() != 0 {
		t.Error("a quote of another port was queued on the session")
	}
	if st := p.Stats(); st.Unmatched != 0 {
		t.Errorf("unmatched: got %d, want 0 (the watcher took it)", st.Unmatched)
	}
}

package conformance

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"synprobe/probe"
)

// wireEnd keeps what a Conn sent over an in-memory link: these tests are
// about the connection state, not a stack.
type wireEnd struct {
	mu   sync.Mutex
	sent []probe.Frame
}

func (w *wireEnd) deliver(b []byte) {
	var f probe.Frame
	f.Decode(b)
	w.mu.Lock()
	w.sent = append(w.sent, f)
	w.mu.Unlock()
}

func (w *wireEnd) frames() []probe.Frame {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]probe.Frame(nil), w.sent...)
}

// testConn is a Conn on an in-memory link, with synprobe's ISN 1000 and
// the target's 5000 once synchronized.
func testConn(t *testing.T) (*Conn, *wireEnd) {
	t.Helper()
	w := &wireEnd{}
	l := probe.NewMemoryLink(probe.MAC{2, 0, 0, 0, 0, 1}, 1500, w.deliver)
	p := probe.NewProber(probe.ProberConfig{Link: l, Path: probe.Path{
		Source: netip.MustParseAddr("192.0.2.1"), LocalMAC: probe.MAC{2, 0, 0, 0, 0, 1},
		NextHop: netip.MustParseAddr("192.0.2.2"), NextHopMAC: probe.MAC{2, 0, 0, 0, 0, 2}, MTU: 1500,
	}})
	t.Cleanup(func() { p.Close() })
	s, err := p.Open(probe.SessionConfig{Remote: netip.MustParseAddrPort("192.0.2.2:80")})
	if err != nil {
		t.Fatal(err)
	}
	return NewConn(s), w
}

// open takes a connection through the handshake: SYN 1000, SYN-ACK 5000
// acknowledging it, and synprobe's ACK.
func open(t *testing.T, c *Conn) {
	t.Helper()
	send(t, c, probe.TCP{Seq: 1000, Flags: probe.SYN, Window: 1000})
	c.Observe(&probe.TCP{Seq: 5000, Ack: 1001, Flags: probe.SYN | probe.ACK, Window: 1000})
	send(t, c, probe.TCP{Seq: 1001, Ack: 5001, Flags: probe.ACK, Window: 1000})
}

func send(t *testing.T, c *Conn, tcp probe.TCP) {
	t.Helper()
	if _, err := c.Send(&probe.Frame{TCP: tcp}); err != nil {
		t.Fatal(err)
	}
}

func TestAttribute(t *testing.T) {
	tests := []struct {
		name             string
		seg              probe.TCP
		wantData, wanFIN bool
		want             Share
	}{
		{"a banner, acknowledging nothing new", probe.TCP{Seq: 5001, Ack: 1001, Flags: probe.PSH | probe.ACK, Payload: make([]byte, 41)}, false, false,
			Share{Data: 41, Only: true}},
		{"an answer with a piggybacked ACK of new data", probe.TCP{Seq: 5001, Ack: 1011, Flags: probe.PSH | probe.ACK, Payload: make([]byte, 300)}, false, false,
			Share{Data: 300}},
		{"data the line describes is the line's", probe.TCP{Seq: 5001, Ack: 1001, Flags: probe.PSH | probe.ACK, Payload: make([]byte, 10)}, true, false,
			Share{}},
		{"the application's close, alone", probe.TCP{Seq: 5001, Ack: 1001, Flags: probe.FIN | probe.ACK}, false, false,
			Share{FIN: true, Only: true}},
		{"a FIN the line expects", probe.TCP{Seq: 5001, Ack: 1001, Flags: probe.FIN | probe.ACK}, false, true,
			Share{}},
		{"a pure ACK is the stack's", probe.TCP{Seq: 5001, Ack: 1011, Flags: probe.ACK}, false, false,
			Share{}},
		{"a RST is the stack's", probe.TCP{Seq: 5001, Ack: 1001, Flags: probe.RST | probe.ACK, Payload: []byte("reset")}, false, false,
			Share{}},
		{"data with URG is not the application's alone", probe.TCP{Seq: 5001, Ack: 1001, Flags: probe.URG | probe.ACK, Payload: make([]byte, 5)}, false, false,
			Share{Data: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := testConn(t)
			open(t, c)
			send(t, c, probe.TCP{Seq: 1001, Ack: 5001, Flags: probe.PSH | probe.ACK, Payload: make([]byte, 10)})
			if got := c.Attribute(&tt.seg, tt.wantData, tt.wanFIN); got != tt.want {
				t.Errorf("Attribute: got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestAttributeRetransmission: the application's bytes count once, and
// shift the target's sequence space by bytes and FIN.
func TestAttributeRetransmission(t *testing.T) {
	c, _ := testConn(t)
	open(t, c)
	banner := probe.TCP{Seq: 5001, Ack: 1001, Flags: probe.PSH | probe.ACK, Payload: make([]byte, 41)}
	sh := c.Attribute(&banner, false, false)
	c.Observe(&banner)
	c.Absorb(sh)
	again := c.Attribute(&banner, false, false)
	if again.Data != 0 || !again.Only {
		t.Errorf("retransmitted banner: got %+v, want no new data, the application's alone", again)
	}
	fin := probe.TCP{Seq: 5042, Ack: 1001, Flags: probe.FIN | probe.ACK}
	sh = c.Attribute(&fin, false, false)
	c.Observe(&fin)
	c.Absorb(sh)
	if got := c.Shift(); got != 42 {
		t.Errorf("shift after 41 bytes and a FIN: got %d, want 42", got)
	}
	if refin := c.Attribute(&fin, false, false); refin.FIN {
		t.Errorf("a retransmitted FIN counted again: %+v", refin)
	}
}

// TestRelease: the RST that releases the target's connection goes at the
// target's RCV.NXT as last acknowledged, and again at SND.NXT when data
// may be in flight; nothing goes when nothing is left.
func TestRelease(t *testing.T) {
	tests := []struct {
		name     string
		exchange func(t *testing.T, c *Conn)
		wantSeqs []probe.Seq
	}{
		{"half-open (SYN-RECEIVED at the target)", func(t *testing.T, c *Conn) {
			send(t, c, probe.TCP{Seq: 1000, Flags: probe.SYN, Window: 1000})
			c.Observe(&probe.TCP{Seq: 5000, Ack: 1001, Flags: probe.SYN | probe.ACK})
		}, []probe.Seq{1001}},
		{"established, everything acknowledged", func(t *testing.T, c *Conn) {
			open(t, c)
			send(t, c, probe.TCP{Seq: 1001, Ack: 5001, Flags: probe.PSH | probe.ACK, Payload: make([]byte, 10)})
			c.Observe(&probe.TCP{Seq: 5001, Ack: 1011, Flags: probe.ACK})
		}, []probe.Seq{1011}},
		{"data the target did not take (PAWS, out of window)", func(t *testing.T, c *Conn) {
			open(t, c)
			send(t, c, probe.TCP{Seq: 1001, Ack: 5001, Flags: probe.PSH | probe.ACK, Payload: make([]byte, 10)})
			c.Observe(&probe.TCP{Seq: 5001, Ack: 1011, Flags: probe.ACK})
			send(t, c, probe.TCP{Seq: 1011, Ack: 5001, Flags: probe.PSH | probe.ACK, Payload: make([]byte, 10)})
			c.Observe(&probe.TCP{Seq: 5001, Ack: 1011, Flags: probe.ACK})
		}, []probe.Seq{1011, 1021}},
		{"the target sent a RST (one answering an unacceptable segment leaves its connection)", func(t *testing.T, c *Conn) {
			open(t, c)
			c.Observe(&probe.TCP{Seq: 1001, Flags: probe.RST})
		}, []probe.Seq{1001}},
		{"both closed and acknowledged", func(t *testing.T, c *Conn) {
			open(t, c)
			send(t, c, probe.TCP{Seq: 1001, Ack: 5001, Flags: probe.FIN | probe.ACK})
			c.Observe(&probe.TCP{Seq: 5001, Ack: 1002, Flags: probe.FIN | probe.ACK})
			send(t, c, probe.TCP{Seq: 1002, Ack: 5002, Flags: probe.ACK})
		}, nil},
		{"the target closed, synprobe acknowledged its FIN (FIN-WAIT-2 at the target): twice", func(t *testing.T, c *Conn) {
			open(t, c)
			c.Observe(&probe.TCP{Seq: 5001, Ack: 1001, Flags: probe.FIN | probe.ACK})
			send(t, c, probe.TCP{Seq: 1001, Ack: 5002, Flags: probe.ACK})
		}, []probe.Seq{1001, 1001}},
		{"the target closed, its FIN not acknowledged (FIN-WAIT-1 at the target)", func(t *testing.T, c *Conn) {
			open(t, c)
			c.Observe(&probe.TCP{Seq: 5001, Ack: 1001, Flags: probe.FIN | probe.ACK})
		}, []probe.Seq{1001}},
		{"no answer to the SYN", func(t *testing.T, c *Conn) {
			send(t, c, probe.TCP{Seq: 1000, Flags: probe.SYN, Window: 1000})
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, w := testConn(t)
			tt.exchange(t, c)
			before := len(w.frames())
			note := c.Release()
			var got []probe.Seq
			for _, f := range w.frames()[before:] {
				if f.TCP.Flags&probe.RST == 0 {
					t.Errorf("Release sent %s, not a RST", f.TCP.Flags)
				}
				got = append(got, f.TCP.Seq)
			}
			if len(got) != len(tt.wantSeqs) {
				t.Fatalf("RSTs at %v, want at %v", got, tt.wantSeqs)
			}
			for i := range got {
				if got[i] != tt.wantSeqs[i] {
					t.Errorf("RST %d at %d, want %d", i, got[i], tt.wantSeqs[i])
				}
			}
			if (note != "") != (len(got) > 0) {
				t.Errorf("note %q for %d RSTs", note, len(got))
			}
		})
	}
}

// TestStale: an answer to the opening SYN that may come from a connection
// an earlier run left on the 4-tuple: an ACK without SYN (a challenge ACK,
// whatever its ack), and at a listening port a RST acknowledging the SYN;
// a SYN-ACK never, nor a RST from a port that is not listening.
func TestStale(t *testing.T) {
	tests := []struct {
		reply     probe.TCP
		listening bool
		stale     bool
		resetSeq  probe.Seq // 0: nothing to reset
	}{
		{probe.TCP{Seq: 77, Ack: 123456, Flags: probe.ACK}, true, true, 123456},
		{probe.TCP{Seq: 77, Ack: 1001, Flags: probe.ACK}, true, true, 1001},
		{probe.TCP{Seq: 5000, Ack: 1001, Flags: probe.SYN | probe.ACK}, true, false, 0},
		{probe.TCP{Seq: 0, Ack: 1001, Flags: probe.RST | probe.ACK}, true, true, 0},
		{probe.TCP{Seq: 0, Ack: 1001, Flags: probe.RST | probe.ACK}, false, false, 0},
	}
	for _, tt := range tests {
		c, w := testConn(t)
		send(t, c, probe.TCP{Seq: 1000, Flags: probe.SYN, Window: 1000})
		if got := c.Stale(&tt.reply, tt.listening); got != tt.stale {
			t.Errorf("Stale(%s ack %d, listening %v): got %v, want %v", tt.reply.Flags, tt.reply.Ack, tt.listening, got, tt.stale)
		}
		if !tt.stale {
			continue
		}
		c.ResetStale(&tt.reply)
		want := 1
		if tt.resetSeq != 0 {
			want = 2
		}
		deadline := time.Now().Add(time.Second)
		for len(w.frames()) < want && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		f := w.frames()
		if len(f) != want {
			t.Errorf("%s answer: %d frames sent, want %d", tt.reply.Flags, len(f), want)
		} else if want == 2 && (f[1].TCP.Flags != probe.RST || f[1].TCP.Seq != tt.resetSeq) {
			t.Errorf("the stale connection's reset: got %s seq %d, want R at its challenge ACK's ack %d (RFC 5961 3.2)", f[1].TCP.Flags, f[1].TCP.Seq, tt.resetSeq)
		}
	}
}

// TestAwaitSYNACK: an unanswered SYN goes again at each retransmission
// time, as a TCP sends it, until the wait gives up; the connection says so.
func TestAwaitSYNACK(t *testing.T) {
	defer func(r []time.Duration, g time.Duration) { synRetransmits, synGiveUp = r, g }(synRetransmits, synGiveUp)
	synRetransmits, synGiveUp = []time.Duration{20 * time.Millisecond, 60 * time.Millisecond}, 100*time.Millisecond
	c, w := testConn(t)
	syn := probe.Frame{TCP: probe.TCP{Seq: 1000, Flags: probe.SYN, Window: 1000}}
	sent, err := c.Send(&syn)
	if err != nil {
		t.Fatal(err)
	}
	r, again, err := c.AwaitSYNACK(context.Background(), &syn, nil, sent.Time, time.Now())
	if r != nil || !errors.Is(err, ErrSilence) || again != 2 || !c.SYNUnanswered {
		t.Errorf("got %v, %d times again, %v, unanswered %v; want silence after 2 more SYNs", r, again, err, c.SYNUnanswered)
	}
	syns := 0
	for _, f := range w.frames() {
		if f.TCP.Flags == probe.SYN && f.TCP.Seq == 1000 {
			syns++
		}
	}
	if syns != 3 {
		t.Errorf("%d SYNs on the wire, want 3", syns)
	}
}

// TestRSTsTheApplicationMade: a RST that acknowledges synprobe's FIN, or
// one that comes long after anything synprobe sent, is the application's
// abort; a RST answering a segment at once is not.
func TestRSTsTheApplicationMade(t *testing.T) {
	c, _ := testConn(t)
	open(t, c)
	send(t, c, probe.TCP{Seq: 1001, Ack: 5001, Flags: probe.FIN | probe.ACK})
	last := c.LastSent.Time
	reply := func(after time.Duration, tcp probe.TCP) *probe.Reply {
		return &probe.Reply{Frame: probe.Frame{Layers: probe.LayerTCP, TCP: tcp}, Time: last.Add(after)}
	}
	if !c.AbortAfterFIN(&probe.TCP{Seq: 5001, Ack: 1002, Flags: probe.RST | probe.ACK}) {
		t.Error("a RST acknowledging synprobe's FIN: want the application's abort")
	}
	if c.AbortAfterFIN(&probe.TCP{Seq: 1001, Flags: probe.RST}) {
		t.Error("a RST without ACK: not after the FIN was taken")
	}
	if _, ok := c.Unprovoked(reply(time.Millisecond, probe.TCP{Seq: 5001, Flags: probe.RST})); ok {
		t.Error("a RST 1 ms after synprobe's segment answers it")
	}
	if after, ok := c.Unprovoked(reply(400*time.Millisecond, probe.TCP{Seq: 5001, Flags: probe.RST})); !ok || after != 400*time.Millisecond {
		t.Errorf("a RST 400 ms later: got %v, %v; want unprovoked", after, ok)
	}
	if _, ok := c.Unprovoked(reply(400*time.Millisecond, probe.TCP{Seq: 5001, Ack: 1002, Flags: probe.ACK})); ok {
		t.Error("an ACK is never an abort")
	}
}

// TestNoACKAfterReset: once synprobe reset the connection (a RST at the
// target's RCV.NXT), bytes the application sent across it are not
// acknowledged.
func TestNoACKAfterReset(t *testing.T) {
	c, w := testConn(t)
	open(t, c)
	send(t, c, probe.TCP{Seq: 1001, Ack: 5001, Flags: probe.RST | probe.ACK})
	banner := probe.TCP{Seq: 5001, Ack: 1001, Flags: probe.PSH | probe.ACK, Payload: make([]byte, 22)}
	sh := c.Attribute(&banner, false, false)
	c.Observe(&banner)
	c.Absorb(sh)
	before := len(w.frames())
	if err := c.ACKApplication(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if n := len(w.frames()) - before; n != 0 {
		t.Errorf("%d frames sent after synprobe's RST, want none", n)
	}
}

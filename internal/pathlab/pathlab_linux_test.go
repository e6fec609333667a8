package pathlab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"synprobe/probe"
)

// startBed starts a bed for t and closes it when t ends; without root or
// nft, t is skipped with the reason.
func startBed(t *testing.T, cfg Config) *Bed {
	t.Helper()
	if ok, why := Available(); !ok {
		t.Skip(why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// env is what a box check needs: the bed, a prober in the client
// namespace for one address family, and a capture of what reaches the
// server.
type env struct {
	b      *Bed
	p      *probe.Prober
	srv    *sniffer
	target netip.AddrPort
	v6     bool
}

func newEnv(t *testing.T, b *Bed, v6 bool) *env {
	t.Helper()
	target := b.Target
	if v6 {
		target = b.Target6
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := probe.Dial(ctx, target.Addr(), probe.DialConfig{NetNS: b.NSFD(Client)})
	if err != nil {
		t.Fatalf("probe.Dial %v from the client: %v", target.Addr(), err)
	}
	t.Cleanup(func() { p.Close() })
	return &env{b: b, p: p, srv: sniff(t, b, Server, b.ServerIf), target: target, v6: v6}
}

// routerAddr is the address a box's router uses towards the server.
func (e *env) routerAddr(at Position) netip.Addr {
	switch {
	case at == First && e.v6:
		return R1Next6
	case at == First:
		return R1Next4
	case e.v6:
		return R2Server6
	}
	return R2Server4
}

// boxTTL is the IP TTL of a segment the box's router makes itself, as the
// client receives it.
func boxTTL(at Position) uint8 {
	if at == First {
		return 64
	}
	return 63
}

var stdOptions = []probe.Option{
	probe.MSSOption(1460), probe.SACKPermittedOption(), probe.TimestampsOption(1, 0),
	probe.NOPOption(), probe.WScaleOption(7),
}

// seg is a segment to send and what came of it.
type seg struct {
	port    uint16 // 0: the target's
	flags   probe.Flags
	seq     probe.Seq // 0: random
	ack     probe.Seq
	tos     uint8
	ttl     uint8
	options []probe.Option
	payload []byte
	ov      []probe.Override
}

type result struct {
	sent     *probe.Sent
	atServer *probe.Frame // nil: it never reached the server's link
	reply    *probe.Reply // the first answer at the client, nil: none
}

const (
	absent  = 300 * time.Millisecond // how long to wait for what should not come
	present = 3 * time.Second        // how long to wait for what should come
)

// open opens a session to port (0: the target's).
func (e *env) open(t *testing.T, port uint16) *probe.Session {
	t.Helper()
	remote := e.target
	if port != 0 {
		remote = netip.AddrPortFrom(e.target.Addr(), port)
	}
	s, err := e.p.Open(probe.SessionConfig{Remote: remote})
	if err != nil {
		t.Fatalf("open session: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// send sends sg on s, then waits for it at the server (wantServer says
// whether it should get there, which only sets how long to wait) and for
// an answer at the client (wantReply likewise).
func (e *env) send(t *testing.T, s *probe.Session, sg seg, wantServer, wantReply bool) result {
	t.Helper()
	if sg.seq == 0 {
		sg.seq = probe.Seq(rand.Uint32() | 1)
	}
	f := &probe.Frame{}
	f.IP.TOS, f.IP.TTL, f.IP.Flags = sg.tos, sg.ttl, probe.IPFlagDF
	f.TCP.Seq, f.TCP.Ack, f.TCP.Flags, f.TCP.Window = sg.seq, sg.ack, sg.flags, 64240
	f.TCP.Options, f.TCP.Payload = sg.options, sg.payload
	sent, err := s.Send(f, sg.ov...)
	if err != nil {
		t.Fatalf("send %v: %v", f, err)
	}
	r := result{sent: sent}
	wait := absent
	if wantServer {
		wait = present
	}
	dport := s.Remote().Port()
	r.atServer, _ = e.srv.wait(wait, func(g *probe.Frame) bool {
		return g.Has(probe.LayerTCP) && g.TCP.Seq == sg.seq && g.TCP.DstPort == dport
	})
	wait = absent
	if wantReply {
		wait = present
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for {
		rep, err := s.Recv(ctx)
		if err != nil {
			break
		}
		if !rep.FromLocalHost {
			r.reply = rep
			break
		}
	}
	return r
}

// syn sends a SYN with the standard options (or opts) and resets what it
// opened.
func (e *env) syn(t *testing.T, port uint16, sg seg, wantServer, wantReply bool) result {
	t.Helper()
	s := e.open(t, port)
	if sg.flags == 0 {
		sg.flags = probe.SYN
	}
	if sg.options == nil {
		sg.options = stdOptions
	}
	r := e.send(t, s, sg, wantServer, wantReply)
	if r.reply != nil && r.reply.Frame.Has(probe.LayerTCP) && r.reply.Frame.TCP.Flags.Has(probe.SYN|probe.ACK) {
		e.send(t, s, seg{flags: probe.RST, seq: r.sent.Frame.TCP.Seq + 1}, false, false)
	}
	return r
}

// handshake completes a handshake with the target on a new session and
// returns the session, the next sequence number to send and the SYN-ACK.
func (e *env) handshake(t *testing.T) (*probe.Session, probe.Seq, *probe.Frame) {
	t.Helper()
	s := e.open(t, 0)
	r := e.send(t, s, seg{flags: probe.SYN, options: stdOptions}, true, true)
	if !isSYNACK(r.reply) {
		t.Fatalf("handshake: the SYN got %s, want a SYN-ACK", replyString(r.reply))
	}
	synack := r.reply.Frame
	isn := r.sent.Frame.TCP.Seq
	tsval, _, _ := synack.TCP.Timestamps()
	e.send(t, s, seg{flags: probe.ACK, seq: isn + 1, ack: synack.TCP.Seq + 1,
		options: []probe.Option{probe.NOPOption(), probe.NOPOption(), probe.TimestampsOption(2, tsval)}}, true, false)
	t.Cleanup(func() {
		f := &probe.Frame{}
		f.TCP.Seq, f.TCP.Flags = isn+1, probe.RST
		s.Send(f)
	})
	return s, isn + 1, &synack
}

func isSYNACK(r *probe.Reply) bool {
	return r != nil && r.Frame.Has(probe.LayerTCP) && r.Frame.TCP.Flags&(probe.SYN|probe.ACK|probe.RST) == probe.SYN|probe.ACK
}

func isRST(r *probe.Reply) bool {
	return r != nil && r.Frame.Has(probe.LayerTCP) && r.Frame.TCP.Flags.Has(probe.RST)
}

func replyString(r *probe.Reply) string {
	if r == nil {
		return "no answer"
	}
	return r.Frame.String()
}

func frameString(f *probe.Frame) string {
	if f == nil {
		return "nothing"
	}
	return f.String()
}

// nopped returns the option bytes opts with every option of a kind in
// kinds replaced by NOPs, as TCPOPTSTRIP and nft's reset do.
func nopped(opts []byte, kinds ...probe.OptionKind) []byte {
	out := append([]byte(nil), opts...)
	for i := 0; i < len(out); {
		k := probe.OptionKind(out[i])
		if k == probe.OptionEOL {
			break
		}
		if k == probe.OptionNOP || i+1 >= len(out) {
			i++
			continue
		}
		n := int(out[i+1])
		for _, want := range kinds {
			if k == want {
				for j := i; j < i+n && j < len(out); j++ {
					out[j] = byte(probe.OptionNOP)
				}
			}
		}
		i += max(n, 2)
	}
	return out
}

// checkOptionsAtServer checks the option bytes the server got.
func checkOptionsAtServer(t *testing.T, r result, want []byte) {
	t.Helper()
	if r.atServer == nil {
		t.Fatalf("the server never got %v", r.sent.Frame.String())
	}
	if got := r.atServer.TCP.OptionBytes; !bytes.Equal(got, want) {
		t.Errorf("options at the server: got %s, want %s (sent %s)", optString(got), optString(want), optString(r.sent.Frame.TCP.OptionBytes))
	}
}

// kernelGet fetches GET /n over a kernel connection from the client.
func (e *env) kernelGet(t *testing.T, port uint16, n int) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := e.b.Dial(ctx, "tcp", netip.AddrPortFrom(e.target.Addr(), port).String())
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "GET /%d HTTP/1.0\r\n\r\n", n); err != nil {
		return err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	body, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	_, data, ok := bytes.Cut(body, []byte("\r\n\r\n"))
	if !ok || len(data) != n {
		return fmt.Errorf("GET /%d: got %d bytes of body (%d in all), want %d", n, len(data), len(body), n)
	}
	return nil
}

// boxChecks say, for each box, what it must do to real traffic.
var boxChecks = map[Box]func(t *testing.T, e *env, at Position){
	BoxNone: func(t *testing.T, e *env, at Position) {
		r := e.syn(t, 0, seg{}, true, true)
		checkOptionsAtServer(t, r, r.sent.Frame.TCP.OptionBytes)
		if !isSYNACK(r.reply) {
			t.Errorf("SYN: got %s, want a SYN-ACK", replyString(r.reply))
		}
		if err := e.kernelGet(t, e.target.Port(), 100000); err != nil {
			t.Errorf("kernel connection: %v", err)
		}
	},
	BoxMSSClamp: func(t *testing.T, e *env, at Position) {
		r := e.syn(t, 0, seg{}, true, true)
		if mss, _ := r.atServer.TCP.MSS(); r.atServer == nil || mss != 1200 {
			t.Errorf("MSS at the server: got %s, want 1200", frameString(r.atServer))
		}
		if !isSYNACK(r.reply) {
			t.Fatalf("SYN: got %s, want a SYN-ACK", replyString(r.reply))
		}
		if mss, _ := r.reply.Frame.TCP.MSS(); mss != 1200 {
			t.Errorf("MSS of the SYN-ACK: got %d, want 1200 (the SYN-ACK is clamped too)", mss)
		}
		r = e.syn(t, 0, seg{options: []probe.Option{probe.MSSOption(536)}}, true, true)
		if mss, _ := r.atServer.TCP.MSS(); r.atServer == nil || mss != 536 {
			t.Errorf("MSS 536 at the server: got %s, want 536 (a clamp only lowers)", frameString(r.atServer))
		}
	},
	BoxStripTS: func(t *testing.T, e *env, at Position) {
		r := e.syn(t, 0, seg{}, true, true)
		checkOptionsAtServer(t, r, nopped(r.sent.Frame.TCP.OptionBytes, probe.OptionTimestamps))
		if _, _, ok := r.reply.Frame.TCP.Timestamps(); r.reply == nil || ok {
			t.Errorf("SYN-ACK: got %s, want one without timestamps", replyString(r.reply))
		}
		r = e.syn(t, 0, seg{flags: probe.ACK, options: []probe.Option{probe.NOPOption(), probe.NOPOption(), probe.TimestampsOption(5, 6)}}, true, true)
		checkOptionsAtServer(t, r, nopped(r.sent.Frame.TCP.OptionBytes, probe.OptionTimestamps))
	},
	BoxStripSACK: func(t *testing.T, e *env, at Position) {
		r := e.syn(t, 0, seg{}, true, true)
		checkOptionsAtServer(t, r, nopped(r.sent.Frame.TCP.OptionBytes, probe.OptionSACKPermitted))
		if r.reply == nil || r.reply.Frame.TCP.SACKPermitted() {
			t.Errorf("SYN-ACK: got %s, want one without sackOK", replyString(r.reply))
		}
		r = e.syn(t, 0, seg{flags: probe.ACK, options: []probe.Option{probe.NOPOption(), probe.NOPOption(),
			probe.SACKOption(probe.SACKBlock{Left: 1000, Right: 2000})}}, true, true)
		checkOptionsAtServer(t, r, nopped(r.sent.Frame.TCP.OptionBytes, probe.OptionSACK))
	},
	BoxStripWS: func(t *testing.T, e *env, at Position) {
		r := e.syn(t, 0, seg{}, true, true)
		checkOptionsAtServer(t, r, nopped(r.sent.Frame.TCP.OptionBytes, probe.OptionWScale))
		if _, ok := r.reply.Frame.TCP.WScale(); r.reply == nil || ok {
			t.Errorf("SYN-ACK: got %s, want one without wscale", replyString(r.reply))
		}
	},
	BoxStripTSData: func(t *testing.T, e *env, at Position) {
		r := e.syn(t, 0, seg{}, true, true)
		checkOptionsAtServer(t, r, r.sent.Frame.TCP.OptionBytes)
		if _, _, ok := r.reply.Frame.TCP.Timestamps(); r.reply == nil || !ok {
			t.Errorf("SYN-ACK: got %s, want one with timestamps", replyString(r.reply))
		}
		r = e.syn(t, 0, seg{flags: probe.ACK, options: []probe.Option{probe.NOPOption(), probe.NOPOption(), probe.TimestampsOption(5, 6)}}, true, true)
		checkOptionsAtServer(t, r, nopped(r.sent.Frame.TCP.OptionBytes, probe.OptionTimestamps))
	},
	BoxNAT: func(t *testing.T, e *env, at Position) {
		r := e.syn(t, 0, seg{}, true, true)
		if r.atServer == nil || r.atServer.IP.Src != e.routerAddr(at) {
			t.Errorf("SYN at the server: got %s, want it from %v", frameString(r.atServer), e.routerAddr(at))
		}
		if !isSYNACK(r.reply) || r.reply.Frame.TCP.Ack != r.sent.Frame.TCP.Seq+1 {
			t.Errorf("SYN-ACK at the client: got %s, want one acking %d, translated back", replyString(r.reply), r.sent.Frame.TCP.Seq+1)
		}
		if err := e.kernelGet(t, e.target.Port(), 100000); err != nil {
			t.Errorf("kernel connection: %v", err)
		}
	},
	BoxECNClear: func(t *testing.T, e *env, at Position) {
		r := e.syn(t, 0, seg{flags: probe.SYN | probe.ECE | probe.CWR, tos: 0x28 | probe.ECNECT0}, true, true)
		if r.atServer == nil || r.atServer.TCP.Flags != probe.SYN || r.atServer.IP.TOS != 0x28 {
			t.Errorf("SYN at the server: got %s tos %#x, want flags S, tos 0x28 (ECE, CWR and ECT(0) cleared, DSCP kept)", frameString(r.atServer), tosOf(r.atServer))
		}
		r = e.syn(t, 0, seg{flags: probe.ACK, tos: probe.ECNECT0}, true, true)
		if r.atServer == nil || r.atServer.IP.ECN() != probe.ECNNotECT {
			t.Errorf("ACK at the server: got tos %#x, want not-ECT", tosOf(r.atServer))
		}
	},
	BoxDSCPRewrite: func(t *testing.T, e *env, at Position) {
		r := e.syn(t, 0, seg{tos: 0x28 | probe.ECNECT0}, true, true)
		if r.atServer == nil || r.atServer.IP.TOS != probe.ECNECT0 {
			t.Errorf("SYN at the server: got tos %#x, want 0x02 (DSCP 0, ECN kept)", tosOf(r.atServer))
		}
	},
	BoxProxy: func(t *testing.T, e *env, at Position) {
		r := e.syn(t, 0, seg{}, false, true)
		if r.atServer != nil {
			t.Errorf("the client's SYN reached the server: %s", r.atServer)
		}
		if !isSYNACK(r.reply) || r.reply.Frame.IP.TTL != boxTTL(at) {
			t.Errorf("SYN: got %s ttl %d, want a SYN-ACK from the box, ttl %d", replyString(r.reply), ttlOf(r.reply), boxTTL(at))
		}
		r = e.syn(t, ClosedPort, seg{}, false, true)
		if !isSYNACK(r.reply) {
			t.Errorf("SYN to the closed port: got %s, want a SYN-ACK from the box", replyString(r.reply))
		}
		r = e.syn(t, AltPort, seg{}, true, true)
		if !isRST(r.reply) || r.reply.Frame.IP.TTL != 62 {
			t.Errorf("SYN to the alt port: got %s ttl %d, want the server's RST, ttl 62", replyString(r.reply), ttlOf(r.reply))
		}
		if err := e.kernelGet(t, e.target.Port(), 100000); err != nil {
			t.Errorf("kernel connection through the proxy: %v", err)
		}
		if f, ok := e.srv.wait(present, func(f *probe.Frame) bool {
			return f.Has(probe.LayerTCP) && f.TCP.Flags == probe.SYN && f.IP.Src == e.routerAddr(at) && f.TCP.DstPort == e.target.Port()
		}); !ok {
			t.Errorf("the server never got the proxy's own SYN from %v", e.routerAddr(at))
		} else if _, _, ts := f.TCP.Timestamps(); !ts {
			t.Errorf("the proxy's SYN: %s, want the router kernel's own options (with timestamps)", f)
		}
	},
	BoxSYNProxy: func(t *testing.T, e *env, at Position) {
		r := e.syn(t, 0, seg{}, false, true)
		if r.atServer != nil {
			t.Errorf("the client's SYN reached the server: %s", r.atServer)
		}
		if !isSYNACK(r.reply) || r.reply.Frame.TCP.Window != 0 || r.reply.Frame.IP.TTL != boxTTL(at) {
			t.Errorf("SYN: got %s ttl %d, want a SYN-ACK with window 0 from the box, ttl %d", replyString(r.reply), ttlOf(r.reply), boxTTL(at))
		}
		r = e.syn(t, ClosedPort, seg{}, false, true)
		if !isSYNACK(r.reply) {
			t.Errorf("SYN to the closed port: got %s, want a SYN-ACK from the box", replyString(r.reply))
		}
		r = e.syn(t, AltPort, seg{}, true, true)
		if !isRST(r.reply) || r.reply.Frame.IP.TTL != 62 {
			t.Errorf("SYN to the alt port: got %s ttl %d, want the server's RST, ttl 62", replyString(r.reply), ttlOf(r.reply))
		}
		if err := e.kernelGet(t, e.target.Port(), 100000); err != nil {
			t.Errorf("kernel connection through the SYN proxy: %v", err)
		}
	},
	BoxDropSYNData: func(t *testing.T, e *env, at Position) {
		r := e.syn(t, 0, seg{payload: bytes.Repeat([]byte{'d'}, 16)}, false, false)
		if r.atServer != nil || r.reply != nil {
			t.Errorf("SYN with data: at the server %s, answer %s; want it dropped", frameString(r.atServer), replyString(r.reply))
		}
		r = e.syn(t, 0, seg{}, true, true)
		if r.atServer == nil || !isSYNACK(r.reply) {
			t.Errorf("SYN without data: at the server %s, answer %s; want it passed", frameString(r.atServer), replyString(r.reply))
		}
		r = e.syn(t, 0, seg{flags: probe.ACK, payload: []byte("data")}, true, true)
		if r.atServer == nil {
			t.Errorf("ACK with data: never reached the server; want it passed")
		}
	},
	BoxDropUnknownOptions: func(t *testing.T, e *env, at Position) {
		for _, k := range []probe.OptionKind{probe.OptionExperimental1, probe.OptionExperimental} {
			opts := append(append([]probe.Option(nil), stdOptions...), probe.Option{Kind: k, Data: []byte{0x53, 0x50}})
			r := e.syn(t, 0, seg{options: opts}, false, false)
			if r.atServer != nil || r.reply != nil {
				t.Errorf("SYN with option %d: at the server %s, answer %s; want it dropped", k, frameString(r.atServer), replyString(r.reply))
			}
		}
		opts := append(append([]probe.Option(nil), stdOptions...), probe.FastOpenOption(nil))
		r := e.syn(t, 0, seg{options: opts}, true, true)
		if r.atServer == nil || !isSYNACK(r.reply) {
			t.Errorf("SYN with a TFO cookie request: at the server %s, answer %s; want it passed", frameString(r.atServer), replyString(r.reply))
		}
	},
	BoxDropBadSum: func(t *testing.T, e *env, at Position) {
		r := e.syn(t, 0, seg{ov: []probe.Override{{Field: probe.FieldTCPChecksumAdd, Value: 1}}}, false, false)
		if r.atServer != nil || r.reply != nil {
			t.Errorf("SYN with a bad checksum: at the server %s, answer %s; want it dropped", frameString(r.atServer), replyString(r.reply))
		}
		r = e.syn(t, 0, seg{}, true, true)
		if r.atServer == nil || !isSYNACK(r.reply) {
			t.Errorf("SYN: at the server %s, answer %s; want it passed", frameString(r.atServer), replyString(r.reply))
		}
		r = e.syn(t, 0, seg{flags: probe.ACK, ack: 12345}, true, true)
		if r.atServer == nil || !isRST(r.reply) {
			t.Errorf("ACK on no connection: at the server %s, answer %s; want it passed (only bad checksums dropped)", frameString(r.atServer), replyString(r.reply))
		}
	},
	BoxDropOutOfState: func(t *testing.T, e *env, at Position) {
		r := e.syn(t, 0, seg{flags: probe.ACK, ack: 12345}, false, false)
		if r.atServer != nil || r.reply != nil {
			t.Errorf("ACK on no connection: at the server %s, answer %s; want it dropped", frameString(r.atServer), replyString(r.reply))
		}
		s, next, synack := e.handshake(t)
		ack := synack.TCP.Seq + 1
		r = e.send(t, s, seg{flags: probe.ACK | probe.PSH, seq: next + 1<<20, ack: ack, payload: []byte("outside!")}, false, false)
		if r.atServer != nil {
			t.Errorf("out-of-window data reached the server: %s", r.atServer)
		}
		// Conntrack ignores an ACK outside the bounds (it neither drops
		// it nor updates the connection): the box passes it.
		r = e.send(t, s, seg{flags: probe.ACK, seq: next, ack: ack + 100000}, true, true)
		if r.atServer == nil {
			t.Errorf("an ACK above SND.NXT never reached the server; this kernel's conntrack used to let it through (update doc.go)")
		}
		r = e.send(t, s, seg{flags: probe.ACK | probe.PSH, seq: next, ack: ack, payload: []byte("inside!!")}, true, true)
		if r.atServer == nil {
			t.Errorf("in-window data never reached the server")
		}
	},
}

func tosOf(f *probe.Frame) uint8 {
	if f == nil {
		return 0
	}
	return f.IP.TOS
}

func ttlOf(r *probe.Reply) uint8 {
	if r == nil {
		return 0
	}
	return r.Frame.IP.TTL
}

// TestBoxes runs every box on both routers against real traffic, IPv4,
// and a few on IPv6, on one bed.
func TestBoxes(t *testing.T) {
	b := startBed(t, Config{IPv6: true})
	e4, e6 := newEnv(t, b, false), newEnv(t, b, true)
	for _, box := range append([]Box{BoxNone}, Boxes()...) {
		check, ok := boxChecks[box]
		if !ok {
			t.Errorf("box %s has no check", box)
			continue
		}
		for _, at := range []Position{First, Last} {
			for _, e := range []*env{e4, e6} {
				if e.v6 && !v6Boxes[box] {
					continue
				}
				fam := "ipv4"
				if e.v6 {
					fam = "ipv6"
				}
				t.Run(fmt.Sprintf("%s/%v/%s", box, at, fam), func(t *testing.T) {
					if err := b.SetBox(box, at); err != nil {
						t.Fatalf("SetBox: %v", err)
					}
					if got, gotAt := b.Box(); got != box || gotAt != at {
						t.Errorf("Box() = %s, %v; want %s, %v", got, gotAt, box, at)
					}
					check(t, e, at)
					if t.Failed() {
						rs, _ := b.ListRuleset(map[Position]Node{First: Router1, Last: Router2}[at])
						t.Logf("ruleset on the box's router:\n%s", rs)
					}
				})
			}
		}
	}
	if err := b.SetBox(BoxNone, First); err != nil {
		t.Fatalf("SetBox none: %v", err)
	}
	for _, n := range []Node{Router1, Router2} {
		rs, err := b.ListRuleset(n)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(rs, TableName) {
			t.Errorf("after SetBox(none), %s still has:\n%s", n, rs)
		}
	}
}

// v6Boxes are the boxes checked on IPv6 too.
var v6Boxes = map[Box]bool{
	BoxNone: true, BoxMSSClamp: true, BoxStripTS: true, BoxNAT: true, BoxECNClear: true,
	BoxProxy: true, BoxDropBadSum: true, BoxDropOutOfState: true,
}

// TestSYNProxyIPv6 pins what this kernel does with the synproxy box on
// IPv6 (doc.go): it drops the SYN and answers nothing (the synproxy
// statement never counts a SYN), on either router. If it ever answers,
// the box works on IPv6 and doc.go must say so.
func TestSYNProxyIPv6(t *testing.T) {
	b := startBed(t, Config{IPv6: true})
	e := newEnv(t, b, true)
	for _, at := range []Position{First, Last} {
		if err := b.SetBox(BoxSYNProxy, at); err != nil {
			t.Fatal(err)
		}
		r := e.syn(t, 0, seg{}, false, false)
		if r.atServer != nil || r.reply != nil {
			t.Errorf("synproxy at %v, IPv6 SYN: at the server %s, answer %s; want the measured limit (dropped, no answer): update doc.go and v6Boxes",
				at, frameString(r.atServer), replyString(r.reply))
		}
		r = e.syn(t, AltPort, seg{}, true, true)
		if !isRST(r.reply) {
			t.Errorf("synproxy at %v, IPv6 SYN to the alt port: got %s, want the server's RST", at, replyString(r.reply))
		}
	}
}

// TestHops walks the path with TTL-limited SYNs: each router answers from
// the address in Hops, and a box on r1 changes only the quote of r2.
func TestHops(t *testing.T) {
	b := startBed(t, Config{IPv6: true})
	for _, v6 := range []bool{false, true} {
		e := newEnv(t, b, v6)
		hops := b.Hops
		if v6 {
			hops = b.Hops6
		}
		for _, box := range []Box{BoxNone, BoxMSSClamp} {
			if err := b.SetBox(box, First); err != nil {
				t.Fatal(err)
			}
			s := e.open(t, 0)
			isn := probe.Seq(rand.Uint32())
			for ttl := uint8(1); ttl <= 3; ttl++ {
				r := e.send(t, s, seg{flags: probe.SYN, seq: isn, ttl: ttl, options: stdOptions}, ttl == 3, true)
				if r.reply == nil {
					t.Errorf("%s v6=%v ttl %d: no answer", box, v6, ttl)
					continue
				}
				if got := r.reply.Frame.IP.Src; got != hops[ttl-1] {
					t.Errorf("%s v6=%v ttl %d: answer from %v, want %v (%s)", box, v6, ttl, got, hops[ttl-1], r.reply.Frame.String())
				}
				if ttl == 3 {
					if !isSYNACK(r.reply) {
						t.Errorf("%s v6=%v ttl 3: got %s, want the SYN-ACK", box, v6, r.reply.Frame.String())
					}
					continue
				}
				if !r.reply.Frame.Has(probe.LayerICMP) {
					t.Errorf("%s v6=%v ttl %d: got %s, want time exceeded", box, v6, ttl, r.reply.Frame.String())
					continue
				}
				var q probe.Frame
				q.DecodeIP(r.reply.Frame.ICMP.Body)
				mss, _ := q.TCP.MSS()
				want := uint16(1460)
				if box == BoxMSSClamp && ttl == 2 {
					want = 1200 // r1 quotes before its FORWARD hook; r2 sees the change
				}
				if mss != want {
					t.Errorf("%s v6=%v ttl %d: quoted MSS %d, want %d (quote %s, %d bytes)", box, v6, ttl, mss, want, q.String(), len(r.reply.Frame.ICMP.Body))
				}
				if len(r.reply.Frame.ICMP.Body) < len(r.sent.Data)-14 {
					t.Errorf("%s v6=%v ttl %d: quote of %d bytes, want the whole packet (%d)", box, v6, ttl, len(r.reply.Frame.ICMP.Body), len(r.sent.Data)-14)
				}
			}
			f := &probe.Frame{}
			f.TCP.Seq, f.TCP.Flags = isn+1, probe.RST
			s.Send(f)
		}
	}
}

// TestRulesets: every box but none has a ruleset, in the bed's table.
func TestRulesets(t *testing.T) {
	for _, box := range Boxes() {
		rs := Ruleset(box, 8080)
		if !strings.HasPrefix(rs, "table inet "+TableName+" {") {
			t.Errorf("Ruleset(%s) = %q, want a table inet %s", box, rs, TableName)
		}
	}
	if rs := Ruleset(BoxNone, 8080); rs != "" {
		t.Errorf("Ruleset(none) = %q, want empty", rs)
	}
	if _, err := ParseBox("bogus"); err == nil || !strings.Contains(err.Error(), `"bogus"`) {
		t.Errorf("ParseBox(bogus): got %v, want an error naming it", err)
	}
}

// netnsNames lists the named namespaces (ip netns list).
func netnsNames(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	return string(out)
}

// TestCloseLeavesNothing: Close removes every namespace of the bed.
func TestCloseLeavesNothing(t *testing.T) {
	b := startBed(t, Config{})
	if err := b.SetBox(BoxNAT, Last); err != nil {
		t.Fatal(err)
	}
	names := b.names()
	list := netnsNames(t)
	for _, n := range names {
		if !strings.Contains(list, n) {
			t.Errorf("ip netns list lacks %s while the bed runs:\n%s", n, list)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	list = netnsNames(t)
	for _, n := range names {
		if strings.Contains(list, n) {
			t.Errorf("ip netns list still has %s after Close:\n%s", n, list)
		}
	}
	if err := b.SetBox(BoxNone, First); err == nil {
		t.Errorf("SetBox after Close: no error")
	}
}

const staleEnv = "PATHLAB_STALE_CHILD"

// TestStaleChild is the child of TestStaleBedRemoved: it starts a bed,
// prints its ID and waits to be killed.
func TestStaleChild(t *testing.T) {
	if os.Getenv(staleEnv) == "" {
		t.Skip("run by TestStaleBedRemoved")
	}
	b, err := Start(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("bed %s\n", b.ID)
	time.Sleep(time.Minute)
}

// TestStaleBedRemoved: a bed whose process was killed is removed by the
// next Start.
func TestStaleBedRemoved(t *testing.T) {
	if ok, why := Available(); !ok {
		t.Skip(why)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestStaleChild$", "-test.v")
	cmd.Env = append(os.Environ(), staleEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var id string
	buf := make([]byte, 4096)
	var got []byte
	deadline := time.Now().Add(30 * time.Second)
	for id == "" && time.Now().Before(deadline) {
		n, err := out.Read(buf)
		got = append(got, buf[:n]...)
		for _, line := range strings.Split(string(got), "\n") {
			if rest, ok := strings.CutPrefix(line, "bed "); ok && len(rest) == 8 {
				id = rest
			}
		}
		if err != nil {
			break
		}
	}
	if id == "" {
		t.Fatalf("the child printed no bed ID: %s", got)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if list := netnsNames(t); !strings.Contains(list, NamePrefix+id+"-server") {
		t.Fatalf("the killed bed %s left no namespace to remove (ip netns list:\n%s)", id, list)
	}
	startBed(t, Config{})
	if list := netnsNames(t); strings.Contains(list, NamePrefix+id) {
		t.Errorf("Start left the killed bed %s's namespaces:\n%s", id, list)
	}
}

//go:build linux

package probe

import (
	"context"
	"io"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"synprobe/internal/veth"
)

// gsoBulk is how much the target's application writes on each connection:
// enough for the target's TCP to build super-segments of many MSS.
const gsoBulk = 200_000

// gsoMSS is the MSS synprobe offers; over IPv4 the veth's MTU (1500)
// allows it, over IPv6 the target sends 1440.
const gsoMSS = 1460

func bulkByte(i int) byte { return byte(i*7 + i>>9) }

// bulkServer accepts connections on ln and writes gsoBulk bytes on each,
// then closes it.
func bulkServer(t *testing.T, ln net.Listener) {
	data := make([]byte, gsoBulk)
	for i := range data {
		data[i] = bulkByte(i)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := c.Write(data); err != nil {
					t.Logf("target application: write: %v", err)
				}
				// Close on synprobe's RST (or the test's end), so that no
				// FIN follows the data.
				io.Copy(io.Discard, c)
			}()
		}
	}()
}

// bulkSegment is a segment with data that a session received.
type bulkSegment struct {
	seq   Seq
	len   int
	flags Flags
	time  time.Time
	sum   ChecksumStatus
}

// receiveBulk opens a connection from a session with a large window,
// acknowledges everything the target sends in order until it has gsoBulk
// bytes, resets the connection, and returns the segments with data as they
// arrived, the data, and the MSS: the smaller of synprobe's and the
// target's, which the target's segments must not exceed.
func receiveBulk(t *testing.T, p *Prober, target netip.AddrPort) ([]bulkSegment, []byte, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), linkWatchdog)
	defer cancel()
	s, err := p.Open(SessionConfig{Remote: target})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const iss = 1000
	send := func(seq, ack Seq, flags Flags, opts ...Option) {
		t.Helper()
		_, err := s.Send(&Frame{IP: IP{Flags: IPFlagDF}, TCP: TCP{Seq: seq, Ack: ack, Flags: flags, Window: 65535, Options: opts}})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Window scale 7: the window is 8 MiB, never what limits the target.
	send(iss, 0, SYN, MSSOption(gsoMSS), NOPOption(), WScaleOption(7))
	var irs Seq
	var mss int
	for {
		r, err := s.Recv(ctx)
		if err != nil {
			t.Fatalf("waiting for the SYN-ACK: %v", err)
		}
		if r.Frame.TCP.Flags == SYN|ACK && r.Frame.TCP.Ack == iss+1 {
			irs = r.Frame.TCP.Seq
			theirs, ok := r.Frame.TCP.MSS()
			if !ok {
				t.Fatalf("SYN-ACK without an MSS: %v", &r.Frame)
			}
			mss = min(gsoMSS, int(theirs))
			break
		}
	}
	next := irs.Add(1)
	send(iss+1, next, ACK)
	var segs []bulkSegment
	var data []byte
	for len(data) < gsoBulk {
		r, err := s.Recv(ctx)
		if err != nil {
			t.Fatalf("after %d bytes in %d segments: %v", len(data), len(segs), err)
		}
		tcp := &r.Frame.TCP
		if tcp.Flags&RST != 0 {
			t.Fatalf("after %d bytes: the target reset the connection: %v", len(data), &r.Frame)
		}
		if len(tcp.Payload) > 0 {
			segs = append(segs, bulkSegment{tcp.Seq, len(tcp.Payload), tcp.Flags, r.Time, r.Frame.Checksum})
		}
		if tcp.Seq == next {
			data = append(data, tcp.Payload...)
			next = next.Add(uint32(len(tcp.Payload)))
		}
		send(iss+1, next, ACK)
	}
	send(iss+1, next, RST|ACK)
	if got := s.LocalHostFrames(); len(got) != 0 {
		t.Errorf("the probe's kernel sent %d frames on the connection (first %v): want none, the guard drops its RSTs", len(got), &got[0].Frame)
	}
	return segs, data, mss
}

// TestSuperFramesSplitFromKernel has the Linux kernel send 200 KB on a real
// connection across a veth pair, with TSO and GSO on at the target's veth
// and GRO on at the probe's, so that the probe's packet socket sees
// super-frames. Every segment a session receives must carry at most the
// MSS, in contiguous sequence, all the data; the same exchange with the
// offloads off must give the same segments. With splitting switched off
// (the test hook), segments above the MSS show what the test catches.
func TestSuperFramesSplitFromKernel(t *testing.T) {
	lab := newLinkLab(t)
	for _, v6 := range []bool{false, true} {
		name := "v4"
		if v6 {
			name = "v6"
		}
		t.Run(name, func(t *testing.T) { testSuperFramesSplit(t, lab, v6) })
	}
}

func testSuperFramesSplit(t *testing.T, lab *linkLab, v6 bool) {
	ln, port := lab.listen(t, v6)
	bulkServer(t, ln)
	_, target := lab.addrs(v6)
	ctx, cancel := context.WithTimeout(context.Background(), linkWatchdog)
	defer cancel()
	p, err := Dial(ctx, target, DialConfig{NetNS: lab.probeNS})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.guard == nil {
		t.Skipf("needs the RST guard, or the probe's kernel resets the connection: %v", p.Notes())
	}
	pl := p.Link().(*PacketLink)
	if !pl.reader.vnet {
		t.Fatalf("PACKET_VNET_HDR refused on this kernel: %v", p.Notes())
	}

	offloads := func(on bool) {
		t.Helper()
		for _, o := range []struct {
			ns  int
			dev string
			o   veth.Offload
		}{{lab.targetNS, lab.targetIf, veth.TSO}, {lab.targetNS, lab.targetIf, veth.GSO}, {lab.probeNS, lab.probeIf, veth.GRO}} {
			if err := veth.SetOffload(o.ns, o.dev, o.o, on); err != nil {
				t.Fatal(err)
			}
		}
	}
	var mss int
	run := func(name string, on, keep bool) []bulkSegment {
		t.Helper()
		offloads(on)
		p.keepSuperFrames.Store(keep)
		before := p.Stats()
		segs, data, m := receiveBulk(t, p, netip.AddrPortFrom(target, port))
		mss = m
		after := p.Stats()
		t.Logf("%s: MSS %d, %d segments, %d super-frames split, %d unsplit, %d drops", name, mss, len(segs),
			after.SuperFrames-before.SuperFrames, after.UnsplitSuperFrames-before.UnsplitSuperFrames, after.Drops-before.Drops)
		if len(data) != gsoBulk {
			t.Errorf("%s: received %d bytes in order, want %d", name, len(data), gsoBulk)
		}
		for i := range data {
			if data[i] != bulkByte(i) {
				t.Errorf("%s: byte %d is %#x, want %#x", name, i, data[i], bulkByte(i))
				break
			}
		}
		if n := after.UnsplitSuperFrames - before.UnsplitSuperFrames; n != 0 {
			t.Errorf("%s: %d super-frames could not be split", name, n)
		}
		if n := after.SuperFrames - before.SuperFrames; on && !keep && n == 0 {
			t.Errorf("%s: no super-frame seen: the offloads did not make any, the test proves nothing", name)
		} else if !on && n != 0 {
			t.Errorf("%s: %d super-frames with every offload off", name, n)
		}
		return segs
	}
	defer offloads(false)

	split := run("offloads on", true, false)
	whole := run("offloads on, splitting off", true, true)
	wire := run("offloads off", false, false)

	// With the splitting: every segment at most the MSS, contiguous, with a
	// kernel timestamp, shared by the pieces of one super-frame. (A
	// gso_size read in the wrong byte order would make pieces far larger
	// than the MSS.)
	shared := 0
	for i, sg := range split {
		if sg.len > mss {
			t.Errorf("offloads on: segment %d (seq %d) carries %d bytes, above the MSS %d", i, sg.seq, sg.len, mss)
		}
		if i > 0 && sg.seq != split[i-1].seq.Add(uint32(split[i-1].len)) {
			t.Errorf("offloads on: segment %d starts at %d, want %d: not contiguous", i, sg.seq, split[i-1].seq.Add(uint32(split[i-1].len)))
		}
		if sg.sum == ChecksumInvalid {
			t.Errorf("offloads on: segment %d: a bad checksum, where the kernel had not finished it", i)
		}
		if i > 0 && sg.time.Equal(split[i-1].time) {
			shared++
		}
		if i < len(split)-1 && sg.flags&(FIN|PSH) != 0 && sg.time.Equal(split[i+1].time) {
			t.Errorf("offloads on: segment %d has %v inside a super-frame", i, sg.flags)
		}
	}
	if shared == 0 {
		t.Errorf("offloads on: no two segments share a timestamp: no piece carries its super-frame's")
	}
	// The same segment sizes as on the wire with every offload off.
	if got, want := bulkSizes(split), bulkSizes(wire); !slices.Equal(got, want) {
		t.Errorf("segment sizes with offloads on and split:\n%v\nwith offloads off:\n%v", got, want)
	}
	// Without the splitting, the test sees what synprobe used to judge.
	over := 0
	for _, sg := range whole {
		if sg.len > mss {
			over++
		}
	}
	if over == 0 {
		t.Errorf("splitting off: no segment above the MSS: the test would not catch a missing split (sizes %v)", bulkSizes(whole))
	}
	t.Logf("splitting off: %d of %d segments above the MSS, the largest %d bytes", over, len(whole), slices.Max(bulkSizes(whole)))
}

func bulkSizes(segs []bulkSegment) []int {
	out := make([]int, len(segs))
	for i, s := range segs {
		out[i] = s.len
	}
	return out
}

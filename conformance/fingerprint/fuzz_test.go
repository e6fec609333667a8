package fingerprint

import (
	"encoding/json"
	"io"
	"net/netip"
	"testing"
	"time"

	"synprobe/probe"
)

// fuzzSYN is the SYN the fuzzed replies answer.
func fuzzSYN(t testing.TB) *probe.Sent {
	f := probe.Frame{
		IP:  probe.IP{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2"), Flags: probe.IPFlagDF},
		TCP: probe.TCP{SrcPort: 40000, DstPort: 80, Seq: 1000, Flags: probe.SYN, Window: linuxSYNWindow, Options: []probe.Option{probe.MSSOption(1460), probe.SACKPermittedOption(), probe.TimestampsOption(77, 0), probe.NOPOption(), probe.WScaleOption(7)}},
	}
	data, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	sent := &probe.Sent{Data: data, Time: time.Unix(1700000000, 0)}
	if err := sent.Frame.Decode(data); err != nil {
		t.Fatal(err)
	}
	return sent
}

// seedSYNACK encodes a SYN-ACK with opts for the seed corpus.
func seedSYNACK(t testing.TB, flags probe.Flags, opts ...probe.Option) []byte {
	f := probe.Frame{
		IP:  probe.IP{Src: netip.MustParseAddr("192.0.2.2"), Dst: netip.MustParseAddr("192.0.2.1"), TTL: 61, Flags: probe.IPFlagDF},
		TCP: probe.TCP{SrcPort: 80, DstPort: 40000, Seq: 5000, Ack: 1001, Flags: flags, Window: 65160, Options: opts},
	}
	data, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// FuzzReplyFacts feeds any frame, as the SYN-ACK of every probe, through
// everything that reads SYN-ACKs, and the result through both writers:
// nothing may panic, whatever the wire brings.
func FuzzReplyFacts(f *testing.F) {
	f.Add(seedSYNACK(f, probe.SYN|probe.ACK, probe.MSSOption(1460), probe.SACKPermittedOption(), probe.TimestampsOption(9, 77), probe.NOPOption(), probe.WScaleOption(10)))
	f.Add(seedSYNACK(f, probe.SYN|probe.ACK|probe.ECE, probe.MSSOption(1460), probe.FastOpenOption([]byte{1, 2, 3, 4, 5, 6, 7, 8})))
	f.Add(seedSYNACK(f, probe.SYN|probe.ACK, probe.RawOption([]byte{8, 3, 1}), probe.RawOption([]byte{2, 9})))
	f.Add(seedSYNACK(f, probe.RST|probe.ACK))
	f.Add([]byte{})
	sent := fuzzSYN(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &probe.Reply{Data: data, Time: sent.Time.Add(time.Millisecond)}
		r.DecodeErr = r.Frame.Decode(data)
		if !r.Frame.Has(probe.LayerTCP) {
			r = nil
		}
		a := synAnswer{port: 40000, sent: sent, reply: r, why: "fuzz"}
		later := r
		if r != nil {
			copied := *r
			copied.Time = r.Time.Add(time.Second)
			later = &copied
		}
		rt := retransResult{first: a, watched: 3 * time.Second}
		if later != nil {
			rt.retrans = []*probe.Reply{later}
		}
		one := oneTupleResult{port: 40000, answers: []synAnswer{a, a, a, a}, mss: []uint16{1460, 1460, cookieMSS, 1460}}
		var nm nmapResult
		for i := range nm.answers {
			nm.answers[i] = a
		}
		rst := rstResult{why: "fuzz"}
		if r != nil {
			rst.replies = []*probe.Reply{r, r, r}
		}
		fp := &Fingerprint{}
		fp.fillTTL(&a, &rst)
		fp.fillDF(true, &a, &rst)
		fp.fillIPID(true, &nm, &rst, &challengeResult{replies: rst.replies})
		fp.fillSYNACK(&a)
		fp.fillNmap(&nm)
		fp.fillISN(&one, &nm, 1460)
		fp.fillTimestamps(&rt, &one, &nm, []*synAnswer{&a})
		fp.fillSupport(&a, &a, &a)
		fp.fillRetransmission(&rt)
		fp.fillCookies(&rt, &one, 1460)
		fp.WriteText(io.Discard)
		if _, err := json.Marshal(fp); err != nil {
			t.Fatalf("marshal: %v", err)
		}
	})
}

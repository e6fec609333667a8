package capture

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"synprobe/conformance/capture/internal/gen"
	"synprobe/conformance/report"
	"synprobe/probe"
	"synprobe/probe/pcap"
)

// timedPcap writes frames at the given offsets from t0.
func timedPcap(t *testing.T, frames [][]byte, at []time.Duration) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcap.NewWriter(&buf, pcap.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		if err := w.WritePacket(t0.Add(at[i]), f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestAfterClose: segments that repeat a closed connection's last ones are
// absorbed while it lingers; a new SYN on its 4-tuple is a new connection;
// after the linger time the 4-tuple is forgotten.
func TestAfterClose(t *testing.T) {
	first := newConv(t).add(cat(handshake(), close4(0, 0))...).frames // 7 packets
	again := newConv(t).add(sFIN(1, 2), cACK(2, 2), cRST(2)).frames
	second := newConv(t)
	second.isnC = 700000
	second.add(cat(handshake(), close4(0, 0))...)

	cases := []struct {
		name       string
		frames     [][]byte
		at         []time.Duration
		results    int
		afterClose uint64
		lastNote   string
	}{
		{"retransmissions absorbed", append(append([][]byte{}, first...), again...), ms(0, 1, 2, 3, 4, 5, 6, 100, 101, 102), 1, 3, ""},
		{"4-tuple used again", append(append([][]byte{}, first...), second.frames...), ms(0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 15, 16), 2, 0, "four-segment close"},
		{"forgotten after the linger time", append(append([][]byte{}, first...), again[0]), ms(0, 1, 2, 3, 4, 5, 6, 120_000), 2, 0, "handshake not in the capture"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAnalyzer("x", Options{})
			if err := a.Read(context.Background(), bytes.NewReader(timedPcap(t, tc.frames, tc.at))); err != nil {
				t.Fatal(err)
			}
			rep := a.Finish()
			if len(rep.Results) != tc.results || a.Stats().AfterClose != tc.afterClose {
				t.Fatalf("%d results, %d segments after close; want %d and %d:\n%s", len(rep.Results), a.Stats().AfterClose, tc.results, tc.afterClose, textOf(rep))
			}
			for _, r := range rep.Results {
				if r.Verdict != report.Pass {
					t.Errorf("%s: verdict %s (%s), want pass", r.Name, r.Verdict, r.Reason)
				}
			}
			if tc.lastNote != "" && !strings.Contains(strings.Join(rep.Results[len(rep.Results)-1].Notes, "\n"), tc.lastNote) {
				t.Errorf("last result's notes %q lack %q", rep.Results[len(rep.Results)-1].Notes, tc.lastNote)
			}
		})
	}
}

func ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

// TestMemoryBounded: with results streamed out, nothing of a closed
// connection stays but its small tombstone (at most 65536 of them), and
// connection state is recycled.
func TestMemoryBounded(t *testing.T) {
	var buf bytes.Buffer
	n, err := gen.ShortConnections(&buf, 20000)
	if err != nil {
		t.Fatal(err)
	}
	results := 0
	a := NewAnalyzer("x", Options{OnResult: func(report.Result) { results++ }})
	if err := a.Read(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	if len(a.conns) != 0 || len(a.results) != 0 || len(a.free) > 1024 || len(a.closed) > maxTombstones {
		t.Errorf("after %d packets: %d open connections, %d kept results, %d free, %d tombstones; want 0, 0, <=1024, <=%d",
			n, len(a.conns), len(a.results), len(a.free), len(a.closed), maxTombstones)
	}
	if len(a.tombs)-a.tombHead != len(a.closed) {
		t.Errorf("%d tombstones queued, %d remembered: want equal", len(a.tombs)-a.tombHead, len(a.closed))
	}
	rep := a.Finish()
	if results != 20000 || rep.Summary[report.Pass] != 20000 {
		t.Errorf("%d results streamed, summary %s; want 20000 pass", results, rep.Summary.Counts())
	}
}

// TestConcurrentConnections: interleaved connections between the same
// hosts are told apart by port, in both address orders.
func TestConcurrentConnections(t *testing.T) {
	a := newConv(t)
	b := newConv(t)
	// A second connection the other way round: its client's address sorts
	// after its server's.
	b.c, b.s = netip.AddrPortFrom(srv.Addr(), 40001), netip.AddrPortFrom(cli.Addr(), 80)
	var frames [][]byte
	ga, gb := cat(handshake(), close4(0, 0)), cat(handshake(), close4(0, 0))
	for i := range ga {
		frames = append(frames, a.add(ga[i]).frames[i], b.add(gb[i]).frames[i])
	}
	rep := mustAnalyze(t, pcapOf(t, pcap.LinkTypeEthernet, frames...), Options{})
	if len(rep.Results) != 2 || rep.Summary[report.Pass] != 2 {
		t.Fatalf("want two passing results:\n%s", textOf(rep))
	}
	if want := b.c.String() + " > " + b.s.String(); rep.Results[1].Name != want {
		t.Errorf("second result %q, want %q", rep.Results[1].Name, want)
	}
}

// TestMaxOpen: a capture of more connections open at once than
// Options.MaxOpen (a SYN flood) never has more followed; those quiet
// longest are judged early, counted and noted, and every connection is
// still in the summary. A connection that goes on after it was judged
// starts again, from the middle.
func TestMaxOpen(t *testing.T) {
	const maxOpen, flood = 32, 1000
	var frames [][]byte
	keep := newConv(t) // a connection that stays busy through the flood
	keep.add(handshake()...)
	frames = append(frames, keep.frames...)
	for i := range flood {
		cv := newConv(t)
		cv.c = netip.AddrPortFrom(cli.Addr(), uint16(10000+i))
		frames = append(frames, cv.add(cSYN(probe.MSSOption(1460))).frames...)
		if i%8 == 0 {
			keep.add(cData(1, 1, 10), sACK(1, 11))
			keep.add(cData(11, 1, 10), sACK(1, 21))
			frames = append(frames, keep.frames[len(keep.frames)-4:]...)
			keep.frames = keep.frames[:3]
		}
	}
	var results []report.Result
	a := NewAnalyzer("flood", Options{MaxOpen: maxOpen, OnResult: func(r report.Result) { results = append(results, r) }})
	for i, f := range frames {
		a.Packet(&pcap.Record{Time: t0.Add(time.Duration(i) * time.Microsecond), LinkType: pcap.LinkTypeEthernet, Data: f, OrigLen: len(f)})
		if len(a.conns) > maxOpen {
			t.Fatalf("after packet %d: %d connections followed, want at most %d", i+1, len(a.conns), maxOpen)
		}
	}
	rep := a.Finish()
	st := a.Stats()
	if st.Connections != flood+1 || rep.Summary.Total() != flood+1 || len(results) != flood+1 {
		t.Errorf("%d connections, summary %s, %d results; want %d of each", st.Connections, rep.Summary.Counts(), len(results), flood+1)
	}
	// Each time, maxOpen/16 are judged: between maxOpen-maxOpen/16 and
	// maxOpen stay open to the end.
	if lo, hi := uint64(flood+1-maxOpen), uint64(flood+1-maxOpen+maxOpen/16); st.Crowded < lo || st.Crowded > hi {
		t.Errorf("%d connections judged early, want %d to %d", st.Crowded, lo, hi)
	}
	note := strings.Join(rep.Notes, "\n")
	if !strings.Contains(note, "judged before their end: more than 32 were open at once") {
		t.Errorf("notes lack the crowding:\n%s", note)
	}
	var early, busy int
	for _, r := range results {
		if strings.Contains(strings.Join(r.Notes, "\n"), "judged early: too many connections were open at once") {
			early++
		}
		if r.Name == keep.c.String()+" > "+keep.s.String() {
			busy++
			if r.Verdict != report.Pass {
				t.Errorf("the busy connection: %s\n%s", r.Verdict, strings.Join(r.Notes, "\n"))
			}
		}
	}
	if busy != 1 {
		t.Errorf("the busy connection gave %d results, want 1: it is never the quietest", busy)
	}
	if uint64(early) != st.Crowded {
		t.Errorf("%d results say they were judged early, stats count %d", early, st.Crowded)
	}
}

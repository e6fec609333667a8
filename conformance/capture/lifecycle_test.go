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

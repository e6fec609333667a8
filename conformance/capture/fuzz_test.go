package capture

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"path/filepath"
	"synprobe/internal/fuzzseed"
	"testing"

	"synprobe/conformance/report"
	"synprobe/probe"
	"synprobe/probe/pcap"
)

// FuzzAnalyze feeds arbitrary bytes to Analyze as a capture: it must never
// panic, must fail only with a capture format error, and its summary must
// count every connection it judged, whatever the packets hold. At most 4
// connections are followed at once, so that judging early is fuzzed too.
func FuzzAnalyze(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a := NewAnalyzer("fuzz", Options{MaxSteps: 8, MaxOpen: 4})
		err := a.Read(context.Background(), bytes.NewReader(data))
		rep := a.Finish()
		var fe *pcap.FormatError
		if err != nil && !errors.As(err, &fe) {
			t.Fatalf("error %v (%T), want nil or a *pcap.FormatError", err, err)
		}
		total := 0
		for _, n := range rep.Summary {
			total += n
		}
		st := a.Stats()
		if uint64(total) != st.Connections || len(rep.Results) != total {
			t.Fatalf("summary counts %d, %d results, stats %d connections: want all equal", total, len(rep.Results), st.Connections)
		}
		if judged := st.TCP + st.NonTCP + st.Fragments + st.Undecodable + st.UnsupportedLink; judged > st.Packets {
			t.Fatalf("stats %+v count more packets than were read", st)
		}
		for _, r := range rep.Results {
			if !r.Verdict.Valid() || len(r.Steps) == 0 || len(r.Steps) > 8+2 {
				t.Fatalf("result %q: verdict %q, %d steps", r.Name, r.Verdict, len(r.Steps))
			}
			for _, s := range r.Steps {
				if s.Direction != report.Observe || s.Line < 1 || uint64(s.Line) > st.Packets {
					t.Fatalf("result %q: step %+v", r.Name, s)
				}
			}
		}
	})
}

// fuzzSeeds are captures of every kind the analysis reads: the KB frames,
// connections with and without problems on each link type, a pcapng with
// two interfaces, and damaged and truncated files.
func fuzzSeeds(tb testing.TB) map[string][]byte {
	seeds := map[string][]byte{"kb172983": kbCapture(tb)}
	for _, tc := range checkCases {
		switch tc.name {
		case "simultaneous open", "RST in window but not exact", "closed port", "half close", "ack of data the capture missed",
			"TSecr echoes a TSval never sent", "checksums bad on every segment of one side", "malformed segment":
			seeds["check "+tc.name] = pcapOf(tb, pcap.LinkTypeEthernet, newConv(tb).add(tc.segs...).frames...)
		}
	}
	for _, lt := range []struct {
		name string
		lt   pcap.LinkType
		hdr  func(byte) []byte
	}{
		{"raw", pcap.LinkTypeRaw, nil},
		{"sll", pcap.LinkTypeLinuxSLL, sllHeader},
		{"sll2", pcap.LinkTypeLinuxSLL2, sll2Header},
		{"null", pcap.LinkTypeNull, nullHeader(binary.LittleEndian, 30)},
	} {
		cv := newConv(tb)
		cv.c, cv.s, cv.rawIP = cli6, srv6, true
		frames := cv.add(closedConnection()...).frames
		if lt.hdr != nil {
			frames = withHeader(frames, lt.hdr)
		}
		seeds["link "+lt.name] = pcapOf(tb, lt.lt, frames...)
	}
	vlan := newConv(tb)
	vlan.vlan = 7
	seeds["vlan tsHandshake"] = pcapOf(tb, pcap.LinkTypeEthernet, vlan.add(cat(tsHandshake(), close4(0, 0))...).frames...)
	snap := newConv(tb)
	snap.snapshot = 60
	seeds["snaplen 60"] = pcapOf(tb, pcap.LinkTypeEthernet, snap.add(closedConnection()...).frames...)

	ng := newNG()
	ng.iface(pcap.LinkTypeEthernet)
	ng.iface(pcap.LinkTypeRaw)
	raw := newConv(tb)
	raw.rawIP = true
	raw.add(closedConnection()...)
	for i, fr := range newConv(tb).add(closedConnection()...).frames {
		if i%2 == 0 {
			ng.packet(0, t0, fr)
		} else {
			ng.packet(1, t0, raw.frames[i])
		}
	}
	seeds["pcapng two interfaces"] = ng.b
	kb := kbCapture(tb)
	seeds["kb172983 cut"] = kb[:len(kb)-30]
	seeds["not a capture"] = []byte("synprobe")
	bad := newConv(tb)
	seeds["bad checksum and data offset"] = pcapOf(tb, pcap.LinkTypeEthernet, bad.add(cData(1, 1, 10),
		with(sACK(1, 11), func(g *seg) { g.ov = []probe.Override{{Field: probe.FieldTCPChecksumAdd, Value: 9}} }),
		with(cACK(11, 1), func(g *seg) { g.ov = []probe.Override{{Field: probe.FieldTCPDataOffset, Value: 15}} })).frames...)
	return seeds
}

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzAnalyze from fuzzSeeds")

// TestFuzzSeedCorpus keeps the seed corpus on disk in step with fuzzSeeds,
// so that a plain `go test -fuzz` starts from real captures. Run with
// -update-seeds to rewrite it.
func TestFuzzSeedCorpus(t *testing.T) {
	seeds := map[string][]byte{}
	for name, data := range fuzzSeeds(t) {
		seeds[seedFileName(name)] = data
	}
	fuzzseed.Sync(t, filepath.Join("testdata", "fuzz", "FuzzAnalyze"), seeds, *updateSeeds)
}

// seedFileName turns a seed's name into a file name.
func seedFileName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '-'
		}
	}
	return string(bytes.ToLower(b))
}

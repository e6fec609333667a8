package capture

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"synprobe/conformance/capture/internal/gen"
	"synprobe/conformance/report"
)

var shortConns struct {
	once    sync.Once
	data    []byte
	packets int
	err     error
}

// shortConnections is a capture of 100k short connections (900k packets),
// made once.
func shortConnections(b *testing.B) ([]byte, int) {
	shortConns.once.Do(func() {
		var buf bytes.Buffer
		shortConns.packets, shortConns.err = gen.ShortConnections(&buf, 100_000)
		shortConns.data = buf.Bytes()
	})
	if shortConns.err != nil {
		b.Fatal(shortConns.err)
	}
	return shortConns.data, shortConns.packets
}

// BenchmarkAnalyzeShortConnections runs the whole pipeline (read, decode,
// track, judge, report) over 100k connections of SYN, SYN-ACK, ACK, data,
// ACK, FIN, ACK, FIN, ACK; one op is the whole capture. "only-failures"
// keeps failing results only (the mode for large captures: none here
// fail, so no step becomes text); "all-results" keeps all 100k results with
// every step as text, as a small capture's report does.
func BenchmarkAnalyzeShortConnections(b *testing.B) {
	data, packets := shortConnections(b)
	for _, bc := range []struct {
		name string
		opt  Options
	}{
		{"only-failures", Options{OnlyFailures: true}},
		{"all-results", Options{}},
		{"streamed", Options{OnResult: func(report.Result) {}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			start := time.Now()
			for b.Loop() {
				rep, err := Analyze(context.Background(), bytes.NewReader(data), "bench.pcap", bc.opt)
				if err != nil {
					b.Fatal(err)
				}
				if rep.Summary[report.Pass] != packets/gen.PacketsPerConnection {
					b.Fatalf("summary %s, want %d pass", rep.Summary.Counts(), packets/gen.PacketsPerConnection)
				}
			}
			sec := time.Since(start).Seconds()
			b.ReportMetric(float64(packets)*float64(b.N)/sec, "packets/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

package capture

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"synprobe/conformance/capture/internal/gen"
	"synprobe/conformance/report"
	"synprobe/internal/labtest"
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
// fail, so no step becomes text); "streamed" turns every result into text
// and hands it to Options.OnResult (memory stays bounded); "all-results"
// keeps all 100k results with every step as text in the report, whose
// size then dominates (a garbage collector scanning ~500 MB of results).
// packets/s is wall time; packets/cpu-s is per CPU-second of the whole
// process, garbage collection included, the measure that holds on a busy
// machine.
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
			start, cpu0 := time.Now(), labtest.CPUTime()
			for b.Loop() {
				rep, err := Analyze(context.Background(), bytes.NewReader(data), "bench.pcap", bc.opt)
				if err != nil {
					b.Fatal(err)
				}
				if rep.Summary[report.Pass] != packets/gen.PacketsPerConnection {
					b.Fatalf("summary %s, want %d pass", rep.Summary.Counts(), packets/gen.PacketsPerConnection)
				}
			}
			sec, cpu := time.Since(start).Seconds(), (labtest.CPUTime() - cpu0).Seconds()
			b.ReportMetric(float64(packets)*float64(b.N)/sec, "packets/s")
			if cpu > 0 {
				b.ReportMetric(float64(packets)*float64(b.N)/cpu, "packets/cpu-s")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

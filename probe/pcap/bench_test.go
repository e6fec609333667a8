package pcap

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchmarkRead reads b.N small packets (64-byte frames, the size of a bare
// TCP segment over Ethernet) from an endless in-memory capture. One op is
// one packet: ns/op is the cost per packet, allocs/op must be 0.
func benchmarkRead(b *testing.B, format string) {
	r, err := NewReader(newLoopReader(format, 64))
	if err != nil {
		b.Fatal(err)
	}
	var rec Record
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := r.Next(&rec); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/packet")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}

func BenchmarkReadPcap(b *testing.B)   { benchmarkRead(b, "pcap") }
func BenchmarkReadPcapng(b *testing.B) { benchmarkRead(b, "pcapng") }

func BenchmarkWritePacket(b *testing.B) {
	w, err := NewWriter(io.Discard, LinkTypeEthernet)
	if err != nil {
		b.Fatal(err)
	}
	data, ts := frame(0, 64), time.Unix(1700000000, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for range b.N {
		if err := w.WritePacket(ts, data); err != nil {
			b.Fatal(err)
		}
	}
}

// The sending and receiving sides of a link record into one Writer.
func BenchmarkWritePacketParallel(b *testing.B) {
	w, err := NewWriter(io.Discard, LinkTypeEthernet)
	if err != nil {
		b.Fatal(err)
	}
	data, ts := frame(0, 64), time.Unix(1700000000, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := w.WritePacket(ts, data); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// loopFile reads a file over and over, skipping its header after the
// first pass, so that a benchmark reads any number of packets through real
// read(2) calls, as synprobe analyze does.
type loopFile struct {
	f      *os.File
	header int64
}

func (l *loopFile) Read(p []byte) (int, error) {
	n, err := l.f.Read(p)
	if err == io.EOF && n == 0 {
		if _, err := l.f.Seek(l.header, io.SeekStart); err != nil {
			return 0, err
		}
		return l.f.Read(p)
	}
	return n, err
}

func BenchmarkReadPcapFile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "small.pcap")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w, err := NewWriter(f, LinkTypeEthernet)
	if err != nil {
		b.Fatal(err)
	}
	data := frame(0, 64)
	for i := range 1 << 16 {
		if err := w.WritePacket(time.Unix(1700000000, int64(i)), data); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	r, err := NewReader(&loopFile{f: f, header: pcapHeaderLen})
	if err != nil {
		b.Fatal(err)
	}
	var rec Record
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := r.Next(&rec); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/packet")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}

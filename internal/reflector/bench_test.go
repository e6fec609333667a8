package reflector

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"synprobe/probe"
)

// fullStore is a store of DefaultMaxRecords SYNs with the Timestamps
// option, one from each of as many ports.
func fullStore(b *testing.B) *store {
	b.Helper()
	now := time.Now()
	srv := netip.AddrPortFrom(srvAddr, 8080)
	var f probe.Frame
	s := newStore(DefaultMaxRecords, time.Hour)
	for i := range DefaultMaxRecords {
		cli := netip.AddrPortFrom(cliAddr, uint16(i))
		c := capture(b, cli, srv, probe.TCP{Flags: probe.SYN, Seq: probe.Seq(i), Options: []probe.Option{
			probe.MSSOption(1460), probe.SACKPermittedOption(), probe.TimestampsOption(uint32(i), 0), probe.NOPOption(), probe.WScaleOption(7)}}, now, false)
		r, err := newRecord(c, &f)
		if err != nil {
			b.Fatal(err)
		}
		s.add(r)
	}
	return s
}

// BenchmarkStoreMemory reports what a full default store holds on the heap,
// per record.
func BenchmarkStoreMemory(b *testing.B) {
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := fullStore(b)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/DefaultMaxRecords, "heap-B/record")
		runtime.KeepAlive(s)
	}
}

// BenchmarkFind is one request with four keys against a full default
// store: the time the capture waits for the lock.
func BenchmarkFind(b *testing.B) {
	s := fullStore(b)
	req := Request{Seq: []probe.Seq{1, 2}, TSval: []uint32{3, 4}}
	now := time.Now()
	for b.Loop() {
		out, _, _ := s.find(now, req, MaxAnswerRecords)
		if len(out) != 4 {
			b.Fatalf("%d records, want 4", len(out))
		}
	}
}

// BenchmarkRecord is the capture's work per segment: decode, copy the
// headers, hash the payload, store.
func BenchmarkRecord(b *testing.B) {
	srv := netip.AddrPortFrom(srvAddr, 8080)
	cli := netip.AddrPortFrom(cliAddr, 40000)
	c := capture(b, cli, srv, probe.TCP{Flags: probe.ACK, Seq: 1, Payload: make([]byte, 1400), Options: []probe.Option{probe.TimestampsOption(1, 2)}}, time.Now(), false)
	s := newStore(DefaultMaxRecords, time.Hour)
	var f probe.Frame
	b.ReportAllocs()
	for b.Loop() {
		r, err := newRecord(c, &f)
		if err != nil {
			b.Fatal(err)
		}
		s.add(r)
	}
}

package targets

import (
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"strings"
	"testing"
)

func TestReadDone(t *testing.T) {
	in := `{"command":"audit","target":{"address":"10.0.0.1:80","host":"10.0.0.1","port":80},"results":[]}
{"command":"audit","target":{"address":"10.0.0.2:80"},"interrupted":true}
{"command":"audit","target":{"address":"10.0.0.4:80"},"results":[{"name":"audit","verdict":"error","cause":"local-host:failure"}]}
{"command":"audit","target":{"address":"10.0.0.5:80"},"results":[{"name":"closed-syn","verdict":"fail"},{"name":"listen-syn-fin","verdict":"error"}]}

{"target":"[2001:db8::1]:443"}
{"command":"audit","target":{"address":"10.0.0.3:8`
	d, err := ReadDone(strings.NewReader(in), "out.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for ap, want := range map[string]bool{"10.0.0.1:80": true, "10.0.0.2:80": false, "[2001:db8::1]:443": true, "10.0.0.3:80": false, "10.0.0.4:80": false, "10.0.0.5:80": true} {
		if got := d.Has(netip.MustParseAddrPort(ap)); got != want {
			t.Errorf("Has(%s) = %v, want %v", ap, got, want)
		}
	}
	if d.Len() != 3 || d.Interrupted != 1 || d.Errored != 1 || d.Partial != 1 {
		t.Errorf("len %d, interrupted %d, errored %d, partial %d; want 3, 1, 1, 1", d.Len(), d.Interrupted, d.Errored, d.Partial)
	}
}

func TestReadDoneBadLines(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"{\"target\":\"10.0.0.1:80\"}\nnot json\n{\"target\":\"10.0.0.2:80\"}\n", "out:2: not a JSON line of synprobe --format jsonl"},
		{"{\"command\":\"audit\"}\n\n", `out:1: no "target"`},
		{"{\"target\":{\"address\":\"x\"}}\n", `out:1: target "x" is not ADDRESS:PORT`},
	} {
		if _, err := ReadDone(strings.NewReader(tt.in), "out"); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v; want %q", tt.in, err, tt.want)
		}
	}
}

// TestResumeFilter: targets a previous run did are skipped and counted.
func TestResumeFilter(t *testing.T) {
	d, err := ReadDone(strings.NewReader("{\"target\":\"10.0.0.1:80\"}\n{\"target\":\"10.0.0.3:80\"}\n"), "out")
	if err != nil {
		t.Fatal(err)
	}
	got, st, err := readAll(t, "10.0.0.0/30\n", Options{DefaultPort: 80, Done: d})
	if err != nil || strings.Join(got, " ") != "10.0.0.0:80 10.0.0.2:80" || st.Done != 2 {
		t.Errorf("got %v, %v, %d done; want 10.0.0.0 and 10.0.0.2, 2 done", got, err, st.Done)
	}
}

// benchList is n targets, one HOST:PORT a line.
func benchList(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "10.%d.%d.%d:443\n", i>>16&255, i>>8&255, i&255)
	}
	return b.String()
}

// benchmarkReader reads n targets through the shard (1 of 4) and resume
// filters (a tenth done) and reports the heap the reader holds at the
// end, beyond the input and the resume set.
func benchmarkReader(b *testing.B, n int) {
	list := benchList(n)
	var done strings.Builder
	for i := 0; i < n; i += 10 {
		fmt.Fprintf(&done, "{\"target\":\"10.%d.%d.%d:443\"}\n", i>>16&255, i>>8&255, i&255)
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	d, err := ReadDone(strings.NewReader(done.String()), "done")
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	perDone := max(float64(int64(m1.HeapInuse)-int64(m0.HeapInuse)), 0) / float64(d.Len()) // noisy for a small set
	b.ReportAllocs()
	b.ResetTimer()
	var heap uint64
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r := NewReader(strings.NewReader(list), Options{Name: "bench", Shard: Shard{1, 4}, Done: d})
		kept := 0
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			kept++
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if after.HeapInuse > before.HeapInuse {
			heap = after.HeapInuse - before.HeapInuse
		}
		runtime.KeepAlive(r)
		if kept == 0 {
			b.Fatal("no target kept")
		}
	}
	b.ReportMetric(float64(heap), "heap-held-B")
	b.ReportMetric(float64(n), "targets")
	b.ReportMetric(perDone, "resume-B/target-done")
}

func BenchmarkReader1k(b *testing.B)   { benchmarkReader(b, 1000) }
func BenchmarkReader100k(b *testing.B) { benchmarkReader(b, 100_000) }

// BenchmarkReaderCIDR walks a /16 (65536 targets) in 4 shards.
func BenchmarkReaderCIDR(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		r := NewReader(strings.NewReader("10.0.0.0/16\n"), Options{DefaultPort: 80, Shard: Shard{0, 4}})
		for {
			if _, err := r.Next(); err != nil {
				break
			}
		}
	}
}

package probe

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"

	"synprobe/internal/netns"
	"synprobe/internal/veth/vethtest"
)

func TestParseLocalPortRange(t *testing.T) {
	for _, tc := range []struct {
		in     string
		lo, hi uint16
		ok     bool
	}{
		{"32768\t60999\n", 32768, 60999, true},
		{"1024 65535", 1024, 65535, true},
		{"", 0, 0, false},
		{"32768\n", 0, 0, false},
		{"32768 60999 1", 0, 0, false},
		{"0 60999", 0, 0, false},
		{"32768 65536", 0, 0, false},
		{"-1 60999", 0, 0, false},
		{"a b", 0, 0, false},
	} {
		lo, hi, err := parseLocalPortRange([]byte(tc.in))
		if ok := err == nil; ok != tc.ok || lo != tc.lo || hi != tc.hi {
			t.Errorf("parseLocalPortRange(%q): got %d-%d, err %v; want %d-%d, ok %v", tc.in, lo, hi, err, tc.lo, tc.hi, tc.ok)
		}
	}
}

func TestParseProcNetTCP(t *testing.T) {
	const v4 = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1060 1 00000000431390f9 100 0 0 10 0
   1: 020200C0:B3EA 507100CB:01BB 06 00000000:00000000 03:000010A0 00000000     0        0 0 3 000000004b79ca0f
`
	const v6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:ea61 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
`
	var s portSet
	if err := parseProcNetTCP([]byte(v4), &s); err != nil {
		t.Fatalf("parse tcp: %v", err)
	}
	if err := parseProcNetTCP([]byte(v6), &s); err != nil {
		t.Fatalf("parse tcp6: %v", err)
	}
	for _, p := range []uint16{0x07E8, 0xB3EA, 0xea61} {
		if !s.has(p) {
			t.Errorf("port %d: not found, want it in use", p)
		}
	}
	if s.has(0x01BB) {
		t.Errorf("remote port %d: counted as in use, want only local ports", 0x01BB)
	}
	for _, bad := range []string{
		"header\n   0:\n",
		"header\n   0: 00000000\n",
		"header\n   0: 00000000:1G00 x\n",
		"header\n   0: 00000000:10000 x\n",
		"header\n   0: 00000000: x\n",
	} {
		if err := parseProcNetTCP([]byte(bad), &s); err == nil {
			t.Errorf("parseProcNetTCP(%q): got nil, want an error naming line 2", bad)
		}
	}
}

// newPortNamespace makes an anonymous namespace whose ip_local_port_range is
// lo-hi.
func newPortNamespace(t *testing.T, lo, hi uint16) int {
	t.Helper()
	ns := vethtest.Namespace(t)
	err := netns.Do(ns, func() error {
		return os.WriteFile(localPortRangePath, fmt.Appendf(nil, "%d %d", lo, hi), 0)
	})
	if err != nil {
		t.Fatalf("set ip_local_port_range to %d-%d: %v", lo, hi, err)
	}
	return ns
}

// listenIn opens a TCP listener inside ns and closes it at the test's end.
func listenIn(t *testing.T, ns int, network, addr string) {
	t.Helper()
	var l net.Listener
	err := netns.Do(ns, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { l.Close() })
}

func TestPortAllocatorStaysOutsideLocalRange(t *testing.T) {
	for _, tc := range []struct {
		ephLo, ephHi uint16
		lo, hi       uint16
	}{
		{32768, 60999, 61000, 65535},
		{20000, 64999, 65000, 65535},
		{40000, 65535, 1024, 39999},
	} {
		t.Run(fmt.Sprintf("%d-%d", tc.ephLo, tc.ephHi), func(t *testing.T) {
			ns := newPortNamespace(t, tc.ephLo, tc.ephHi)
			a, err := NewPortAllocator(ns)
			if err != nil {
				t.Fatal(err)
			}
			if lo, hi := a.Range(); lo != tc.lo || hi != tc.hi {
				t.Fatalf("Range: got %d-%d, want %d-%d", lo, hi, tc.lo, tc.hi)
			}
			seen := map[uint16]bool{}
			for range min(int(tc.hi-tc.lo)+1, 400) {
				p, err := a.Allocate()
				if err != nil {
					t.Fatalf("Allocate after %d ports: %v", len(seen), err)
				}
				if p < tc.lo || p > tc.hi || (p >= tc.ephLo && p <= tc.ephHi) || p < 1024 {
					t.Fatalf("Allocate: got %d, want a port in %d-%d, outside %d-%d", p, tc.lo, tc.hi, tc.ephLo, tc.ephHi)
				}
				if seen[p] {
					t.Fatalf("Allocate: got %d twice while allocated", p)
				}
				seen[p] = true
			}
		})
	}
}

func TestPortAllocatorSkipsPortsInUseAndExhausts(t *testing.T) {
	// 1024-1099 is the only room: 76 ports, two of them taken by listeners.
	ns := newPortNamespace(t, 1100, 65535)
	listenIn(t, ns, "tcp4", "0.0.0.0:1030")
	listenIn(t, ns, "tcp6", "[::]:1050")
	a, err := NewPortAllocator(ns)
	if err != nil {
		t.Fatal(err)
	}
	const free = 76 - 2

	// Concurrent callers never get the same port.
	var mu sync.Mutex
	seen := map[uint16]bool{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				p, err := a.Allocate()
				if err != nil {
					return
				}
				mu.Lock()
				if seen[p] {
					t.Errorf("Allocate: got %d twice while allocated", p)
				}
				seen[p] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != free {
		t.Errorf("Allocate until exhausted: got %d ports, want %d", len(seen), free)
	}
	for _, busy := range []uint16{1030, 1050} {
		if seen[busy] {
			t.Errorf("Allocate: got %d, which a listener uses", busy)
		}
	}
	if p, err := a.Allocate(); err == nil {
		t.Fatalf("Allocate with every port taken: got %d, want an error", p)
	}
	a.Release(1060)
	if p, err := a.Allocate(); err != nil || p != 1060 {
		t.Errorf("Allocate after Release(1060): got %d, %v; want 1060", p, err)
	}
}

func TestPortAllocatorReserve(t *testing.T) {
	ns := newPortNamespace(t, 32768, 60999)
	listenIn(t, ns, "tcp4", "0.0.0.0:40000")
	a, err := NewPortAllocator(ns)
	if err != nil {
		t.Fatal(err)
	}
	// A listener that appears after the last scan: Reserve scans afresh.
	listenIn(t, ns, "tcp6", "[::]:40002")

	steps := []struct {
		do      string
		port    uint16
		inUse   bool
		wantErr bool
	}{
		{"reserve", 40000, true, true},   // listener, inside the local range
		{"reserve", 40002, true, true},   // listener newer than the scan
		{"reserve", 40001, false, false}, // free: the user may pick any port
		{"reserve", 40001, true, true},   // already reserved
		{"release", 40001, false, false},
		{"reserve", 40001, false, false},
		{"reserve", 0, false, true},
	}
	for i, s := range steps {
		if s.do == "release" {
			a.Release(s.port)
			continue
		}
		err := a.Reserve(s.port)
		if (err != nil) != s.wantErr || errors.Is(err, ErrPortInUse) != s.inUse {
			t.Errorf("step %d: Reserve(%d): got %v; want error %v, ErrPortInUse %v", i, s.port, err, s.wantErr, s.inUse)
		}
	}
}

func TestNewPortAllocatorWithoutRoom(t *testing.T) {
	ns := newPortNamespace(t, 1024, 65535)
	if a, err := NewPortAllocator(ns); err == nil {
		lo, hi := a.Range()
		t.Fatalf("NewPortAllocator with ip_local_port_range 1024-65535: got range %d-%d, want an error", lo, hi)
	}
}

// BenchmarkPortAllocator allocates and releases one port, as the runner does
// for each probe connection. The socket scan is cached, so it is amortised.
func BenchmarkPortAllocator(b *testing.B) {
	a, err := NewPortAllocator(0)
	if err != nil {
		b.Skip(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		p, err := a.Allocate()
		if err != nil {
			b.Fatal(err)
		}
		a.Release(p)
	}
}

// BenchmarkPortAllocatorNearlyFull allocates with 99% of the range taken,
// where random picks mostly miss and the walk finds the port.
func BenchmarkPortAllocatorNearlyFull(b *testing.B) {
	a, err := NewPortAllocator(0)
	if err != nil {
		b.Skip(err)
	}
	lo, hi := a.Range()
	n := int(hi) - int(lo) + 1
	for range n - n/100 {
		if _, err := a.Allocate(); err != nil {
			b.Skip(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		p, err := a.Allocate()
		if err != nil {
			b.Fatal(err)
		}
		a.Release(p)
	}
}

package probe

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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

// newAllocator makes a PortAllocator for ns, closed when the test ends (its
// sockets would keep the namespace alive).
func newAllocator(t testing.TB, ns int) *PortAllocator {
	t.Helper()
	a, err := NewPortAllocator(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
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
			a := newAllocator(t, ns)
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
	a := newAllocator(t, ns)
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
	a := newAllocator(t, ns)
	// A listener that appears after the last scan: Reserve scans afresh.
	listenIn(t, ns, "tcp6", "[::]:40002")
	// A socket only bound: in no scan, but its port is taken all the same.
	bindIn(t, ns, unix.AF_INET, 40003)

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
		{"reserve", 40003, true, true}, // bound by another socket
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
	// What Reserve claimed is reserved for other processes too.
	if err := tryBind(ns, unix.AF_INET, 40001); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("bind 0.0.0.0:40001 after Reserve(40001): got %v, want EADDRINUSE", err)
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
// for each probe connection: the socket scan is cached, so it is amortised;
// each port is bound by a socket, made in batches, and closed on release.
func BenchmarkPortAllocator(b *testing.B) {
	a, err := NewPortAllocator(vethtest.Namespace(b))
	if err != nil {
		b.Skip(err)
	}
	b.Cleanup(func() { a.Close() })
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
	a, err := NewPortAllocator(vethtest.Namespace(b))
	if err != nil {
		b.Skip(err)
	}
	b.Cleanup(func() { a.Close() })
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

// tryBind binds a TCP socket of family to port in ns, as another process
// would (no SO_REUSEADDR), and closes it again.
func tryBind(ns, family int, port uint16) error {
	return netns.Do(ns, func() error {
		fd, err := bindSocket(family, port)
		if err == nil {
			unix.Close(fd)
		}
		return err
	})
}

func bindSocket(family int, port uint16) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: int(port)}
	if family == unix.AF_INET6 {
		sa = &unix.SockaddrInet6{Port: int(port)}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// bindIn binds a TCP socket of family to port in ns, without listening
// (so that no scan of /proc/net/tcp shows it), until the test ends.
func bindIn(t testing.TB, ns, family int, port uint16) {
	t.Helper()
	var fd int
	err := netns.Do(ns, func() (err error) {
		fd, err = bindSocket(family, port)
		return err
	})
	if err != nil {
		t.Fatalf("bind port %d: %v", port, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
}

// TestPortAllocatorsApart runs two allocators in one namespace, as two
// synprobe processes on one host would have, over a range of 76 ports: they
// never hold the same port at once, and a port another socket has bound
// (which no scan shows) is never handed out.
func TestPortAllocatorsApart(t *testing.T) {
	ns := newPortNamespace(t, 1100, 65535) // 1024-1099
	const bound = 1030
	bindIn(t, ns, unix.AF_INET6, bound)
	allocs := []*PortAllocator{newAllocator(t, ns), newAllocator(t, ns)}

	var mu sync.Mutex
	holder := map[uint16]int{}
	var wg sync.WaitGroup
	for id, a := range allocs {
		wg.Go(func() {
			var mine []uint16
			for i := range 3000 {
				p, err := a.Allocate()
				if err == nil {
					mu.Lock()
					if other, ok := holder[p]; ok {
						t.Errorf("allocator %d got port %d, which allocator %d holds", id, p, other)
					}
					holder[p] = id
					mu.Unlock()
					if p == bound {
						t.Errorf("allocator %d got port %d, which another socket has bound", id, p)
					}
					mine = append(mine, p)
				}
				// Hand back a port now and then, after a rest, so that
				// ports change hands between the allocators.
				if len(mine) > 0 && (err != nil || i%3 == 0) {
					j := i % len(mine)
					p := mine[j]
					mine = append(mine[:j], mine[j+1:]...)
					a.Rest(p)
					mu.Lock()
					delete(holder, p)
					mu.Unlock()
					a.Release(p)
				}
			}
			for _, p := range mine {
				mu.Lock()
				delete(holder, p)
				mu.Unlock()
				a.Release(p)
			}
		})
	}
	wg.Wait()

	// Both take what they can: between them they get every free port once.
	got := map[uint16]int{}
	for id, a := range allocs {
		for {
			p, err := a.Allocate()
			if err != nil {
				break
			}
			if other, ok := got[p]; ok {
				t.Errorf("port %d handed out to allocators %d and %d", p, other, id)
			}
			got[p] = id
		}
	}
	if _, ok := got[bound]; ok || len(got) != 76-1 {
		t.Errorf("the two allocators got %d ports (%d among them: %v), want every port but %d", len(got), bound, ok, bound)
	}
	for _, a := range allocs {
		if n, err := a.Unreserved(); n != 0 {
			t.Errorf("%d ports handed out unreserved: %v", n, err)
		}
	}
}

// TestPortAllocatorRestKeepsReservation checks that a port stays reserved
// while it rests, and is free for others only once released.
func TestPortAllocatorRestKeepsReservation(t *testing.T) {
	ns := newPortNamespace(t, 1025, 65535) // the range is port 1024 alone
	a, b := newAllocator(t, ns), newAllocator(t, ns)
	p, err := a.Allocate()
	if err != nil || p != 1024 {
		t.Fatalf("Allocate: got %d, %v; want 1024", p, err)
	}
	if q, err := b.Allocate(); !errors.Is(err, ErrNoFreePort) {
		t.Fatalf("another allocator while 1024 is in use: got %d, %v; want ErrNoFreePort", q, err)
	}
	a.Rest(p)
	if q, err := b.Allocate(); !errors.Is(err, ErrNoFreePort) {
		t.Fatalf("another allocator while 1024 rests: got %d, %v; want ErrNoFreePort", q, err)
	}
	a.Release(p)
	// b remembers a port it found held until its next scan of the
	// namespace's sockets (portScanTTL): make that now.
	b.mu.Lock()
	b.scanned = time.Time{}
	b.mu.Unlock()
	if q, err := b.Allocate(); err != nil || q != 1024 {
		t.Fatalf("another allocator after Release: got %d, %v; want 1024", q, err)
	}
	if err := a.Reserve(1024); !errors.Is(err, ErrPortInUse) {
		t.Errorf("Reserve(1024) while the other allocator holds it: got %v, want ErrPortInUse", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tryBind(ns, unix.AF_INET, 1024); err != nil {
		t.Errorf("bind 1024 after Close: %v, want the reservation given up", err)
	}
}

// TestProberKeepsRestingPortsReserved opens and closes a session on a
// prober whose ports come from a PortAllocator: the port rests in the
// prober's quarantine, and stays reserved against another process until
// the prober hands it back.
func TestProberKeepsRestingPortsReserved(t *testing.T) {
	ns := newPortNamespace(t, 1026, 65535) // ports 1024 and 1025
	ports := newAllocator(t, ns)
	l := NewMemoryLink(MAC{2, 0, 0, 0, 0, 1}, 1500, func([]byte) {})
	p := NewProber(ProberConfig{Link: l, Ports: ports, Path: Path{
		Source: netip.MustParseAddr("192.0.2.1"), LocalMAC: MAC{2, 0, 0, 0, 0, 1},
		NextHop: netip.MustParseAddr("192.0.2.2"), NextHopMAC: MAC{2, 0, 0, 0, 0, 2}, MTU: 1500,
	}})
	defer p.Close()
	s, err := p.Open(SessionConfig{Remote: netip.MustParseAddrPort("192.0.2.2:80")})
	if err != nil {
		t.Fatal(err)
	}
	port := s.Local().Port()
	if err := tryBind(ns, unix.AF_INET, port); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("bind %d while the session is open: got %v, want EADDRINUSE", port, err)
	}
	s.Close()
	if err := tryBind(ns, unix.AF_INET6, port); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("bind %d while it rests: got %v, want EADDRINUSE", port, err)
	}
	// Two more sessions: the range runs out, and the prober reuses the
	// resting port early (releaseOldest), which releases it first.
	s2, err := p.Open(SessionConfig{Remote: netip.MustParseAddrPort("192.0.2.2:80")})
	if err != nil {
		t.Fatal(err)
	}
	s3, err := p.Open(SessionConfig{Remote: netip.MustParseAddrPort("192.0.2.2:80")})
	if err != nil {
		t.Fatal(err)
	}
	if s3.Local().Port() != port || s2.Local().Port() == port {
		t.Errorf("ports %d, %d after the range ran out: want %d reused last", s2.Local().Port(), s3.Local().Port(), port)
	}
	if err := tryBind(ns, unix.AF_INET6, port); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("bind %d reused by a new session: got %v, want EADDRINUSE", port, err)
	}
}

// TestPortAllocatorOutOfDescriptors lowers this process's descriptor limit
// so that no socket can be made: the allocator gives up the reservations of
// the longest-resting ports first, and when none rests it hands the port out
// unreserved; it never fails for it.
func TestPortAllocatorOutOfDescriptors(t *testing.T) {
	ns := newPortNamespace(t, 1100, 65535) // 1024-1099
	a := newAllocator(t, ns)
	var resting []uint16
	for range 4 {
		p, err := a.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		a.Rest(p)
		resting = append(resting, p)
		time.Sleep(time.Millisecond) // distinct rest times
	}
	dropSpare := func() { // no spare socket: the next Allocate must make one
		a.mu.Lock()
		for _, fd := range a.spare {
			closePortSocket(fd)
		}
		a.spare = nil
		a.mu.Unlock()
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	defer unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	// allocate allocates with every descriptor taken: the next one made
	// would be EMFILE, and one closed is free for the next.
	allocate := func() (uint16, error) {
		t.Helper()
		dropSpare()
		fillers, limit := takeEveryDescriptor(t)
		low := lim
		low.Cur = uint64(limit)
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
			t.Fatal(err)
		}
		p, err := a.Allocate()
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
		for _, fd := range fillers {
			unix.Close(fd)
		}
		return p, err
	}

	p, err := allocate()
	if err != nil {
		t.Fatalf("Allocate out of descriptors: %v, want a port", err)
	}
	if err := tryBind(ns, unix.AF_INET, p); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("port %d: bind got %v, want it reserved with the descriptor of a resting port", p, err)
	}
	// Entering the namespace takes a descriptor too: one or two resting
	// ports give theirs up, the longest-resting first.
	var freed []bool
	for _, r := range resting {
		err := tryBind(ns, unix.AF_INET, r)
		if err != nil && !errors.Is(err, unix.EADDRINUSE) {
			t.Fatal(err)
		}
		freed = append(freed, err == nil)
	}
	kept := slices.Index(freed, false)
	if !freed[0] || kept < 0 || slices.Contains(freed[kept:], true) {
		t.Errorf("resting ports %v, reservation given up: %v; want the longest-resting first, the newest kept", resting, freed)
	}
	if n, why := a.Unreserved(); n != 0 {
		t.Errorf("%d ports unreserved (%v), want none: a resting port's descriptor was there to take", n, why)
	}

	// Nothing rests any more: allocate with no descriptor at all.
	for _, r := range resting {
		a.Release(r)
	}
	q, err := allocate()
	if err != nil {
		t.Fatalf("Allocate with no descriptor and nothing resting: %v, want a port all the same", err)
	}
	if n, why := a.Unreserved(); n != 1 || !errors.Is(why, errNoDescriptor) {
		t.Errorf("Unreserved: got %d, %v; want 1, out of file descriptors", n, why)
	}
	a.Release(q)
}

// takeEveryDescriptor opens /dev/null on every free descriptor number
// below the highest one open, and returns those and the limit that leaves
// no number free: with it as RLIMIT_NOFILE, making a descriptor fails with
// EMFILE until one is closed.
func takeEveryDescriptor(t *testing.T) (fillers []int, limit int) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	highest := 0
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			highest = max(highest, n)
		}
	}
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if fd > highest {
			unix.Close(fd)
			return fillers, fd
		}
		fillers = append(fillers, fd)
	}
}

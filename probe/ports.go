package probe

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// portScanTTL is how long a scan of the local TCP sockets is trusted. The
// runner allocates hundreds of ports a second; a socket that appears outside
// ip_local_port_range within this time had to bind its port explicitly,
// which is rare.
const portScanTTL = time.Second

// lowestSourcePort is the lowest port Allocate hands out: below it lie the
// well-known ports of local services.
const lowestSourcePort = 1024

// randomPortTries is how many random picks Allocate makes before it walks
// the range: random picks keep concurrent synprobe runs apart, the walk
// guarantees a free port is found when one exists.
const randomPortTries = 16

// PortAllocator hands out TCP source ports for probe connections.
//
// The ports lie outside the namespace's ip_local_port_range, so the local
// kernel never picks them for its own connections: above the range if there
// is room, else below it, never below 1024. Ports that a local TCP socket
// uses (any state) and ports already handed out are skipped. The choice is
// random, so that concurrent synprobe runs rarely collide.
//
// A PortAllocator is safe for concurrent use. The namespace descriptor it was
// made with must stay open while it is used.
type PortAllocator struct {
	netns  int
	lo, hi uint16

	mu        sync.Mutex
	allocated portSet
	inUse     portSet // from the last scan
	scanned   time.Time
}

// portSet is a set of TCP ports.
type portSet [65536 / 64]uint64

func (s *portSet) has(p uint16) bool { return s[p/64]&(1<<(p%64)) != 0 }
func (s *portSet) add(p uint16)      { s[p/64] |= 1 << (p % 64) }
func (s *portSet) remove(p uint16)   { s[p/64] &^= 1 << (p % 64) }

// NewPortAllocator reads ip_local_port_range in the network namespace netns
// (an open namespace descriptor; 0 is the current namespace) and scans the
// namespace's TCP sockets.
func NewPortAllocator(netns int) (*PortAllocator, error) {
	ephLo, ephHi, err := readLocalPortRange(netns)
	if err != nil {
		return nil, fmt.Errorf("new source port allocator: %w", err)
	}
	lo, hi, err := sourcePortRange(ephLo, ephHi)
	if err != nil {
		return nil, fmt.Errorf("new source port allocator: %w", err)
	}
	a := &PortAllocator{netns: netns, lo: lo, hi: hi}
	if err := a.scanLocked(); err != nil {
		return nil, fmt.Errorf("new source port allocator: %w", err)
	}
	return a, nil
}

// sourcePortRange is the block of ports outside the ephemeral range
// ephLo-ephHi that Allocate chooses from.
func sourcePortRange(ephLo, ephHi uint16) (lo, hi uint16, err error) {
	if ephLo > ephHi {
		return 0, 0, fmt.Errorf("ip_local_port_range %d-%d: low end above high end", ephLo, ephHi)
	}
	if ephHi < 65535 {
		return max(ephHi+1, lowestSourcePort), 65535, nil
	}
	if ephLo > lowestSourcePort {
		return lowestSourcePort, ephLo - 1, nil
	}
	return 0, 0, fmt.Errorf("ip_local_port_range %d-%d leaves no source port outside it above %d", ephLo, ephHi, lowestSourcePort-1)
}

// Range is the block of ports Allocate chooses from, inclusive.
func (a *PortAllocator) Range() (lo, hi uint16) { return a.lo, a.hi }

// Allocate returns a free source port chosen at random. Release it when the
// probe connection is done.
func (a *PortAllocator) Allocate() (uint16, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if time.Since(a.scanned) > portScanTTL {
		if err := a.scanLocked(); err != nil {
			return 0, fmt.Errorf("allocate source port: %w", err)
		}
	}
	n := int(a.hi) - int(a.lo) + 1
	for range randomPortTries {
		if p := a.lo + uint16(rand.IntN(n)); a.freeLocked(p) {
			a.allocated.add(p)
			return p, nil
		}
	}
	start := rand.IntN(n)
	for i := range n {
		if p := a.lo + uint16((start+i)%n); a.freeLocked(p) {
			a.allocated.add(p)
			return p, nil
		}
	}
	return 0, fmt.Errorf("allocate source port: all %d ports in %d-%d are taken: %w", n, a.lo, a.hi, ErrNoFreePort)
}

// ErrNoFreePort is returned by Allocate when every port of the range is taken.
var ErrNoFreePort = errors.New("no free source port")

// ErrPortInUse is returned by Reserve for a port that is already taken.
var ErrPortInUse = errors.New("port in use")

// Reserve claims port, chosen by the user (--source-port), which may lie
// anywhere. It fails if a local TCP socket uses the port or it is already
// allocated; the socket scan is fresh, not cached.
func (a *PortAllocator) Reserve(port uint16) error {
	if port == 0 {
		return errors.New("reserve source port 0: port 0 is not a source port")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.allocated.has(port) {
		return fmt.Errorf("reserve source port %d: %w by this synprobe", port, ErrPortInUse)
	}
	if err := a.scanLocked(); err != nil {
		return fmt.Errorf("reserve source port %d: %w", port, err)
	}
	if a.inUse.has(port) {
		return fmt.Errorf("reserve source port %d: %w by a local TCP socket", port, ErrPortInUse)
	}
	a.allocated.add(port)
	return nil
}

// Release returns port for reuse. Releasing a port that is not allocated
// does nothing.
func (a *PortAllocator) Release(port uint16) {
	a.mu.Lock()
	a.allocated.remove(port)
	a.mu.Unlock()
}

func (a *PortAllocator) freeLocked(p uint16) bool {
	return !a.allocated.has(p) && !a.inUse.has(p)
}

func (a *PortAllocator) scanLocked() error {
	var s portSet
	if err := scanLocalTCPPorts(a.netns, &s); err != nil {
		return err
	}
	a.inUse = s
	a.scanned = time.Now()
	return nil
}

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
// uses (any state) and ports already handed out are skipped.
//
// Each port is reserved across processes while synprobe has it: the
// allocator binds a TCP socket to it in the namespace (neither listening nor
// connected, so the kernel answers segments to the port as before) and keeps
// that socket open while the port is in use and while it rests (Rest) until
// Release. Another synprobe process, or anything else, then cannot bind the
// port, and a port some other socket has bound is skipped. Should the
// process run out of file descriptors, the reservation of the port that has
// rested longest is given up first; a port is never refused for want of a
// descriptor, only handed out unreserved (see Unreserved).
//
// A PortAllocator is safe for concurrent use. The namespace descriptor it was
// made with must stay open while it is used. Close it to give up every
// reservation.
type PortAllocator struct {
	netns  int
	lo, hi uint16

	mu        sync.Mutex
	allocated portSet
	// inUse holds the ports of local TCP sockets from the last scan, and
	// the ports found bound by another socket since.
	inUse   portSet
	scanned time.Time
	// holds are the sockets that reserve allocated ports, by port.
	holds map[uint16]portHold
	// spare are unbound sockets made in the namespace, ready to bind
	// (making them takes a switch of namespace, so they come in batches);
	// family is theirs, 0 until the first is made.
	spare  []int
	family int
	// unreserved counts ports handed out without a reservation, and
	// unreservedErr says why the last one was.
	unreserved    uint64
	unreservedErr error
	closed        bool
}

// portHold is the socket that reserves a port.
type portHold struct {
	fd int
	// resting is when the port started resting; zero while it is in use.
	resting time.Time
}

// spareSockets is how many unbound sockets the allocator makes at a time.
const spareSockets = 16

// Errors of the socket functions (ports_linux.go).
var (
	// errPortHeld: another socket has the port bound.
	errPortHeld = errors.New("port held by another socket")
	// errNoDescriptor: the process or the system is out of file
	// descriptors (EMFILE, ENFILE).
	errNoDescriptor = errors.New("out of file descriptors")
)

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
	a := &PortAllocator{netns: netns, lo: lo, hi: hi, holds: map[uint16]portHold{}}
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

// Allocate returns a free source port chosen at random, reserved across
// processes. Rest it when the probe connection is done, and Release it when
// it has rested.
func (a *PortAllocator) Allocate() (uint16, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return 0, errors.New("allocate source port: allocator closed")
	}
	if time.Since(a.scanned) > portScanTTL {
		if err := a.scanLocked(); err != nil {
			return 0, fmt.Errorf("allocate source port: %w", err)
		}
	}
	n := int(a.hi) - int(a.lo) + 1
	for range randomPortTries {
		if p := a.lo + uint16(rand.IntN(n)); a.tryLocked(p) {
			return p, nil
		}
	}
	start := rand.IntN(n)
	for i := range n {
		if p := a.lo + uint16((start+i)%n); a.tryLocked(p) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("allocate source port: all %d ports in %d-%d are taken: %w", n, a.lo, a.hi, ErrNoFreePort)
}

// tryLocked allocates p if it is free and no other socket holds it.
func (a *PortAllocator) tryLocked(p uint16) bool {
	if !a.freeLocked(p) {
		return false
	}
	if err := a.holdLocked(p); err != nil {
		a.inUse.add(p) // until the next scan: no bind is tried again before
		return false
	}
	a.allocated.add(p)
	return true
}

// ErrNoFreePort is returned by Allocate when every port of the range is taken.
var ErrNoFreePort = errors.New("no free source port")

// ErrPortInUse is returned by Reserve for a port that is already taken.
var ErrPortInUse = errors.New("port in use")

// Reserve claims port, chosen by the user (--source-port), which may lie
// anywhere, and reserves it across processes as Allocate does. It fails if
// a local TCP socket uses the port, another socket has it bound, or it is
// already allocated; the socket scan is fresh, not cached.
func (a *PortAllocator) Reserve(port uint16) error {
	if port == 0 {
		return errors.New("reserve source port 0: port 0 is not a source port")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return fmt.Errorf("reserve source port %d: allocator closed", port)
	}
	if a.allocated.has(port) {
		return fmt.Errorf("reserve source port %d: %w by this synprobe", port, ErrPortInUse)
	}
	if err := a.scanLocked(); err != nil {
		return fmt.Errorf("reserve source port %d: %w", port, err)
	}
	if a.inUse.has(port) {
		return fmt.Errorf("reserve source port %d: %w by a local TCP socket", port, ErrPortInUse)
	}
	if err := a.holdLocked(port); err != nil {
		return fmt.Errorf("reserve source port %d: %w: %w", port, ErrPortInUse, err)
	}
	a.allocated.add(port)
	return nil
}

// Rest marks port as resting: no longer used by a connection, but not yet
// handed back (the prober's quarantine). It stays reserved until Release;
// a resting port's reservation is the first given up when the process runs
// out of file descriptors, the longest-resting first.
func (a *PortAllocator) Rest(port uint16) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if h, ok := a.holds[port]; ok && h.resting.IsZero() {
		h.resting = time.Now()
		a.holds[port] = h
	}
}

// Release returns port for reuse and gives up its reservation. Releasing a
// port that is not allocated does nothing.
func (a *PortAllocator) Release(port uint16) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.allocated.remove(port)
	if h, ok := a.holds[port]; ok {
		closePortSocket(h.fd)
		delete(a.holds, port)
	}
}

// Unreserved reports how many ports were handed out without a reservation
// across processes, and why the last one was (nil if none was).
func (a *PortAllocator) Unreserved() (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.unreserved, a.unreservedErr
}

// Close gives up every reservation. The allocator hands out no port after.
func (a *PortAllocator) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	for p, h := range a.holds {
		closePortSocket(h.fd)
		delete(a.holds, p)
	}
	for _, fd := range a.spare {
		closePortSocket(fd)
	}
	a.spare = nil
	return nil
}

// holdLocked binds a socket to port. It fails only when another socket
// holds the port (errPortHeld); when no socket can be had or bound for any
// other reason, the port goes unreserved rather than refused.
func (a *PortAllocator) holdLocked(port uint16) error {
	for {
		fd, err := a.spareLocked()
		if err == nil {
			err = bindPortSocket(fd, a.family, port)
			if err == nil {
				a.holds[port] = portHold{fd: fd}
				return nil
			}
			if errors.Is(err, errPortHeld) {
				a.spare = append(a.spare, fd) // still unbound
				return err
			}
			closePortSocket(fd)
		}
		if errors.Is(err, errNoDescriptor) && a.dropLongestRestingLocked() {
			continue
		}
		a.unreserved++
		a.unreservedErr = err
		return nil
	}
}

// spareLocked returns an unbound socket, making a batch when none is left.
func (a *PortAllocator) spareLocked() (int, error) {
	if len(a.spare) == 0 {
		fds, family, err := newPortSockets(a.netns, a.family, spareSockets)
		if len(fds) == 0 {
			return -1, err
		}
		a.spare, a.family = fds, family
	}
	fd := a.spare[len(a.spare)-1]
	a.spare = a.spare[:len(a.spare)-1]
	return fd, nil
}

// dropLongestRestingLocked closes the socket of the port that has rested
// longest, to free a file descriptor; the port stays allocated until it is
// released, unreserved. It reports whether there was one.
func (a *PortAllocator) dropLongestRestingLocked() bool {
	var oldest uint16
	var since time.Time
	for p, h := range a.holds {
		if !h.resting.IsZero() && (since.IsZero() || h.resting.Before(since)) {
			oldest, since = p, h.resting
		}
	}
	if since.IsZero() {
		return false
	}
	closePortSocket(a.holds[oldest].fd)
	delete(a.holds, oldest)
	return true
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

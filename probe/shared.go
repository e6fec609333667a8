package probe

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Shared is what the probers of one run over many targets share, per
// network namespace: the source ports with their reservations, one RST
// guard, and the next hops' link-layer addresses. Without it every Dial
// makes its own: a port allocator that knows nothing of the others' ports,
// an nftables table, a neighbour resolution; a run of thousands of targets
// then spends its time binding ports the others hold, fills the
// namespace with tables, and asks the same gateway for its MAC again and
// again (and now and then concurrent resolutions of one neighbour entry
// step on each other).
//
// A source port is shared by the probers of different target hosts: the
// quarantine that keeps a new connection from meeting an old one is of a
// 4-tuple, and the 4-tuples of two hosts never meet. The guard drops the
// local kernel's RSTs by target host and port, so that a target whose
// prober has closed is answered by the kernel again, while the port serves
// another target. Ports and guard stay the run's until Close.
//
// Give it to Dial in DialConfig.Shared; close it after every Prober made
// with it. It is safe for concurrent use.
type Shared struct {
	mu     sync.Mutex
	states map[nsID]*sharedNS
	closed bool
}

// NewShared returns an empty Shared: what it holds is made by the first
// Dial that needs it.
func NewShared() *Shared { return &Shared{states: map[nsID]*sharedNS{}} }

// neighborTTL is how long a next hop's MAC, once resolved, is used without
// asking the neighbour table again.
const neighborTTL = 30 * time.Second

// sharedNS is what a Shared holds for one network namespace.
type sharedNS struct {
	fd int // the namespace, open while the allocator uses it

	mu       sync.Mutex
	ports    *PortAllocator
	portsErr error
	// users are the target hosts of the probers using each port the run
	// holds, one entry per prober; a port with none is idle, held for the
	// next prober. Two probers of one host never share a port: their
	// 4-tuples could meet, and their guards would undo each other's.
	users map[uint16][]netip.Addr
	// guard is installed by the first Dial that wants one; guardErr is
	// why it could not be, for every Dial after.
	guard     *Guard
	guardErr  error
	guardDone bool

	neighbors neighborCache
}

// state returns the shared state of the namespace netns (0: this
// process's), made on first use.
func (s *Shared) state(netns int) (*sharedNS, error) {
	id, err := namespaceID(netns)
	if err != nil {
		return nil, fmt.Errorf("shared probing state: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("shared probing state: closed")
	}
	if st, ok := s.states[id]; ok {
		return st, nil
	}
	fd, err := dupNamespace(netns)
	if err != nil {
		return nil, fmt.Errorf("shared probing state: %w", err)
	}
	st := &sharedNS{fd: fd, users: map[uint16][]netip.Addr{}}
	st.neighbors.m = map[neighborKey]*neighborEntry{}
	s.states[id] = st
	return st, nil
}

// Close removes the guards and gives up the ports' reservations. Close
// the probers first.
func (s *Shared) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, st := range s.states {
		st.mu.Lock()
		if st.guard != nil {
			errs = append(errs, st.guard.Close())
		}
		if st.ports != nil {
			errs = append(errs, st.ports.Close())
		}
		st.mu.Unlock()
		closeNamespace(st.fd)
	}
	s.states = nil
	return errors.Join(errs...)
}

// portSource returns a PortSource for one prober of the host remote,
// drawing on the run's ports.
func (st *sharedNS) portSource(remote netip.Addr) (*sharedPorts, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ports == nil && st.portsErr == nil {
		st.ports, st.portsErr = NewPortAllocator(st.fd)
	}
	if st.portsErr != nil {
		return nil, st.portsErr
	}
	return &sharedPorts{st: st, remote: remote, mine: map[uint16]struct{}{}}, nil
}

// installGuard returns the run's guard, installing it on first use.
func (st *sharedNS) installGuard() (*Guard, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.guardDone {
		st.guard, st.guardErr = InstallGuard(st.fd)
		st.guardDone = true
	}
	return st.guard, st.guardErr
}

// sharedPorts is one prober's view of the run's ports: it hands out a
// port no prober of the same host uses, and gives back to the run what the
// prober used when it closes.
type sharedPorts struct {
	st     *sharedNS
	remote netip.Addr

	mu   sync.Mutex
	mine map[uint16]struct{}
}

// Allocate hands out a port the run already holds that no prober of the
// same host uses, else a new one.
func (v *sharedPorts) Allocate() (uint16, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	st := v.st
	st.mu.Lock()
	for p, hosts := range st.users {
		if !slices.Contains(hosts, v.remote) {
			st.users[p] = append(hosts, v.remote)
			st.mu.Unlock()
			v.mine[p] = struct{}{}
			return p, nil
		}
	}
	st.mu.Unlock()
	p, err := st.ports.Allocate()
	if err != nil {
		return 0, err
	}
	st.mu.Lock()
	st.users[p] = append(st.users[p], v.remote)
	st.mu.Unlock()
	v.mine[p] = struct{}{}
	return p, nil
}

// Reserve claims port for this prober: shared if the run holds it already,
// else reserved as PortAllocator.Reserve does.
func (v *sharedPorts) Reserve(port uint16) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, used := v.mine[port]; used {
		return fmt.Errorf("reserve source port %d: %w by this prober", port, ErrPortInUse)
	}
	st := v.st
	st.mu.Lock()
	if hosts, held := st.users[port]; held {
		if slices.Contains(hosts, v.remote) {
			st.mu.Unlock()
			return fmt.Errorf("reserve source port %d: %w by another prober of %v", port, ErrPortInUse, v.remote)
		}
		st.users[port] = append(hosts, v.remote)
		st.mu.Unlock()
		v.mine[port] = struct{}{}
		return nil
	}
	st.mu.Unlock()
	if err := st.ports.Reserve(port); err != nil {
		return err
	}
	st.mu.Lock()
	st.users[port] = append(st.users[port], v.remote)
	st.mu.Unlock()
	v.mine[port] = struct{}{}
	return nil
}

// Release gives port back to the run, which keeps it for the next prober.
func (v *sharedPorts) Release(port uint16) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.releaseLocked(port)
}

func (v *sharedPorts) releaseLocked(port uint16) {
	if _, used := v.mine[port]; !used {
		return
	}
	delete(v.mine, port)
	v.st.mu.Lock()
	hosts := v.st.users[port]
	if i := slices.Index(hosts, v.remote); i >= 0 {
		v.st.users[port] = slices.Delete(hosts, i, i+1)
	}
	v.st.mu.Unlock()
}

// Unreserved is the run's allocator's (see PortAllocator.Unreserved).
func (v *sharedPorts) Unreserved() (uint64, error) { return v.st.ports.Unreserved() }

// Close releases every port the prober still has.
func (v *sharedPorts) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	for p := range v.mine {
		v.releaseLocked(p)
	}
	return nil
}

// flowGuard is one prober's view of the run's guard: it protects the
// prober's ports for its target host only, and lets the kernel answer
// that host again when the prober closes.
type flowGuard struct {
	g      *Guard
	remote netip.Addr

	mu        sync.Mutex
	protected map[uint16]time.Time // until when
}

// Protect protects port for the prober's target host; a port protected
// for long enough already is not asked again.
func (f *flowGuard) Protect(port uint16, ttl time.Duration) error {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if until, ok := f.protected[port]; ok && until.Sub(now) > ttl/2 {
		return nil
	}
	if err := f.g.ProtectFlow(f.remote, port, ttl); err != nil {
		return err
	}
	f.protected[port] = now.Add(ttl)
	return nil
}

// Close lets the kernel's RSTs to the target host through again on every
// port the prober protected.
func (f *flowGuard) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	ports := make([]uint16, 0, len(f.protected))
	for p := range f.protected {
		ports = append(ports, p)
	}
	f.protected = nil
	if err := f.g.UnprotectFlows(f.remote, ports); err != nil && !errors.Is(err, ErrGuardClosed) {
		return err
	}
	return nil
}

// neighborKey is a next hop on an interface.
type neighborKey struct {
	ifindex int
	ip      netip.Addr
}

// neighborCache resolves each next hop once for all the targets behind
// it; concurrent resolutions of one wait for the first.
type neighborCache struct {
	mu sync.Mutex
	m  map[neighborKey]*neighborEntry
}

type neighborEntry struct {
	done chan struct{} // closed when mac and err are set
	mac  MAC
	err  error
	at   time.Time
}

// resolve returns the MAC of k, from the cache while it is fresh, else by
// resolve (one call at a time per key; a failure is not kept).
func (c *neighborCache) resolve(ctx context.Context, k neighborKey, resolve func() (MAC, error)) (MAC, error) {
	c.mu.Lock()
	e, ok := c.m[k]
	if ok {
		select {
		case <-e.done:
			if e.err != nil || time.Since(e.at) > neighborTTL {
				ok = false
			}
		default:
		}
	}
	if ok {
		c.mu.Unlock()
		select {
		case <-e.done:
			return e.mac, e.err
		case <-ctx.Done():
			return MAC{}, context.Cause(ctx)
		}
	}
	e = &neighborEntry{done: make(chan struct{})}
	c.m[k] = e
	c.mu.Unlock()
	e.mac, e.err = resolve()
	e.at = time.Now()
	close(e.done)
	return e.mac, e.err
}

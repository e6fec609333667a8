package probe

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// ErrGuardUnavailable means no RST guard could be installed (no
// CAP_NET_ADMIN, no nf_tables, not Linux). The error returned by InstallGuard
// wraps both it and the cause. A caller that gets it can still probe, but
// must watch for RSTs the local kernel sends and mark the results as
// disturbed by the local host.
var ErrGuardUnavailable = errors.New("RST guard unavailable")

// ErrGuardClosed is returned by Protect and Unprotect after Close.
var ErrGuardClosed = errors.New("RST guard closed")

// Guard drops the local kernel's outgoing TCP RSTs from synprobe's source
// ports.
//
// synprobe sends its SYNs from a packet socket, so when the SYN-ACK comes back
// the local kernel knows no socket for it and answers with a RST that would
// tear down the connection under test. The guard is an nftables table of the
// inet family (IPv4 and IPv6) with a set of protected source ports and one
// rule on the output hook: TCP, RST set, source port in the set: drop. Frames
// synprobe writes itself on a packet socket never pass the output hook, so
// its own crafted RSTs are untouched.
//
// Every element carries a timeout, and the table is owned by the netlink
// socket that made it: the kernel deletes it when that socket closes, so a
// synprobe that crashes leaves nothing behind. Where the kernel refuses
// ownership, InstallGuard deletes the tables of dead synprobe processes
// instead (see Owned).
//
// A Guard is safe for concurrent use. Close may be called any number of
// times, from a defer and from a signal handler at once.
type Guard struct {
	name  string
	owned bool

	mu     sync.Mutex // serialises netlink batches on the one socket
	closed bool
	err    error // the first Close's result
	sys    *guardSys
}

// InstallGuard installs a guard in the network namespace netns (an open
// namespace descriptor; 0 is the current namespace). The descriptor may be
// closed afterwards: the guard's netlink socket lives in the namespace and
// keeps it alive until Close. Errors wrap ErrGuardUnavailable and the cause
// (os.ErrPermission without CAP_NET_ADMIN).
func InstallGuard(netns int) (*Guard, error) {
	return installGuard(netns)
}

// Name is the guard's nftables table name, for messages.
func (g *Guard) Name() string { return g.name }

// Owned reports whether the kernel deletes the guard's table by itself when
// synprobe exits (NFT_TABLE_F_OWNER). When it is false, a table left by a
// crash is deleted by the next InstallGuard in the same namespace.
func (g *Guard) Owned() bool { return g.owned }

// Protect drops the local kernel's RSTs from source port port for ttl from
// now. Protecting a port again restarts its ttl. ttl is rounded up to whole
// milliseconds, the kernel's unit.
func (g *Guard) Protect(port uint16, ttl time.Duration) error {
	if port == 0 {
		return fmt.Errorf("protect source port 0 in %s: port 0 is not a source port", g.name)
	}
	if ttl <= 0 {
		return fmt.Errorf("protect source port %d in %s: ttl %v is not positive", port, g.name, ttl)
	}
	// The kernel counts in milliseconds; truncating would turn a small ttl
	// into none at all.
	ttl = (ttl + time.Millisecond - 1).Truncate(time.Millisecond)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return fmt.Errorf("protect source port %d in %s: %w", port, g.name, ErrGuardClosed)
	}
	if err := g.sys.protect(port, ttl); err != nil {
		return fmt.Errorf("protect source port %d in %s: %w", port, g.name, err)
	}
	return nil
}

// ProtectFlow drops the local kernel's RSTs from source port port to the
// host remote only, for ttl from now: a port shared by the probers of
// several targets (see Shared) is protected for each target while its
// prober lasts, and the kernel answers a target again once its prober is
// gone.
func (g *Guard) ProtectFlow(remote netip.Addr, port uint16, ttl time.Duration) error {
	remote = remote.Unmap().WithZone("")
	if port == 0 || !remote.IsValid() {
		return fmt.Errorf("protect source port %d to %v in %s: want a port and an address", port, remote, g.name)
	}
	if ttl <= 0 {
		return fmt.Errorf("protect source port %d to %v in %s: ttl %v is not positive", port, remote, g.name, ttl)
	}
	ttl = (ttl + time.Millisecond - 1).Truncate(time.Millisecond)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return fmt.Errorf("protect source port %d to %v in %s: %w", port, remote, g.name, ErrGuardClosed)
	}
	if err := g.sys.protectFlow(remote, port, ttl); err != nil {
		return fmt.Errorf("protect source port %d to %v in %s: %w", port, remote, g.name, err)
	}
	return nil
}

// UnprotectFlow undoes ProtectFlow. A pair not protected is not an error.
func (g *Guard) UnprotectFlow(remote netip.Addr, port uint16) error {
	return g.UnprotectFlows(remote, []uint16{port})
}

// UnprotectFlows undoes ProtectFlow for each of ports, in one exchange
// with the kernel. A pair not protected is not an error.
func (g *Guard) UnprotectFlows(remote netip.Addr, ports []uint16) error {
	remote = remote.Unmap().WithZone("")
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return fmt.Errorf("unprotect source ports %v to %v in %s: %w", ports, remote, g.name, ErrGuardClosed)
	}
	if err := g.sys.unprotectFlows(remote, ports); err != nil {
		return fmt.Errorf("unprotect source ports %v to %v in %s: %w", ports, remote, g.name, err)
	}
	return nil
}

// Unprotect lets the kernel's RSTs from port through again. A port that is
// not protected, or whose ttl has run out, is not an error.
func (g *Guard) Unprotect(port uint16) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return fmt.Errorf("unprotect source port %d in %s: %w", port, g.name, ErrGuardClosed)
	}
	if err := g.sys.unprotect(port); err != nil {
		return fmt.Errorf("unprotect source port %d in %s: %w", port, g.name, err)
	}
	return nil
}

// Dropped reports how many RSTs the guard has dropped so far: a count above
// zero shows the guard was needed.
func (g *Guard) Dropped() (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, fmt.Errorf("read drop counter of %s: %w", g.name, ErrGuardClosed)
	}
	n, err := g.sys.dropped()
	if err != nil {
		return 0, fmt.Errorf("read drop counter of %s: %w", g.name, err)
	}
	return n, nil
}

// Close removes the guard's table. Later calls return the first call's
// result; concurrent calls wait for it.
func (g *Guard) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return g.err
	}
	g.closed = true
	if err := g.sys.close(); err != nil {
		g.err = fmt.Errorf("remove RST guard %s: %w", g.name, err)
	}
	return g.err
}

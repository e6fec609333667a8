package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"
)

// DialConfig says how to reach a target.
type DialConfig struct {
	// Interface and Source force the egress interface and source address.
	Interface string
	Source    netip.Addr
	// NetNS is the network namespace to probe from (an fd; 0: the current one).
	NetNS int
	// NeighborTimeout bounds next-hop resolution.
	NeighborTimeout time.Duration
	// Recorder, if set, gets every frame sent and received.
	Recorder Recorder
	// NoGuard skips the RST guard; the local kernel's RSTs are then detected
	// and reported as a disturbance.
	NoGuard bool
	// RecvBuffer is the receive socket's buffer in bytes; 0 is the default
	// (8 MiB). Tests shrink it to make the socket drop.
	RecvBuffer int
	// AnyQuotedPort also captures ICMP errors quoting TCP to the target
	// from any source port (trace: a box may rewrite ports without
	// translating the ICMP back); the prober hands those that match no
	// session to its ICMP watchers (Prober.WatchICMP).
	AnyQuotedPort bool

	// Shared, if set, is the run's state shared with the other targets'
	// probers (ports, guard, next hops; see Shared). The Prober gives back
	// what it used when it closes; Shared outlives it.
	Shared *Shared

	// Link and Path, when Link is set, reach an in-process target: no path
	// resolution, packet socket or guard.
	Link Link
	Path Path
}

// Dial prepares everything needed to probe target: the path (egress
// interface, source address, next-hop MAC), source ports outside the
// kernel's ephemeral range, an AF_PACKET link filtered to synprobe's flows,
// and the RST guard. Close the Prober to undo all of it.
//
// Errors wrap ErrNoRoute, ErrNoInterface, ErrPermission and the other path
// errors, so that callers can tell bad input from an environment that
// prevents the run.
func Dial(ctx context.Context, target netip.Addr, cfg DialConfig) (*Prober, error) {
	if cfg.Link != nil {
		p := NewProber(ProberConfig{Link: cfg.Link, Path: cfg.Path, Recorder: cfg.Recorder})
		p.notes = append(p.notes, "in-process target: no packet socket, no RST guard needed")
		return p, nil
	}
	if cfg.Shared != nil {
		return dialShared(ctx, target, cfg)
	}
	path, err := ResolvePath(ctx, target, PathOptions{Interface: cfg.Interface, Source: cfg.Source, NetNS: cfg.NetNS, Timeout: cfg.NeighborTimeout})
	if err != nil {
		return nil, err
	}
	ports, err := NewPortAllocator(cfg.NetNS)
	if err != nil {
		return nil, fmt.Errorf("choose source ports: %w", err)
	}
	lo, hi := ports.Range()
	link, err := openFlowLink(cfg, target, path, lo, hi)
	if err != nil {
		ports.Close()
		return nil, err
	}
	notes := link.Notes()
	var guard *Guard
	if cfg.NoGuard {
		notes = append(notes, guardOffNote)
	} else if guard, err = InstallGuard(cfg.NetNS); err != nil {
		if !errors.Is(err, ErrGuardUnavailable) {
			link.Close()
			ports.Close()
			return nil, err
		}
		guard = nil
		notes = append(notes, noGuardNote(err))
	} else {
		notes = append(notes, guardNote(guard.Name()))
	}
	pc := ProberConfig{Link: link, Path: path, Ports: ports, Recorder: cfg.Recorder}
	if guard == nil {
		return newDialed(pc, notes, ports), nil
	}
	pc.Guard = guard
	return newDialed(pc, notes, guard, ports), nil
}

// openFlowLink opens the packet socket of a prober: on the path's
// interface, filtered to target and the source ports lo to hi.
func openFlowLink(cfg DialConfig, target netip.Addr, path Path, lo, hi uint16) (*PacketLink, error) {
	return OpenPacketLink(PacketLinkConfig{
		NetNS:      cfg.NetNS,
		Interface:  path.Interface,
		Filter:     FlowFilter{Remote: target, LocalPorts: PortRange{Lo: lo, Hi: hi}, AnyQuotedPort: cfg.AnyQuotedPort},
		RecvBuffer: cfg.RecvBuffer,
	})
}

// newDialed makes the prober Dial returns, with its notes and what closes
// with it: the guard, then the ports in use and resting (their
// reservations end, or they go back to the run).
func newDialed(pc ProberConfig, notes []string, closers ...io.Closer) *Prober {
	p := NewProber(pc)
	p.notes = append(p.notes, notes...)
	p.closers = append(p.closers, closers...)
	return p
}

// dialShared is Dial with the run's Shared state: the path's next hop
// from its cache, ports from its pool, protection from its guard; the
// packet socket is the target's own.
func dialShared(ctx context.Context, target netip.Addr, cfg DialConfig) (*Prober, error) {
	st, err := cfg.Shared.state(cfg.NetNS)
	if err != nil {
		return nil, err
	}
	path, err := ResolvePath(ctx, target, PathOptions{Interface: cfg.Interface, Source: cfg.Source, NetNS: cfg.NetNS, Timeout: cfg.NeighborTimeout, neighbors: &st.neighbors})
	if err != nil {
		return nil, err
	}
	ports, err := st.portSource(target.Unmap().WithZone(""))
	if err != nil {
		return nil, fmt.Errorf("choose source ports: %w", err)
	}
	lo, hi := ports.st.ports.Range()
	link, err := openFlowLink(cfg, target, path, lo, hi)
	if err != nil {
		return nil, err
	}
	notes := link.Notes()
	pc := ProberConfig{Link: link, Path: path, Ports: ports, Recorder: cfg.Recorder}
	var fg *flowGuard
	if cfg.NoGuard {
		notes = append(notes, guardOffNote)
	} else if g, err := st.installGuard(); err != nil {
		if !errors.Is(err, ErrGuardUnavailable) {
			link.Close()
			return nil, err
		}
		notes = append(notes, noGuardNote(err))
	} else {
		fg = &flowGuard{g: g, remote: target.Unmap().WithZone(""), protected: map[uint16]time.Time{}}
		pc.Guard = fg
		notes = append(notes, guardNote(g.Name()))
	}
	if fg == nil {
		return newDialed(pc, notes, ports), nil
	}
	return newDialed(pc, notes, fg, ports), nil
}

// The notes of a prober's RST guard, for Dial and dialShared alike.
const guardOffNote = "RST guard off (--no-guard): the local kernel's RSTs are detected and reported as a disturbance"

func noGuardNote(err error) string {
	return fmt.Sprintf("no RST guard (%v): the local kernel's RSTs are detected and reported as a disturbance", err)
}

func guardNote(table string) string {
	return "RST guard: nftables table " + table + " drops the local kernel's RSTs from synprobe's ports"
}

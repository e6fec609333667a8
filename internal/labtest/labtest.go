// Package labtest starts labs (internal/lab) and probers on them for tests
// and benchmarks, and closes them when the test ends.
package labtest

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"synprobe/internal/lab"
	"synprobe/internal/netns"
	"synprobe/internal/serverlab"
	"synprobe/probe"
)

// setupTimeout bounds starting a lab and dialling it; it is a safety net
// against a hung test, not a measurement.
const setupTimeout = 20 * time.Second

// Start starts a lab running stack, or a faulty gVisor lab when tamper is
// set, that is closed when the test ends. The Linux lab skips the test when
// this process cannot make it (it needs root).
func Start(t testing.TB, stack lab.Stack, tamper *lab.Tamper) *lab.Target {
	t.Helper()
	if stack == lab.StackLinux {
		if ok, why := lab.LinuxAvailable(); !ok {
			t.Skip("linux lab unavailable: " + why)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	var tg *lab.Target
	var err error
	if tamper != nil {
		tg, err = lab.StartFaulty(ctx, *tamper)
	} else {
		tg, err = lab.Start(ctx, stack)
	}
	if err != nil {
		t.Fatalf("start %s lab: %v", stack, err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

// Stacks are the stacks this process can run: gVisor always, Linux when it
// may (as root). It logs why Linux is left out.
func Stacks(t testing.TB) []lab.Stack {
	t.Helper()
	stacks := []lab.Stack{lab.StackGVisor}
	if ok, why := lab.LinuxAvailable(); ok {
		stacks = append(stacks, lab.StackLinux)
	} else {
		t.Logf("linux lab unavailable: testing gvisor only: %s", why)
	}
	return stacks
}

// DialConfig completes cfg so that probe.Dial reaches addr in tg from its
// probe side: the probe namespace for the Linux lab, the in-memory link and
// its static path for the gVisor lab.
func DialConfig(tg *lab.Target, addr netip.Addr, cfg probe.DialConfig) probe.DialConfig {
	cfg.NetNS = tg.Probe.NetNS
	if tg.Probe.Link != nil {
		cfg.Link, cfg.Path = tg.Probe.Link, tg.Probe.Path4
		if addr.Is6() {
			cfg.Path = tg.Probe.Path6
		}
	}
	return cfg
}

// Dial opens a prober from tg's probe side to addr, closed when the test
// ends. A gVisor lab has one in-memory link: open one prober on it, not
// two.
func Dial(t testing.TB, tg *lab.Target, addr netip.Addr, cfg probe.DialConfig) *probe.Prober {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	p, err := probe.Dial(ctx, addr, DialConfig(tg, addr, cfg))
	if err != nil {
		t.Fatalf("dial %v in the %s lab: %v", addr, tg.Stack, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TamperTCP makes a lab.Tamper function from fn, which may change a
// decoded TCP frame and says whether to pass it on. Frames are re-encoded,
// so checksums stay right: the fault is only what fn did. Frames that are
// not TCP pass unchanged.
func TamperTCP(fn func(f *probe.Frame) bool) func([]byte) [][]byte {
	return func(b []byte) [][]byte {
		var f probe.Frame
		if err := f.Decode(b); err != nil || !f.Has(probe.LayerTCP) {
			return [][]byte{b}
		}
		if !fn(&f) {
			return nil
		}
		out, err := f.Encode()
		if err != nil {
			panic(err)
		}
		return [][]byte{out}
	}
}

// DialBed opens a prober from a server bed's probe namespace to addr,
// closed when the test ends (Close it sooner to end it sooner).
func DialBed(t testing.TB, b *serverlab.Bed, addr netip.Addr, cfg probe.DialConfig) *probe.Prober {
	t.Helper()
	ns, err := netns.Open(filepath.Join("/var/run/netns", b.ProbeNS))
	if err != nil {
		t.Fatalf("open the bed's probe namespace: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	cfg.NetNS = ns
	p, err := probe.Dial(ctx, addr, cfg)
	if err != nil {
		netns.Close(ns)
		t.Fatalf("dial %v from the bed's probe namespace: %v", addr, err)
	}
	t.Cleanup(func() {
		p.Close()
		netns.Close(ns)
	})
	return p
}

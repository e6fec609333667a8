package fingerprint

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"synprobe/internal/lab"
	"synprobe/probe"
)

// startLab starts a lab (or a faulty gVisor lab when tamper is set) that is
// closed when the test ends. The Linux lab skips without privileges.
func startLab(t *testing.T, stack lab.Stack, tamper *lab.Tamper) *lab.Target {
	t.Helper()
	if stack == lab.StackLinux {
		if ok, why := lab.LinuxAvailable(); !ok {
			t.Skip("linux lab unavailable: " + why)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
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

// dialLab opens a prober from the lab's probe side to addr, closed when the
// test ends.
func dialLab(t *testing.T, tg *lab.Target, addr netip.Addr, cfg probe.DialConfig) *probe.Prober {
	t.Helper()
	cfg.NetNS = tg.Probe.NetNS
	if tg.Probe.Link != nil {
		cfg.Link, cfg.Path = tg.Probe.Link, tg.Probe.Path4
		if addr.Is6() {
			cfg.Path = tg.Probe.Path6
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := probe.Dial(ctx, addr, cfg)
	if err != nil {
		t.Fatalf("dial %v in the %s lab: %v", addr, tg.Stack, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// tamperTCP makes a Tamper function from fn, which may change a decoded
// TCP frame and says whether to pass it on. Frames are re-encoded, so
// checksums stay right: the fault is only what fn did.
func tamperTCP(fn func(f *probe.Frame) bool) func([]byte) [][]byte {
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

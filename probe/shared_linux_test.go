package probe

import (
	"context"
	"net/netip"
	"testing"
)

// TestSharedAcrossTargets: the probers of one Shared share the guard (one
// table), hand a port one host's prober uses to another host's, never to
// another prober of the same host, and give the kernel back a host whose
// prober closed while the port still serves the other host.
func TestSharedAcrossTargets(t *testing.T) {
	p := newVethPair(t)
	tg4, tg6 := newTarget(t, p, false), newTarget(t, p, true)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	s := NewShared()
	t.Cleanup(func() { s.Close() })
	dial := func(target netip.Addr) *Prober {
		t.Helper()
		pr, err := Dial(ctx, target, DialConfig{NetNS: p.probeNS, Shared: s})
		if err != nil {
			t.Fatalf("Dial %v with a Shared: %v", target, err)
		}
		t.Cleanup(func() { pr.Close() })
		return pr
	}
	open := func(pr *Prober, remote netip.Addr) *Session {
		t.Helper()
		ss, err := pr.Open(SessionConfig{Remote: netip.AddrPortFrom(remote, 80)})
		if err != nil {
			t.Fatalf("Open to %v: %v", remote, err)
		}
		return ss
	}
	a, b, a2 := dial(p.target4), dial(p.target6), dial(p.target4)
	sa := open(a, p.target4)
	port := sa.Local().Port()
	if sb := open(b, p.target6); sb.Local().Port() != port {
		t.Errorf("prober of %v got port %d; want %d, the run's port that %v's prober uses", p.target6, sb.Local().Port(), port, p.target4)
	}
	if sa2 := open(a2, p.target4); sa2.Local().Port() == port {
		t.Errorf("second prober of %v got port %d, the first one's; want another", p.target4, port)
	}
	if tables := guardTables(t, p.probeNS); len(tables) != 1 {
		t.Errorf("%d guard tables in the namespace, want the run's one", len(tables))
	}
	st, err := s.state(p.probeNS)
	if err != nil {
		t.Fatal(err)
	}
	const marker = 61999 // a port no prober uses: the kernel answers it
	tg4.expectDropped(st.guard, port, marker)
	tg6.expectDropped(st.guard, port, marker)

	sa.Close()
	a.Close()
	tg4.expectRST(port, "after the prober of the host closed")
	tg6.expectDropped(st.guard, port, marker)

	b.Close()
	a2.Close()
	if err := s.Close(); err != nil {
		t.Fatalf("Shared.Close: %v", err)
	}
	if tables := guardTables(t, p.probeNS); len(tables) != 0 {
		t.Errorf("after Close: %d guard tables, want none", len(tables))
	}
	if _, err := Dial(ctx, p.target4, DialConfig{NetNS: p.probeNS, Shared: s}); err == nil {
		t.Errorf("Dial with a closed Shared: no error, want one")
	}
}

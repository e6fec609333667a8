package sockdiag

import (
	"net/netip"
	"testing"
)

func TestLeftovers(t *testing.T) {
	probe := netip.MustParseAddr("10.0.0.1")
	other := netip.MustParseAddr("10.0.0.9")
	at := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), port) }
	from := func(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }
	conns := []Conn{
		{State: "ESTAB", Local: at(80), Peer: from(probe, 61002)},
		{State: "TIME-WAIT", Local: at(80), Peer: from(probe, 61003)},
		{State: "LISTEN", Local: at(80)},
		{State: "SYN-RECV", Local: at(80), Peer: from(probe, 61001)},
		{State: "FIN-WAIT-2", Local: at(80), Peer: from(other, 61004)},
	}
	got := Leftovers(conns, probe)
	want := []Conn{conns[3], conns[0]}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Leftovers: got\n%swant\n%s", Format(got), Format(want))
	}
	if got := stateName(12); got != "state-12" {
		t.Errorf("stateName(12) = %q, want state-12", got)
	}
}

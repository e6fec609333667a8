package labtest

import (
	"bytes"
	"net/netip"
	"testing"

	"synprobe/internal/lab"
	"synprobe/probe"
)

func TestTamperTCP(t *testing.T) {
	syn := &probe.Frame{
		Ethernet: probe.Ethernet{Dst: lab.TargetMAC, Src: lab.ProbeMAC},
		IP:       probe.IP{Src: lab.ProbeAddr4, Dst: lab.TargetAddr4},
		TCP:      probe.TCP{SrcPort: 61000, DstPort: lab.OpenPort, Seq: 7, Flags: probe.SYN, Window: 1000},
	}
	frame, err := syn.Encode()
	if err != nil {
		t.Fatal(err)
	}
	notTCP := []byte("not a frame at all")

	drop := TamperTCP(func(*probe.Frame) bool { return false })
	if got := drop(frame); got != nil {
		t.Errorf("dropping tamper on a SYN: got %d frames, want none", len(got))
	}
	if got := drop(notTCP); len(got) != 1 || !bytes.Equal(got[0], notTCP) {
		t.Errorf("dropping tamper on a frame that is not TCP: got %q, want it unchanged", got)
	}

	bump := TamperTCP(func(f *probe.Frame) bool { f.TCP.Seq++; return true })
	got := bump(frame)
	if len(got) != 1 {
		t.Fatalf("changing tamper: got %d frames, want 1", len(got))
	}
	var f probe.Frame
	if err := f.Decode(got[0]); err != nil {
		t.Fatalf("decode the tampered frame: %v", err)
	}
	if f.TCP.Seq != 8 || f.Checksum != probe.ChecksumValid {
		t.Errorf("tampered SYN: seq %d, checksum %v; want seq 8 and a valid checksum", f.TCP.Seq, f.Checksum)
	}
}

// TestDialConfig: a gVisor lab is reached over its link, on the path of the
// address's IP version; what else the caller set is kept.
func TestDialConfig(t *testing.T) {
	tg := Start(t, lab.StackGVisor, nil)
	for _, tc := range []struct {
		addr netip.Addr
		want probe.Path
	}{
		{tg.Open.Addr(), tg.Probe.Path4},
		{tg.Open6.Addr(), tg.Probe.Path6},
	} {
		cfg := DialConfig(tg, tc.addr, probe.DialConfig{NoGuard: true})
		if cfg.Link != tg.Probe.Link || cfg.Path != tc.want || cfg.NetNS != 0 || !cfg.NoGuard {
			t.Errorf("DialConfig(%v): got %+v, want the lab's link, path %+v and NoGuard", tc.addr, cfg, tc.want)
		}
	}
}

//go:build linux

package sweep

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"synprobe/internal/scalelab"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces and sends on AF_PACKET")
	}
}

func startLab(t *testing.T, prefix string, open []uint16) *scalelab.Lab {
	t.Helper()
	plan, err := scalelab.NewPlan(netip.MustParsePrefix(prefix), open)
	if err != nil {
		t.Fatalf("NewPlan: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lab, err := scalelab.Start(ctx, plan)
	if err != nil {
		t.Fatalf("scalelab.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("lab.Close: %v", err)
		}
	})
	return lab
}

// TestSweepScaleLab sweeps a /24 of the scale lab over a few ports: every
// (address, port) must come out as the plan says, once.
func TestSweepScaleLab(t *testing.T) {
	needRoot(t)
	lab := startLab(t, "10.200.0.0/24", []uint16{80, 443})
	ports := []uint16{22, 80, 443, 8080}
	var mu sync.Mutex
	got := map[netip.AddrPort]Result{}
	dups := 0
	cfg := Config{
		Targets: []netip.Prefix{lab.Plan.Prefix},
		Ports:   ports,
		Rate:    20000,
		Retries: 2,
		Wait:    300 * time.Millisecond,
		NetNS:   lab.ProbeFD(),
		Emit: func(r Result) {
			mu.Lock()
			defer mu.Unlock()
			k := netip.AddrPortFrom(r.Addr, r.Port)
			if _, ok := got[k]; ok {
				dups++
			}
			got[k] = r
		},
	}
	st, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("stats: %+v", st)
	if want := uint64(256 * len(ports)); st.Total != want || uint64(len(got)) != want || dups != 0 {
		t.Fatalf("results: total %d, distinct %d, duplicates %d; want %d, %d, 0", st.Total, len(got), dups, want, want)
	}
	wrong := 0
	for k, r := range got {
		e := lab.Plan.Expect(k.Addr(), k.Port())
		ok := string(r.State) == e.State
		if ok && r.State == Filtered {
			ok = r.ICMPType != nil && *r.ICMPType == e.ICMPType && *r.ICMPCode == e.ICMPCode
		}
		if ok && r.State == Open {
			switch e.Behaviour {
			case scalelab.MSS:
				ok = r.MSS != nil && *r.MSS == e.MSS
			case scalelab.Strip:
				ok = r.WScale == nil && r.Options != nil && *r.Options == "M1460,N,N,N,N,N,N,N,N,N,N,N,N,N,N,N,N"
			case scalelab.Host:
				ok = r.MSS != nil && *r.MSS == 1460 && r.WScale != nil
			}
		}
		if !ok {
			wrong++
			if wrong <= 10 {
				t.Errorf("%s (%s block): got %+v, want %+v", k, e.Behaviour, r, e)
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d probes misclassified", wrong, len(got))
	}
	if st.Invalid != 0 {
		t.Errorf("%d replies failed validation, want 0", st.Invalid)
	}
}

// TestSweepOnLink sweeps the target namespace's own address, on the probe
// side's link: it is resolved by ARP, not sent to a gateway.
func TestSweepOnLink(t *testing.T) {
	needRoot(t)
	lab := startLab(t, "10.200.0.0/24", []uint16{80})
	var got []Result
	st, err := Run(context.Background(), Config{
		Targets: []netip.Prefix{netip.PrefixFrom(scalelab.TargetAddr, 32)},
		Ports:   []uint16{80, 81},
		Rate:    1000,
		Retries: 1,
		Wait:    300 * time.Millisecond,
		NetNS:   lab.ProbeFD(),
		Emit:    func(r Result) { got = append(got, r) },
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	states := map[uint16]State{}
	for _, r := range got {
		states[r.Port] = r.State
	}
	if len(got) != 2 || states[80] != Open || states[81] != Closed {
		t.Errorf("results %+v: want port 80 open, 81 closed", got)
	}
	if len(st.Notes) == 0 || !strings.Contains(st.Notes[0], "on the local link") {
		t.Errorf("notes %q: want one saying the targets are on the local link", st.Notes)
	}
}

// TestSweepAttemptNamesTheSYN: the target's kernel drops the first SYN it
// receives (nftables numgen), so the probe is answered on the retry: the
// line says attempt 2, and the stats count it as retried.
func TestSweepAttemptNamesTheSYN(t *testing.T) {
	needRoot(t)
	lab := startLab(t, "10.200.0.0/24", []uint16{80})
	rules := `table inet sweepfirst {
	chain in {
		type filter hook prerouting priority -300;
		tcp flags & (syn | ack) == syn tcp dport 80 numgen inc mod 2 == 0 drop
	}
}`
	cmd := exec.Command("ip", "netns", "exec", lab.TargetNS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	target := netip.MustParseAddr("10.200.0.1")
	var got []Result
	st, err := Run(context.Background(), Config{
		Targets: []netip.Prefix{netip.PrefixFrom(target, 32)},
		Ports:   []uint16{80},
		Rate:    1000,
		Retries: 2,
		Wait:    300 * time.Millisecond,
		NetNS:   lab.ProbeFD(),
		Emit:    func(r Result) { got = append(got, r) },
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if e := lab.Plan.Expect(target, 80); e.State != string(Open) {
		t.Fatalf("the plan has %v:80 %s; the test needs an open port", target, e.State)
	}
	if len(got) != 1 || got[0].State != Open || got[0].Attempt != 2 {
		t.Fatalf("results %+v: want one, open, attempt 2 (the first SYN was dropped)", got)
	}
	if st.Retried != 1 || st.Sent != 2 {
		t.Errorf("stats: retried %d, sent %d; want 1 and 2", st.Retried, st.Sent)
	}
}

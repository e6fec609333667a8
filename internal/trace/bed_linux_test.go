package trace

import (
	"context"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"synprobe/internal/pathlab"
	"synprobe/internal/pathlab/pathlabtest"
	"synprobe/internal/sockdiag"
	"synprobe/probe"
)

// startBed starts a path bed (client, r1, r2, server) for t; without root
// or nft, t is skipped with the reason.
func startBed(t testing.TB, cfg pathlab.Config) *pathlab.Bed {
	t.Helper()
	b := pathlabtest.Start(t, cfg)
	return b
}

// traceBed runs one trace from the bed's client namespace.
func traceBed(t testing.TB, b *pathlab.Bed, v6 bool, fams []Family) *Result {
	t.Helper()
	target := b.Target
	if v6 {
		target = b.Target6
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := probe.Dial(ctx, target.Addr(), probe.DialConfig{NetNS: b.NSFD(pathlab.Client), AnyQuotedPort: true})
	if err != nil {
		t.Fatalf("dial %v from the client namespace: %v", target, err)
	}
	defer p.Close()
	r, err := Run(ctx, p, Config{Target: target, ClosedPort: b.ClosedPort, AltPort: b.AltPort, Families: fams, MaxHops: 8, Wait: 500 * time.Millisecond, Rate: 100})
	if err != nil {
		t.Fatalf("trace %v: %v", target, err)
	}
	noLeftovers(t, b, target)
	return r
}

// noLeftovers checks that the trace left no connection of the client's at
// the server's probed ports (TIME-WAIT aside): a half-open one answers the
// next trace that happens on the same source port with an ACK instead of
// a SYN-ACK. The server's kernel has the trace's RSTs within a moment; a
// SYN-ACK it sends again after a second would draw the client kernel's
// RST and hide what the trace left, so the check does not wait for it.
func noLeftovers(t testing.TB, b *pathlab.Bed, target netip.AddrPort) {
	t.Helper()
	var left []sockdiag.Conn
	for wait := time.Now().Add(500 * time.Millisecond); ; time.Sleep(20 * time.Millisecond) {
		conns, err := sockdiag.List(b.NSFD(pathlab.Server))
		if err != nil {
			t.Fatalf("leftovers: %v", err)
		}
		conns = slices.DeleteFunc(conns, func(c sockdiag.Conn) bool {
			p := c.Local.Port()
			return p != target.Port() && p != b.AltPort && p != b.ClosedPort
		})
		if left = sockdiag.Leftovers(conns, pathlab.Client4, pathlab.Client6); len(left) == 0 || time.Now().After(wait) {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("the trace left %d connections at the server:\n%s", len(left), sockdiag.Format(left))
	}
}

func textOf(r *Result) string {
	var sb strings.Builder
	r.WriteText(&sb)
	return sb.String()
}

// TestBedExplore prints what trace says about each box (TRACE_BOXES=a,b
// to choose, TRACE_V6=1 for IPv6); it only runs with TRACE_EXPLORE=1.
func TestBedExplore(t *testing.T) {
	if os.Getenv("TRACE_EXPLORE") == "" {
		t.Skip("set TRACE_EXPLORE=1 to print what trace says about each box")
	}
	v6 := os.Getenv("TRACE_V6") != ""
	b := startBed(t, pathlab.Config{IPv6: v6})
	only := os.Getenv("TRACE_BOXES")
	for _, at := range []pathlab.Position{pathlab.First, pathlab.Last} {
		for _, box := range append([]pathlab.Box{pathlab.BoxNone}, pathlab.Boxes()...) {
			if only != "" && !strings.Contains(","+only+",", ","+string(box)+",") {
				continue
			}
			if box == pathlab.BoxNone && at == pathlab.Last {
				continue
			}
			if err := b.SetBox(box, at); err != nil {
				t.Fatalf("set box %s on %s: %v", box, at, err)
			}
			r := traceBed(t, b, v6, nil)
			t.Logf("=== %s on %s\n%s", box, at, textOf(r))
		}
	}
}

// bedCase is what trace must say about a box on the bed.
type bedCase struct {
	box pathlab.Box
	at  pathlab.Position
	// kinds must all be found; between: where (0, 0: not checked; -1:
	// blind after hop 2).
	kinds         []Kind
	after, atHop  int
	invisible     bool // the box is in the blind segment and shows no symptom
	verdictIsFail bool
}

var bedCases = []bedCase{
	{box: pathlab.BoxMSSClamp, at: pathlab.First, kinds: []Kind{MSSClamp}, after: 1, atHop: 2},
	{box: pathlab.BoxStripTS, at: pathlab.First, kinds: []Kind{OptionStripped.With("ts")}, after: 1, atHop: 2},
	{box: pathlab.BoxStripSACK, at: pathlab.First, kinds: []Kind{OptionStripped.With("sack")}, after: 1, atHop: 2},
	{box: pathlab.BoxStripWS, at: pathlab.First, kinds: []Kind{OptionStripped.With("ws")}, after: 1, atHop: 2},
	{box: pathlab.BoxStripTSData, at: pathlab.First, kinds: []Kind{OptionStripped.With("ts")}, after: 1, atHop: 2, verdictIsFail: true},
	{box: pathlab.BoxNAT, at: pathlab.First, kinds: []Kind{NATLeak}},
	{box: pathlab.BoxECNClear, at: pathlab.First, kinds: []Kind{ECNFlagsCleared, ECNBleached}, after: 1, atHop: 2},
	{box: pathlab.BoxDSCPRewrite, at: pathlab.First, kinds: []Kind{DSCPRewrite}, after: 1, atHop: 2},
	{box: pathlab.BoxProxy, at: pathlab.First, kinds: []Kind{TerminatingProxy}, after: 0, atHop: 1},
	{box: pathlab.BoxSYNProxy, at: pathlab.First, kinds: []Kind{SYNProxy}, after: 0, atHop: 1},
	{box: pathlab.BoxDropSYNData, at: pathlab.First, kinds: []Kind{Drop.With("syndata")}, after: 1, atHop: 2},
	{box: pathlab.BoxDropUnknownOptions, at: pathlab.First, kinds: []Kind{Drop.With("exotic")}, after: 1, atHop: 2},
	// The checksum filter is connection tracking: it also drops a FIN, a
	// segment without flags and a SYN-ACK of no connection (conn's walks).
	{box: pathlab.BoxDropBadSum, at: pathlab.First, kinds: []Kind{Drop.With("badsum"), Drop.With("no-connection")}, after: 1, atHop: 2},
	{box: pathlab.BoxDropOutOfState, at: pathlab.First, kinds: []Kind{Drop.With("out-of-window"), Drop.With("no-connection")}, after: 1, atHop: 2},

	{box: pathlab.BoxMSSClamp, at: pathlab.Last, kinds: []Kind{Unobserved}, after: -1},
	{box: pathlab.BoxStripTS, at: pathlab.Last, kinds: []Kind{Unobserved}, after: -1},
	{box: pathlab.BoxStripSACK, at: pathlab.Last, kinds: []Kind{Unobserved}, after: -1},
	{box: pathlab.BoxStripWS, at: pathlab.Last, kinds: []Kind{Unobserved}, after: -1},
	{box: pathlab.BoxStripTSData, at: pathlab.Last, kinds: []Kind{Unobserved}, after: -1},
	{box: pathlab.BoxNAT, at: pathlab.Last, kinds: []Kind{NATLeak}},
	{box: pathlab.BoxECNClear, at: pathlab.Last, kinds: []Kind{Unobserved}, after: -1},
	{box: pathlab.BoxDSCPRewrite, at: pathlab.Last, invisible: true},
	{box: pathlab.BoxProxy, at: pathlab.Last, kinds: []Kind{TerminatingProxy}, after: 1, atHop: 2},
	{box: pathlab.BoxSYNProxy, at: pathlab.Last, kinds: []Kind{SYNProxy}, after: 1, atHop: 2},
	{box: pathlab.BoxDropSYNData, at: pathlab.Last, kinds: []Kind{Drop.With("syndata")}, after: -1},
	{box: pathlab.BoxDropUnknownOptions, at: pathlab.Last, kinds: []Kind{Drop.With("exotic")}, after: -1},
	{box: pathlab.BoxDropBadSum, at: pathlab.Last, kinds: []Kind{Drop.With("no-connection")}, after: -1},
	{box: pathlab.BoxDropOutOfState, at: pathlab.Last, kinds: []Kind{Drop.With("out-of-window"), Drop.With("no-connection")}, after: -1},
}

// TestTraceBed traces the bed with no box (pass, three hops), then with
// each box on the first router (the right finding between hop 1 and hop
// 2) and on the last (named, or unobserved with a symptom, or, for the
// boxes nothing at the target shows, pass with the blind segment in the
// coverage). One bed; the boxes are switched.
func TestTraceBed(t *testing.T) {
	b := startBed(t, pathlab.Config{})
	t.Run("none", func(t *testing.T) {
		r := traceBed(t, b, false, nil)
		if r.Verdict != "pass" || len(r.Findings) > 0 {
			t.Errorf("no box: got verdict %s with %+v, want pass\n%s", r.Verdict, r.Findings, textOf(r))
		}
		syn := r.Probes[0]
		if syn.Family != FamilySYN || syn.Destination == nil || syn.Destination.Hop != len(b.Hops) {
			t.Fatalf("no box: got destination %+v of %s, want the target at hop %d\n%s", syn.Destination, syn.Family, len(b.Hops), textOf(r))
		}
		for i, h := range syn.Hops {
			if h.From != b.Hops[i] {
				t.Errorf("hop %d: got %v, want %v", h.TTL, h.From, b.Hops[i])
			}
			if i < len(b.Hops)-1 && (h.Quote == nil || h.Quote.Class != "full") {
				t.Errorf("hop %d: got quote %+v, want a full quote", h.TTL, h.Quote)
			}
		}
	})
	for _, c := range bedCases {
		t.Run(string(c.box)+"/"+c.at.String(), func(t *testing.T) {
			if err := b.SetBox(c.box, c.at); err != nil {
				t.Fatalf("set box: %v", err)
			}
			r := traceBed(t, b, false, nil)
			checkBedCase(t, b, c, r)
		})
	}
}

func checkBedCase(t *testing.T, b *pathlab.Bed, c bedCase, r *Result) {
	t.Helper()
	if c.invisible {
		if r.Verdict != "pass" {
			t.Errorf("got verdict %s, want pass (the box is blind and shows no symptom)\n%s", r.Verdict, textOf(r))
		}
		blind := false
		for _, l := range r.Coverage {
			blind = blind || strings.Contains(l, "blind")
		}
		if !blind {
			t.Errorf("coverage %q names no blind segment", r.Coverage)
		}
		return
	}
	for _, k := range c.kinds {
		fs := findingsOfKind(r, k)
		if len(fs) == 0 {
			t.Errorf("got no %s finding\n%s", k, textOf(r))
			continue
		}
		f := fs[0]
		switch {
		case c.after < 0:
			if !f.Where.Blind || f.Where.AfterHop != len(b.Hops)-1 {
				t.Errorf("%s: got where %+v, want blind after hop %d", k, f.Where, len(b.Hops)-1)
			}
		case c.after > 0 || c.atHop > 0:
			if f.Where.Blind || f.Where.AfterHop != c.after || f.Where.AtHop != c.atHop {
				t.Errorf("%s: got where %+v, want between hop %d and hop %d", k, f.Where, c.after, c.atHop)
			}
			if c.atHop > 0 && (len(f.Where.Between) != 2 || f.Where.Between[1] != b.Hops[c.atHop-1]) {
				t.Errorf("%s: got between %v, want hop %d's %v second", k, f.Where.Between, c.atHop, b.Hops[c.atHop-1])
			}
		}
	}
	if got := r.Verdict == "fail"; got != c.verdictIsFail {
		t.Errorf("got verdict %s, want fail: %v\n%s", r.Verdict, c.verdictIsFail, textOf(r))
	}
}

func findingsOfKind(r *Result, k Kind) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Kind == k {
			out = append(out, f)
		}
	}
	return out
}

// TestTraceBedIPv6: the same over IPv6 (no IP ID: the hop limit rides in
// the TSval), for the boxes that change what quotes show.
func TestTraceBedIPv6(t *testing.T) {
	b := startBed(t, pathlab.Config{IPv6: true})
	hops := b.Hops6
	b.Hops = hops // checkBedCase reads Hops
	r := traceBed(t, b, true, nil)
	if r.Verdict != "pass" {
		t.Errorf("no box: got verdict %s, want pass\n%s", r.Verdict, textOf(r))
	}
	for _, c := range bedCases {
		switch c.box {
		case pathlab.BoxMSSClamp, pathlab.BoxStripTS, pathlab.BoxECNClear, pathlab.BoxDropSYNData, pathlab.BoxProxy,
			pathlab.BoxNAT, pathlab.BoxStripTSData, pathlab.BoxDropOutOfState:
		default:
			// The bed's SYN proxy does not answer over IPv6 (trace says
			// drop(syn)); the others add nothing IPv6-specific.
			continue
		}
		t.Run(string(c.box)+"/"+c.at.String(), func(t *testing.T) {
			if err := b.SetBox(c.box, c.at); err != nil {
				t.Fatalf("set box: %v", err)
			}
			checkBedCase(t, b, c, traceBed(t, b, true, nil))
		})
	}
}

// TestTraceBedQuick: the quick walk (syn and alt) alone finds the clamp.
func TestTraceBedQuick(t *testing.T) {
	b := startBed(t, pathlab.Config{})
	if err := b.SetBox(pathlab.BoxMSSClamp, pathlab.First); err != nil {
		t.Fatalf("set box: %v", err)
	}
	r := traceBed(t, b, false, QuickFamilies)
	if len(r.Probes) != 2 {
		t.Errorf("got %d probe families, want 2 (syn, alt)", len(r.Probes))
	}
	checkBedCase(t, b, bedCase{box: pathlab.BoxMSSClamp, kinds: []Kind{MSSClamp}, after: 1, atHop: 2}, r)
}

// TestTraceBedNoHost: a target nobody answers (an address of the server's
// network with no host) is walked to the last router that answers and no
// further, and nothing is called a drop (no control was answered).
func TestTraceBedNoHost(t *testing.T) {
	b := startBed(t, pathlab.Config{})
	target := netip.AddrPortFrom(netip.MustParseAddr("10.79.3.99"), 8080)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := probe.Dial(ctx, target.Addr(), probe.DialConfig{NetNS: b.NSFD(pathlab.Client), AnyQuotedPort: true})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer p.Close()
	r, err := Run(ctx, p, Config{Target: target, Families: []Family{FamilySYN, FamilyAlt, FamilyECN}, Wait: 300 * time.Millisecond, Rate: 200})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Findings) != 0 {
		t.Errorf("got findings %+v, want none (no control was answered)\n%s", r.Findings, textOf(r))
	}
	for _, p := range r.Probes {
		if p.Family == FamilyECN && len(p.Hops) > 4 {
			t.Errorf("ecn walked %d hops, want at most 4 (one beyond the last router that answered)\n%s", len(p.Hops), textOf(r))
		}
	}
	if !strings.Contains(strings.Join(r.Coverage, "\n"), "did not answer") {
		t.Errorf("coverage %q does not say the target did not answer", r.Coverage)
	}
}

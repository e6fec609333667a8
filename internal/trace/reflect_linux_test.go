package trace

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"synprobe/internal/pathlab"
	"synprobe/internal/reflector"
	"synprobe/probe"
)

// startReflector runs a reflector in the bed's server namespace that
// records the bed's application port without listening there (the
// application answers), reporting on reportPort to the bed's networks.
func startReflector(t testing.TB, b *pathlab.Bed, target netip.AddrPort, reportPort uint16) Reflector {
	t.Helper()
	srv, err := reflector.Start(reflector.Config{Listen: target, CaptureOnly: true, ReportPort: reportPort,
		Allow: []netip.Prefix{netip.MustParsePrefix("10.79.0.0/16"), netip.MustParsePrefix("fd79::/16")}, NetNS: b.NSFD(pathlab.Server)})
	if err != nil {
		t.Fatalf("start the reflector in the server namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close the reflector: %v", err)
		}
	})
	return NewReflectorClient(srv.Report(), reflector.Client{NetNS: b.NSFD(pathlab.Client), Timeout: 5 * time.Second})
}

func traceReflected(t testing.TB, b *pathlab.Bed, target netip.AddrPort, rf Reflector) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := probe.Dial(ctx, target.Addr(), probe.DialConfig{NetNS: b.NSFD(pathlab.Client), AnyQuotedPort: true})
	if err != nil {
		t.Fatalf("dial %v from the client namespace: %v", target, err)
	}
	defer p.Close()
	r, err := Run(ctx, p, Config{Target: target, ClosedPort: b.ClosedPort, AltPort: b.AltPort, MaxHops: 8, Wait: 500 * time.Millisecond, Rate: 100, Reflector: rf})
	if err != nil {
		t.Fatalf("trace %v: %v", target, err)
	}
	noLeftovers(t, b, target)
	return r
}

// TestTraceReflectorBedExplore prints what trace --reflector says of
// each box on the first router (TRACE_LAST=1: the last, TRACE_V6=1:
// IPv6); it only runs with TRACE_EXPLORE=1.
func TestTraceReflectorBedExplore(t *testing.T) {
	if os.Getenv("TRACE_EXPLORE") == "" {
		t.Skip("set TRACE_EXPLORE=1 to print what trace --reflector says of each box on the first router")
	}
	v6 := os.Getenv("TRACE_V6") != ""
	b := startBed(t, pathlab.Config{IPv6: v6})
	target := b.Target
	if v6 {
		target = b.Target6
	}
	rf := startReflector(t, b, target, 9001)
	at := pathlab.First
	if os.Getenv("TRACE_LAST") != "" {
		at = pathlab.Last
	}
	for _, box := range append([]pathlab.Box{pathlab.BoxNone}, pathlab.Boxes()...) {
		if err := b.SetBox(box, at); err != nil {
			t.Fatal(err)
		}
		t.Logf("=== %s on %s\n%s", box, at, textOf(traceReflected(t, b, target, rf)))
	}
}

// reflectCases: what trace --reflector says of each box on the last
// router, where without a reflector it is blind (unobserved, a blind drop,
// or nothing): the change or drop placed after hop 2, before the target;
// the proxies at hop 2 as before, with what the reflector saw as evidence.
type reflectCase struct {
	box   pathlab.Box
	kinds []Kind
	// evidence must be in the first kind's evidence (proxies).
	evidence string
	fail     bool
}

var reflectCases = []reflectCase{
	{box: pathlab.BoxMSSClamp, kinds: []Kind{MSSClamp}},
	{box: pathlab.BoxStripTS, kinds: []Kind{OptionStripped.With("ts")}},
	{box: pathlab.BoxStripSACK, kinds: []Kind{OptionStripped.With("sack")}},
	{box: pathlab.BoxStripWS, kinds: []Kind{OptionStripped.With("ws")}},
	{box: pathlab.BoxStripTSData, kinds: []Kind{OptionStripped.With("ts")}, fail: true},
	{box: pathlab.BoxNAT, kinds: []Kind{NAT}},
	{box: pathlab.BoxECNClear, kinds: []Kind{ECNFlagsCleared, ECNBleached}},
	{box: pathlab.BoxDSCPRewrite, kinds: []Kind{DSCPRewrite}},
	{box: pathlab.BoxProxy, kinds: []Kind{TerminatingProxy}, evidence: "a connection of its own"},
	{box: pathlab.BoxSYNProxy, kinds: []Kind{SYNProxy}, evidence: "translates the sequence numbers"},
	{box: pathlab.BoxDropSYNData, kinds: []Kind{Drop.With("syndata")}},
	{box: pathlab.BoxDropUnknownOptions, kinds: []Kind{Drop.With("exotic")}},
	{box: pathlab.BoxDropBadSum, kinds: []Kind{Drop.With("badsum")}},
	// The bed's conntrack lets an ACK above SND.NXT through (pathlab's
	// Kernel facts); out-of-window data and the bare ACK are dropped.
	{box: pathlab.BoxDropOutOfState, kinds: []Kind{Drop.With("out-of-window"), Drop.With("no-connection")}},
}

// TestTraceReflectorBed traces the bed with a reflector on the server:
// with no box, a pass with the blind segment and the reverse path
// observed; with each box on the last router, the box named where no
// router quotes (after hop 2, before the target), never "unobserved"; on
// the first router, as the quotes place it, once. One bed and one
// reflector; the boxes are switched.
func TestTraceReflectorBed(t *testing.T) {
	b := startBed(t, pathlab.Config{})
	rf := startReflector(t, b, b.Target, 9001)
	checkReflectLast(t, b, b.Target, rf, reflectCases)
	// A reflector that lost captures: what it did not record is not
	// called a drop; the coverage says why.
	t.Run("lossy", func(t *testing.T) {
		if err := b.SetBox(pathlab.BoxDropSYNData, pathlab.Last); err != nil {
			t.Fatalf("set box: %v", err)
		}
		r := traceReflected(t, b, b.Target, lossy{rf})
		for _, f := range r.Findings {
			if f.Where.Reflector {
				t.Errorf("got %s placed by a reflector that lost captures, want none", f.Kind)
			}
		}
		if cov := strings.Join(r.Coverage, "\n"); !strings.Contains(cov, "lost 3 captures") {
			t.Errorf("coverage does not say the reflector lost captures:\n%s", cov)
		}
	})
	// On the first router the quotes place each box: the reflector adds
	// no second finding of it after the last router (only NAT, which no
	// quote shows, and the proxies' evidence are its own).
	for _, c := range bedCases {
		if c.at != pathlab.First {
			continue
		}
		t.Run(string(c.box)+"/first", func(t *testing.T) {
			if err := b.SetBox(c.box, c.at); err != nil {
				t.Fatalf("set box: %v", err)
			}
			r := traceReflected(t, b, b.Target, rf)
			checkBedCase(t, b, c, r)
			for _, f := range r.Findings {
				if f.Where.Reflector && f.Kind != NAT && f.Kind != TerminatingProxy && f.Kind != SYNProxy {
					t.Errorf("got %s placed by the reflector (%+v), want only the quotes' placement\n%s", f.Kind, f.Where, textOf(r))
				}
			}
		})
	}
}

// checkReflectLast traces target with no box (a pass, the blind segment
// and the reverse path observed), then with each of cases on the last
// router.
func checkReflectLast(t *testing.T, b *pathlab.Bed, target netip.AddrPort, rf Reflector, cases []reflectCase) {
	t.Run("none", func(t *testing.T) {
		if err := b.SetBox(pathlab.BoxNone, pathlab.Last); err != nil {
			t.Fatalf("set box: %v", err)
		}
		r := traceReflected(t, b, target, rf)
		if r.Verdict != "pass" || len(r.Findings) > 0 {
			t.Errorf("no box: got verdict %s with %+v, want pass\n%s", r.Verdict, r.Findings, textOf(r))
		}
		cov := strings.Join(r.Coverage, "\n")
		for _, want := range []string{"blind segment observed by the reflector", "reverse path observed"} {
			if !strings.Contains(cov, want) {
				t.Errorf("coverage does not say %q:\n%s", want, cov)
			}
		}
		if strings.Contains(cov, noReflectorLine) {
			t.Errorf("coverage still says %q", noReflectorLine)
		}
	})
	last := len(b.Hops) - 1
	for _, c := range cases {
		t.Run(string(c.box), func(t *testing.T) {
			if err := b.SetBox(c.box, pathlab.Last); err != nil {
				t.Fatalf("set box: %v", err)
			}
			r := traceReflected(t, b, target, rf)
			for _, k := range c.kinds {
				fs := findingsOfKind(r, k)
				if len(fs) == 0 {
					t.Errorf("got no %s finding\n%s", k, textOf(r))
					continue
				}
				w := fs[0].Where
				switch {
				case k == NAT:
					// No quote shows a NAT: it is placed between this host
					// and the target.
					if w.AfterHop != 0 || w.AtHop != last+1 || !w.Reflector {
						t.Errorf("%s: got where %+v, want after this host, at %d, seen by the reflector", k, w, last+1)
					}
				case k == TerminatingProxy || k == SYNProxy:
					if w.AtHop != last || !w.Reflector || !strings.Contains(strings.Join(fs[0].Evidence, "\n"), c.evidence) {
						t.Errorf("%s: got where %+v, evidence %q; want at hop %d, the reflector's evidence %q", k, w, fs[0].Evidence, last, c.evidence)
					}
				case w.Blind || !w.Reflector || w.AfterHop != last || w.AtHop != last+1:
					t.Errorf("%s: got where %+v, want after hop %d, at %d, seen by the reflector", k, w, last, last+1)
				}
			}
			if fs := findingsOfKind(r, Unobserved); len(fs) > 0 {
				t.Errorf("got unobserved %+v, want the box named\n%s", fs, textOf(r))
			}
			if got := r.Verdict == "fail"; got != c.fail {
				t.Errorf("got verdict %s, want fail: %v\n%s", r.Verdict, c.fail, textOf(r))
			}
			if t.Failed() || testing.Verbose() {
				t.Logf("%s on last:\n%s", c.box, textOf(r))
			}
		})
	}
}

// TestTraceReflectorBedIPv6: the same over IPv6 (the TTL is in the TSval,
// no IP ID), for the boxes that change headers, translate, or drop by
// state. (The bed's SYN proxy answers nothing over IPv6.)
func TestTraceReflectorBedIPv6(t *testing.T) {
	b := startBed(t, pathlab.Config{IPv6: true})
	b.Hops = b.Hops6
	rf := startReflector(t, b, b.Target6, 9001)
	var cases []reflectCase
	for _, c := range reflectCases {
		switch c.box {
		case pathlab.BoxMSSClamp, pathlab.BoxStripTSData, pathlab.BoxNAT, pathlab.BoxECNClear, pathlab.BoxProxy, pathlab.BoxDropOutOfState:
			cases = append(cases, c)
		}
	}
	checkReflectLast(t, b, b.Target6, rf, cases)
}

// lossy is a reflector whose capture lost 3 frames.
type lossy struct{ Reflector }

func (l lossy) Received(ctx context.Context, q ReflectorQuery) (*ReflectorAnswer, error) {
	a, err := l.Reflector.Received(ctx, q)
	if a != nil {
		a.KernelDrops = 3
	}
	return a, err
}

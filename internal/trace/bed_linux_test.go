package trace

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"synprobe/internal/pathlab"
	"synprobe/probe"
)

// startBed starts a path bed (client, r1, r2, server) for t; without root
// or nft, t is skipped with the reason.
func startBed(t testing.TB, cfg pathlab.Config) *pathlab.Bed {
	t.Helper()
	if ok, why := pathlab.Available(); !ok {
		t.Skip(why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := pathlab.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start the path bed: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close the path bed: %v", err)
		}
	})
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
	r, err := Run(ctx, p, Config{Target: target, ClosedPort: b.ClosedPort, AltPort: b.AltPort, Families: fams, MaxHops: 8})
	if err != nil {
		t.Fatalf("trace %v: %v", target, err)
	}
	return r
}

func textOf(r *Result) string {
	var sb strings.Builder
	r.WriteText(&sb)
	return sb.String()
}

func TestBedExplore(t *testing.T) {
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

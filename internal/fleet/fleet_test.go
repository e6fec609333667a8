package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"synprobe/conformance/report"
)

// list is a Source of n targets, then err (io.EOF when nil).
type list struct {
	n, i int
	err  error
}

func (l *list) Next() (netip.AddrPort, error) {
	if l.i >= l.n {
		if l.err != nil {
			return netip.AddrPort{}, l.err
		}
		return netip.AddrPort{}, io.EOF
	}
	l.i++
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(l.i >> 8), byte(l.i)}), 80), nil
}

func fakeReport(ap netip.AddrPort, v report.Verdict) *report.Report {
	rep := &report.Report{Command: "handshake", Target: report.Target{Address: ap.String()}, Results: []report.Result{{Name: "handshake", Verdict: v}}}
	rep.Finish()
	return rep
}

type lineOut struct {
	Command string `json:"command"`
	Target  struct {
		Address string `json:"address"`
	} `json:"target"`
	Summary     map[string]int `json:"summary"`
	Interrupted bool           `json:"interrupted"`
}

func decodeLines(t *testing.T, b []byte) []lineOut {
	t.Helper()
	var out []lineOut
	for i, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		var o lineOut
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i+1, err, l)
		}
		out = append(out, o)
	}
	return out
}

func TestRunWritesEveryTargetOnce(t *testing.T) {
	var running, most atomic.Int32
	check := func(ctx context.Context, ap netip.AddrPort) *report.Report {
		n := running.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(time.Millisecond)
		running.Add(-1)
		v := report.Pass
		if ap.Addr().As4()[3] == 7 {
			v = report.Fail
		}
		return fakeReport(ap, v)
	}
	var out bytes.Buffer
	var progressCalls int
	st, err := Run(context.Background(), &list{n: 50}, check, Config{Workers: 4, Out: &out, Progress: func(Progress) { progressCalls++ }})
	if err != nil {
		t.Fatal(err)
	}
	lines := decodeLines(t, out.Bytes())
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[l.Target.Address] {
			t.Errorf("%s written twice", l.Target.Address)
		}
		seen[l.Target.Address] = true
	}
	if len(lines) != 50 || len(seen) != 50 || st.Done != 50 || progressCalls != 50 {
		t.Errorf("%d lines, %d targets, done %d, %d progress calls; want 50 of each", len(lines), len(seen), st.Done, progressCalls)
	}
	if most.Load() > 4 {
		t.Errorf("%d targets ran at once, want at most 4", most.Load())
	}
	if st.Failed != 1 || st.ExitCode() != 1 {
		t.Errorf("failed %d, exit %d; want 1 and 1", st.Failed, st.ExitCode())
	}
}

// TestRunInterrupted: when the context ends, no target starts, running
// ones are written marked interrupted, and every line is whole.
func TestRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var startedN atomic.Int32
	check := func(ctx context.Context, ap netip.AddrPort) *report.Report {
		if startedN.Add(1) == 3 {
			cancel()
		}
		<-ctx.Done()
		return fakeReport(ap, report.Error)
	}
	var out bytes.Buffer
	st, err := Run(ctx, &list{n: 1000}, check, Config{Workers: 3, Out: &out})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	lines := decodeLines(t, out.Bytes())
	if len(lines) != 3 || st.Interrupted != 3 {
		t.Fatalf("%d lines, %d interrupted; want the 3 running targets", len(lines), st.Interrupted)
	}
	for _, l := range lines {
		if !l.Interrupted {
			t.Errorf("%s: not marked interrupted", l.Target.Address)
		}
	}
	if st.ExitCode() != 0 {
		t.Errorf("exit %d: interrupted targets decide no exit code", st.ExitCode())
	}
}

// TestRunSourceError: a bad line stops new targets; those before it are
// written.
func TestRunSourceError(t *testing.T) {
	bad := errors.New("f:6: bad")
	var out bytes.Buffer
	st, err := Run(context.Background(), &list{n: 5, err: bad}, func(_ context.Context, ap netip.AddrPort) *report.Report {
		return fakeReport(ap, report.Pass)
	}, Config{Workers: 2, Out: &out})
	if !errors.Is(err, bad) || st.Done != 5 || len(decodeLines(t, out.Bytes())) != 5 {
		t.Errorf("error %v, done %d; want the source's error after 5 targets", err, st.Done)
	}
}

type failWriter struct{}

func (*failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestRunWriteError(t *testing.T) {
	var calls atomic.Int32
	_, err := Run(context.Background(), &list{n: 100000}, func(_ context.Context, ap netip.AddrPort) *report.Report {
		calls.Add(1)
		return fakeReport(ap, report.Pass)
	}, Config{Workers: 2, Out: &failWriter{}})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("error %v, want the write's", err)
	}
	if calls.Load() > 10 {
		t.Errorf("%d targets checked after the output failed; want the run to stop", calls.Load())
	}
}

func TestStartRate(t *testing.T) {
	var out bytes.Buffer
	start := time.Now()
	_, err := Run(context.Background(), &list{n: 6}, func(_ context.Context, ap netip.AddrPort) *report.Report {
		return fakeReport(ap, report.Pass)
	}, Config{Workers: 6, StartRate: 50, Out: &out})
	// 6 starts at 50/s: the last 100 ms after the first at the earliest.
	if err != nil || time.Since(start) < 90*time.Millisecond {
		t.Errorf("6 starts at 50/s took %v (%v); want at least 100 ms", time.Since(start), err)
	}
}

func TestPlan(t *testing.T) {
	for _, tt := range []struct {
		conc      int
		rate, pps float64
		workers   int
		perTarget float64
	}{
		{16, 20, 0, 16, 20},    // no global cap
		{16, 20, 1000, 16, 20}, // the cap is not reached
		{16, 20, 100, 5, 20},   // 5 targets at 20/s make 100/s
		{16, 20, 10, 1, 10},    // one target, slowed to the cap
		{16, 0, 160, 16, 10},   // no per-target limit: the cap is shared
		{0, 20, 0, 1, 20},      // at least one worker
	} {
		w, r := Plan(tt.conc, tt.rate, tt.pps)
		if w != tt.workers || r != tt.perTarget {
			t.Errorf("Plan(%d, %v, %v) = %d, %v; want %d, %v", tt.conc, tt.rate, tt.pps, w, r, tt.workers, tt.perTarget)
		}
		if tt.pps > 0 && float64(w)*r > tt.pps {
			t.Errorf("Plan(%d, %v, %v): %d x %v exceeds the cap", tt.conc, tt.rate, tt.pps, w, r)
		}
	}
}

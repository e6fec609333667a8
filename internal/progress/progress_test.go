package progress

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vbauerster/mpb/v8"
)

// syncBuffer is a buffer the drawing goroutine writes while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNotTerminal: to a pipe or a file nothing is written, whatever is
// done with the line.
func TestNotTerminal(t *testing.T) {
	var b syncBuffer
	l := Start(&b, Options{Name: "audit", Unit: "targets", Total: 10, Extra: func() string { return "1 error" }})
	out := l.Above(&b)
	l.Add(3)
	l.SetTotal(20)
	l.SetCurrent(7)
	l.Stop()
	l.Stop()
	if b.String() != "" {
		t.Errorf("Start(a buffer) wrote %q, want nothing", b.String())
	}
	if out != &b {
		t.Errorf("Above of an inactive line is %T, want the writer itself", out)
	}
	var nl *Line
	nl.Add(1)
	nl.Stop()
}

// TestLine draws to a buffer taken for a terminal, one frame per case.
func TestLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		done int64
		want []string // regexps of the last frame
		not  []string
	}{
		{"known total", Options{Name: "audit", Unit: "targets", Total: 200, Extra: func() string { return "3 errors" }}, 50,
			[]string{`^audit: \[=+>? *\] 50/200 targets 25%, \d+(\.\d)?/s, ETA \d+s, 3 errors$`}, nil},
		{"unknown total", Options{Name: "handshake", Unit: "targets"}, 3,
			[]string{`^handshake: +3 targets, \d+(\.\d)?/s$`}, []string{"ETA", "%"}},
		{"rate and estimate given", Options{Name: "sweep", Unit: "probes", Total: 1000, Rate: func() float64 { return 9980 }, RateUnit: "SYN", ETA: func() time.Duration { return 90 * time.Second }, Extra: func() string { return "drops 4" }}, 100,
			[]string{`sweep: .* 100/1000 probes 10%, 9980 SYN/s, ETA 1m30s, drops 4$`}, nil},
		{"bytes", Options{Name: "analyze", Bytes: true, Total: 10 << 20}, 5 << 20,
			[]string{`analyze: .* 5\.0 MiB / 10\.0 MiB 50%, \d+\.\d [KMG]iB/s, ETA \d+s$`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b syncBuffer
			l := start(&b, tc.o, mpb.ForceTTY(), mpb.WithAutoRefresh(), mpb.WithWidth(160))
			time.Sleep(20 * time.Millisecond) // a rate that is not infinite
			l.SetCurrent(tc.done)
			deadline := time.Now().Add(5 * time.Second)
			var frame string
			for time.Now().Before(deadline) {
				frame = lastFrame(b.String())
				if strings.Contains(frame, "/s") && (tc.o.Total == 0 || strings.Contains(frame, "ETA")) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			l.Stop()
			for _, w := range tc.want {
				if !regexp.MustCompile(w).MatchString(frame) {
					t.Errorf("line %q, want a match of %s", frame, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(frame, n) {
					t.Errorf("line %q has %q, want none (total unknown)", frame, n)
				}
			}
			if end := b.String(); !strings.HasSuffix(end, "\x1b[J") {
				t.Errorf("output ends %q, want the line erased (ESC [J)", end[max(len(end)-40, 0):])
			}
		})
	}
}

// lastFrame is the last line drawn in out.
func lastFrame(out string) string {
	frames := strings.Split(out, "\x1b[J")
	for i := len(frames) - 1; i >= 0; i-- {
		if f := strings.TrimSpace(frames[i]); f != "" {
			f = strings.TrimSuffix(f, "\x1b[1A")
			return strings.TrimSpace(f)
		}
	}
	return ""
}

func TestEstimate(t *testing.T) {
	for _, tc := range []struct {
		done, total int64
		elapsed     time.Duration
		want        time.Duration
	}{
		{50, 200, 10 * time.Second, 30 * time.Second},
		{0, 200, 10 * time.Second, 0},
		{200, 200, 10 * time.Second, 0},
		{5, 0, time.Second, 0},
	} {
		if got := estimate(tc.done, tc.total, tc.elapsed); got != tc.want {
			t.Errorf("estimate(%d, %d, %v) = %v, want %v", tc.done, tc.total, tc.elapsed, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want time.Duration }{
		{300 * time.Millisecond, time.Second},
		{12400 * time.Millisecond, 12 * time.Second},
		{154 * time.Second, 150 * time.Second},
		{2*time.Hour + 29*time.Second, 2 * time.Hour},
	} {
		if got := roundETA(tc.in); got != tc.want {
			t.Errorf("roundETA(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestStopAtTotal: a line whose count reached its total is erased too.
func TestStopAtTotal(t *testing.T) {
	var b syncBuffer
	l := start(&b, Options{Name: "run", Unit: "scripts", Total: 4}, mpb.ForceTTY(), mpb.WithAutoRefresh(), mpb.WithWidth(120))
	l.SetCurrent(2)
	time.Sleep(450 * time.Millisecond) // a frame or two at 2 of 4
	l.SetCurrent(4)
	l.Stop()
	out := b.String()
	if !strings.Contains(out, "2/4 scripts") {
		t.Errorf("output %q, want a frame with 2/4 scripts", out)
	}
	if !strings.HasSuffix(out, "\x1b[J") {
		t.Errorf("output ends %q, want the line erased (ESC [J)", out[max(len(out)-40, 0):])
	}
}

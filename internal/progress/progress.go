package progress

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// Options say what a line counts and what it shows beside the count.
type Options struct {
	// Name starts the line: the command ("audit", "sweep").
	Name string
	// Unit is what is counted, plural ("targets", "scripts"); with Bytes
	// the counts are sizes and Unit is not shown.
	Unit  string
	Bytes bool
	// Total is how many items there are; 0 or less when not known (the
	// line then shows the count and the rate, no estimate).
	Total int64
	// Rate, if set, replaces the average of items per second (sweep shows
	// the SYNs it sends per second), in RateUnit per second.
	Rate     func() float64
	RateUnit string
	// ETA, if set, replaces the estimate from the average rate; 0 or less
	// means not known.
	ETA func() time.Duration
	// Extra, if set, is shown at the end of the line: drops, errors, the
	// item last done. It is called from the drawing goroutine.
	Extra func() string
}

// Line is one line of progress. Its methods may be called from any
// goroutine; those of a nil or inactive Line do nothing.
type Line struct {
	p     *mpb.Progress
	bar   *mpb.Bar
	out   *os.File // the terminal, to recognise a writer on the same one
	start time.Time

	mu      sync.Mutex
	stopped bool
	above   []*aboveWriter
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Start starts a line on w when w is a terminal; otherwise it returns an
// inactive Line, which writes nothing.
func Start(w io.Writer, o Options) *Line {
	if !IsTerminal(w) {
		return &Line{}
	}
	l := start(w, o)
	l.out = w.(*os.File)
	return l
}

// start draws on w whatever it is (tests give a buffer with a fixed
// width; mpb takes the width of a terminal from the terminal).
func start(w io.Writer, o Options, opts ...mpb.ContainerOption) *Line {
	l := &Line{start: time.Now()}
	l.p = mpb.New(append([]mpb.ContainerOption{mpb.WithOutput(w), mpb.WithRefreshRate(200 * time.Millisecond)}, opts...)...)
	total := max(o.Total, 0)
	style := mpb.NopStyle()
	if total > 0 {
		style = mpb.BarStyle().Lbound("[").Filler("=").Tip(">").Padding(" ").Rbound("]")
	}
	l.bar = l.p.New(total, style,
		mpb.PrependDecorators(decor.Name(o.Name+":")),
		mpb.AppendDecorators(l.decorators(o)...),
		mpb.BarWidth(20),
		mpb.BarRemoveOnComplete(), // a line at its total is erased too
	)
	return l
}

func (l *Line) decorators(o Options) []decor.Decorator {
	var ds []decor.Decorator
	unit := ""
	if !o.Bytes && o.Unit != "" {
		unit = " " + o.Unit
	}
	switch {
	case o.Total > 0 && o.Bytes:
		ds = append(ds, decor.CountersKibiByte("% .1f / % .1f"), decor.NewPercentage(" %d"))
	case o.Total > 0:
		ds = append(ds, decor.CountersNoUnit("%d/%d"+unit), decor.NewPercentage(" %d"))
	case o.Bytes:
		ds = append(ds, decor.CurrentKibiByte("% .1f"))
	default:
		ds = append(ds, decor.CurrentNoUnit("%d"+unit))
	}
	switch {
	case o.Rate != nil:
		ds = append(ds, decor.Any(func(decor.Statistics) string {
			return fmt.Sprintf(", %.0f %s/s", o.Rate(), o.RateUnit)
		}))
	case o.Bytes:
		ds = append(ds, decor.AverageSpeed(decor.SizeB1024(0), ", % .1f"))
	default:
		ds = append(ds, decor.AverageSpeed(0, ", %.1f/s"))
	}
	ds = append(ds, decor.Any(func(s decor.Statistics) string {
		var eta time.Duration
		if o.ETA != nil {
			eta = o.ETA()
		} else {
			eta = estimate(s.Current, s.Total, time.Since(l.start))
		}
		if eta <= 0 {
			return ""
		}
		return ", ETA " + roundETA(eta).String()
	}))
	if o.Extra != nil {
		ds = append(ds, decor.Any(func(decor.Statistics) string {
			if e := o.Extra(); e != "" {
				return ", " + e
			}
			return ""
		}))
	}
	return ds
}

// estimate is the time left for total-done items at the average rate so
// far; 0 when it cannot be told.
func estimate(done, total int64, elapsed time.Duration) time.Duration {
	if done <= 0 || total <= done || elapsed <= 0 {
		return 0
	}
	return time.Duration(float64(elapsed) / float64(done) * float64(total-done))
}

// roundETA keeps an estimate to the precision it has.
func roundETA(d time.Duration) time.Duration {
	if d < time.Second {
		return time.Second
	}
	if d < time.Minute {
		return d.Round(time.Second)
	}
	if d < time.Hour {
		return d.Round(10 * time.Second)
	}
	return d.Round(time.Minute)
}

// active reports whether l draws.
func (l *Line) active() bool { return l != nil && l.bar != nil }

// SetCurrent says how many items are done.
func (l *Line) SetCurrent(n int64) {
	if l.active() {
		l.bar.SetCurrent(n)
	}
}

// Add adds n done items.
func (l *Line) Add(n int64) {
	if l.active() {
		l.bar.IncrInt64(n)
	}
}

// SetTotal says how many items there are, once it is known.
func (l *Line) SetTotal(n int64) {
	if l.active() {
		l.bar.SetTotal(n, false)
	}
}

// Above returns a writer for lines that go to the same terminal while the
// line is drawn (results streamed to standard output): they are printed
// above the line instead of being drawn over. Any other w is returned as
// it is. Only whole lines pass while the line is drawn; Stop writes the
// rest.
func (l *Line) Above(w io.Writer) io.Writer {
	if !l.active() || l.out == nil || !sameTerminal(l.out, w) {
		return w
	}
	a := &aboveWriter{l: l, w: w}
	l.mu.Lock()
	l.above = append(l.above, a)
	l.mu.Unlock()
	return a
}

func sameTerminal(out *os.File, w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || !IsTerminal(f) {
		return false
	}
	a, erra := out.Stat()
	b, errb := f.Stat()
	return erra == nil && errb == nil && os.SameFile(a, b)
}

// Stop clears the line and returns when it is gone; the terminal is left
// as it was before Start (but for the lines written Above).
func (l *Line) Stop() {
	if !l.active() {
		return
	}
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return
	}
	l.stopped = true
	above := l.above
	l.mu.Unlock()
	l.bar.Abort(true) // drop: a removed bar is erased at the next frame
	l.p.Wait()
	for _, a := range above {
		a.stop()
	}
}

// aboveWriter passes whole lines to the progress, which prints them
// above its line at its next frame.
type aboveWriter struct {
	l *Line
	w io.Writer

	mu      sync.Mutex
	buf     []byte
	stopped bool
}

func (a *aboveWriter) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return a.w.Write(p)
	}
	a.buf = append(a.buf, p...)
	if i := bytes.LastIndexByte(a.buf, '\n'); i >= 0 {
		if _, err := a.l.p.Write(a.buf[:i+1]); err != nil {
			return 0, err
		}
		a.buf = append(a.buf[:0], a.buf[i+1:]...)
	}
	return len(p), nil
}

// stop writes what is left of a line to the terminal, after the progress
// line is gone, and lets later writes through.
func (a *aboveWriter) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopped = true
	if len(a.buf) > 0 {
		a.w.Write(a.buf)
		a.buf = nil
	}
}

package fleet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"synprobe/conformance/report"
)

// Source yields targets; io.EOF ends it (internal/targets.Reader).
type Source interface {
	Next() (netip.AddrPort, error)
}

// Func checks one target. It returns the target's report (finished), or
// nil when there is none to write.
type Func func(ctx context.Context, target netip.AddrPort) *report.Report

// Config is a fleet run.
type Config struct {
	// Workers is how many targets run at once (Plan computes it).
	Workers int
	// StartRate caps how many targets start per second for the whole run
	// (0: no cap).
	StartRate float64
	// Out receives one JSON line per target.
	Out io.Writer
	// Progress, if set, is called after every target, from one goroutine
	// at a time.
	Progress func(Progress)
}

// Progress is how far a run has come.
type Progress struct {
	Started, Done int
	// Errored counts the targets done with an error and no fail, as
	// Stats.Errored.
	Errored int
	Elapsed time.Duration
	Last    netip.AddrPort
}

// Stats says what a run did.
type Stats struct {
	// Done counts the targets whose lines were written, Interrupted
	// those of them that did not finish.
	Done, Interrupted int
	// Failed counts the reports with a fail; Errored those with an error
	// and no fail (report.ExitCode 1 and 3).
	Failed, Errored int
	Duration        time.Duration
}

// ExitCode is synprobe's exit code for the run: 1 when a target failed a
// check, else 3 when one had an error, else 0.
func (s Stats) ExitCode() int {
	switch {
	case s.Failed > 0:
		return 1
	case s.Errored > 0:
		return 3
	}
	return 0
}

// Plan divides a global cap of pps SYNs per second between targets that
// may each be sent rate SYNs per second (0 for either: no limit): it
// returns how many targets may run at once (at most concurrency) and the
// rate each gets, so that workers x perTarget never exceeds pps.
func Plan(concurrency int, rate, pps float64) (workers int, perTarget float64) {
	workers = max(concurrency, 1)
	if pps <= 0 {
		return workers, rate
	}
	if rate <= 0 || rate*float64(workers) > pps {
		if rate > 0 {
			workers = max(1, min(workers, int(math.Floor(pps/rate))))
		}
		perTarget = pps / float64(workers)
		if rate > 0 {
			perTarget = min(rate, perTarget)
		}
		return workers, perTarget
	}
	return workers, rate
}

// line is a report as one JSON line: the report, and whether its run was
// cut short.
type line struct {
	*report.Report
	Interrupted bool `json:"interrupted,omitempty"`
}

// Run checks every target of src with check, cfg.Workers at a time, and
// writes each report to cfg.Out as one line as soon as it is done. It
// returns when src is exhausted and every started target is written; an
// error of src stops new targets (the running ones finish), as does the
// end of ctx (the running ones see it). A failed write stops the run.
func Run(ctx context.Context, src Source, check Func, cfg Config) (Stats, error) {
	started := time.Now()
	workers := max(cfg.Workers, 1)
	var lim *rate.Limiter
	if cfg.StartRate > 0 {
		lim = rate.NewLimiter(rate.Limit(cfg.StartRate), 1)
	}
	w := bufio.NewWriterSize(cfg.Out, 64<<10)

	var (
		mu       sync.Mutex // guards st, prog, writeErr and w
		st       Stats
		prog     Progress
		writeErr error
	)
	// stop ends the feeding of targets after a write error.
	feedCtx, stop := context.WithCancel(ctx)
	defer stop()

	finish := func(ap netip.AddrPort, rep *report.Report, interrupted bool) {
		var buf bytes.Buffer
		var err error
		if rep != nil {
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			err = enc.Encode(line{rep, interrupted})
		}
		mu.Lock()
		defer mu.Unlock()
		if rep != nil && writeErr == nil {
			if err == nil {
				_, err = w.Write(buf.Bytes())
			}
			if err == nil {
				err = w.Flush() // every line reaches the file at once: Ctrl-C or a kill loses none
			}
			if err != nil {
				writeErr = fmt.Errorf("write the line of %v: %w", ap, err)
				stop()
			}
			st.Done++
			switch {
			case interrupted:
				st.Interrupted++
			case rep.ExitCode() == 1:
				st.Failed++
			case rep.ExitCode() == 3:
				st.Errored++
			}
		}
		prog.Done++
		prog.Errored = st.Errored
		prog.Last = ap
		prog.Elapsed = time.Since(started)
		if cfg.Progress != nil {
			cfg.Progress(prog)
		}
	}

	jobs := make(chan netip.AddrPort)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ap := range jobs {
				rep := check(ctx, ap)
				finish(ap, rep, ctx.Err() != nil)
			}
		}()
	}

	var srcErr error
	for {
		if feedCtx.Err() != nil {
			break
		}
		ap, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			srcErr = err
			break
		}
		if lim != nil {
			if lim.Wait(feedCtx) != nil {
				break
			}
		}
		select {
		case jobs <- ap:
			mu.Lock()
			prog.Started++
			mu.Unlock()
		case <-feedCtx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	st.Duration = time.Since(started)
	switch {
	case writeErr != nil:
		return st, writeErr
	case srcErr != nil:
		return st, srcErr
	case ctx.Err() != nil:
		return st, ctx.Err()
	}
	return st, nil
}

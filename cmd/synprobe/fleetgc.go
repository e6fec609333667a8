package main

import (
	"os"
	"runtime/debug"
)

// The garbage collector's pace in a --targets run, unless GOGC or
// GOMEMLIMIT say otherwise. A run of a hundred audits at once allocates
// fast; at Go's default (GOGC 100) the collector's work and assists delay
// the reading of replies by tens of milliseconds on a small host, and
// timing checks then fail that pass when the target is audited alone (1,000
// lab addresses, 100 at once, 2 cores: 80 targets with a failed check at
// GOGC 100, 0-9 at 200-400, peak RSS 160 -> 210-360 MiB). The limit keeps
// the heap within issue 12's budget (peak RSS under 1 GiB): near it the
// collector runs as often as it must.
const (
	fleetGCPercent   = 400
	fleetMemoryLimit = 768 << 20
)

// fleetGC sets the collector's pace for a --targets run and returns what
// restores it.
func fleetGC() (restore func()) {
	pct, limit := -2, int64(-1)
	if os.Getenv("GOGC") == "" {
		pct = debug.SetGCPercent(fleetGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		limit = debug.SetMemoryLimit(fleetMemoryLimit)
	}
	return func() {
		if pct != -2 {
			debug.SetGCPercent(pct)
		}
		if limit >= 0 {
			debug.SetMemoryLimit(limit)
		}
	}
}

//go:build unix

package labtest

import (
	"syscall"
	"time"
)

// CPUTime is the CPU time the process has used, user and system, all
// threads (the garbage collector's too): a measure of work that other
// processes on a busy machine do not disturb, as they do wall time.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

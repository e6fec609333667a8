//go:build !unix

package labtest

import "time"

// CPUTime is not measured here: it is always 0, and CPU-time metrics read
// 0.
func CPUTime() time.Duration { return 0 }

//go:build !unix

package capture

import "time"

// cpuTime is not measured here: the CPU-time metric reads 0.
func cpuTime() time.Duration { return 0 }

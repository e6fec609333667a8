//go:build !linux

package probe

import (
	"fmt"
	"runtime"
)

func readLocalPortRange(ns int) (lo, hi uint16, err error) {
	return 0, 0, fmt.Errorf("read ip_local_port_range: not supported on %s", runtime.GOOS)
}

func scanLocalTCPPorts(ns int, s *portSet) error {
	return fmt.Errorf("scan local TCP sockets: not supported on %s", runtime.GOOS)
}

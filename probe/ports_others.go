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

func newPortSockets(ns, family, n int) ([]int, int, error) {
	return nil, 0, fmt.Errorf("make a socket to hold source ports: not supported on %s", runtime.GOOS)
}

func bindPortSocket(fd, family int, port uint16) error {
	return fmt.Errorf("bind a socket to hold source port %d: not supported on %s", port, runtime.GOOS)
}

func closePortSocket(fd int) {}

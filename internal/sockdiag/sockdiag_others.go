//go:build !linux

package sockdiag

import (
	"fmt"
	"runtime"
)

// List is not supported outside Linux.
func List(ns int) ([]Conn, error) {
	return nil, fmt.Errorf("list TCP sockets: not supported on %s", runtime.GOOS)
}

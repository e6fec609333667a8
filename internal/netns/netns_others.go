//go:build !linux

package netns

import (
	"fmt"
	"runtime"
)

var errNotSupported = fmt.Errorf("network namespaces are not supported on %s", runtime.GOOS)

// Do runs fn when ns is 0; namespaces exist only on Linux.
func Do(ns int, fn func() error) error {
	if ns == 0 {
		return fn()
	}
	return errNotSupported
}

// New is not supported outside Linux.
func New() (int, error) { return 0, errNotSupported }

// Open is not supported outside Linux.
func Open(path string) (int, error) {
	return 0, fmt.Errorf("open network namespace %s: %w", path, errNotSupported)
}

// Close is a no-op outside Linux.
func Close(ns int) error { return nil }

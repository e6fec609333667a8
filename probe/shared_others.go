//go:build !linux

package probe

import (
	"fmt"
	"runtime"
)

type nsID struct{}

func namespaceID(fd int) (nsID, error) {
	return nsID{}, fmt.Errorf("identify network namespace: not supported on %s", runtime.GOOS)
}

func dupNamespace(fd int) (int, error) { return 0, nil }

func closeNamespace(fd int) {}

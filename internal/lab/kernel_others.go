//go:build !linux

package lab

import (
	"context"
	"fmt"
	"runtime"
)

// LinuxAvailable reports false: the Linux lab needs Linux network
// namespaces.
func LinuxAvailable() (ok bool, why string) {
	return false, fmt.Sprintf("the linux lab needs Linux network namespaces, not %s", runtime.GOOS)
}

func startLinux(context.Context, Options) (*Target, error) {
	_, why := LinuxAvailable()
	return nil, fmt.Errorf("start linux lab: %s", why)
}

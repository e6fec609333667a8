//go:build !linux

package probe

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
)

// ResolvePath is not supported outside Linux: it needs rtnetlink and
// AF_PACKET.
func ResolvePath(ctx context.Context, target netip.Addr, opts PathOptions) (Path, error) {
	return Path{}, fmt.Errorf("resolve path to %s: not supported on %s", target, runtime.GOOS)
}

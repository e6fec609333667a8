//go:build !linux

package probe

import (
	"fmt"
	"net/netip"
	"runtime"
	"time"
)

// guardSys is empty: nftables exists only on Linux.
type guardSys struct{}

func installGuard(netns int) (*Guard, error) {
	return nil, fmt.Errorf("install RST guard: %w: nftables is not supported on %s", ErrGuardUnavailable, runtime.GOOS)
}

func (s *guardSys) protect(port uint16, ttl time.Duration) error { return errGuardNotSupported() }
func (s *guardSys) unprotect(port uint16) error                  { return errGuardNotSupported() }
func (s *guardSys) protectFlow(remote netip.Addr, port uint16, ttl time.Duration) error {
	return errGuardNotSupported()
}
func (s *guardSys) unprotectFlows(remote netip.Addr, ports []uint16) error {
	return errGuardNotSupported()
}
func (s *guardSys) dropped() (uint64, error) { return 0, errGuardNotSupported() }
func (s *guardSys) close() error             { return nil }

func errGuardNotSupported() error {
	return fmt.Errorf("nftables is not supported on %s", runtime.GOOS)
}

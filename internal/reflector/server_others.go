//go:build !linux

package reflector

// isAddrNotAvail is false outside Linux, where Start fails earlier: the
// capture needs AF_PACKET.
func isAddrNotAvail(err error) bool { return false }

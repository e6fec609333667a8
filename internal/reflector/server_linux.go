package reflector

import (
	"errors"

	"golang.org/x/sys/unix"
)

// isAddrNotAvail tells a listen error for an address that is not local.
func isAddrNotAvail(err error) bool { return errors.Is(err, unix.EADDRNOTAVAIL) }

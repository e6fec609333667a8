package probe

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// nsID names a network namespace: its nsfs inode.
type nsID struct{ dev, ino uint64 }

// namespaceID identifies the namespace of descriptor fd (0: this
// process's).
func namespaceID(fd int) (nsID, error) {
	var st unix.Stat_t
	var err error
	if fd == 0 {
		err = unix.Stat("/proc/self/ns/net", &st)
	} else {
		err = unix.Fstat(fd, &st)
	}
	if err != nil {
		return nsID{}, fmt.Errorf("identify network namespace: %w", err)
	}
	return nsID{uint64(st.Dev), uint64(st.Ino)}, nil
}

// dupNamespace returns a descriptor of its own for the namespace of fd (0
// stays 0: this process's namespace).
func dupNamespace(fd int) (int, error) {
	if fd == 0 {
		return 0, nil
	}
	d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return 0, fmt.Errorf("duplicate network namespace descriptor: %w", err)
	}
	return d, nil
}

func closeNamespace(fd int) {
	if fd > 0 {
		unix.Close(fd)
	}
}

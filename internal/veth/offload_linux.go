package veth

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"synprobe/internal/netns"
)

// Offload names a segmentation offload by the legacy ethtool command that
// sets it (linux/ethtool.h); the command that reads it is one less.
type Offload uint32

const (
	TSO Offload = 0x1f // ETHTOOL_STSO: TCP segmentation offload
	GSO Offload = 0x24 // ETHTOOL_SGSO: generic segmentation offload
	GRO Offload = 0x2c // ETHTOOL_SGRO: generic receive offload
	// TXCSUM and RXCSUM are the checksum offloads (ETHTOOL_STXCSUM,
	// ETHTOOL_SRXCSUM): off, every frame carries its final checksum.
	TXCSUM Offload = 0x17
	RXCSUM Offload = 0x15
)

func (o Offload) String() string {
	switch o {
	case TSO:
		return "tso"
	case GSO:
		return "gso"
	case GRO:
		return "gro"
	case TXCSUM:
		return "tx-checksum"
	case RXCSUM:
		return "rx-checksum"
	}
	return fmt.Sprintf("ethtool command 0x%x", uint32(o))
}

// SetOffload switches o on or off on the interface ifName in the namespace
// ns (0: the current one), and checks that the kernel did.
func SetOffload(ns int, ifName string, o Offload, on bool) error {
	return netns.Do(ns, func() error {
		var v uint32
		if on {
			v = 1
		}
		if _, err := ethtoolValue(ifName, uint32(o), v); err != nil {
			return fmt.Errorf("set %v to %v on %s: %w", o, on, ifName, err)
		}
		got, err := ethtoolValue(ifName, uint32(o)-1, 0)
		if err != nil {
			return fmt.Errorf("read %v on %s: %w", o, ifName, err)
		}
		if (got != 0) != on {
			return fmt.Errorf("set %v to %v on %s: the kernel kept it %v", o, on, ifName, got != 0)
		}
		return nil
	})
}

// ethtoolValue sends the ethtool command cmd with a struct ethtool_value
// holding data, and returns the data the kernel leaves in it.
func ethtoolValue(ifName string, cmd, data uint32) (uint32, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	value := struct{ cmd, data uint32 }{cmd, data}
	// struct ifreq: the name, then a pointer to the command (ifr_data).
	// The pointer is kept as a pointer, so that it stays right wherever
	// the runtime keeps value.
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte
	}
	copy(ifr.name[:], ifName)
	ifr.data = unsafe.Pointer(&value)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		return 0, errno
	}
	return value.data, nil
}

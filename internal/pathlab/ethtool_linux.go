package pathlab

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtoolIoctl runs one legacy ethtool command (struct ethtool_value) on
// ifName through the socket fd and returns the value the kernel left.
func ethtoolIoctl(fd int, ifName string, cmd, data uint32) (uint32, error) {
	value := &struct{ cmd, data uint32 }{cmd, data}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte
	}
	copy(ifr.name[:], ifName)
	ifr.data = unsafe.Pointer(value)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(value)
	if errno != 0 {
		return 0, errno
	}
	return value.data, nil
}

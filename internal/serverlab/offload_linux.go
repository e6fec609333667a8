package serverlab

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"synprobe/internal/netns"
)

// Legacy ethtool commands (linux/ethtool.h), one feature each. They are
// what internal/lab already uses, the kernel maps each to its feature
// bits (TSO to every TSO flavour, as `ethtool -K tso` does), and they need
// no string-set lookup as ETHTOOL_SFEATURES does, nor the ethtool program
// (tests use that one to check what these did).
const (
	ethtoolGTSO = 0x1e
	ethtoolSTSO = 0x1f
	ethtoolGGSO = 0x23
	ethtoolSGSO = 0x24
	ethtoolGGRO = 0x2b
	ethtoolSGRO = 0x2c
)

type offload struct {
	name     string
	get, set uint32
	field    func(*Offloads) *bool
}

var offloads = []offload{
	{"gro", ethtoolGGRO, ethtoolSGRO, func(o *Offloads) *bool { return &o.GRO }},
	{"gso", ethtoolGGSO, ethtoolSGSO, func(o *Offloads) *bool { return &o.GSO }},
	{"tso", ethtoolGTSO, ethtoolSTSO, func(o *Offloads) *bool { return &o.TSO }},
}

// side returns the namespace and the veth of a side.
func (b *Bed) side(s Side) (ns int, ifName string) {
	if s == SideProbe {
		return b.sys.probeNS, b.ProbeIf
	}
	return b.sys.targetNS, b.TargetIf
}

// SetOffloads switches the veth of side s to o, and checks that it took.
func (b *Bed) SetOffloads(s Side, o Offloads) error {
	ns, ifName := b.side(s)
	err := withSocket(ns, func(fd int) error {
		for _, f := range offloads {
			v := uint32(0)
			if *f.field(&o) {
				v = 1
			}
			if _, err := ethtool(fd, ifName, f.set, v); err != nil {
				return fmt.Errorf("%s %s: %w", f.name, onOff(v), err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set offloads of %s (%s): %w", ifName, s, err)
	}
	got, err := b.Offloads(s)
	if err != nil {
		return err
	}
	if got != o {
		return fmt.Errorf("set offloads of %s (%s) to %s: they are %s", ifName, s, o, got)
	}
	return nil
}

// Offloads reads the offloads of the veth of side s.
func (b *Bed) Offloads(s Side) (Offloads, error) {
	ns, ifName := b.side(s)
	var o Offloads
	err := withSocket(ns, func(fd int) error {
		for _, f := range offloads {
			v, err := ethtool(fd, ifName, f.get, 0)
			if err != nil {
				return fmt.Errorf("%s: %w", f.name, err)
			}
			*f.field(&o) = v != 0
		}
		return nil
	})
	if err != nil {
		return o, fmt.Errorf("read offloads of %s (%s): %w", ifName, s, err)
	}
	return o, nil
}

func onOff(v uint32) string {
	if v != 0 {
		return "on"
	}
	return "off"
}

// withSocket runs fn with a socket opened in namespace ns, for ioctls on
// the interfaces there.
func withSocket(ns int, fn func(fd int) error) error {
	var fd int
	err := netns.Do(ns, func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("open socket for ethtool: %w", err)
	}
	defer unix.Close(fd)
	return fn(fd)
}

// ethtool runs one legacy ethtool command (struct ethtool_value) on
// ifName and returns the value the kernel left.
func ethtool(fd int, ifName string, cmd, data uint32) (uint32, error) {
	value := &struct{ cmd, data uint32 }{cmd, data}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data uintptr
		_    [16]byte
	}
	copy(ifr.name[:], ifName)
	ifr.data = uintptr(unsafe.Pointer(value))
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(value)
	if errno != 0 {
		return 0, fmt.Errorf("ethtool 0x%x: %w", cmd, errno)
	}
	return value.data, nil
}

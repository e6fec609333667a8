package probe

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"synprobe/internal/netns"
)

// Files under /proc/sys/net and /proc/thread-self/net belong to the network
// namespace of the thread that opens them, so they are opened inside
// netns.Do.
const (
	localPortRangePath = "/proc/sys/net/ipv4/ip_local_port_range"
	procNetTCPPath     = "/proc/thread-self/net/tcp"
	procNetTCP6Path    = "/proc/thread-self/net/tcp6"
)

func readLocalPortRange(ns int) (lo, hi uint16, err error) {
	var data []byte
	err = netns.Do(ns, func() error {
		var rerr error
		data, rerr = os.ReadFile(localPortRangePath)
		return rerr
	})
	if err != nil {
		return 0, 0, fmt.Errorf("read %s: %w", localPortRangePath, err)
	}
	return parseLocalPortRange(data)
}

// parseLocalPortRange parses ip_local_port_range: "32768\t60999\n".
func parseLocalPortRange(data []byte) (lo, hi uint16, err error) {
	f := bytes.Fields(data)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("parse %s %q: want two ports", localPortRangePath, data)
	}
	l, err1 := strconv.ParseUint(string(f[0]), 10, 16)
	h, err2 := strconv.ParseUint(string(f[1]), 10, 16)
	if err1 != nil || err2 != nil || l == 0 || h == 0 {
		return 0, 0, fmt.Errorf("parse %s %q: want two ports 1-65535", localPortRangePath, data)
	}
	return uint16(l), uint16(h), nil
}

// scanLocalTCPPorts adds to s the local port of every TCP socket in the
// namespace, in any state, IPv4 and IPv6.
func scanLocalTCPPorts(ns int, s *portSet) error {
	var v4, v6 []byte
	err := netns.Do(ns, func() error {
		var err error
		if v4, err = os.ReadFile(procNetTCPPath); err != nil {
			return err
		}
		// tcp6 is missing when IPv6 is disabled: then there is nothing in it.
		if v6, err = os.ReadFile(procNetTCP6Path); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan local TCP sockets: %w", err)
	}
	if err := parseProcNetTCP(v4, s); err != nil {
		return fmt.Errorf("scan local TCP sockets: %s: %w", procNetTCPPath, err)
	}
	if err := parseProcNetTCP(v6, s); err != nil {
		return fmt.Errorf("scan local TCP sockets: %s: %w", procNetTCP6Path, err)
	}
	return nil
}

// parseProcNetTCP adds the local ports listed in /proc/net/tcp or tcp6 to s.
// After a header line, each line reads
// "  sl  local_address rem_address   st ...", with local_address as
// "0100007F:1F90" (hex address, hex port).
func parseProcNetTCP(data []byte, s *portSet) error {
	line := 0
	for len(data) > 0 {
		var l []byte
		l, data, _ = bytes.Cut(data, []byte{'\n'})
		line++
		if line == 1 {
			continue // header
		}
		f := bytes.Fields(l)
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 {
			return fmt.Errorf("line %d: no local address", line)
		}
		i := bytes.LastIndexByte(f[1], ':')
		if i < 0 {
			return fmt.Errorf("line %d: local address %q has no port", line, f[1])
		}
		p, ok := parseHexPort(f[1][i+1:])
		if !ok {
			return fmt.Errorf("line %d: local address %q: bad port", line, f[1])
		}
		s.add(p)
	}
	return nil
}

// parseHexPort parses 1 to 4 hex digits, without allocating: a busy host
// lists many thousands of sockets.
func parseHexPort(b []byte) (uint16, bool) {
	if len(b) == 0 || len(b) > 4 {
		return 0, false
	}
	var p uint16
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		default:
			return 0, false
		}
		p = p<<4 | uint16(c)
	}
	return p, true
}

// Sockets that reserve source ports across processes (see PortAllocator).
// A TCP socket bound to a port, neither listening nor connected, keeps
// every other socket from binding it, without SO_REUSEADDR on either side,
// and changes nothing in how the kernel answers segments to the port: it is
// in no lookup table for arriving segments, and not in /proc/net/tcp.

// newPortSockets makes up to n unbound TCP sockets in the namespace ns, of
// the family family, or, when family is 0, of the family that covers the
// most: IPv6 with IPV6_V6ONLY off (bound to [::], it holds the port for
// IPv4 too), else IPv4 where the kernel has no IPv6. Sockets are made in
// the namespace, and can be bound and closed from any thread afterwards. It
// returns what it made and the error that stopped it, if any.
func newPortSockets(ns, family, n int) (fds []int, fam int, err error) {
	err = netns.Do(ns, func() error {
		for len(fds) < n {
			fd, f, err := newPortSocket(family)
			if err != nil {
				return err
			}
			family = f
			fds = append(fds, fd)
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("make a socket to hold source ports: %w", classifyPortError(err))
	}
	return fds, family, err
}

func newPortSocket(family int) (int, int, error) {
	if family == 0 || family == unix.AF_INET6 {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
		if err == nil {
			if err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
				unix.Close(fd)
				return -1, 0, fmt.Errorf("set IPV6_V6ONLY off: %w", err)
			}
			return fd, unix.AF_INET6, nil
		}
		if family != 0 || !errors.Is(err, unix.EAFNOSUPPORT) {
			return -1, 0, err
		}
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, 0, err
	}
	return fd, unix.AF_INET, nil
}

// bindPortSocket binds fd, a socket of newPortSockets, to port on the
// wildcard address. A port another socket holds is errPortHeld; fd then
// stays unbound, and can be bound to another port.
func bindPortSocket(fd, family int, port uint16) error {
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: int(port)}
	if family == unix.AF_INET6 {
		sa = &unix.SockaddrInet6{Port: int(port)}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind a socket to hold source port %d: %w", port, classifyPortError(err))
	}
	return nil
}

func closePortSocket(fd int) { unix.Close(fd) }

// classifyPortError adds errPortHeld or errNoDescriptor to the errors that
// mean them.
func classifyPortError(err error) error {
	switch {
	case errors.Is(err, unix.EADDRINUSE):
		return fmt.Errorf("%w: %w", errPortHeld, err)
	case errors.Is(err, unix.EMFILE), errors.Is(err, unix.ENFILE):
		return fmt.Errorf("%w: %w", errNoDescriptor, err)
	}
	return err
}

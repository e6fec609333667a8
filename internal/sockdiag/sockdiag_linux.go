package sockdiag

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"synprobe/internal/netns"
)

// List lists the TCP sockets, IPv4 and IPv6, of the network namespace ns
// (an open descriptor; 0 is this process's), half-open ones included.
func List(ns int) ([]Conn, error) {
	var out []Conn
	err := netns.Do(ns, func() error {
		for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
			var socks []*netlink.Socket
			var err error
			for range 5 { // a dump interrupted by a change is taken again
				if socks, err = netlink.SocketDiagTCP(fam); !errors.Is(err, netlink.ErrDumpInterrupted) {
					break
				}
			}
			if err != nil {
				return fmt.Errorf("list TCP sockets (sock_diag): %w", err)
			}
			for _, s := range socks {
				out = append(out, connOf(s))
			}
		}
		return nil
	})
	return out, err
}

func connOf(s *netlink.Socket) Conn {
	addr := func(ip net.IP, port uint16) netip.AddrPort {
		a, _ := netip.AddrFromSlice(ip)
		return netip.AddrPortFrom(a.Unmap(), port)
	}
	return Conn{
		State: stateName(s.State), RecvQ: s.RQueue, SendQ: s.WQueue,
		Local: addr(s.ID.Source, s.ID.SourcePort),
		Peer:  addr(s.ID.Destination, s.ID.DestinationPort),
	}
}

package sockdiag

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Conn is a TCP socket, as `ss -tan` shows it.
type Conn struct {
	State       string // as ss names it: ESTAB, SYN-RECV, CLOSE-WAIT, LISTEN...
	RecvQ       uint32 // bytes not read; for LISTEN, connections waiting for accept
	SendQ       uint32 // bytes not acknowledged; for LISTEN, the backlog
	Local, Peer netip.AddrPort
}

func (c Conn) String() string {
	return fmt.Sprintf("%-10s %-6d %-6d %-30s %s", c.State, c.RecvQ, c.SendQ, c.Local, c.Peer)
}

// Format formats conns as `ss -tan` does, with its header.
func Format(conns []Conn) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-10s %-6s %-6s %-30s %s\n", "State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port")
	for _, c := range conns {
		b.WriteString(c.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// tcpStates are the kernel's TCP states (include/net/tcp_states.h) as ss
// names them.
var tcpStates = map[uint8]string{
	1: "ESTAB", 2: "SYN-SENT", 3: "SYN-RECV", 4: "FIN-WAIT-1", 5: "FIN-WAIT-2",
	6: "TIME-WAIT", 7: "UNCONN", 8: "CLOSE-WAIT", 9: "LAST-ACK", 10: "LISTEN", 11: "CLOSING",
}

func stateName(s uint8) string {
	if name, ok := tcpStates[s]; ok {
		return name
	}
	return fmt.Sprintf("state-%d", s)
}

// leftoverStates are the states of a connection a host still holds:
// TIME-WAIT is the end of a clean close, LISTEN no connection.
var leftoverStates = []string{"SYN-RECV", "ESTAB", "CLOSE-WAIT", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSING", "LAST-ACK"}

// Leftovers returns the connections of conns with one of peers in
// SYN-RECV, ESTAB, CLOSE-WAIT, FIN-WAIT-1, FIN-WAIT-2, CLOSING or
// LAST-ACK, sorted.
func Leftovers(conns []Conn, peers ...netip.Addr) []Conn {
	var out []Conn
	for _, c := range conns {
		if slices.Contains(peers, c.Peer.Addr()) && slices.Contains(leftoverStates, c.State) {
			out = append(out, c)
		}
	}
	Sort(out)
	return out
}

// Sort sorts conns by local, then peer address.
func Sort(conns []Conn) {
	slices.SortFunc(conns, func(a, b Conn) int {
		if c := a.Local.Compare(b.Local); c != 0 {
			return c
		}
		return a.Peer.Compare(b.Peer)
	})
}

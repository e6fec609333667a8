package probe

import (
	"errors"

	"golang.org/x/net/bpf"
)

// PacketLinkConfig says where and how to open a PacketLink.
type PacketLinkConfig struct {
	// NetNS is a descriptor of the network namespace to open the sockets in
	// (internal/netns); 0 is the namespace synprobe runs in. The sockets stay
	// there: the link can be used from any goroutine afterwards.
	NetNS int
	// Interface names the Ethernet interface to send and capture on.
	Interface string
	// Filter selects the frames ReadFrame returns.
	Filter FlowFilter
	// RawFilter, when set, is used instead of Filter: a classic BPF program
	// for a caller whose frames a FlowFilter cannot describe (the reflector
	// captures one local port's segments from any peer).
	RawFilter []bpf.Instruction
	// RecvBuffer is the receive socket buffer in bytes; 0 means 8 MiB. With
	// CAP_NET_ADMIN it is forced past net.core.rmem_max (SO_RCVBUFFORCE);
	// without, the kernel caps it there silently. The kernel doubles the
	// value for its bookkeeping, as socket(7) says.
	RecvBuffer int
}

// defaultRecvBuffer holds thousands of replies while synprobe is busy: a
// reply dropped here would be read as silence from the target.
const defaultRecvBuffer = 8 << 20

// ErrPermission is the cause of an OpenPacketLink error when the process may
// not open packet sockets. Test with errors.Is; it means exit code 3 (the
// environment prevented the run).
var ErrPermission = errors.New("synprobe needs root or CAP_NET_RAW")

var _ Link = (*PacketLink)(nil)

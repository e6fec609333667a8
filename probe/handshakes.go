package probe

import (
	"net/netip"
	"sync"
)

// Handshakes counts, per remote address and port, the SYN-ACKs that came
// to synprobe's sessions and the handshakes they completed (an ACK sent
// after a SYN-ACK). A listener whose application does not accept fills its
// accept queue with completed handshakes only: the counts let a caller
// tell a listener that stopped answering SYNs because its queue filled
// from one that stopped for another reason.
type Handshakes struct {
	SYNACKs   uint64
	Completed uint64
	// SinceSYNACK is how many handshakes were completed since the last
	// SYN-ACK came.
	SinceSYNACK uint64
}

// handshakeCounts is a prober's Handshakes per remote.
type handshakeCounts struct {
	mu sync.Mutex
	m  map[netip.AddrPort]*Handshakes
}

func (h *handshakeCounts) add(remote netip.AddrPort, synack, completed uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[netip.AddrPort]*Handshakes{}
	}
	c := h.m[remote]
	if c == nil {
		c = &Handshakes{}
		h.m[remote] = c
	}
	c.SYNACKs += synack
	c.Completed += completed
	if synack > 0 {
		c.SinceSYNACK = 0
	}
	c.SinceSYNACK += completed
}

func (h *handshakeCounts) get(remote netip.AddrPort) Handshakes {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.m[remote]; c != nil {
		return *c
	}
	return Handshakes{}
}

// Handshakes returns the counts for remote so far.
func (p *Prober) Handshakes(remote netip.AddrPort) Handshakes { return p.handshakes.get(remote) }

package probe

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Session is one probe connection: a 4-tuple on a Prober. It sends frames
// that it completes with the path's addresses, and queues the frames that
// come back for it, in order.
type Session struct {
	p             *Prober
	local, remote netip.AddrPort

	mu        sync.Mutex
	queue     []*Reply
	localHost []*Reply // frames the local host sent on this 4-tuple on its own
	notify    chan struct{}
	closed    atomic.Bool
	ipID      uint16
	// synack, synackSeq and completed track the handshake for
	// Prober.Handshakes: a SYN-ACK with a new ISN starts a new one.
	synack, completed bool
	synackSeq         Seq
}

// Reply is a frame that arrived for a session (or, with FromLocalHost, one
// the local host sent on its 4-tuple without synprobe asking).
type Reply struct {
	Frame Frame
	Data  []byte
	// Time is when the frame was seen, by the link's clock.
	Time time.Time
	// DecodeErr is set when the frame belongs to the session but is damaged
	// (Frame holds what could be read).
	DecodeErr error
	// FromLocalHost marks a frame leaving this host that synprobe did not
	// send: the local kernel answering on synprobe's port.
	FromLocalHost bool
}

// Sent is a frame a session sent.
type Sent struct {
	Frame Frame
	Data  []byte
	// Time is when the frame was seen leaving, by the link's clock.
	Time time.Time
}

// Local returns the session's own address and port.
func (s *Session) Local() netip.AddrPort { return s.local }

// Remote returns the target's address and port.
func (s *Session) Remote() netip.AddrPort { return s.remote }

// Prober returns the prober the session runs on.
func (s *Session) Prober() *Prober { return s.p }

// Send completes f with the session's MAC addresses, IP addresses and
// ports (see Complete), encodes it (applying ov after encoding), and sends
// it.
func (s *Session) Send(f *Frame, ov ...Override) (*Sent, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("send on session %v > %v: session closed", s.local, s.remote)
	}
	g := *f
	s.Complete(&g)
	data, err := g.Encode(ov...)
	if err != nil {
		return nil, fmt.Errorf("send on session %v > %v: %w", s.local, s.remote, err)
	}
	ts, err := s.p.send(data)
	if err != nil {
		return nil, fmt.Errorf("send on session %v > %v: %w", s.local, s.remote, err)
	}
	sent := &Sent{Data: data, Time: ts}
	// Decode what went out so that reports show exactly the wire image,
	// overrides included.
	sent.Frame.Decode(data)
	s.noteSent(sent)
	return sent, nil
}

// noteSent counts the handshake an ACK completes.
func (s *Session) noteSent(sent *Sent) {
	if t := &sent.Frame.TCP; sent.Frame.Has(LayerTCP) && t.Flags&(SYN|RST) == 0 && t.Flags&ACK != 0 {
		s.mu.Lock()
		complete := s.synack && !s.completed
		s.completed = s.completed || complete
		s.mu.Unlock()
		if complete {
			s.p.handshakes.add(s.remote, 0, 1)
		}
	}
}

// Complete fills in what Send fills in, without sending: the session's
// MACs, addresses and ports. Protocol selects TCP unless the frame is ICMP.
// Other IP fields are the caller's (see NextIPID).
func (s *Session) Complete(f *Frame) {
	path := s.p.path
	f.Ethernet.Src, f.Ethernet.Dst = path.LocalMAC, path.NextHopMAC
	f.IP.Src, f.IP.Dst = s.local.Addr(), s.remote.Addr()
	f.IP.Version = 0
	if f.IP.Protocol == 0 {
		f.IP.Protocol = ProtocolTCP
	}
	if f.IP.Protocol == ProtocolTCP {
		f.TCP.SrcPort, f.TCP.DstPort = s.local.Port(), s.remote.Port()
	}
}

// NextIPID returns the next IPv4 identification for this session: an
// incrementing counter, as many stacks use per connection.
func (s *Session) NextIPID() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ipID++
	return s.ipID
}

// Recv returns the next frame that arrived for the session, waiting until
// ctx ends (then it returns ctx.Err()).
func (s *Session) Recv(ctx context.Context) (*Reply, error) {
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			r := s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			s.mu.Unlock()
			return r, nil
		}
		s.mu.Unlock()
		if s.closed.Load() {
			return nil, fmt.Errorf("receive on session %v > %v: %w", s.local, s.remote, ErrLinkClosed)
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Pending returns how many frames are queued, unread.
func (s *Session) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// LocalHostFrames returns the frames the local host sent on this 4-tuple
// without synprobe asking (a kernel RST when no guard could be installed).
func (s *Session) LocalHostFrames() []*Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Reply(nil), s.localHost...)
}

// Close ends the session; its port rests before it is handed out again.
func (s *Session) Close() {
	if s.closed.Swap(true) {
		return
	}
	s.p.closeSession(s)
	s.signal()
}

func (s *Session) deliver(r *Reply) {
	synack := !r.FromLocalHost && r.Frame.Has(LayerTCP) && r.Frame.TCP.Flags&(SYN|ACK|RST) == SYN|ACK
	s.mu.Lock()
	// A retransmitted SYN-ACK is not a new handshake.
	newSYNACK := synack && (!s.synack || r.Frame.TCP.Seq != s.synackSeq)
	if newSYNACK {
		s.synack, s.completed, s.synackSeq = true, false, r.Frame.TCP.Seq
		s.p.handshakes.add(s.remote, 1, 0)
	}
	if r.FromLocalHost {
		s.localHost = append(s.localHost, r)
	} else {
		s.queue = append(s.queue, r)
	}
	s.mu.Unlock()
	s.signal()
}

func (s *Session) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

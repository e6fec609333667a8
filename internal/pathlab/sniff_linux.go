package pathlab

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"synprobe/probe"
)

// Sniffer records the frames arriving on one interface of a node, from
// when Sniff opened it until Close, each decoded (probe.Frame). Frames
// the node sends are left out.
type Sniffer struct {
	fd      int
	closing atomic.Bool
	done    chan struct{}
	once    sync.Once

	mu     sync.Mutex
	frames []probe.Frame
}

// Sniff starts recording what arrives at node n on its interface towards
// the client (for the client, its only one; for the server, ServerIf):
// the client's segments as a router or the server gets them, or the
// replies as the client gets them.
func (b *Bed) Sniff(n Node) (*Sniffer, error) {
	if n < Client || n > Server || b.sys.fds[n] == 0 || len(b.sys.ifs[n]) == 0 {
		return nil, fmt.Errorf("sniff on %s: no such node, or the bed is closed", n)
	}
	ifName := b.sys.ifs[n][0]
	if n == Client {
		ifName = b.ClientIf
	}
	var fd int
	err := b.In(n, func() error {
		ifi, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sniff on %s %s: %w", n, ifName, err)
	}
	// A timeout, so that Close's shutdown is seen by a blocked read.
	tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	s := &Sniffer{fd: fd, done: make(chan struct{})}
	go s.read()
	return s, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (s *Sniffer) read() {
	defer close(s.done)
	buf := make([]byte, 1<<16)
	for {
		n, from, err := unix.Recvfrom(s.fd, buf, 0)
		if s.closing.Load() {
			return
		}
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n == 0 {
			return
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		var f probe.Frame
		if f.Decode(append([]byte(nil), buf[:n]...)) != nil && !f.Has(probe.LayerIP) {
			continue
		}
		s.mu.Lock()
		s.frames = append(s.frames, f)
		s.mu.Unlock()
	}
}

// Frames returns what arrived so far.
func (s *Sniffer) Frames() []probe.Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]probe.Frame(nil), s.frames...)
}

// Wait returns the first frame, among those arrived so far and those
// arriving within d, that match accepts.
func (s *Sniffer) Wait(d time.Duration, match func(f *probe.Frame) bool) (*probe.Frame, bool) {
	end := time.Now().Add(d)
	for i := 0; ; {
		s.mu.Lock()
		for ; i < len(s.frames); i++ {
			if match(&s.frames[i]) {
				f := s.frames[i]
				s.mu.Unlock()
				return &f, true
			}
		}
		s.mu.Unlock()
		if time.Now().After(end) {
			return nil, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Close stops recording; Frames still returns what arrived.
func (s *Sniffer) Close() error {
	var err error
	s.once.Do(func() {
		s.closing.Store(true)
		<-s.done
		err = unix.Close(s.fd)
	})
	return err
}

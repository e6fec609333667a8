package pathlab

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"synprobe/internal/netns"
	"synprobe/probe"
)

// sniffer captures every frame arriving on one interface of a node with an
// AF_PACKET socket, from when it opens.
type sniffer struct {
	fd     int
	mu     sync.Mutex
	frames []sniffed
	done   chan struct{}
}

type sniffed struct {
	f   probe.Frame
	raw []byte
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func sniff(t *testing.T, b *Bed, n Node, ifName string) *sniffer {
	t.Helper()
	var fd int
	err := netns.Do(b.NSFD(n), func() (err error) {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		ifi, err := netIndex(ifName)
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi})
	})
	if err != nil {
		t.Fatalf("open capture on %s %s: %v", n, ifName, err)
	}
	tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	s := &sniffer{fd: fd, done: make(chan struct{})}
	go s.read()
	t.Cleanup(s.close)
	return s
}

func netIndex(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return ifi.Index, nil
}

func (s *sniffer) read() {
	defer close(s.done)
	buf := make([]byte, 1<<16)
	for {
		n, from, err := unix.Recvfrom(s.fd, buf, 0)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			return
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		raw := append([]byte(nil), buf[:n]...)
		var f probe.Frame
		if f.Decode(raw) != nil && !f.Has(probe.LayerIP) {
			continue
		}
		s.mu.Lock()
		s.frames = append(s.frames, sniffed{f: f, raw: raw})
		s.mu.Unlock()
	}
}

func (s *sniffer) close() {
	unix.Shutdown(s.fd, unix.SHUT_RDWR)
	unix.Close(s.fd)
	<-s.done
}

// wait returns the first frame arrived that match says, waiting up to d.
func (s *sniffer) wait(d time.Duration, match func(f *probe.Frame) bool) (*probe.Frame, bool) {
	end := time.Now().Add(d)
	for i := 0; ; {
		s.mu.Lock()
		for ; i < len(s.frames); i++ {
			if match(&s.frames[i].f) {
				f := s.frames[i].f
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

// bySeq matches a TCP segment with the given sequence number and flags.
func bySeq(seq probe.Seq, flags probe.Flags) func(f *probe.Frame) bool {
	return func(f *probe.Frame) bool {
		return f.Has(probe.LayerTCP) && f.TCP.Seq == seq && f.TCP.Flags == flags
	}
}

func optString(b []byte) string {
	return fmt.Sprintf("% x", b)
}

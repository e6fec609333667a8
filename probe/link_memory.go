package probe

import (
	"sync"
	"sync/atomic"
	"time"
)

// MemoryLink is a Link whose far end lives in this process: an in-process TCP
// stack (the gVisor lab) or a test responder. Frames synprobe writes are
// handed to deliver; frames the far end produces come in through Inject.
//
// Like an AF_PACKET socket it shows synprobe its own frames going out, and
// like one it drops frames when its queue is full and counts the drops.
type MemoryLink struct {
	mac     MAC
	mtu     int
	deliver func(frame []byte)

	queue     chan Capture
	closed    chan struct{}
	closeOnce sync.Once

	received atomic.Uint64
	drops    atomic.Uint64
}

// memoryQueue is deep enough for a burst of replies to many sessions.
const memoryQueue = 8192

// NewMemoryLink returns a link with hardware address mac that hands every
// frame written to it to deliver (which must not block for long and must not
// keep the slice: it is a copy owned by deliver).
func NewMemoryLink(mac MAC, mtu int, deliver func(frame []byte)) *MemoryLink {
	return &MemoryLink{
		mac:     mac,
		mtu:     mtu,
		deliver: deliver,
		queue:   make(chan Capture, memoryQueue),
		closed:  make(chan struct{}),
	}
}

// WriteFrame implements Link.
func (l *MemoryLink) WriteFrame(frame []byte) error {
	select {
	case <-l.closed:
		return ErrLinkClosed
	default:
	}
	now := time.Now()
	echo := append([]byte(nil), frame...)
	l.enqueue(Capture{Data: echo, Time: now, Outgoing: true})
	l.deliver(append([]byte(nil), frame...))
	return nil
}

// Inject hands synprobe a frame from the far end. It never blocks: when the
// queue is full the frame is dropped and counted, as the kernel would.
func (l *MemoryLink) Inject(frame []byte) {
	l.enqueue(Capture{Data: append([]byte(nil), frame...), Time: time.Now()})
}

func (l *MemoryLink) enqueue(c Capture) {
	select {
	case <-l.closed:
		return
	default:
	}
	select {
	case l.queue <- c:
		l.received.Add(1)
	default:
		l.drops.Add(1)
	}
}

// ReadFrame implements Link.
func (l *MemoryLink) ReadFrame() (Capture, error) {
	select {
	case c := <-l.queue:
		return c, nil
	case <-l.closed:
		return Capture{}, ErrLinkClosed
	}
}

// Stats implements Link.
func (l *MemoryLink) Stats() (LinkStats, error) {
	return LinkStats{Received: l.received.Load(), Drops: l.drops.Load()}, nil
}

// HardwareAddr implements Link.
func (l *MemoryLink) HardwareAddr() MAC { return l.mac }

// MTU implements Link.
func (l *MemoryLink) MTU() int { return l.mtu }

// Name implements Link.
func (l *MemoryLink) Name() string { return "memory" }

// Close implements Link.
func (l *MemoryLink) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

// Handle returns a view of the link for one prober: closing it ends the
// view's reads and writes, not the link, so that the probers of targets
// checked one after another (a --targets run against the in-process lab)
// each own one. Views share the link's queue: one reads at a time.
func (l *MemoryLink) Handle() Link {
	return &memoryHandle{MemoryLink: l, closed: make(chan struct{})}
}

type memoryHandle struct {
	*MemoryLink
	closed    chan struct{}
	closeOnce sync.Once
}

func (h *memoryHandle) WriteFrame(frame []byte) error {
	select {
	case <-h.closed:
		return ErrLinkClosed
	default:
	}
	return h.MemoryLink.WriteFrame(frame)
}

func (h *memoryHandle) ReadFrame() (Capture, error) {
	select {
	case c := <-h.queue:
		return c, nil
	case <-h.MemoryLink.closed:
		return Capture{}, ErrLinkClosed
	case <-h.closed:
		return Capture{}, ErrLinkClosed
	}
}

func (h *memoryHandle) Close() error {
	h.closeOnce.Do(func() { close(h.closed) })
	return nil
}

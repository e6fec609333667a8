package probe

import (
	"errors"
	"time"
)

// ErrLinkClosed is returned by a Link's ReadFrame and WriteFrame once the
// link has been closed.
var ErrLinkClosed = errors.New("link closed")

// Link moves whole Ethernet frames between synprobe and a network.
//
// ReadFrame returns frames in both directions: those arriving, and those
// leaving the host (Outgoing set), whether synprobe sent them or the local
// kernel did. Seeing its own frames go out gives synprobe a send time from the
// same clock as the receive times, and lets it notice a RST the local kernel
// sent behind its back.
type Link interface {
	// WriteFrame sends one Ethernet frame as given.
	WriteFrame(frame []byte) error
	// ReadFrame blocks until the next frame passes the link's filter, or the
	// link is closed (ErrLinkClosed). The returned Data is owned by the caller.
	ReadFrame() (Capture, error)
	// Stats reports counters since the link was opened.
	Stats() (LinkStats, error)
	// HardwareAddr is the link's own MAC address.
	HardwareAddr() MAC
	// MTU is the largest IP packet the link carries.
	MTU() int
	// Name names the link for messages ("veth0", "memory").
	Name() string
	// Close releases the link; a blocked ReadFrame returns ErrLinkClosed.
	Close() error
}

// Capture is one frame seen on a link.
type Capture struct {
	Data []byte
	// Time is when the frame was seen, taken by the kernel where the link
	// allows (SO_TIMESTAMPNS), so that round-trip times are not inflated by
	// scheduling delays in synprobe.
	Time time.Time
	// Outgoing is set for frames leaving this host.
	Outgoing bool
	// ChecksumPartial is set when the kernel reports that the transport
	// checksum is not final (TP_STATUS_CSUMNOTREADY, or
	// VIRTIO_NET_HDR_F_NEEDS_CSUM: checksum offload on veth or a NIC). A bad
	// checksum in such a frame is nobody's fault.
	ChecksumPartial bool
	// GSOSize and GSOType describe a super-frame: one frame that stands for
	// several TCP segments of at most GSOSize bytes of payload each, which
	// the kernel coalesced on receive (GRO) or whose segmentation was left
	// to an offload (TSO, GSO). Both are zero for an ordinary frame. The
	// prober splits super-frames (SplitSuperFrame) before anything else
	// sees them.
	GSOSize uint16
	GSOType GSOType
}

// LinkStats are a link's counters.
type LinkStats struct {
	// Received counts frames delivered to the link's socket.
	Received uint64
	// Drops counts frames the kernel dropped because synprobe's socket
	// buffer was full, or could not hand over (a super-frame of a kind
	// that the header in front of it cannot describe): a reply lost here
	// must never be read as silence from the target.
	Drops uint64
}

//go:build linux

package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"synprobe/internal/netns"
)

// PacketLink is a Link on AF_PACKET sockets bound to one Ethernet interface.
//
// It uses two sockets. A packet socket never receives the frames it sent
// itself, so frames go out on a send socket (whose filter rejects every
// frame, so that nothing queues up on it) and the receive socket sees them
// leave like any other outgoing frame, with the kernel's timestamp: the send
// time and the reply times then come from the same clock.
//
// The receive socket's filter (FlowFilter) runs in the kernel. Every frame
// it passes comes with the packet type (PACKET_OUTGOING sets Outgoing), the
// kernel's checksum state (PACKET_AUXDATA: TP_STATUS_CSUMNOTREADY sets
// ChecksumPartial) and a kernel timestamp (SO_TIMESTAMPNS): for a frame
// leaving, taken when it passed the packet taps on its way to the driver;
// for one arriving, when the driver handed it to the stack. Both come from
// CLOCK_REALTIME, the clock of time.Now.
//
// With segmentation offloads on (the default on most NICs and on veth),
// the receive socket sees super-frames: several segments in one frame,
// coalesced on receive (GRO) or not yet cut by the offload (TSO, GSO). The
// receive socket has PACKET_VNET_HDR, so that the kernel puts a struct
// virtio_net_hdr in front of every frame, which says whether it is one
// (GSOSize, GSOType; the prober splits it) and whether its checksum is
// partial. The header is made by recvmsg from the kernel's buffer: the
// filter runs on the frame alone, at the offsets it has without it. A
// kernel that refuses the option leaves super-frames whole (see Notes).
// The send socket has no such header: synprobe writes plain frames.
//
// Limits: the interface must be Ethernet (not loopback, whose frames a
// packet socket sees twice); frames longer than 256 KiB are cut; a VLAN tag
// that the NIC took off is put back into Data, but such frames passed the
// filter as untagged ones (bind to the VLAN interface, not its parent).
type PacketLink struct {
	name string
	mac  MAC
	mtu  int

	rx, tx       *packet.Conn
	rxRaw, txRaw syscall.RawConn

	readMu sync.Mutex // guards reader
	reader packetReader

	statsMu sync.Mutex // guards stats and, with closed, the kernel counters
	stats   LinkStats

	closeOnce sync.Once
	closed    atomic.Bool

	// untimed counts frames the kernel delivered without a timestamp, whose
	// Time was taken when synprobe read them.
	untimed atomic.Uint64

	// notes are facts about the link worth a line in a report.
	notes []string
}

// OpenPacketLink opens a PacketLink on cfg.Interface in the namespace
// cfg.NetNS. Errors name the interface and the cause; a missing privilege
// is ErrPermission.
func OpenPacketLink(cfg PacketLinkConfig) (*PacketLink, error) {
	if cfg.Interface == "" {
		return nil, errors.New("open packet link: no interface given")
	}
	if cfg.RecvBuffer < 0 {
		return nil, fmt.Errorf("open packet link on %s: receive buffer of %d bytes", cfg.Interface, cfg.RecvBuffer)
	}
	var filter []bpf.RawInstruction
	var err error
	if cfg.RawFilter != nil {
		filter, err = bpf.Assemble(cfg.RawFilter)
	} else {
		filter, err = assembleFilter(cfg.Filter)
	}
	if err != nil {
		return nil, fmt.Errorf("open packet link on %s: %w", cfg.Interface, err)
	}
	var l *PacketLink
	var openErr error
	err = netns.Do(cfg.NetNS, func() error {
		l, openErr = openPacketLink(cfg, filter)
		return openErr
	})
	if openErr != nil {
		return nil, openErr
	}
	if err != nil {
		return nil, fmt.Errorf("open packet link on %s: %w", cfg.Interface, err)
	}
	return l, nil
}

func assembleFilter(f FlowFilter) ([]bpf.RawInstruction, error) {
	prog, err := f.Program()
	if err != nil {
		return nil, err
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("assemble %v: %w", f, err)
	}
	return raw, nil
}

// rejectAllRaw is rejectAll assembled (a single return cannot fail to).
var rejectAllRaw, _ = bpf.Assemble(rejectAll)

func openPacketLink(cfg PacketLinkConfig, filter []bpf.RawInstruction) (*PacketLink, error) {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("open packet link: interface %q: %w", cfg.Interface, err)
	}
	if ifi.Flags&net.FlagUp == 0 {
		return nil, fmt.Errorf("open packet link on %s: interface is down", ifi.Name)
	}
	l := &PacketLink{
		name: ifi.Name,
		mtu:  ifi.MTU,
	}
	l.reader.init()
	l.mac, _ = MACFrom(ifi.HardwareAddr)

	// The receive socket is bound with a filter that passes nothing, so
	// that no frame queues before the options below are set: every frame
	// read has a timestamp and auxiliary data. The flow filter replaces it
	// last (atomically, no window without a filter).
	l.rx, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, &packet.Config{Filter: rejectAllRaw})
	if err != nil {
		return nil, openError(ifi.Name, "receive socket", err)
	}
	// A send-only socket: it must not queue the interface's frames.
	l.tx, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, &packet.Config{Filter: rejectAllRaw})
	if err != nil {
		l.rx.Close()
		return nil, openError(ifi.Name, "send socket", err)
	}
	if err := l.setup(cfg, filter); err != nil {
		l.rx.Close()
		l.tx.Close()
		return nil, fmt.Errorf("open packet link on %s: %w", ifi.Name, err)
	}
	if !l.reader.vnet {
		l.notes = append(l.notes, fmt.Sprintf("no PACKET_VNET_HDR on %s: super-frames of segmentation offloads (GRO, TSO/GSO) are seen whole, as larger segments than the MSS; switch the offloads off (ethtool -K %s gro off tso off gso off)", ifi.Name, ifi.Name))
	}
	return l, nil
}

func openError(name, which string, err error) error {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("open packet link on %s: %w: %w", name, ErrPermission, err)
	}
	return fmt.Errorf("open packet link on %s: %s: %w", name, which, err)
}

func (l *PacketLink) setup(cfg PacketLinkConfig, filter []bpf.RawInstruction) error {
	var err error
	if l.rxRaw, err = l.rx.SyscallConn(); err != nil {
		return err
	}
	if l.txRaw, err = l.tx.SyscallConn(); err != nil {
		return err
	}
	var hatype uint16
	var serr error
	err = l.rxRaw.Control(func(fd uintptr) {
		var sa unix.Sockaddr
		if sa, serr = unix.Getsockname(int(fd)); serr != nil {
			serr = fmt.Errorf("getsockname: %w", serr)
			return
		}
		if sll, ok := sa.(*unix.SockaddrLinklayer); ok {
			hatype = sll.Hatype
		}
		size := cfg.RecvBuffer
		if size == 0 {
			size = defaultRecvBuffer
		}
		// SO_RCVBUFFORCE needs CAP_NET_ADMIN; CAP_NET_RAW alone gets the
		// buffer capped at net.core.rmem_max.
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
		if errors.Is(serr, unix.EPERM) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, size)
		}
		if serr != nil {
			serr = fmt.Errorf("set receive buffer to %d bytes: %w", size, serr)
			return
		}
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); serr != nil {
			serr = fmt.Errorf("enable SO_TIMESTAMPNS: %w", serr)
			return
		}
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); serr != nil {
			serr = fmt.Errorf("enable PACKET_AUXDATA: %w", serr)
			return
		}
		// On the receive socket only. A refusal is not fatal: frames then
		// come as they did before, super-frames whole.
		if unix.SetsockoptInt(int(fd), unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1) == nil {
			l.reader.useVnetHdr()
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	if hatype != unix.ARPHRD_ETHER {
		return fmt.Errorf("not an Ethernet interface (hardware type %d): synprobe sends Ethernet frames", hatype)
	}
	awaitTimestamps()
	if err := l.rx.SetBPF(filter); err != nil {
		return fmt.Errorf("attach flow filter: %w", err)
	}
	return nil
}

// awaitTimestamps waits until the kernel stamps the packets it receives.
//
// The first socket in the system that asks for timestamps (SO_TIMESTAMPNS)
// turns stamping on for the whole kernel through deferred work
// (net_enable_timestamp flips a static key from a work queue). Until that
// work has run, frames reach a socket without a stamp, and recvmsg stamps
// them when they are read: the first replies to synprobe's first probe would
// carry read times. A datagram sent to itself over the loopback interface of
// the current namespace shows when stamping works: it is stamped while
// sendto runs, before recvmsg is called. Without a working loopback this
// returns at once; ReadFrame still tells read-time stamps apart.
func awaitTimestamps() {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) != nil ||
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000}) != nil ||
		unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}) != nil {
		return
	}
	self, err := unix.Getsockname(fd)
	if err != nil {
		return
	}
	buf, oob := make([]byte, 1), make([]byte, 64)
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if unix.Sendto(fd, buf, 0, self) != nil {
			return
		}
		called := time.Now()
		_, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, 0)
		if err != nil {
			return // lo is down: the datagram went nowhere
		}
		if ts := parseCmsgs(oob[:oobn]).time; !ts.IsZero() && ts.Before(called) {
			return
		}
	}
}

// SetFilter replaces the flow filter on the live socket. Frames that passed
// the old filter and were not read yet stay queued.
func (l *PacketLink) SetFilter(f FlowFilter) error {
	raw, err := assembleFilter(f)
	if err != nil {
		return fmt.Errorf("set filter on %s: %w", l.name, err)
	}
	if l.closed.Load() {
		return ErrLinkClosed
	}
	if err := l.rx.SetBPF(raw); err != nil {
		return l.opError("set filter", err)
	}
	return nil
}

// WriteFrame implements Link. It blocks (in the Go poller) while the send
// socket's buffer is full.
func (l *PacketLink) WriteFrame(frame []byte) error {
	if l.closed.Load() {
		return ErrLinkClosed
	}
	var werr error
	err := l.txRaw.Write(func(fd uintptr) bool {
		for {
			// The socket is bound: write(2) sends on its interface.
			_, werr = unix.Write(int(fd), frame)
			if werr != unix.EINTR {
				return werr != unix.EAGAIN
			}
		}
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return l.opError(fmt.Sprintf("send %d-byte frame", len(frame)), err)
	}
	return nil
}

// ReadFrame implements Link. Time is the kernel's timestamp; if the kernel
// gives none, the time the frame was read.
func (l *PacketLink) ReadFrame() (Capture, error) {
	l.readMu.Lock()
	defer l.readMu.Unlock()
	r := &l.reader
	err := l.rxRaw.Read(r.recv)
	if err == nil {
		err = r.err
	}
	if err != nil {
		return Capture{}, l.opError("read frame", err)
	}
	n := r.n
	if r.vnet {
		n = max(n-vnetHdrLen, 0)
	}
	return l.capture(n, int(r.msg.Controllen), r.from.Pkttype, r.called), nil
}

// vnetHdrLen is the size of struct virtio_net_hdr, which PACKET_VNET_HDR
// puts in front of every frame.
const vnetHdrLen = 10

// vnetHdr is what a struct virtio_net_hdr says of a frame. af_packet fills
// it with virtio_net_hdr_from_skb(..., vio_le(), ...): vio_le() is
// virtio_legacy_is_little_endian(), the host's byte order (little endian
// on amd64 and arm64), so the 16-bit fields are read in native order.
type vnetHdr struct {
	flags   uint8 // VIRTIO_NET_HDR_F_*
	gsoType GSOType
	gsoSize uint16
}

func parseVnetHdr(b []byte) vnetHdr {
	if len(b) < vnetHdrLen {
		return vnetHdr{}
	}
	// hdr_len at 2, gso_size at 4, csum_start at 6, csum_offset at 8.
	return vnetHdr{flags: b[0], gsoType: GSOType(b[1]), gsoSize: binary.NativeEndian.Uint16(b[4:])}
}

// packetReader is ReadFrame's state, reused from frame to frame so that a
// read allocates only the frame it returns.
type packetReader struct {
	buf  []byte
	oob  []byte
	from unix.RawSockaddrLinklayer
	// iov is the virtio_net_hdr, then buf; without PACKET_VNET_HDR, only
	// iov[1] is used.
	iov  [2]unix.Iovec
	vhdr [vnetHdrLen]byte
	vnet bool // PACKET_VNET_HDR is on
	msg  unix.Msghdr

	// Results of recv.
	n      int
	err    error
	called time.Time // when recvmsg was called

	// lost counts frames the kernel could not hand over with a
	// virtio_net_hdr (recvmsg fails with EINVAL and drops the frame).
	lost atomic.Uint64

	recv func(fd uintptr) bool // r.recvmsg as a method value, made once
}

func (r *packetReader) init() {
	r.buf = make([]byte, snapLen)
	r.oob = make([]byte, 128)
	r.iov[0].Base = &r.vhdr[0]
	r.iov[0].SetLen(len(r.vhdr))
	r.iov[1].Base = &r.buf[0]
	r.iov[1].SetLen(len(r.buf))
	r.msg.Name = (*byte)(unsafe.Pointer(&r.from))
	r.msg.Iov = &r.iov[1]
	r.msg.SetIovlen(1)
	r.msg.Control = &r.oob[0]
	r.recv = r.recvmsg
}

// useVnetHdr reads the virtio_net_hdr in front of each frame into vhdr.
func (r *packetReader) useVnetHdr() {
	r.vnet = true
	r.msg.Iov = &r.iov[0]
	r.msg.SetIovlen(2)
}

// recvmsg is the function for syscall.RawConn.Read: it reports false (wait
// in the poller) while the socket is empty.
func (r *packetReader) recvmsg(fd uintptr) bool {
	for {
		r.msg.Namelen = unix.SizeofSockaddrLinklayer
		r.msg.SetControllen(len(r.oob))
		r.called = time.Now()
		// MSG_TRUNC: the result is the frame's length even when it is
		// longer than buf.
		n, _, errno := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&r.msg)), unix.MSG_TRUNC)
		switch errno {
		case 0:
			r.n, r.err = int(n), nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case unix.EINVAL:
			if r.vnet {
				// The kernel could not describe the frame in a
				// virtio_net_hdr (a kind of super-frame it has no name
				// for) and dropped it: count it, read the next.
				r.lost.Add(1)
				continue
			}
		}
		r.n, r.err = 0, os.NewSyscallError("recvmsg", errno)
		return true
	}
}

// capture builds the Capture of the frame in the reader's buffer: n bytes
// long (possibly more than the buffer holds), with oobn bytes of control
// data, of packet type pkttype, read by a recvmsg called at called.
func (l *PacketLink) capture(n, oobn int, pkttype uint8, called time.Time) Capture {
	r := &l.reader
	c := Capture{Outgoing: pkttype == unix.PACKET_OUTGOING}
	cm := parseCmsgs(r.oob[:oobn])
	c.Time = cm.time
	// A frame that reached the socket before the kernel's timestamping was
	// on has no stamp, and recvmsg stamps it with the time of the read (the
	// kernel calls it a false timestamp). Such a frame was queued before
	// recvmsg was called, so a stamp after the call gives it away.
	if c.Time.IsZero() || !c.Time.Before(called) {
		l.untimed.Add(1)
		if c.Time.IsZero() {
			c.Time = called
		}
	}
	if r.vnet {
		h := parseVnetHdr(r.vhdr[:])
		if h.gsoType != GSONone {
			c.GSOSize, c.GSOType = h.gsoSize, h.gsoType
		}
		c.ChecksumPartial = h.flags&unix.VIRTIO_NET_HDR_F_NEEDS_CSUM != 0
	}
	size := min(n, len(r.buf))
	if cm.haveAux {
		aux := cm.aux
		c.ChecksumPartial = c.ChecksumPartial || aux.Status&unix.TP_STATUS_CSUMNOTREADY != 0
		if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 && size >= 12 {
			// The NIC or the kernel took the tag off (VLAN acceleration):
			// put it back where it was on the wire, as libpcap does.
			tpid := uint16(EtherTypeVLAN)
			if aux.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
				tpid = aux.Vlan_tpid
			}
			c.Data = make([]byte, size+4)
			copy(c.Data, r.buf[:12])
			binary.BigEndian.PutUint16(c.Data[12:], tpid)
			binary.BigEndian.PutUint16(c.Data[14:], aux.Vlan_tci)
			copy(c.Data[16:], r.buf[12:size])
			return c
		}
	}
	c.Data = append([]byte(nil), r.buf[:size]...)
	return c
}

// cmsgs is what a packet socket's control data says about a frame.
type cmsgs struct {
	time    time.Time // zero without SCM_TIMESTAMPNS
	aux     unix.TpacketAuxdata
	haveAux bool
}

// parseCmsgs reads control data without allocating.
func parseCmsgs(oob []byte) cmsgs {
	var cm cmsgs
	hdrLen := unix.CmsgLen(0)
	for len(oob) >= hdrLen {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		end := int(h.Len)
		if end < hdrLen || end > len(oob) {
			break
		}
		data := oob[hdrLen:end]
		switch {
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS:
			if ts, ok := cmsgValue[unix.Timespec](data); ok {
				cm.time = time.Unix(int64(ts.Sec), int64(ts.Nsec))
			}
		case h.Level == unix.SOL_PACKET && h.Type == unix.PACKET_AUXDATA:
			cm.aux, cm.haveAux = cmsgValue[unix.TpacketAuxdata](data)
		}
		next := unix.CmsgSpace(end - hdrLen)
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	return cm
}

// cmsgValue copies a kernel struct out of control message data.
func cmsgValue[T any](data []byte) (T, bool) {
	var v T
	size := int(unsafe.Sizeof(v))
	if len(data) < size {
		return v, false
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&v)), size), data)
	return v, true
}

// Stats implements Link. The kernel resets its counters on every read;
// the link adds them up.
func (l *PacketLink) Stats() (LinkStats, error) {
	l.statsMu.Lock()
	defer l.statsMu.Unlock()
	if !l.closed.Load() {
		if err := l.pollStats(); err != nil {
			return l.stats, err
		}
	}
	return l.stats, nil
}

// pollStats adds the kernel's counters to l.stats; statsMu must be held.
func (l *PacketLink) pollStats() error {
	s, err := l.rx.Stats()
	if err != nil {
		return l.opError("read statistics", err)
	}
	// tp_packets includes the drops (af_packet adds them before copying
	// out); Received counts frames that made it into the queue. Frames lost
	// to recvmsg (a super-frame without a virtio_net_hdr) were received,
	// but never reached synprobe: drops too.
	lost := l.reader.lost.Swap(0)
	l.stats.Received += uint64(s.Packets - s.Drops)
	l.stats.Drops += uint64(s.Drops) + lost
	return nil
}

// Notes are facts about the link worth a line in a report: what it cannot
// do on this kernel.
func (l *PacketLink) Notes() []string { return append([]string(nil), l.notes...) }

// HardwareAddr implements Link.
func (l *PacketLink) HardwareAddr() MAC { return l.mac }

// MTU implements Link.
func (l *PacketLink) MTU() int { return l.mtu }

// Name implements Link: the interface's name.
func (l *PacketLink) Name() string { return l.name }

// Close implements Link. A blocked ReadFrame returns ErrLinkClosed. Closing
// twice is harmless.
func (l *PacketLink) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.statsMu.Lock()
		l.pollStats() // keep the last counters; a failure loses only those
		l.closed.Store(true)
		l.statsMu.Unlock()
		err = errors.Join(l.rx.Close(), l.tx.Close())
		if err != nil {
			err = fmt.Errorf("close packet link on %s: %w", l.name, err)
		}
	})
	return err
}

// opError wraps err with the operation and the interface, or turns it into
// ErrLinkClosed when the link was closed under the operation.
func (l *PacketLink) opError(op string, err error) error {
	if l.closed.Load() || errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed) {
		return ErrLinkClosed
	}
	return fmt.Errorf("%s on %s: %w", op, l.name, err)
}

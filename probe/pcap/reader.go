package pcap

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"time"
)

// File and block magic numbers, as read little-endian from the first bytes.
const (
	magicMicro        = 0xa1b2c3d4 // pcap, microseconds, little-endian
	magicNano         = 0xa1b23c4d // pcap, nanoseconds, little-endian
	magicMicroSwapped = 0xd4c3b2a1 // pcap, microseconds, big-endian
	magicNanoSwapped  = 0x4d3cb2a1 // pcap, nanoseconds, big-endian
	magicGzip         = 0x8b1f     // first two bytes of a gzip stream

	blockSHB       = 0x0a0d0d0a // a palindrome: reads the same in both byte orders
	blockIDB       = 0x00000001
	blockPB        = 0x00000002 // obsolete Packet Block
	blockSPB       = 0x00000003
	blockEPB       = 0x00000006
	byteOrderMagic = 0x1a2b3c4d

	optEndOfOpt = 0
	optTSResol  = 9
	optTSOffset = 14
)

const (
	// maxBlock bounds a pcapng block and a pcap record. Real ones are below
	// 256 KiB; anything past this is damage, not data.
	maxBlock = 256 << 20
	// maxInterfaces bounds the interfaces of one pcapng section, so that a
	// stream of forged descriptions cannot grow memory without end.
	maxInterfaces = 1 << 16
	// readBufSize is the initial buffer: one read brings in thousands of small
	// packets, and the largest packet of a usual snaplen (262144) fits.
	readBufSize = 256<<10 + 64

	pcapHeaderLen       = 24
	pcapRecordHeaderLen = 16
	blockHeaderLen      = 12 // type, total length ... total length
)

// Record is one captured packet.
type Record struct {
	// Time is when the packet was captured, in UTC. It is the zero Time for
	// a pcapng Simple Packet Block, which carries no timestamp.
	Time time.Time
	// LinkType says how Data begins.
	LinkType LinkType
	// Interface is the pcapng interface index within its section; 0 for pcap.
	Interface int
	// Data is the captured bytes. It is valid until the next call to Next.
	Data []byte
	// OrigLen is the packet's length on the wire; Data is shorter when the
	// capture cut the packet at its snaplen.
	OrigLen int
	// Offset is the byte offset in the stream of the record (pcap) or block
	// (pcapng) that held the packet, for messages.
	Offset int64
}

// Reader reads packets from a pcap or pcapng stream, one at a time, in one
// pass: it never seeks, keeps memory bounded by the largest record, and
// allocates nothing per packet. A Reader is not safe for concurrent use.
type Reader struct {
	src    io.Reader
	buf    []byte
	r, w   int   // unread bytes are buf[r:w]
	base   int64 // stream offset of buf[0]
	srcErr error // error from src, io.EOF included, once seen
	err    error // sticky error returned by Next

	ng     bool // pcapng, else pcap
	be     bool // big-endian (pcap file, or current pcapng section)
	nano   bool // pcap timestamps in nanoseconds
	format string

	linkType LinkType // pcap
	ifaces   []iface  // pcapng: interfaces of the current section
}

// iface is a pcapng interface as its description block set it up.
type iface struct {
	linkType LinkType
	snaplen  uint32
	ts       tsUnit
}

// tsUnit turns a pcapng timestamp into a time: the counter ticks at
// 10^-exp or 2^-exp seconds (if_tsresol) from if_tsoffset seconds.
type tsUnit struct {
	pow2   bool
	exp    uint8
	perSec uint64 // 10^exp, when !pow2
	scale  uint64 // 10^|9-exp|, when !pow2
	offset int64
}

var defaultTSUnit = tsUnit{exp: 6, perSec: 1e6, scale: 1e3}

// NewReader reads the file header from r and returns a Reader positioned at
// the first packet. It recognises classic pcap (microsecond and nanosecond
// timestamps, either byte order) and pcapng.
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{src: r, buf: make([]byte, readBufSize)}
	if err := rd.fill(4); err != nil {
		if err == io.EOF {
			reason := "the stream is empty"
			if rd.w > 0 {
				reason = fmt.Sprintf("the stream is only %d bytes long", rd.w)
			}
			return nil, &FormatError{Format: "capture", Part: "file header", Reason: reason + ": not a pcap or pcapng file", Err: ErrTruncated}
		}
		return nil, fmt.Errorf("capture: read file header: %w", err)
	}
	switch magic := binary.LittleEndian.Uint32(rd.buf); magic {
	case magicMicro, magicNano, magicMicroSwapped, magicNanoSwapped:
		rd.be = magic == magicMicroSwapped || magic == magicNanoSwapped
		rd.nano = magic == magicNano || magic == magicNanoSwapped
		if err := rd.readPcapHeader(); err != nil {
			return nil, err
		}
	case blockSHB:
		rd.ng = true
		rd.format = "pcapng"
		if err := rd.readSHB(); err != nil {
			return nil, err
		}
	default:
		reason := fmt.Sprintf("magic number 0x%08x is neither pcap nor pcapng: not a capture file", magic)
		if uint16(magic) == magicGzip {
			reason = "the file is gzip-compressed: decompress it first (zcat FILE | synprobe analyze -)"
		}
		return nil, &FormatError{Format: "capture", Part: "file header", Reason: reason}
	}
	return rd, nil
}

// Format names the stream's format: "pcap (microsecond, little-endian)",
// "pcap (nanosecond, big-endian)", ..., or "pcapng".
func (r *Reader) Format() string { return r.format }

func (r *Reader) readPcapHeader() error {
	unit, order := "microsecond", "little-endian"
	if r.nano {
		unit = "nanosecond"
	}
	if r.be {
		order = "big-endian"
	}
	r.format = "pcap (" + unit + ", " + order + ")"
	if err := r.fill(pcapHeaderLen); err != nil {
		return r.short("file header", 0, pcapHeaderLen, err)
	}
	h := r.buf[:pcapHeaderLen]
	if major, minor := r.u16(h[4:]), r.u16(h[6:]); major != 2 {
		return r.corrupt("file header", 0, fmt.Sprintf("version %d.%d is not 2.x", major, minor))
	}
	// The upper bits carry FCS information, not the type (libpcap's LT_LINKTYPE).
	r.linkType = LinkType(r.u32(h[20:]) & 0xffff)
	r.r = pcapHeaderLen
	return nil
}

// Next reads the next packet into rec. It returns io.EOF at a clean end of
// the stream, a *FormatError for damage (wrapping ErrTruncated when the
// stream stops inside a record), and the source's error, wrapped, when
// reading fails. After an error, Next keeps returning it.
func (r *Reader) Next(rec *Record) error {
	if r.err != nil {
		return r.err
	}
	var err error
	if r.ng {
		err = r.nextBlock(rec)
	} else {
		err = r.nextRecord(rec)
	}
	if err != nil {
		r.err = err
	}
	return err
}

func (r *Reader) nextRecord(rec *Record) error {
	off := r.pos()
	if err := r.fill(pcapRecordHeaderLen); err != nil {
		if err == io.EOF && r.r == r.w {
			return io.EOF
		}
		return r.short("record", off, pcapRecordHeaderLen, err)
	}
	caplen := r.u32(r.buf[r.r+8:])
	if caplen > maxBlock {
		return r.corrupt("record", off, fmt.Sprintf("captured length %d is beyond any real packet (limit %d)", caplen, maxBlock))
	}
	n := pcapRecordHeaderLen + int(caplen)
	if err := r.fill(n); err != nil {
		return r.short("record", off, n, err)
	}
	h := r.buf[r.r : r.r+pcapRecordHeaderLen]
	nsec := int64(r.u32(h[4:]))
	if !r.nano {
		nsec *= 1000
	}
	rec.Time = time.Unix(int64(r.u32(h)), nsec).UTC()
	rec.LinkType = r.linkType
	rec.Interface = 0
	rec.OrigLen = int(r.u32(h[12:]))
	rec.Offset = off
	// The full slice expression keeps a caller's append from writing over
	// the next record.
	rec.Data = r.buf[r.r+pcapRecordHeaderLen : r.r+n : r.r+n]
	r.r += n
	return nil
}

// blockInfo gives a pcapng block type's name and smallest total length.
func blockInfo(typ uint32) (string, uint32) {
	switch typ {
	case blockSHB:
		return "a section header block", 28
	case blockIDB:
		return "an interface description block", 20
	case blockEPB:
		return "an enhanced packet block", 32
	case blockSPB:
		return "a simple packet block", 16
	case blockPB:
		return "a packet block", 32
	}
	return "a block", blockHeaderLen
}

// blockHeader reads and checks the type and total length of the block at
// the current position, leaving the position there.
func (r *Reader) blockHeader(off int64) (typ, length uint32, err error) {
	if err := r.fill(blockHeaderLen); err != nil {
		if err == io.EOF && r.r == r.w {
			return 0, 0, io.EOF
		}
		return 0, 0, r.short("block", off, blockHeaderLen, err)
	}
	b := r.buf[r.r : r.r+blockHeaderLen]
	typ = binary.LittleEndian.Uint32(b)
	if typ == blockSHB {
		// A new section may switch byte order; its length is written in it.
		switch binary.LittleEndian.Uint32(b[8:]) {
		case byteOrderMagic:
			r.be = false
		case 0x4d3c2b1a:
			r.be = true
		default:
			return 0, 0, r.corrupt("block", off, fmt.Sprintf("section header byte-order magic 0x%08x is not 0x1a2b3c4d in either byte order", binary.BigEndian.Uint32(b[8:])))
		}
	} else {
		typ = r.u32(b)
	}
	length = r.u32(b[4:])
	name, min := blockInfo(typ)
	switch {
	case length > maxBlock:
		return 0, 0, r.corrupt("block", off, fmt.Sprintf("total length %d is beyond any real block (limit %d)", length, maxBlock))
	case length%4 != 0:
		return 0, 0, r.corrupt("block", off, fmt.Sprintf("total length %d is not a multiple of 4", length))
	case length < min:
		return 0, 0, r.corrupt("block", off, fmt.Sprintf("total length %d is shorter than %s (%d bytes)", length, name, min))
	}
	return typ, length, nil
}

// wholeBlock makes the block of the given length at the current position
// available and checks its trailing length.
func (r *Reader) wholeBlock(off int64, length uint32) ([]byte, error) {
	if err := r.fill(int(length)); err != nil {
		return nil, r.short("block", off, int(length), err)
	}
	b := r.buf[r.r : r.r+int(length)]
	if trail := r.u32(b[length-4:]); trail != length {
		return nil, r.corrupt("block", off, fmt.Sprintf("trailing total length %d does not match the leading %d", trail, length))
	}
	return b, nil
}

// skipBlock passes over a block without holding it in memory, so that a
// large block of a kind nobody reads costs no buffer.
func (r *Reader) skipBlock(off int64, length uint32) error {
	if err := r.discard(int(length) - 4); err != nil {
		return r.short("block", off, int(length), err)
	}
	if err := r.fill(4); err != nil {
		return r.short("block", off, int(length), err)
	}
	if trail := r.u32(r.buf[r.r:]); trail != length {
		return r.corrupt("block", off, fmt.Sprintf("trailing total length %d does not match the leading %d", trail, length))
	}
	r.r += 4
	return nil
}

// readSHB reads the section header block that starts the stream.
func (r *Reader) readSHB() error {
	typ, length, err := r.blockHeader(0)
	if err == io.EOF {
		err = r.short("block", 0, blockHeaderLen, err)
	}
	if err != nil {
		return err
	}
	return r.section(typ, length, 0)
}

// section starts a new section: interfaces are numbered afresh.
func (r *Reader) section(typ, length uint32, off int64) error {
	if err := r.fill(16); err != nil {
		return r.short("block", off, int(length), err)
	}
	if major, minor := r.u16(r.buf[r.r+12:]), r.u16(r.buf[r.r+14:]); major != 1 {
		return r.corrupt("block", off, fmt.Sprintf("section header version %d.%d is not 1.x", major, minor))
	}
	r.ifaces = r.ifaces[:0]
	return r.skipBlock(off, length)
}

func (r *Reader) nextBlock(rec *Record) error {
	for {
		off := r.pos()
		typ, length, err := r.blockHeader(off)
		if err != nil {
			return err
		}
		switch typ {
		case blockEPB, blockSPB, blockPB:
			b, err := r.wholeBlock(off, length)
			if err != nil {
				return err
			}
			if err := r.packet(typ, b, off, rec); err != nil {
				return err
			}
			r.r += int(length)
			return nil
		case blockIDB:
			b, err := r.wholeBlock(off, length)
			if err != nil {
				return err
			}
			if err := r.addInterface(b, off); err != nil {
				return err
			}
			r.r += int(length)
		case blockSHB:
			if err := r.section(typ, length, off); err != nil {
				return err
			}
		default:
			// Name resolution, statistics, decryption secrets, custom
			// and unknown blocks say nothing about the packets.
			if err := r.skipBlock(off, length); err != nil {
				return err
			}
		}
	}
}

// packet fills rec from a whole EPB, SPB or PB.
func (r *Reader) packet(typ uint32, b []byte, off int64, rec *Record) error {
	var ifid, caplen, origlen uint32
	var ts uint64
	var data int // offset of the packet bytes in b
	room := uint32(len(b))
	switch typ {
	case blockEPB:
		ifid = r.u32(b[8:])
		ts = uint64(r.u32(b[12:]))<<32 | uint64(r.u32(b[16:]))
		caplen, origlen, data, room = r.u32(b[20:]), r.u32(b[24:]), 28, room-32
	case blockPB:
		ifid = uint32(r.u16(b[8:]))
		ts = uint64(r.u32(b[12:]))<<32 | uint64(r.u32(b[16:]))
		caplen, origlen, data, room = r.u32(b[20:]), r.u32(b[24:]), 28, room-32
	case blockSPB:
		origlen, data, room = r.u32(b[8:]), 12, room-16
		if len(r.ifaces) == 0 {
			return r.corrupt("block", off, "simple packet block before any interface description block")
		}
		// The block holds no captured length: the packet was cut at the
		// interface's snaplen, and its padding fills the block.
		caplen = min(origlen, room)
		if s := r.ifaces[0].snaplen; s != 0 {
			caplen = min(caplen, s)
		}
	}
	if ifid >= uint32(len(r.ifaces)) {
		return r.corrupt("block", off, fmt.Sprintf("packet on interface %d, which no interface description block of this section describes (it has %d)", ifid, len(r.ifaces)))
	}
	if caplen > room {
		return r.corrupt("block", off, fmt.Sprintf("captured length %d runs past the end of the block (room for %d)", caplen, room))
	}
	ifc := &r.ifaces[ifid]
	if typ == blockSPB {
		rec.Time = time.Time{}
	} else {
		rec.Time = ifc.ts.time(ts)
	}
	rec.LinkType = ifc.linkType
	rec.Interface = int(ifid)
	rec.OrigLen = int(origlen)
	rec.Offset = off
	end := data + int(caplen)
	rec.Data = b[data:end:end]
	return nil
}

// addInterface adds the interface that a whole IDB describes.
func (r *Reader) addInterface(b []byte, off int64) error {
	if len(r.ifaces) >= maxInterfaces {
		return r.corrupt("block", off, fmt.Sprintf("more than %d interfaces in one section", maxInterfaces))
	}
	ifc := iface{
		linkType: LinkType(r.u16(b[8:])),
		snaplen:  r.u32(b[12:]),
		ts:       defaultTSUnit,
	}
	opts := b[16 : len(b)-4]
	for len(opts) >= 4 {
		code, n := r.u16(opts), int(r.u16(opts[2:]))
		if code == optEndOfOpt {
			break
		}
		optOff := off + int64(len(b)-4-len(opts))
		padded := (n + 3) &^ 3
		if 4+padded > len(opts) {
			return r.corrupt("block", off, fmt.Sprintf("option %d at byte %d, %d bytes long, runs past the end of the block", code, optOff, n))
		}
		v := opts[4 : 4+n]
		switch code {
		case optTSResol:
			if n != 1 {
				return r.corrupt("block", off, fmt.Sprintf("if_tsresol option at byte %d is %d bytes long, not 1", optOff, n))
			}
			u, err := newTSUnit(v[0])
			if err != nil {
				return r.corrupt("block", off, err.Error())
			}
			u.offset = ifc.ts.offset
			ifc.ts = u
		case optTSOffset:
			if n != 8 {
				return r.corrupt("block", off, fmt.Sprintf("if_tsoffset option at byte %d is %d bytes long, not 8", optOff, n))
			}
			ifc.ts.offset = int64(r.u64(v))
		}
		opts = opts[4+padded:]
	}
	r.ifaces = append(r.ifaces, ifc)
	return nil
}

func newTSUnit(resol byte) (tsUnit, error) {
	exp := resol & 0x7f
	if resol&0x80 != 0 {
		if exp > 63 {
			return tsUnit{}, fmt.Errorf("if_tsresol 2^-%d is finer than a 64-bit timestamp can count", exp)
		}
		return tsUnit{pow2: true, exp: exp}, nil
	}
	if exp > 19 {
		return tsUnit{}, fmt.Errorf("if_tsresol 10^-%d is finer than a 64-bit timestamp can count", exp)
	}
	u := tsUnit{exp: exp, perSec: 1, scale: 1}
	for range exp {
		u.perSec *= 10
	}
	d := int(exp) - 9
	for range max(d, -d) {
		u.scale *= 10
	}
	return u, nil
}

// time converts a timestamp counted in u's units.
func (u *tsUnit) time(ts uint64) time.Time {
	var sec, nsec uint64
	switch {
	case u.pow2:
		sec = ts >> u.exp
		// frac/2^exp seconds; frac*1e9 may need 128 bits.
		hi, lo := bits.Mul64(ts&(1<<u.exp-1), 1e9)
		nsec = hi<<(64-u.exp) | lo>>u.exp
	case u.exp == 6: // the default: constant divisors compile to multiplications
		sec, nsec = ts/1e6, ts%1e6*1e3
	case u.exp == 9:
		sec, nsec = ts/1e9, ts%1e9
	case u.exp < 9:
		sec, nsec = ts/u.perSec, ts%u.perSec*u.scale
	default:
		sec, nsec = ts/u.perSec, ts%u.perSec/u.scale
	}
	return time.Unix(int64(sec)+u.offset, int64(nsec)).UTC()
}

func (r *Reader) u16(b []byte) uint16 {
	if r.be {
		return binary.BigEndian.Uint16(b)
	}
	return binary.LittleEndian.Uint16(b)
}

func (r *Reader) u32(b []byte) uint32 {
	if r.be {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

func (r *Reader) u64(b []byte) uint64 {
	if r.be {
		return binary.BigEndian.Uint64(b)
	}
	return binary.LittleEndian.Uint64(b)
}

// pos is the stream offset of the next unread byte.
func (r *Reader) pos() int64 { return r.base + int64(r.r) }

func (r *Reader) corrupt(part string, off int64, reason string) error {
	return &FormatError{Format: r.formatName(), Part: part, Offset: off, Reason: reason}
}

// short reports that need bytes from off could not be read: the stream
// ended (a truncated capture) or the source failed.
func (r *Reader) short(part string, off int64, need int, err error) error {
	if err != io.EOF {
		return fmt.Errorf("%s: read %s at byte %d: %w", r.formatName(), part, off, err)
	}
	have := r.base + int64(r.w) - off
	return &FormatError{
		Format: r.formatName(), Part: part, Offset: off, Err: ErrTruncated,
		Reason: fmt.Sprintf("the stream ends after %d of its %d bytes (truncated capture)", have, need),
	}
}

func (r *Reader) formatName() string {
	if r.ng {
		return "pcapng"
	}
	return "pcap"
}

// fill makes at least n unread bytes available in buf[r:w]. It returns
// io.EOF when the stream ends first, and the source's error when it fails.
func (r *Reader) fill(n int) error {
	if r.w-r.r >= n {
		return nil
	}
	return r.fillSlow(n)
}

func (r *Reader) fillSlow(n int) error {
	empty := 0
	for r.w-r.r < n {
		if r.srcErr != nil {
			return r.srcErr
		}
		if len(r.buf)-r.r < n {
			if r.r > 0 {
				copy(r.buf, r.buf[r.r:r.w])
				r.base += int64(r.r)
				r.w -= r.r
				r.r = 0
			}
			if len(r.buf) < n && r.w == len(r.buf) {
				// Grow by doubling at most, and only once the bytes
				// already read fill the buffer: a forged length then
				// costs memory in proportion to the bytes that really
				// arrive, never to the length claimed.
				nb := make([]byte, min(2*len(r.buf), n))
				copy(nb, r.buf[:r.w])
				r.buf = nb
			}
		}
		m, err := r.src.Read(r.buf[r.w:])
		if m < 0 || m > len(r.buf)-r.w {
			return fmt.Errorf("source returned an invalid count %d from Read", m)
		}
		r.w += m
		if err != nil {
			r.srcErr = err
		} else if m == 0 {
			if empty++; empty >= 100 {
				return io.ErrNoProgress
			}
		}
	}
	return nil
}

// discard passes over n bytes without keeping them.
func (r *Reader) discard(n int) error {
	for {
		avail := r.w - r.r
		if n <= avail {
			r.r += n
			return nil
		}
		n -= avail
		r.base += int64(r.w)
		r.r, r.w = 0, 0
		if err := r.fillSlow(1); err != nil {
			return err
		}
	}
}

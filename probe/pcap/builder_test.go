package pcap

import (
	"encoding/binary"
	"time"
)

// The builders write capture files byte by byte from the format
// specifications, independently of Reader and Writer, so that tests can state
// exactly what is in a file, damage included.

// byteOrder is binary.LittleEndian or binary.BigEndian.
type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// pcapBuilder builds a classic pcap file.
type pcapBuilder struct {
	order byteOrder
	nano  bool
	buf   []byte
}

func newPcapBuilder(order byteOrder, nano bool, lt LinkType) *pcapBuilder {
	b := &pcapBuilder{order: order, nano: nano}
	magic := uint32(magicMicro)
	if nano {
		magic = magicNano
	}
	b.buf = b.order.AppendUint32(b.buf, magic)
	b.buf = b.order.AppendUint16(b.buf, 2)
	b.buf = b.order.AppendUint16(b.buf, 4)
	b.buf = b.order.AppendUint32(b.buf, 0)      // thiszone
	b.buf = b.order.AppendUint32(b.buf, 0)      // sigfigs
	b.buf = b.order.AppendUint32(b.buf, 262144) // snaplen
	b.buf = b.order.AppendUint32(b.buf, uint32(lt))
	return b
}

// record appends a record and returns its offset; frac is in the file's unit.
func (b *pcapBuilder) record(sec, frac uint32, data []byte, origLen int) int64 {
	off := int64(len(b.buf))
	b.buf = b.order.AppendUint32(b.buf, sec)
	b.buf = b.order.AppendUint32(b.buf, frac)
	b.buf = b.order.AppendUint32(b.buf, uint32(len(data)))
	b.buf = b.order.AppendUint32(b.buf, uint32(origLen))
	b.buf = append(b.buf, data...)
	return off
}

// ngBuilder builds a pcapng file, section by section.
type ngBuilder struct {
	order byteOrder
	buf   []byte
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// block appends a block of type typ around body (padded to 4 bytes) and
// returns its offset.
func (b *ngBuilder) block(typ uint32, body []byte) int64 {
	off := int64(len(b.buf))
	body = pad4(append([]byte(nil), body...))
	n := uint32(12 + len(body))
	b.buf = b.order.AppendUint32(b.buf, typ)
	b.buf = b.order.AppendUint32(b.buf, n)
	b.buf = append(b.buf, body...)
	b.buf = b.order.AppendUint32(b.buf, n)
	return off
}

// opt encodes one option; opts ends a list with opt_endofopt.
func (b *ngBuilder) opt(code uint16, val []byte) []byte {
	o := b.order.AppendUint16(nil, code)
	o = b.order.AppendUint16(o, uint16(len(val)))
	return pad4(append(o, val...))
}

func (b *ngBuilder) opts(list ...[]byte) []byte {
	var o []byte
	for _, x := range list {
		o = append(o, x...)
	}
	if len(list) > 0 {
		o = append(o, 0, 0, 0, 0)
	}
	return o
}

// shb starts a section in the given byte order.
func (b *ngBuilder) shb(order byteOrder, opts ...[]byte) int64 {
	b.order = order
	body := b.order.AppendUint32(nil, byteOrderMagic)
	body = b.order.AppendUint16(body, 1)
	body = b.order.AppendUint16(body, 0)
	body = b.order.AppendUint64(body, ^uint64(0)) // section length unknown
	return b.block(blockSHB, append(body, b.opts(opts...)...))
}

func (b *ngBuilder) idb(lt LinkType, snaplen uint32, opts ...[]byte) int64 {
	body := b.order.AppendUint16(nil, uint16(lt))
	body = b.order.AppendUint16(body, 0)
	body = b.order.AppendUint32(body, snaplen)
	return b.block(blockIDB, append(body, b.opts(opts...)...))
}

func (b *ngBuilder) tsresol(v byte) []byte { return b.opt(optTSResol, []byte{v}) }

func (b *ngBuilder) tsoffset(sec int64) []byte {
	return b.opt(optTSOffset, b.order.AppendUint64(nil, uint64(sec)))
}

func (b *ngBuilder) epb(ifid uint32, ts uint64, data []byte, origLen int, opts ...[]byte) int64 {
	body := b.order.AppendUint32(nil, ifid)
	body = b.order.AppendUint32(body, uint32(ts>>32))
	body = b.order.AppendUint32(body, uint32(ts))
	body = b.order.AppendUint32(body, uint32(len(data)))
	body = b.order.AppendUint32(body, uint32(origLen))
	body = pad4(append(body, data...))
	return b.block(blockEPB, append(body, b.opts(opts...)...))
}

func (b *ngBuilder) spb(data []byte, origLen int) int64 {
	body := b.order.AppendUint32(nil, uint32(origLen))
	return b.block(blockSPB, append(body, data...))
}

func (b *ngBuilder) pb(ifid uint16, ts uint64, data []byte, origLen int) int64 {
	body := b.order.AppendUint16(nil, ifid)
	body = b.order.AppendUint16(body, 0) // drops count
	body = b.order.AppendUint32(body, uint32(ts>>32))
	body = b.order.AppendUint32(body, uint32(ts))
	body = b.order.AppendUint32(body, uint32(len(data)))
	body = b.order.AppendUint32(body, uint32(origLen))
	return b.block(blockPB, append(body, data...))
}

// frame returns n recognisable bytes.
func frame(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}

func unix(sec, nsec int64) time.Time { return time.Unix(sec, nsec).UTC() }

package pcap

import (
	"encoding/binary"
	"io"
)

// loopReader is an endless capture: a file header, then the same block of
// small packets over and over. It lets benchmarks and allocation tests run
// any number of packets through one Reader.
type loopReader struct {
	head, body []byte
	off        int
}

func newLoopReader(format string, size int) *loopReader {
	const packets = 1024
	l := &loopReader{}
	switch format {
	case "pcap":
		b := newPcapBuilder(binary.LittleEndian, true, LinkTypeEthernet)
		l.head = b.buf
		b.buf = nil
		for i := range packets {
			b.record(1700000000, uint32(i), frame(byte(i), size), size)
		}
		l.body = b.buf
	case "pcapng":
		b := &ngBuilder{}
		b.shb(binary.LittleEndian)
		b.idb(LinkTypeEthernet, 0)
		l.head = b.buf
		b.buf = nil
		for i := range packets {
			b.epb(0, 1700000000000000+uint64(i), frame(byte(i), size), size)
		}
		l.body = b.buf
	default:
		panic("unknown format " + format)
	}
	return l
}

func (l *loopReader) Read(p []byte) (int, error) {
	if len(l.head) > 0 {
		n := copy(p, l.head)
		l.head = l.head[n:]
		return n, nil
	}
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.body[l.off:])
		n += c
		l.off = (l.off + c) % len(l.body)
	}
	return n, nil
}

var _ io.Reader = (*loopReader)(nil)

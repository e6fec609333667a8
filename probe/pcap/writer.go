package pcap

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"sync"
	"time"
)

// WriterSnaplen is the snaplen a Writer declares, tcpdump's default: longer
// packets are cut to it, with their full length kept in the record.
const WriterSnaplen = 262144

// Writer writes a classic pcap stream with nanosecond timestamps in
// little-endian byte order, which Wireshark, tcpdump and every libpcap since
// 1.5 read. Its methods are safe for concurrent use, so that the sending and
// receiving sides of a link can record into one file.
type Writer struct {
	mu  sync.Mutex
	bw  *bufio.Writer
	hdr [pcapRecordHeaderLen]byte
}

// NewWriter writes the file header to w, at once, so that an unwritable
// destination is reported here, and returns a Writer for packets of link
// type lt. Packets are buffered: call Flush before closing w.
func NewWriter(w io.Writer, lt LinkType) (*Writer, error) {
	var h [pcapHeaderLen]byte
	le := binary.LittleEndian
	le.PutUint32(h[0:], magicNano)
	le.PutUint16(h[4:], 2) // version 2.4
	le.PutUint16(h[6:], 4)
	// thiszone and sigfigs stay 0: timestamps are UTC.
	le.PutUint32(h[16:], WriterSnaplen)
	le.PutUint32(h[20:], uint32(lt))
	pw := &Writer{bw: bufio.NewWriterSize(w, 64<<10)}
	if _, err := pw.bw.Write(h[:]); err != nil {
		return nil, fmt.Errorf("pcap: write file header: %w", err)
	}
	if err := pw.bw.Flush(); err != nil {
		return nil, fmt.Errorf("pcap: write file header: %w", err)
	}
	return pw, nil
}

// WritePacket records one packet captured at ts. A packet longer than
// WriterSnaplen is cut to it. ts must lie between 1970 and 2106, the range
// of the format's 32-bit seconds.
func (w *Writer) WritePacket(ts time.Time, data []byte) error {
	sec := ts.Unix()
	if sec < 0 || sec > math.MaxUint32 {
		return fmt.Errorf("pcap: write packet: time %s is outside the years 1970-2106 that pcap can store", ts.UTC().Format(time.RFC3339Nano))
	}
	caplen := min(len(data), WriterSnaplen)
	w.mu.Lock()
	defer w.mu.Unlock()
	le := binary.LittleEndian
	le.PutUint32(w.hdr[0:], uint32(sec))
	le.PutUint32(w.hdr[4:], uint32(ts.Nanosecond()))
	le.PutUint32(w.hdr[8:], uint32(caplen))
	le.PutUint32(w.hdr[12:], uint32(len(data)))
	if _, err := w.bw.Write(w.hdr[:]); err != nil {
		return fmt.Errorf("pcap: write packet: %w", err)
	}
	if _, err := w.bw.Write(data[:caplen]); err != nil {
		return fmt.Errorf("pcap: write packet: %w", err)
	}
	return nil
}

// Flush writes buffered packets to the underlying writer.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("pcap: flush: %w", err)
	}
	return nil
}

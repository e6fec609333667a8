package pcap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// readers are the ways a test feeds a stream to NewReader: whole, and as a
// non-seekable stream of short reads.
var readers = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"one byte at a time", iotest.OneByteReader},
	{"half reads", iotest.HalfReader},
	{"data with EOF", iotest.DataErrReader},
}

// readAll reads every record of data, copying each, until an error.
func readAll(data []byte, wrap func(io.Reader) io.Reader) (format string, recs []Record, err error) {
	r, err := NewReader(wrap(bytes.NewReader(data)))
	if err != nil {
		return "", nil, err
	}
	for len(recs) < 1e6 {
		var rec Record
		if err := r.Next(&rec); err != nil {
			if err2 := r.Next(&rec); err2 != err {
				return r.Format(), recs, fmt.Errorf("second Next after %v returned %v, want the same error", err, err2)
			}
			return r.Format(), recs, err
		}
		rec.Data = bytes.Clone(rec.Data)
		recs = append(recs, rec)
	}
	return r.Format(), recs, errors.New("more than a million records")
}

// diffRecords describes the first difference between got and want, or "".
func diffRecords(got, want []Record) string {
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		switch {
		case !g.Time.Equal(w.Time) || g.Time.Location() != w.Time.Location():
			return fmt.Sprintf("record %d: time %v, want %v", i, g.Time, w.Time)
		case g.LinkType != w.LinkType:
			return fmt.Sprintf("record %d: link type %v, want %v", i, g.LinkType, w.LinkType)
		case g.Interface != w.Interface:
			return fmt.Sprintf("record %d: interface %d, want %d", i, g.Interface, w.Interface)
		case !bytes.Equal(g.Data, w.Data):
			return fmt.Sprintf("record %d: data % x, want % x", i, g.Data, w.Data)
		case g.OrigLen != w.OrigLen:
			return fmt.Sprintf("record %d: original length %d, want %d", i, g.OrigLen, w.OrigLen)
		case g.Offset != w.Offset:
			return fmt.Sprintf("record %d: offset %d, want %d", i, g.Offset, w.Offset)
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("%d records, want %d", len(got), len(want))
	}
	return ""
}

// checkClean reads data in every way and wants format, want and a clean end.
func checkClean(t *testing.T, data []byte, wantFormat string, want []Record) {
	t.Helper()
	for _, rd := range readers {
		format, got, err := readAll(data, rd.wrap)
		if err != io.EOF {
			t.Errorf("%s: error %v, want io.EOF", rd.name, err)
		}
		if format != wantFormat {
			t.Errorf("%s: format %q, want %q", rd.name, format, wantFormat)
		}
		if d := diffRecords(got, want); d != "" {
			t.Errorf("%s: %s", rd.name, d)
		}
	}
}

func TestPcapMagics(t *testing.T) {
	tests := []struct {
		order      byteOrder
		nano       bool
		wantFormat string
	}{
		{binary.LittleEndian, false, "pcap (microsecond, little-endian)"},
		{binary.BigEndian, false, "pcap (microsecond, big-endian)"},
		{binary.LittleEndian, true, "pcap (nanosecond, little-endian)"},
		{binary.BigEndian, true, "pcap (nanosecond, big-endian)"},
	}
	for _, tt := range tests {
		t.Run(tt.wantFormat, func(t *testing.T) {
			b := newPcapBuilder(tt.order, tt.nano, LinkTypeLinuxSLL2)
			unit := int64(1000)
			if tt.nano {
				unit = 1
			}
			want := []Record{
				{Time: unix(1700000000, 123456*unit), Data: frame(1, 60), OrigLen: 60},
				{Time: unix(1700000001, 999999*unit), Data: frame(2, 96), OrigLen: 1514}, // cut at snaplen
				{Time: unix(0, 0), Data: []byte{}, OrigLen: 0},
				{Time: unix(4294967295, 1*unit), Data: frame(3, 1), OrigLen: 1},
			}
			for i := range want {
				want[i].LinkType = LinkTypeLinuxSLL2
				frac := uint32(want[i].Time.Nanosecond() / int(unit))
				want[i].Offset = b.record(uint32(want[i].Time.Unix()), frac, want[i].Data, want[i].OrigLen)
			}
			checkClean(t, b.buf, tt.wantFormat, want)
		})
	}
}

func TestPcapLinkTypeIgnoresFCSBits(t *testing.T) {
	b := newPcapBuilder(binary.LittleEndian, false, LinkType(0x1<<28|0x1<<26|uint32(LinkTypeEthernet)))
	off := b.record(1, 2, frame(0, 14), 14)
	checkClean(t, b.buf, "pcap (microsecond, little-endian)", []Record{
		{Time: unix(1, 2000), LinkType: LinkTypeEthernet, Data: frame(0, 14), OrigLen: 14, Offset: off},
	})
}

// buildPcapng builds a file of two sections in the given byte orders: two
// interfaces of different link types and timestamp resolutions in each,
// every packet block kind, and blocks the reader must skip. It returns the
// file and the records it holds.
func buildPcapng(first, second byteOrder) ([]byte, []Record) {
	b := &ngBuilder{order: first} // for the options of the first section header
	var want []Record
	add := func(off int64, tm time.Time, lt LinkType, ifc int, data []byte, origLen int) {
		want = append(want, Record{Time: tm, LinkType: lt, Interface: ifc, Data: data, OrigLen: origLen, Offset: off})
	}

	b.shb(first, b.opt(4, []byte("synprobe test"))) // shb_userappl
	b.idb(LinkTypeEthernet, 64)                     // default resolution: microseconds
	b.idb(LinkTypeRaw, 0, b.opt(2, []byte("eth1")), b.tsresol(9), b.tsoffset(100))
	// A name resolution block: one IPv4 record, then nrb_record_end.
	nrb := append(b.order.AppendUint16(b.order.AppendUint16(nil, 1), 11), 192, 0, 2, 1, 'h', 'o', 's', 't', '.', 'x', 0)
	b.block(4, append(pad4(nrb), 0, 0, 0, 0))
	add(b.epb(0, 1700000000123456, frame(10, 60), 60), unix(1700000000, 123456000), LinkTypeEthernet, 0, frame(10, 60), 60)
	add(b.epb(1, 1600000000987654321, frame(20, 41), 41), unix(1600000100, 987654321), LinkTypeRaw, 1, frame(20, 41), 41)
	b.block(5, b.order.AppendUint32(make([]byte, 12), 0)) // interface statistics
	b.block(0x00000bad, []byte("custom block, copyable"))
	b.block(0x40000bad, []byte("custom block, not copyable"))
	// A simple packet block holds no captured length: the packet is cut at
	// interface 0's snaplen of 64 bytes.
	add(b.spb(frame(30, 64), 1514), time.Time{}, LinkTypeEthernet, 0, frame(30, 64), 1514)
	add(b.spb(frame(31, 45), 45), time.Time{}, LinkTypeEthernet, 0, frame(31, 45), 45)
	add(b.pb(1, 5e9+7, frame(40, 20), 20), unix(105, 7), LinkTypeRaw, 1, frame(40, 20), 20)
	b.block(0x0a, []byte("decryption secrets"))
	b.block(0x80000001, []byte("local use"))

	b.shb(second)
	b.idb(LinkTypeLinuxSLL, 0, b.tsresol(0x80|10)) // 2^-10 s
	add(b.epb(0, 1000<<10|512, frame(50, 33), 33), unix(1000, 500000000), LinkTypeLinuxSLL, 0, frame(50, 33), 33)
	b.idb(LinkTypeIPv6, 0, b.tsresol(3), b.tsoffset(-1000))
	add(b.epb(1, 1234567, frame(60, 40), 40), unix(234, 567000000), LinkTypeIPv6, 1, frame(60, 40), 40)
	// Options after the packet, here epb_flags (inbound), are not read.
	add(b.epb(0, 3<<10, frame(70, 7), 1500, b.opt(2, b.order.AppendUint32(nil, 1))), unix(3, 0), LinkTypeLinuxSLL, 0, frame(70, 7), 1500)
	return b.buf, want
}

func TestPcapng(t *testing.T) {
	for _, orders := range [][2]byteOrder{
		{binary.LittleEndian, binary.BigEndian},
		{binary.BigEndian, binary.LittleEndian},
		{binary.BigEndian, binary.BigEndian},
	} {
		t.Run(fmt.Sprintf("%v then %v", orders[0], orders[1]), func(t *testing.T) {
			data, want := buildPcapng(orders[0], orders[1])
			checkClean(t, data, "pcapng", want)
		})
	}
}

func TestPcapngTimestampResolution(t *testing.T) {
	tests := []struct {
		resol  byte
		offset int64
		ts     uint64
		want   time.Time
	}{
		{0, 0, 1700000000, unix(1700000000, 0)},
		{3, 0, 1700000000123, unix(1700000000, 123000000)},
		{6, 0, 1700000000123456, unix(1700000000, 123456000)},
		{6, 3600, 1, unix(3600, 1000)},
		{6, -3600, 7200000001, unix(3600, 1000)},
		{9, 0, 1700000000123456789, unix(1700000000, 123456789)},
		{12, 0, 17000000001234567891, unix(17000000, 1234567)},
		{19, 0, 1e19 - 1, unix(0, 999999999)},
		{0x80, 0, 5, unix(5, 0)},
		{0x80 | 1, 0, 11, unix(5, 500000000)},
		{0x80 | 20, 0, 3<<20 | 1<<19, unix(3, 500000000)},
		{0x80 | 32, 0, 7<<32 | 1<<30, unix(7, 250000000)},
		{0x80 | 63, 0, 1 << 62, unix(0, 500000000)},
	}
	for _, tt := range tests {
		for _, order := range []byteOrder{binary.LittleEndian, binary.BigEndian} {
			b := &ngBuilder{}
			b.shb(order)
			if tt.offset != 0 {
				b.idb(LinkTypeEthernet, 0, b.tsresol(tt.resol), b.tsoffset(tt.offset))
			} else {
				b.idb(LinkTypeEthernet, 0, b.tsresol(tt.resol))
			}
			b.epb(0, tt.ts, nil, 0)
			_, recs, err := readAll(b.buf, func(r io.Reader) io.Reader { return r })
			if err != io.EOF || len(recs) != 1 {
				t.Errorf("if_tsresol 0x%02x, %v: %d records and %v, want 1 and io.EOF", tt.resol, order, len(recs), err)
				continue
			}
			if got := recs[0].Time; !got.Equal(tt.want) {
				t.Errorf("if_tsresol 0x%02x, if_tsoffset %d, timestamp %d, %v: time %v, want %v", tt.resol, tt.offset, tt.ts, order, got, tt.want)
			}
		}
	}
}

// errorCase is a damaged stream: the records before the damage must come
// out, then a *FormatError at wantOffset whose reason says wantReason.
type errorCase struct {
	name          string
	data          []byte
	wantRecords   int
	wantOffset    int64
	wantReason    string
	wantTruncated bool
}

func pcapErrorCases() []errorCase {
	le := binary.LittleEndian
	good := newPcapBuilder(le, false, LinkTypeEthernet)
	good.record(1, 0, frame(0, 60), 60)
	rec2 := int64(len(good.buf))
	good.record(2, 0, frame(1, 100), 100)

	version := newPcapBuilder(le, false, LinkTypeEthernet).buf
	le.PutUint16(version[4:], 3)
	le.PutUint16(version[6:], 0)

	absurd := newPcapBuilder(le, true, LinkTypeEthernet)
	absurd.record(1, 0, frame(0, 60), 60)
	absurd.buf = le.AppendUint32(absurd.buf, 2)
	absurd.buf = le.AppendUint32(absurd.buf, 0)
	absurd.buf = le.AppendUint32(absurd.buf, maxBlock+1)
	absurd.buf = le.AppendUint32(absurd.buf, maxBlock+1)

	return []errorCase{
		{"not a capture", []byte("GET / HTTP/1.1\r\nHost: example\r\n\r\n"), 0, 0, "magic number 0x20544547 is neither pcap nor pcapng: not a capture file", false},
		{"gzip", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0}, 0, 0, "gzip-compressed", false},
		{"empty", nil, 0, 0, "the stream is empty", true},
		{"three bytes", []byte{0xd4, 0xc3, 0xb2}, 0, 0, "only 3 bytes long", true},
		{"file header cut", good.buf[:10], 0, 0, "the stream ends after 10 of its 24 bytes", true},
		{"pcap version 3", version, 0, 0, "version 3.0 is not 2.x", false},
		{"record header cut", good.buf[:rec2+7], 1, rec2, "the stream ends after 7 of its 16 bytes", true},
		{"record data cut", good.buf[:rec2+16+50], 1, rec2, "the stream ends after 66 of its 116 bytes", true},
		{"absurd captured length", absurd.buf, 1, rec2, fmt.Sprintf("captured length %d is beyond any real packet", maxBlock+1), false},
	}
}

func pcapngErrorCases() []errorCase {
	var cases []errorCase
	for _, order := range []byteOrder{binary.LittleEndian, binary.BigEndian} {
		// start returns a builder holding a section with one Ethernet
		// interface and one packet.
		start := func() *ngBuilder {
			b := &ngBuilder{}
			b.shb(order)
			b.idb(LinkTypeEthernet, 0)
			b.epb(0, 1, frame(0, 60), 60)
			return b
		}
		// raw appends a block header of any type and length with n bytes
		// of body and a trailer, and returns its offset.
		raw := func(b *ngBuilder, typ, length uint32, body int, trailer uint32) int64 {
			off := int64(len(b.buf))
			b.buf = b.order.AppendUint32(b.buf, typ)
			b.buf = b.order.AppendUint32(b.buf, length)
			b.buf = append(b.buf, make([]byte, body)...)
			b.buf = b.order.AppendUint32(b.buf, trailer)
			return off
		}
		add := func(name string, b *ngBuilder, records int, off int64, reason string, truncated bool) {
			cases = append(cases, errorCase{fmt.Sprintf("%s (%v)", name, order), b.buf, records, off, reason, truncated})
		}

		b := start()
		off := raw(b, blockEPB, 12, 0, 12)
		add("short enhanced packet block", b, 1, off, "total length 12 is shorter than an enhanced packet block (32 bytes)", false)

		b = start()
		off = raw(b, 0x0bad, 30, 18, 30)
		add("length not a multiple of 4", b, 1, off, "total length 30 is not a multiple of 4", false)

		b = start()
		off = raw(b, blockEPB, maxBlock+4, 20, maxBlock+4)
		add("block beyond 256 MiB", b, 1, off, fmt.Sprintf("total length %d is beyond any real block", maxBlock+4), false)

		b = start()
		off = b.epb(0, 2, frame(0, 16), 16)
		b.order.PutUint32(b.buf[off+20:], 17)
		add("captured length past the block", b, 1, off, "captured length 17 runs past the end of the block (room for 16)", false)

		b = start()
		off = b.epb(0, 2, frame(0, 16), 16)
		b.order.PutUint32(b.buf[len(b.buf)-4:], 44)
		add("trailing length mismatch", b, 1, off, "trailing total length 44 does not match the leading 48", false)

		b = start()
		off = b.block(0x0bad, make([]byte, 1<<20))
		b.order.PutUint32(b.buf[len(b.buf)-4:], 8)
		add("trailing length mismatch in a large skipped block", b, 1, off, fmt.Sprintf("trailing total length 8 does not match the leading %d", 12+1<<20), false)

		b = start()
		off = b.epb(1, 2, frame(0, 16), 16)
		add("undescribed interface", b, 1, off, "packet on interface 1, which no interface description block of this section describes (it has 1)", false)

		b = start()
		b.idb(LinkTypeRaw, 0)
		b.epb(1, 2, frame(0, 16), 16)
		b.shb(order)
		b.idb(LinkTypeRaw, 0)
		off = b.epb(1, 2, frame(0, 16), 16)
		add("a new section forgets interfaces", b, 2, off, "packet on interface 1, which no interface description block of this section describes (it has 1)", false)

		b = start()
		off = b.epb(0, 2, frame(0, 100), 100)
		b.buf = b.buf[:off+50]
		add("block cut", b, 1, off, "the stream ends after 50 of its 132 bytes (truncated capture)", true)

		b = start()
		off = int64(len(b.buf))
		b.buf = append(b.buf, 0x0a, 0x0d, 0x0d)
		add("block header cut", b, 1, off, "the stream ends after 3 of its 12 bytes", true)

		b = start()
		off = b.block(0x0bad, make([]byte, 1<<20))
		b.buf = b.buf[:len(b.buf)-100]
		add("large skipped block cut", b, 1, off, fmt.Sprintf("the stream ends after %d of its %d bytes", 12+1<<20-100, 12+1<<20), true)

		b = start()
		off = b.shb(order)
		copy(b.buf[off+8:], []byte{1, 2, 3, 4})
		add("byte-order magic", b, 1, off, "byte-order magic 0x01020304 is not 0x1a2b3c4d in either byte order", false)

		b = &ngBuilder{}
		b.shb(order)
		b.order.PutUint16(b.buf[12:], 2)
		add("section version 2", b, 0, 0, "section header version 2.0 is not 1.x", false)

		b = &ngBuilder{}
		b.shb(order)
		b.buf = b.buf[:20]
		add("first section header cut", b, 0, 0, "the stream ends after 20 of its 28 bytes", true)

		b = &ngBuilder{}
		b.shb(order)
		b.order.PutUint32(b.buf[4:], 12)
		add("short first section header", b, 0, 0, "total length 12 is shorter than a section header block (28 bytes)", false)

		b = start()
		off = b.idb(LinkTypeEthernet, 0, b.tsresol(20))
		add("if_tsresol too fine", b, 1, off, "if_tsresol 10^-20 is finer than a 64-bit timestamp can count", false)

		b = start()
		off = b.idb(LinkTypeEthernet, 0, b.opt(optTSOffset, []byte{1, 2, 3, 4}))
		add("if_tsoffset of 4 bytes", b, 1, off, fmt.Sprintf("if_tsoffset option at byte %d is 4 bytes long, not 8", off+16), false)

		b = start()
		off = b.idb(LinkTypeEthernet, 0, b.opt(2, []byte("eth0")))
		b.order.PutUint16(b.buf[off+18:], 9) // if_name claims 9 bytes; 8 are left
		add("option past the block", b, 1, off, fmt.Sprintf("option 2 at byte %d, 9 bytes long, runs past the end of the block", off+16), false)

		b = &ngBuilder{}
		b.shb(order)
		off = b.spb(frame(0, 8), 8)
		add("simple packet block without interface", b, 0, off, "simple packet block before any interface description block", false)
	}
	return cases
}

func TestReaderErrors(t *testing.T) {
	for _, tt := range append(pcapErrorCases(), pcapngErrorCases()...) {
		t.Run(tt.name, func(t *testing.T) {
			for _, rd := range readers {
				_, recs, err := readAll(tt.data, rd.wrap)
				if len(recs) != tt.wantRecords {
					t.Errorf("%s: %d records before the error, want %d", rd.name, len(recs), tt.wantRecords)
				}
				var fe *FormatError
				if !errors.As(err, &fe) {
					t.Fatalf("%s: error %v, want a *FormatError", rd.name, err)
				}
				if fe.Offset != tt.wantOffset || !strings.Contains(fe.Reason, tt.wantReason) {
					t.Errorf("%s: error at byte %d: %q, want at byte %d: %q", rd.name, fe.Offset, fe.Reason, tt.wantOffset, tt.wantReason)
				}
				if at := fmt.Sprintf(" at byte %d: ", tt.wantOffset); !strings.Contains(err.Error(), at) {
					t.Errorf("%s: message %q does not name the place (%q)", rd.name, err, at)
				}
				if got := errors.Is(err, ErrTruncated); got != tt.wantTruncated {
					t.Errorf("%s: errors.Is(err, ErrTruncated) = %v, want %v", rd.name, got, tt.wantTruncated)
				}
			}
		})
	}
}

func TestFormatErrorMessage(t *testing.T) {
	b := &ngBuilder{}
	b.shb(binary.LittleEndian)
	b.idb(LinkTypeEthernet, 0)
	b.block(0x0bad, make([]byte, 4096-len(b.buf)-12))
	b.buf = binary.LittleEndian.AppendUint32(b.buf, blockEPB)
	b.buf = binary.LittleEndian.AppendUint32(b.buf, 12)
	b.buf = binary.LittleEndian.AppendUint32(b.buf, 12)
	_, _, err := readAll(b.buf, func(r io.Reader) io.Reader { return r })
	want := "pcapng: block at byte 4096: total length 12 is shorter than an enhanced packet block (32 bytes)"
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

// A failing source is reported as itself, not as damage, after the records
// that arrived before it.
func TestReaderSourceError(t *testing.T) {
	b := newPcapBuilder(binary.LittleEndian, true, LinkTypeEthernet)
	b.record(1, 0, frame(0, 60), 60)
	second := b.record(2, 0, frame(0, 60), 60)
	broken := errors.New("device on fire")
	src := io.MultiReader(bytes.NewReader(b.buf[:second+20]), iotest.ErrReader(broken))
	r, err := NewReader(src)
	if err != nil {
		t.Fatal(err)
	}
	var rec Record
	if err := r.Next(&rec); err != nil {
		t.Fatalf("first record: %v", err)
	}
	err = r.Next(&rec)
	var fe *FormatError
	if !errors.Is(err, broken) || errors.As(err, &fe) {
		t.Fatalf("error %v, want the source's error and no *FormatError", err)
	}
	if want := fmt.Sprintf("pcap: read record at byte %d: device on fire", second); err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

// A source that returns nothing, forever, without an error must not hang
// the reader.
func TestReaderNoProgress(t *testing.T) {
	_, err := NewReader(zeroReader{})
	if !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("error %v, want io.ErrNoProgress", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

// A forged length costs memory in proportion to the bytes that really
// arrive, never to the length claimed.
func TestReaderForgedLengthAllocatesLittle(t *testing.T) {
	le := binary.LittleEndian
	p := newPcapBuilder(le, false, LinkTypeEthernet)
	p.buf = le.AppendUint32(p.buf, 1)
	p.buf = le.AppendUint32(p.buf, 0)
	p.buf = le.AppendUint32(p.buf, maxBlock)
	p.buf = le.AppendUint32(p.buf, maxBlock)
	p.buf = append(p.buf, make([]byte, 100)...)

	ng := &ngBuilder{}
	ng.shb(le)
	ng.idb(LinkTypeEthernet, 0)
	ng.buf = le.AppendUint32(ng.buf, blockEPB)
	ng.buf = le.AppendUint32(ng.buf, maxBlock)
	ng.buf = append(ng.buf, make([]byte, 100)...)

	for name, data := range map[string][]byte{"pcap": p.buf, "pcapng": ng.buf} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err := readAll(data, func(r io.Reader) io.Reader { return r })
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrTruncated) {
			t.Errorf("%s: error %v, want a truncated capture", name, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
			t.Errorf("%s: reading %d bytes that claim a %d-byte record allocated %d bytes, want at most 4 MiB", name, len(data), maxBlock, got)
		}
	}
}

// A record larger than the initial buffer is read whole.
func TestReaderLargeRecords(t *testing.T) {
	b := newPcapBuilder(binary.BigEndian, true, LinkTypeRaw)
	var want []Record
	for i, n := range []int{10, 3 << 20, 20, readBufSize, 5} {
		data := frame(byte(i), n)
		want = append(want, Record{Time: unix(int64(i), 0), LinkType: LinkTypeRaw, Data: data, OrigLen: n})
		want[i].Offset = b.record(uint32(i), 0, data, n)
	}
	checkClean(t, b.buf, "pcap (nanosecond, big-endian)", want)

	ng := &ngBuilder{}
	ng.shb(binary.LittleEndian)
	ng.idb(LinkTypeRaw, 0)
	big := frame(7, 2<<20)
	ng.block(0x0bad, make([]byte, 5<<20)) // skipped without being held
	off := ng.epb(0, 9, big, len(big))
	checkClean(t, ng.buf, "pcapng", []Record{{Time: unix(0, 9000), LinkType: LinkTypeRaw, Data: big, OrigLen: len(big), Offset: off}})
}

// Next allocates nothing per packet.
func TestReaderNextAllocatesNothing(t *testing.T) {
	for _, format := range []string{"pcap", "pcapng"} {
		r, err := NewReader(newLoopReader(format, 64))
		if err != nil {
			t.Fatal(err)
		}
		var rec Record
		allocs := testing.AllocsPerRun(10000, func() {
			if err := r.Next(&rec); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per packet, want 0", format, allocs)
		}
	}
}

// Appending to a record's Data must not overwrite the next record.
func TestRecordDataCapacity(t *testing.T) {
	for _, format := range []string{"pcap", "pcapng"} {
		r, err := NewReader(newLoopReader(format, 61))
		if err != nil {
			t.Fatal(err)
		}
		var rec Record
		if err := r.Next(&rec); err != nil {
			t.Fatal(err)
		}
		if len(rec.Data) != 61 || cap(rec.Data) != 61 {
			t.Errorf("%s: len %d cap %d, want 61 and 61", format, len(rec.Data), cap(rec.Data))
		}
	}
}

func TestLinkTypeString(t *testing.T) {
	for lt, want := range map[LinkType]string{
		LinkTypeNull: "NULL", LinkTypeEthernet: "ETHERNET", LinkTypeRaw: "RAW", LinkTypeLoop: "LOOP",
		LinkTypeLinuxSLL: "LINUX_SLL", LinkTypeIPv4: "IPV4", LinkTypeIPv6: "IPV6", LinkTypeLinuxSLL2: "LINUX_SLL2",
		105: "LINKTYPE(105)",
	} {
		if got := lt.String(); got != want {
			t.Errorf("LinkType(%d).String() = %q, want %q", uint32(lt), got, want)
		}
	}
}

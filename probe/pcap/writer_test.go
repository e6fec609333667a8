package pcap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWriterRoundTrip(t *testing.T) {
	packets := []struct {
		ts   time.Time
		data []byte
	}{
		{time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC), frame(1, 60)},
		{time.Date(2026, 3, 1, 12, 0, 0, 123456790, time.FixedZone("CET", 3600)), frame(2, 1514)},
		{time.Unix(0, 0), nil},
		{time.Unix(1<<32-1, 999999999), frame(3, 1)},
		{time.Unix(1700000000, 1), frame(4, WriterSnaplen+100)}, // cut at the snaplen
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	var want []Record
	off := int64(pcapHeaderLen)
	for _, p := range packets {
		if err := w.WritePacket(p.ts, p.data); err != nil {
			t.Fatalf("WritePacket(%v, %d bytes): %v", p.ts, len(p.data), err)
		}
		data := p.data[:min(len(p.data), WriterSnaplen)]
		want = append(want, Record{Time: p.ts.UTC(), LinkType: LinkTypeEthernet, Data: data, OrigLen: len(p.data), Offset: off})
		off += int64(pcapRecordHeaderLen + len(data))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != off {
		t.Errorf("file of %d bytes, want %d", buf.Len(), off)
	}
	checkClean(t, buf.Bytes(), "pcap (nanosecond, little-endian)", want)

	h := buf.Bytes()[:pcapHeaderLen]
	if snaplen := binary.LittleEndian.Uint32(h[16:]); snaplen != WriterSnaplen {
		t.Errorf("snaplen %d, want %d", snaplen, WriterSnaplen)
	}
}

// The header reaches the destination at once, so that a reader at the other
// end of a pipe sees a capture before the first packet.
func TestWriterHeaderWrittenAtOnce(t *testing.T) {
	var buf bytes.Buffer
	if _, err := NewWriter(&buf, LinkTypeRaw); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(&buf)
	if err != nil {
		t.Fatalf("NewReader on the header alone: %v", err)
	}
	if err := r.Next(&Record{}); err != io.EOF {
		t.Errorf("Next: %v, want io.EOF", err)
	}
}

func TestWriterConcurrent(t *testing.T) {
	const writers, each = 8, 500
	var buf bytes.Buffer
	w, err := NewWriter(&buf, LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				// Every packet carries its writer and number, repeated
				// over a length that depends on both.
				data := bytes.Repeat([]byte{byte(g), byte(i)}, 10+(g*each+i)%50)
				if err := w.WritePacket(time.Unix(int64(g), int64(i)), data); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	_, recs, err := readAll(buf.Bytes(), func(r io.Reader) io.Reader { return r })
	if err != io.EOF {
		t.Fatalf("reading back: %v", err)
	}
	if len(recs) != writers*each {
		t.Fatalf("%d records, want %d", len(recs), writers*each)
	}
	seen := map[[2]int]bool{}
	for _, rec := range recs {
		g, i := int(rec.Time.Unix()), rec.Time.Nanosecond()
		want := bytes.Repeat([]byte{byte(g), byte(i)}, 10+(g*each+i)%50)
		if !bytes.Equal(rec.Data, want) || seen[[2]int{g, i}] {
			t.Fatalf("record at byte %d (writer %d, packet %d) is mixed up or repeated", rec.Offset, g, i)
		}
		seen[[2]int{g, i}] = true
	}
}

func TestWriterTimeRange(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range []time.Time{{}, time.Unix(-1, 0), time.Unix(1<<32, 0)} {
		if err := w.WritePacket(ts, frame(0, 60)); err == nil || !strings.Contains(err.Error(), "outside the years 1970-2106") {
			t.Errorf("WritePacket at %v: error %v, want one about the years pcap can store", ts, err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != pcapHeaderLen {
		t.Errorf("rejected packets left %d bytes after the header", buf.Len()-pcapHeaderLen)
	}
}

type failingWriter struct{ after int }

var errDiskFull = errors.New("disk full")

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.after {
		n := f.after
		f.after = 0
		return n, errDiskFull
	}
	f.after -= len(p)
	return len(p), nil
}

func TestWriterErrors(t *testing.T) {
	if _, err := NewWriter(&failingWriter{after: 10}, LinkTypeEthernet); !errors.Is(err, errDiskFull) || !strings.HasPrefix(err.Error(), "pcap: write file header: ") {
		t.Errorf("NewWriter on a failing destination: %v, want pcap: write file header: disk full", err)
	}
	w, err := NewWriter(&failingWriter{after: pcapHeaderLen + 100}, LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(time.Unix(1, 0), frame(0, 200)); err != nil {
		t.Fatalf("buffered WritePacket: %v", err)
	}
	if err := w.Flush(); !errors.Is(err, errDiskFull) {
		t.Errorf("Flush: %v, want disk full", err)
	}
	if err := w.WritePacket(time.Unix(1, 0), frame(0, 200)); !errors.Is(err, errDiskFull) {
		t.Errorf("WritePacket after a failed flush: %v, want disk full", err)
	}
}

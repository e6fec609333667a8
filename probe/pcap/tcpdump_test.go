package pcap

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// These tests hold the package to libpcap, through tcpdump: libpcap must
// read what Writer writes and what the test builders build, and Reader
// must read what libpcap writes.

func needTcpdump(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Skip("tcpdump is not on PATH (apt-get install tcpdump); libpcap compatibility not checked")
	}
	return path
}

func tcpdump(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(needTcpdump(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// tcpFrame builds an Ethernet frame holding an IPv4 TCP segment from
// 192.0.2.src to 192.0.2.dst (documentation addresses: the file is only
// read, never sent).
func tcpFrame(src, dst byte, srcPort, dstPort uint16, flags byte, seq, ack uint32) []byte {
	be := binary.BigEndian
	f := []byte{
		0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00, // Ethernet: dst, src, IPv4
		0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 192, 0, 2, src, 192, 0, 2, dst, // IPv4, DF, TTL 64, TCP
	}
	var sum uint32
	for i := 14; i < 34; i += 2 {
		sum += uint32(be.Uint16(f[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	be.PutUint16(f[24:], ^uint16(sum))
	f = be.AppendUint16(f, srcPort)
	f = be.AppendUint16(f, dstPort)
	f = be.AppendUint32(f, seq)
	f = be.AppendUint32(f, ack)
	return append(f, 5<<4, flags, 0xfa, 0xf0, 0, 0, 0, 0) // offset 5, window 64240
}

const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagACK = 0x10
)

func handshake() [][]byte {
	return [][]byte{
		tcpFrame(1, 2, 40000, 80, flagSYN, 8221822, 0),
		tcpFrame(2, 1, 80, 40000, flagSYN|flagACK, 1109645, 8221823),
		tcpFrame(1, 2, 40000, 80, flagACK, 8221823, 1109646),
	}
}

func TestTcpdumpReadsWriter(t *testing.T) {
	needTcpdump(t)
	path := filepath.Join(t.TempDir(), "handshake.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(f, LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1700000000, 123456789)
	for i, fr := range handshake() {
		if err := w.WritePacket(start.Add(time.Duration(i)*time.Millisecond+time.Duration(i)), fr); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	out := tcpdump(t, "-r", path, "-nn", "-S", "-tt", "--nano")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{
		"1700000000.123456789 IP 192.0.2.1.40000 > 192.0.2.2.80: Flags [S], seq 8221822,",
		"1700000000.124456790 IP 192.0.2.2.80 > 192.0.2.1.40000: Flags [S.], seq 1109645, ack 8221823,",
		"1700000000.125456791 IP 192.0.2.1.40000 > 192.0.2.2.80: Flags [.], ack 1109646,",
	}
	var got []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "reading from file") {
			got = append(got, l)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("tcpdump printed %d packets, want %d:\n%s", len(got), len(want), out)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("tcpdump line %d: %q, want it to start with %q", i, got[i], want[i])
		}
	}
}

// libpcap rewrites our file in its own hand (microsecond timestamps, its
// own header), and Reader reads that back.
func TestReaderReadsTcpdumpOutput(t *testing.T) {
	needTcpdump(t)
	dir := t.TempDir()
	ours, theirs := filepath.Join(dir, "ours.pcap"), filepath.Join(dir, "theirs.pcap")
	var buf bytes.Buffer
	w, err := NewWriter(&buf, LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	var want []Record
	off := int64(pcapHeaderLen)
	for i, fr := range handshake() {
		ts := time.Unix(1700000000+int64(i), 123456789)
		if err := w.WritePacket(ts, fr); err != nil {
			t.Fatal(err)
		}
		want = append(want, Record{Time: ts.Truncate(time.Microsecond).UTC(), LinkType: LinkTypeEthernet, Data: fr, OrigLen: len(fr), Offset: off})
		off += int64(pcapRecordHeaderLen + len(fr))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ours, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	tcpdump(t, "-r", ours, "-w", theirs)
	data, err := os.ReadFile(theirs)
	if err != nil {
		t.Fatal(err)
	}
	checkClean(t, data, "pcap (microsecond, little-endian)", want)
}

// libpcap agrees with Reader on the timestamps of pcapng files built by the
// test builder: several interfaces with their own resolutions and offsets,
// skipped blocks, in both byte orders. (libpcap wants one link type per
// file and one section, so this file has both only once.)
func TestTcpdumpAgreesOnPcapng(t *testing.T) {
	needTcpdump(t)
	for _, order := range []byteOrder{binary.LittleEndian, binary.BigEndian} {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			b := &ngBuilder{}
			b.shb(order)
			b.idb(LinkTypeEthernet, 0)
			b.idb(LinkTypeEthernet, 0, b.tsresol(9), b.tsoffset(100))
			b.idb(LinkTypeEthernet, 0, b.tsresol(0x80|20))
			b.block(5, make([]byte, 12)) // interface statistics
			frames := handshake()
			b.epb(0, 1700000000123456, frames[0], len(frames[0]))
			b.epb(1, 1700000000987654321, frames[1], len(frames[1]))
			b.block(0x0bad, []byte("custom"))
			b.epb(2, 1700000002<<20|1<<18, frames[2], len(frames[2]))
			b.pb(1, 5, frames[0], len(frames[0]))
			path := filepath.Join(t.TempDir(), "test.pcapng")
			if err := os.WriteFile(path, b.buf, 0o644); err != nil {
				t.Fatal(err)
			}
			out := tcpdump(t, "-r", path, "-nn", "-tt", "--nano")
			var theirs []string
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				if !strings.HasPrefix(l, "reading from file") {
					theirs = append(theirs, strings.Fields(l)[0])
				}
			}
			r, err := NewReader(bytes.NewReader(b.buf))
			if err != nil {
				t.Fatal(err)
			}
			var ours []string
			for {
				var rec Record
				if err := r.Next(&rec); err == io.EOF {
					break
				} else if err != nil {
					t.Fatal(err)
				}
				ours = append(ours, fmt.Sprintf("%d.%09d", rec.Time.Unix(), rec.Time.Nanosecond()))
			}
			if strings.Join(ours, " ") != strings.Join(theirs, " ") {
				t.Errorf("timestamps: Reader %v, tcpdump %v", ours, theirs)
			}
			if want := []string{"1700000000.123456000", "1700000100.987654321", "1700000002.250000000", "100.000000005"}; strings.Join(ours, " ") != strings.Join(want, " ") {
				t.Errorf("timestamps %v, want %v", ours, want)
			}
		})
	}
}

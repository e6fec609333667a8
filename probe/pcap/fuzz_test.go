package pcap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"synprobe/internal/fuzzseed"
	"testing"
	"testing/iotest"
	"time"
)

// FuzzReader feeds arbitrary bytes to Reader, whole and one byte at a time:
// it must never panic, must end every stream with io.EOF or a *FormatError,
// and must read the same records and fail the same way however the bytes
// arrive.
func FuzzReader(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, whole, err := readAll(data, func(r io.Reader) io.Reader { return r })
		var fe *FormatError
		if err != io.EOF && !errors.As(err, &fe) {
			t.Fatalf("error %v (%T), want io.EOF or a *FormatError", err, err)
		}
		for i := 1; i < len(whole); i++ {
			if whole[i].Offset <= whole[i-1].Offset {
				t.Fatalf("record %d at byte %d follows one at byte %d", i, whole[i].Offset, whole[i-1].Offset)
			}
		}
		_, oneByte, err2 := readAll(data, iotest.OneByteReader)
		if fmt.Sprint(err) != fmt.Sprint(err2) {
			t.Fatalf("whole: %v; one byte at a time: %v", err, err2)
		}
		if d := diffRecords(oneByte, whole); d != "" {
			t.Fatalf("one byte at a time differs from whole: %s", d)
		}
	})
}

// fuzzSeeds are valid captures of every format the reader knows, and a few
// damaged ones.
func fuzzSeeds() map[string][]byte {
	seeds := map[string][]byte{}
	for _, order := range []byteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, nano := range []bool{false, true} {
			b := newPcapBuilder(order, nano, LinkTypeEthernet)
			for i, fr := range handshake() {
				b.record(1700000000, uint32(i), fr, len(fr))
			}
			seeds[fmt.Sprintf("pcap-%v-nano-%v", order, nano)] = b.buf
		}
	}
	ng, _ := buildPcapng(binary.LittleEndian, binary.BigEndian)
	seeds["pcapng-two-sections-le-be"] = ng
	ng, _ = buildPcapng(binary.BigEndian, binary.LittleEndian)
	seeds["pcapng-two-sections-be-le"] = ng

	var buf bytes.Buffer
	w, _ := NewWriter(&buf, LinkTypeEthernet)
	for i, fr := range handshake() {
		_ = w.WritePacket(time.Unix(1700000000, int64(i)), fr)
	}
	_ = w.Flush()
	seeds["writer"] = buf.Bytes()

	for _, c := range append(pcapErrorCases(), pcapngErrorCases()...) {
		if len(c.data) <= 4096 {
			seeds["error-"+c.name] = c.data
		}
	}
	return seeds
}

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzReader from fuzzSeeds")

// TestFuzzSeedCorpus keeps the seed corpus on disk in step with fuzzSeeds,
// so that a plain `go test -fuzz` starts from valid captures of every kind.
// Run with -update-seeds to rewrite it.
func TestFuzzSeedCorpus(t *testing.T) {
	seeds := map[string][]byte{}
	for name, data := range fuzzSeeds() {
		seeds[seedFileName(name)] = data
	}
	fuzzseed.Sync(t, filepath.Join("testdata", "fuzz", "FuzzReader"), seeds, *updateSeeds)
}

// seedFileName turns a seed's name into a file name: lower case, words
// joined by dashes.
func seedFileName(name string) string {
	f := strings.FieldsFunc(strings.ToLower(name), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	})
	return strings.Join(f, "-")
}

package probe

import (
	"bytes"
	"testing"
)

// canonical reports whether decoding f lost nothing that encode would
// write back differently, so that a re-encode must reproduce the input.
func canonical(f *Frame) bool {
	if !f.Has(LayerTCP) && !f.Has(LayerICMP) || f.Truncated || f.IP.IsFragment() {
		return false
	}
	if f.Checksum != ChecksumValid || f.IP.Version == 4 && f.IPChecksum != ChecksumValid {
		return false
	}
	if f.Has(LayerTCP) && f.TCP.OptionsErr != nil {
		return false
	}
	if f.IP.Version == 6 && f.IP.HeaderLen != IPv6HeaderLen {
		return false // extension headers are skipped, not kept
	}
	if f.Has(LayerICMP) && f.IP.Protocol != ProtocolICMP && f.IP.Protocol != ProtocolICMPv6 {
		return false
	}
	return true
}

func FuzzDecode(f *testing.F) {
	for _, kb := range loadKB(f) {
		f.Add(kb.Data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fr Frame
		err := fr.Decode(data)
		_ = fr.String()
		for _, o := range fr.TCP.Options {
			_ = o.String()
			_ = o.Validate()
		}
		if fr.Has(LayerICMP) {
			_, _ = fr.ICMP.Quote()
		}
		if err != nil || !fr.Has(LayerEthernet|LayerIP) || !canonical(&fr) || fr.Ethernet.Tagged {
			return
		}
		enc, err := fr.Encode()
		if err != nil {
			t.Fatalf("re-encode of a decoded frame failed: %v (%v)", err, &fr)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("round trip differs:\n got %x\nwant %x", enc, data)
		}
	})
}

func FuzzDecodeIP(f *testing.F) {
	for _, kb := range loadKB(f) {
		f.Add(kb.Data[EthernetHeaderLen:])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fr Frame
		if err := fr.DecodeIP(data); err != nil || !canonical(&fr) {
			return
		}
		enc, err := fr.EncodeIP()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if want := data[:fr.IP.TotalLength]; !bytes.Equal(enc, want) {
			t.Fatalf("round trip differs:\n got %x\nwant %x", enc, want)
		}
	})
}

// FuzzOptions feeds arbitrary option areas through a SYN.
func FuzzOptions(f *testing.F) {
	f.Add([]byte{2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0})
	f.Add([]byte{2, 0, 5, 0xb4})
	f.Add([]byte{34, 2, 254, 4, 0xf9, 0x89, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, area []byte) {
		if len(area) > 40 {
			area = area[:40]
		}
		opts, err := parseOptions(nil, area, 0)
		n := 0
		for _, o := range opts {
			_ = o.String()
			_ = o.Validate()
			n += o.wireLen()
		}
		if err == nil && n != len(area) {
			t.Fatalf("options cover %d bytes of a %d-byte area", n, len(area))
		}
		if err == nil {
			var b []byte
			for _, o := range opts {
				b = o.append(b)
			}
			if !bytes.Equal(b, area) {
				t.Fatalf("options re-encode to %x, want %x", b, area)
			}
		}
	})
}

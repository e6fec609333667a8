package probe

import (
	"bytes"
	"testing"
)

// TestAccECNOption: the AccECN option's two kinds (172: EE0B first, 174:
// EE1B first) encode 24-bit counters and print as packetdrill writes them.
func TestAccECNOption(t *testing.T) {
	tests := []struct {
		name     string
		o        Option
		wire     []byte
		str      string
		validErr bool
	}{
		{"e1b first", AccECNOption(true, 1, 0, 1), []byte{174, 11, 0, 0, 1, 0, 0, 0, 0, 0, 1}, "ECN e1b 1 ceb 0 e0b 1", false},
		{"e0b first", AccECNOption(false, 0x010203, 5), []byte{172, 8, 1, 2, 3, 0, 0, 5}, "ECN e0b 66051 ceb 5", false},
		{"one counter", AccECNOption(false, 0xffffff), []byte{172, 5, 0xff, 0xff, 0xff}, "ECN e0b 16777215", false},
		{"empty", AccECNOption(true), []byte{174, 2}, "kind 174 len 2", false},
		{"bad length", Option{Kind: OptionAccECN0, Data: []byte{1, 2}}, []byte{172, 4, 1, 2}, "kind 172 len 4 0102", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.o.Bytes(); !bytes.Equal(got, tt.wire) {
				t.Errorf("Bytes() = %x, want %x", got, tt.wire)
			}
			if got := tt.o.String(); got != tt.str {
				t.Errorf("String() = %q, want %q", got, tt.str)
			}
			if err := tt.o.Validate(); (err != nil) != tt.validErr {
				t.Errorf("Validate() = %v, want error %v", err, tt.validErr)
			}
		})
	}
}

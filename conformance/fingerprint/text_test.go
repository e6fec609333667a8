package fingerprint

import "testing"

// TestTTLTextPlural: one hop is "1 hop", not "1 hops".
func TestTTLTextPlural(t *testing.T) {
	n := func(v int) *int { return &v }
	for _, tc := range []struct {
		hops int
		want string
	}{
		{0, "64 on the SYN-ACK: initial 64, 0 hops"},
		{1, "63 on the SYN-ACK: initial 64, 1 hop"},
		{2, "62 on the SYN-ACK: initial 64, 2 hops"},
	} {
		tt := TTL{SYNACK: n(64 - tc.hops), Initial: n(64), Hops: n(tc.hops)}
		if got := tt.text(); got != tc.want {
			t.Errorf("%d hops: got %q, want %q", tc.hops, got, tc.want)
		}
	}
}

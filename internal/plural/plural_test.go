package plural

import "testing"

func TestN(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{
		{0, "0 hops"},
		{1, "1 hop"},
		{2, "2 hops"},
	} {
		if got := N(tc.n, "hop", "hops"); got != tc.want {
			t.Errorf("N(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
	if got := N(uint64(1), "frame", "frames"); got != "1 frame" {
		t.Errorf("N(uint64 1) = %q, want %q", got, "1 frame")
	}
	if got := N(uint64(1<<63), "frame", "frames"); got != "9223372036854775808 frames" {
		t.Errorf("N(1<<63) = %q, want the full count", got)
	}
}

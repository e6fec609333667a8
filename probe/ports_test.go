package probe

import "testing"

func TestSourcePortRange(t *testing.T) {
	for _, tc := range []struct {
		ephLo, ephHi uint16
		lo, hi       uint16
		ok           bool
	}{
		{32768, 60999, 61000, 65535, true}, // Linux default: above
		{20000, 65534, 65535, 65535, true}, // one port above
		{32768, 65535, 1024, 32767, true},  // none above: below
		{1025, 65535, 1024, 1024, true},    // one port below
		{500, 700, 1024, 65535, true},      // above, never below 1024
		{1024, 65535, 0, 0, false},         // no room
		{1, 65535, 0, 0, false},            // no room
		{40000, 30000, 0, 0, false},        // inverted
	} {
		lo, hi, err := sourcePortRange(tc.ephLo, tc.ephHi)
		if ok := err == nil; ok != tc.ok || lo != tc.lo || hi != tc.hi {
			t.Errorf("sourcePortRange(%d, %d): got %d-%d, err %v; want %d-%d, ok %v",
				tc.ephLo, tc.ephHi, lo, hi, err, tc.lo, tc.hi, tc.ok)
		}
	}
}

func TestPortSet(t *testing.T) {
	var s portSet
	ports := []uint16{0, 1, 63, 64, 1024, 65535}
	for _, p := range ports {
		s.add(p)
	}
	for _, p := range ports {
		if !s.has(p) {
			t.Errorf("after add(%d): has(%d) false, want true", p, p)
		}
	}
	for _, p := range []uint16{2, 62, 65, 65534} {
		if s.has(p) {
			t.Errorf("has(%d) true, want false: never added", p)
		}
	}
	s.remove(64)
	if s.has(64) || !s.has(63) {
		t.Errorf("after remove(64): has(64) %v, has(63) %v; want false, true", s.has(64), s.has(63))
	}
}

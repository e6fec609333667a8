package fingerprint

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"synprobe/probe"
)

func TestGuessInitialTTL(t *testing.T) {
	tests := []struct {
		arrived       uint8
		initial, hops int
	}{
		{64, 64, 0}, {63, 64, 1}, {33, 64, 31}, {32, 32, 0}, {1, 32, 31},
		{65, 128, 63}, {128, 128, 0}, {120, 128, 8}, {129, 255, 126}, {255, 255, 0},
	}
	for _, tt := range tests {
		initial, hops := guessInitialTTL(tt.arrived)
		if initial != tt.initial || hops != tt.hops {
			t.Errorf("guessInitialTTL(%d): got %d, %d hops; want %d, %d hops", tt.arrived, initial, hops, tt.initial, tt.hops)
		}
	}
}

func TestClassifyIPIDs(t *testing.T) {
	tests := []struct {
		name     string
		ids      []uint16
		want     string
		min, max int
	}{
		{"too few", []uint16{1, 2}, "", 0, 0},
		{"zero", []uint16{0, 0, 0, 0}, IPIDZero, 0, 0},
		{"constant", []uint16{0x1234, 0x1234, 0x1234}, IPIDConstant, 0, 0},
		{"counter", []uint16{21493, 21494, 21495, 21496}, IPIDIncrementing, 1, 1},
		{"counter across the wrap", []uint16{65534, 65535, 0, 1}, IPIDIncrementing, 1, 1},
		{"global counter with other traffic", []uint16{100, 103, 110, 111}, IPIDIncrementing, 1, 7},
		{"random", []uint16{14554, 45254, 28068}, IPIDRandom, 0, 0},
		{"zero then random", []uint16{0, 0, 40000}, IPIDRandom, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := classifyIPIDs(tt.ids)
			if s.Behaviour != tt.want || s.StepMin != tt.min || s.StepMax != tt.max {
				t.Errorf("got %q step %d..%d, want %q step %d..%d", s.Behaviour, s.StepMin, s.StepMax, tt.want, tt.min, tt.max)
			}
			if (s.Behaviour == "") != (s.Why != "") {
				t.Errorf("behaviour %q with why %q: want exactly one", s.Behaviour, s.Why)
			}
			if !slices.Equal(s.Values, tt.ids) {
				t.Errorf("values: got %v, want %v", s.Values, tt.ids)
			}
		})
	}
}

func TestNmapOptions(t *testing.T) {
	tests := []struct {
		name string
		opts []probe.Option
		want string
	}{
		{"linux", []probe.Option{probe.MSSOption(1460), probe.SACKPermittedOption(), probe.TimestampsOption(7, 9), probe.NOPOption(), probe.WScaleOption(7)}, "M5B4ST11NW7"},
		{"no timestamps echo", []probe.Option{probe.MSSOption(1460), probe.TimestampsOption(7, 0)}, "M5B4T10"},
		{"zero tsval", []probe.Option{probe.TimestampsOption(0, 9)}, "T01"},
		{"end of list", []probe.Option{probe.MSSOption(265), probe.WScaleOption(10), probe.EOLOption()}, "M109WAL"},
		{"unknown kind", []probe.Option{probe.MSSOption(536), {Kind: 99, Data: []byte{1, 2}}}, "M218?99"},
		{"malformed mss", []probe.Option{{Kind: probe.OptionMSS, Data: []byte{1}}}, "M?"},
		{"none", nil, ""},
	}
	for _, tt := range tests {
		if got := nmapOptions(tt.opts); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestModDiffAndGCD(t *testing.T) {
	if got := modDiff(10, 4); got != 6 {
		t.Errorf("modDiff(10, 4): got %d, want 6", got)
	}
	if got := modDiff(2, 0xFFFFFFFE); got != 4 {
		t.Errorf("modDiff across the wrap: got %d, want 4", got)
	}
	var g uint32
	for _, d := range []uint32{128000, 64000, 192000} {
		g = gcd(g, d)
	}
	if g != 64000 {
		t.Errorf("gcd: got %d, want 64000", g)
	}
}

// at returns a time ms milliseconds after a fixed origin.
func at(ms float64) time.Time {
	return time.Unix(1700000000, 0).Add(time.Duration(ms * float64(time.Millisecond)))
}

func TestISNRate(t *testing.T) {
	const hz = 15625000 // Linux and gVisor: one tick per 64 ns
	clock := func(ms float64) isnSample { return isnSample{uint32(0xFFFF0000 + uint64(hz*ms/1000)), at(ms)} }
	rate, intervals := isnRate([]isnSample{clock(0), clock(800), clock(2400)})
	if math.Abs(rate-hz) > 1 || len(intervals) != 2 || !steady(rate, intervals) {
		t.Errorf("a 64 ns clock across the wrap: got %v Hz, intervals %v, steady %v", rate, intervals, steady(rate, intervals))
	}
	random := []isnSample{{123, at(0)}, {4000000000, at(800)}, {77, at(1600)}}
	if rate, intervals := isnRate(random); steady(rate, intervals) {
		t.Errorf("random ISNs read as steady: %v Hz, %v", rate, intervals)
	}
	same := []isnSample{{5, at(0)}, {5, at(800)}, {5, at(1600)}}
	if rate, intervals := isnRate(same); rate != 0 || !steady(rate, intervals) {
		t.Errorf("a repeating ISN: got %v Hz, steady %v; want 0, steady", rate, steady(rate, intervals))
	}
	if rate, intervals := isnRate(same[:1]); rate != 0 || intervals != nil {
		t.Errorf("one sample: got %v, %v", rate, intervals)
	}
}

func TestRandomBits(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	series := func(isn func(i int, ms float64) uint32) []isnSample {
		var s []isnSample
		for i := range 6 {
			ms := float64(i)*100 + r.Float64()*5
			s = append(s, isnSample{isn(i, ms), at(ms)})
		}
		return s
	}
	tests := []struct {
		name    string
		samples []isnSample
		clockHz float64
		lo, hi  float64
	}{
		{"hash per 4-tuple plus clock", series(func(int, float64) uint32 { return r.Uint32() }), 15625000, 28, 32},
		{"counter per connection", series(func(i int, _ float64) uint32 { return 1000 + uint32(i)*64000 }), 0, 0, 0},
		{"counter shared with other clients", series(func(i int, _ float64) uint32 { return uint32(i*i) * 64000 }), 0, 2, 4},
		{"one clock for every connection", series(func(_ int, ms float64) uint32 { return uint32(250000 * ms / 1000) }), 250000, 0, 2},
		{"counter with 8 random bits", series(func(i int, _ float64) uint32 { return uint32(i)*100000 + uint32(r.IntN(256)) }), 0, 6, 10},
	}
	for _, tt := range tests {
		got := randomBits(tt.samples, tt.clockHz)
		if got < tt.lo || got > tt.hi {
			t.Errorf("%s: got %.1f bits, want %.0f..%.0f", tt.name, got, tt.lo, tt.hi)
		}
	}
	if got := randomBits(series(func(int, float64) uint32 { return 0 })[:2], 0); !math.IsNaN(got) {
		t.Errorf("two samples: got %v, want NaN", got)
	}
}

func TestTSRateAndResiduals(t *testing.T) {
	base := uint32(0xFFFFFF00)
	a, b := tsSample{val: base, at: at(0)}, tsSample{val: base + 3000, at: at(3000)}
	if hz, ok := tsRate(a, b); !ok || hz != 1000 {
		t.Errorf("tsRate across the wrap: got %v %v, want 1000 true", hz, ok)
	}
	if _, ok := tsRate(a, tsSample{val: 5, at: at(100)}); ok {
		t.Error("tsRate over 100 ms: got ok, want too short")
	}
	res := tsResiduals(a, 1000, []tsSample{{val: base + 500, at: at(500)}, {val: 2000000000, at: at(500)}})
	if math.Abs(res[0]) > 0.001 || math.Abs(res[1]) < 1e6 {
		t.Errorf("residuals: got %v, want ~0 and a large one", res)
	}
	for _, tt := range []struct {
		hz, want float64
		ok       bool
	}{{999.6, 1000, true}, {1000.1, 1000, true}, {100.4, 100, true}, {250, 250, true}, {700, 0, false}} {
		if got, ok := nearestCommonRate(tt.hz); got != tt.want || ok != tt.ok {
			t.Errorf("nearestCommonRate(%v): got %v %v, want %v %v", tt.hz, got, ok, tt.want, tt.ok)
		}
	}
}

func TestChallengeSummary(t *testing.T) {
	tests := []struct {
		c    ChallengeACK
		want string
	}{
		{ChallengeACK{RSTs: 12, IntervalMS: 100, SpanMS: 1100, ACKs: 3, MinGapMS: 501}, "3 challenge ACKs for 12 RSTs over 1.1 s: 1 per ~500 ms per connection"},
		{ChallengeACK{RSTs: 12, IntervalMS: 100, SpanMS: 1100, ACKs: 12, MinGapMS: 99}, "a challenge ACK for every RST (12, one per 100 ms): no limit seen"},
		{ChallengeACK{RSTs: 12, IntervalMS: 100, SpanMS: 1100, ACKs: 1}, "1 challenge ACK for 12 RSTs over 1.1 s: at most 1 per 1.1 s per connection"},
		{ChallengeACK{RSTs: 12, IntervalMS: 100, AliveAfter: ptr(true)}, "no challenge ACK to 12 in-window RSTs"},
		{ChallengeACK{RSTs: 12, IntervalMS: 100, AliveAfter: ptr(false)}, "no challenge ACK; the connection was gone afterwards (an in-window RST with an inexact seq reset it)"},
	}
	for _, tt := range tests {
		if got := challengeSummary(&tt.c); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

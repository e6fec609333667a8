package fingerprint

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"synprobe/internal/plural"
	"synprobe/probe"
)

// initialTTLs are the initial TTLs (hop limits) stacks use in practice.
var initialTTLs = []int{32, 64, 128, 255}

// guessInitialTTL returns the nearest common initial TTL at or above what
// arrived, and the hops that imply.
func guessInitialTTL(arrived uint8) (initial, hops int) {
	for _, t := range initialTTLs {
		if int(arrived) <= t {
			return t, t - int(arrived)
		}
	}
	return 255, 255 - int(arrived) // not reached: arrived <= 255
}

// IP ID behaviours.
const (
	IPIDZero         = "zero"
	IPIDConstant     = "constant"
	IPIDIncrementing = "incrementing"
	IPIDRandom       = "random"
)

// maxIncrement is the largest step between two IP IDs still read as a
// counter: other traffic of the host may advance a global counter between
// two replies, but not by thousands within a second.
const maxIncrement = 1000

// minIPIDs is how many IP IDs a behaviour is judged from.
const minIPIDs = 3

// classifyIPIDs describes a series of IPv4 identifications in arrival
// order.
func classifyIPIDs(ids []uint16) IPIDSeries {
	s := IPIDSeries{Values: slices.Clone(ids)}
	if len(ids) < minIPIDs {
		s.Why = fmt.Sprintf("%s, need %d", plural.N(len(ids), "reply", "replies"), minIPIDs)
		return s
	}
	allSame := true
	for _, id := range ids[1:] {
		if id != ids[0] {
			allSame = false
		}
	}
	switch {
	case allSame && ids[0] == 0:
		s.Behaviour = IPIDZero
		return s
	case allSame:
		s.Behaviour = IPIDConstant
		return s
	}
	lo, hi := 1<<16, -1
	for i := 1; i < len(ids); i++ {
		d := int(ids[i] - ids[i-1]) // uint16 arithmetic wraps
		lo, hi = min(lo, d), max(hi, d)
	}
	if hi > maxIncrement {
		s.Behaviour = IPIDRandom
		return s
	}
	s.Behaviour = IPIDIncrementing
	s.StepMin, s.StepMax = lo, hi
	return s
}

// nmapOptions writes a SYN-ACK's options the way nmap's OPS test does:
// L (end of list), N (no-op), M with the MSS in hex, W with the shift in
// hex, S (SACK permitted), T with 1 or 0 for TSval and TSecr non-zero.
// Kinds nmap has no letter for are written ?kind (nmap drops them).
func nmapOptions(opts []probe.Option) string {
	var b strings.Builder
	for _, o := range opts {
		switch o.Kind {
		case probe.OptionEOL:
			b.WriteByte('L')
		case probe.OptionNOP:
			b.WriteByte('N')
		case probe.OptionMSS:
			if v, ok := o.MSS(); ok {
				fmt.Fprintf(&b, "M%X", v)
			} else {
				b.WriteString("M?")
			}
		case probe.OptionWScale:
			if v, ok := o.WScale(); ok {
				fmt.Fprintf(&b, "W%X", v)
			} else {
				b.WriteString("W?")
			}
		case probe.OptionSACKPermitted:
			b.WriteByte('S')
		case probe.OptionTimestamps:
			if val, ecr, ok := o.Timestamps(); ok {
				b.WriteByte('T')
				b.WriteByte(bit(val != 0))
				b.WriteByte(bit(ecr != 0))
			} else {
				b.WriteString("T?")
			}
		default:
			fmt.Fprintf(&b, "?%d", uint8(o.Kind))
		}
	}
	return b.String()
}

func bit(b bool) byte {
	if b {
		return '1'
	}
	return '0'
}

// modDiff is nmap's MOD_DIFF: the shorter way round the 32-bit circle.
func modDiff(a, b uint32) uint32 { return min(a-b, b-a) }

func gcd(a, b uint32) uint32 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// isnSample is one ISN and when the SYN-ACK carrying it arrived.
type isnSample struct {
	isn uint32
	at  time.Time
}

// isnRate is the rate at which ISNs advance between samples taken on one
// 4-tuple, in increments per second, from the first sample to the last;
// interval holds the rate between each two samples in turn. The ISN is
// assumed to move forward (a 64 ns clock takes 274 s to go once round).
func isnRate(samples []isnSample) (rate float64, intervals []float64) {
	if len(samples) < 2 {
		return 0, nil
	}
	for i := 1; i < len(samples); i++ {
		dt := samples[i].at.Sub(samples[i-1].at).Seconds()
		if dt <= 0 {
			return 0, nil
		}
		intervals = append(intervals, float64(samples[i].isn-samples[i-1].isn)/dt)
	}
	first, last := samples[0], samples[len(samples)-1]
	return float64(last.isn-first.isn) / last.at.Sub(first.at).Seconds(), intervals
}

// steady reports whether every interval rate lies within 25% of rate: a
// clock-driven ISN does; a random one does not.
func steady(rate float64, intervals []float64) bool {
	if len(intervals) == 0 {
		return false
	}
	for _, r := range intervals {
		if math.Abs(r-rate) > 0.25*math.Abs(rate) {
			return false
		}
	}
	return true
}

// gcdUnit is the GCD of the ISN differences above which they are counted
// in units of it, as nmap does: a counter that moves by 64000 per
// connection, shared with other clients, moves by 64000 times the
// connections in between, and only that count is unpredictable.
const gcdUnit = 9

// randomBits estimates how many bits of the ISNs of successive connections
// cannot be predicted: log2(sqrt(12)*sigma) of the differences between
// successive ISNs (a uniform spread over 2^n has sigma 2^n/sqrt(12)),
// after taking out whichever explains more of them: a constant step (a
// counter per connection), or the clock rate measured on one 4-tuple times
// the time between the two SYN-ACKs (one clock for every connection).
// Differences with a GCD above gcdUnit count in units of it. It is an
// upper bound: timing noise of the measurement counts as randomness.
func randomBits(samples []isnSample, clockHz float64) float64 {
	if len(samples) < 3 {
		return math.NaN()
	}
	var raw, timed []float64
	for i := 1; i < len(samples); i++ {
		d := samples[i].isn - samples[i-1].isn
		raw = append(raw, float64(int32(d)))
		expect := clockHz * samples[i].at.Sub(samples[i-1].at).Seconds()
		timed = append(timed, float64(int32(d-uint32(int64(math.Round(expect))))))
	}
	sigma := stddev(raw)
	if clockHz > 0 {
		sigma = min(sigma, stddev(timed))
	}
	var g uint32
	for i := 1; i < len(samples); i++ {
		g = gcd(g, modDiff(samples[i].isn, samples[i-1].isn))
	}
	if g > gcdUnit {
		sigma /= float64(g)
	}
	if sigma < 1 {
		return 0
	}
	return min(32, max(0, math.Log2(sigma*math.Sqrt(12))))
}

func stddev(v []float64) float64 {
	if len(v) < 2 {
		return 0
	}
	var mean float64
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	var ss float64
	for _, x := range v {
		ss += (x - mean) * (x - mean)
	}
	return math.Sqrt(ss / float64(len(v)-1))
}

// tsSample is one TSval and when the segment carrying it arrived.
type tsSample struct {
	val  uint32
	at   time.Time
	port uint16 // the probe's source port: one 4-tuple per port
}

// tsRate is the timestamp clock's rate in Hz between two samples of one
// connection or 4-tuple; ok is false when they are too close in time to
// tell (under 200 ms).
func tsRate(a, b tsSample) (hz float64, ok bool) {
	dt := b.at.Sub(a.at).Seconds()
	if dt < 0.2 {
		return 0, false
	}
	return float64(int32(b.val-a.val)) / dt, true
}

// tsTolerance is how far (in ticks) a TSval may stray from the reference
// clock and still be read as the same clock: 100 ms (timing noise, and
// Linux's SYN-cookie TSvals, which step in 64 ms), or 5 ticks for slow
// clocks. A random offset misses by far more: it is off by less only once
// in tens of millions.
func tsTolerance(hz float64) float64 { return max(5, 0.1*hz) }

// tsResiduals returns, for each sample, how far its TSval lies from the
// reference clock (ref, running at hz), in ticks.
func tsResiduals(ref tsSample, hz float64, samples []tsSample) []float64 {
	out := make([]float64, len(samples))
	for i, s := range samples {
		expect := hz * s.at.Sub(ref.at).Seconds()
		out[i] = float64(int32(s.val-ref.val)) - expect
	}
	return out
}

// commonRates are timestamp clock rates stacks use; a measured rate is
// reported as the nearest of them when within 5%.
var commonRates = []float64{2, 10, 100, 200, 250, 1000, 1000000}

func nearestCommonRate(hz float64) (float64, bool) {
	for _, r := range commonRates {
		if math.Abs(hz-r) <= 0.05*r {
			return r, true
		}
	}
	return 0, false
}

// challengeSummary says in one line what the RST train drew.
func challengeSummary(c *ChallengeACK) string {
	switch {
	case c.ACKs == 0 && c.AliveAfter != nil && !*c.AliveAfter:
		return "no challenge ACK; the connection was gone afterwards (an in-window RST with an inexact seq reset it)"
	case c.ACKs == 0:
		return "no challenge ACK to " + plural.N(c.RSTs, "in-window RST", "in-window RSTs")
	case c.ACKs >= c.RSTs:
		return fmt.Sprintf("a challenge ACK for every RST (%d, one per %d ms): no limit seen", c.RSTs, int(c.IntervalMS))
	case c.ACKs == 1:
		return fmt.Sprintf("1 challenge ACK for %d RSTs over %s: at most 1 per %s per connection", c.RSTs, fmtMS(c.SpanMS), fmtMS(c.SpanMS))
	}
	return fmt.Sprintf("%d challenge ACKs for %d RSTs over %s: 1 per ~%s per connection", c.ACKs, c.RSTs, fmtMS(c.SpanMS), fmtMS(roundTo(c.MinGapMS, c.IntervalMS)))
}

// roundTo rounds v to a multiple of step (the RST spacing quantises what
// can be seen of a rate limit).
func roundTo(v, step float64) float64 {
	if step <= 0 {
		return v
	}
	return math.Round(v/step) * step
}

func fmtMS(ms float64) string {
	if ms >= 1000 {
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", ms/1000), "0"), ".") + " s"
	}
	return fmt.Sprintf("%.0f ms", ms)
}

// millis converts a duration to milliseconds with microsecond precision.
func millis(d time.Duration) float64 { return math.Round(float64(d.Microseconds())) / 1000 }

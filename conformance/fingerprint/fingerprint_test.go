package fingerprint

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"synprobe/internal/lab"
	"synprobe/internal/labtest"
	"synprobe/probe"
)

// measure runs Measure against target in tg and logs the text section.
func measure(t *testing.T, tg *lab.Target, target netip.AddrPort, cfg Config, dial probe.DialConfig) *Fingerprint {
	t.Helper()
	p := labtest.Dial(t, tg, target.Addr(), dial)
	cfg.Target = target
	fp := Measure(context.Background(), p, cfg)
	var b strings.Builder
	fp.WriteText(&b)
	t.Logf("%s lab, %v:\n%s", tg.Stack, target, b.String())
	return fp
}

// check collects mismatches with one message each: got, want.
type check struct {
	t *testing.T
}

func (c check) eq(name string, got, want any) {
	c.t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		c.t.Errorf("%s: got %v, want %v", name, got, want)
	}
}

func (c check) intp(name string, got *int, want int) {
	c.t.Helper()
	if got == nil {
		c.t.Errorf("%s: not measured, want %d", name, want)
	} else if *got != want {
		c.t.Errorf("%s: got %d, want %d", name, *got, want)
	}
}

func (c check) boolp(name string, got *bool, want bool) {
	c.t.Helper()
	if got == nil {
		c.t.Errorf("%s: not measured, want %v", name, want)
	} else if *got != want {
		c.t.Errorf("%s: got %v, want %v", name, *got, want)
	}
}

func (c check) within(name string, got, lo, hi float64) {
	c.t.Helper()
	if math.IsNaN(got) || got < lo || got > hi {
		c.t.Errorf("%s: got %v, want %v..%v", name, got, lo, hi)
	}
}

func (c check) contains(name, got, want string) {
	c.t.Helper()
	if !strings.Contains(got, want) {
		c.t.Errorf("%s: got %q, want it to contain %q", name, got, want)
	}
}

// isnClock is the ISN clock of Linux and gVisor (RFC 6528): one tick per
// 64 ns.
const isnClock = 1e9 / 64

// checkCommon asserts what Linux and gVisor have in common in the lab: a
// directly connected target with initial TTL 64, SACK, a 1 kHz timestamp
// clock, ISNs from a 64 ns clock plus a hash of the 4-tuple, SYN-ACKs
// retransmitted at about 1 s and 3 s, no SYN cookies, and challenge ACKs
// limited to one per 500 ms per connection (Linux's tcp_invalid_ratelimit
// and gVisor's TCPInvalidRateLimit default). Timing values get generous
// margins: the machine may be busy.
func checkCommon(t *testing.T, fp *Fingerprint, v6 bool) {
	t.Helper()
	c := check{t}
	c.intp("ttl", fp.TTL.SYNACK, 64)
	c.intp("initial ttl", fp.TTL.Initial, 64)
	c.intp("hops", fp.TTL.Hops, 0)
	c.intp("rst ttl", fp.TTL.RST, 64)
	mss := 1460
	if v6 {
		mss = 1440
		c.eq("df why", fp.DF.Why, "IPv6 has no DF bit")
		c.eq("ip id why", fp.IPID.Why, "IPv6 has no IP ID")
	}
	c.intp("mss", fp.SYNACK.MSS, mss)
	m := fmt.Sprintf("M%X", mss)
	c.eq("nmap ops", fp.Nmap.OPS, strings.NewReplacer("M", m).Replace("O1=MST11NW8%O2=MST11NW8%O3=MNNT11NW8%O4=MST11NW8%O5=MST11NW8%O6=MST11"))

	o := fp.ISN.OneTuple
	if o.RateHz == nil {
		t.Errorf("isn rate on one 4-tuple: not measured (%s)", o.Why)
	} else {
		c.within("isn rate on one 4-tuple (Hz)", *o.RateHz, 0.97*isnClock, 1.03*isnClock)
	}
	c.eq("isn samples on one 4-tuple", len(o.Samples), 4)
	a := fp.ISN.Adjacent
	c.eq("adjacent ports", fmt.Sprint(a.Ports), fmt.Sprint(adjacent(a.Ports)))
	if a.RandomBits == nil || a.GCD == nil {
		t.Fatalf("adjacent ISNs: not measured (%s)", a.Why)
	}
	c.within("random bits between adjacent ports", *a.RandomBits, 24, 32)
	c.within("gcd of adjacent ISN differences", float64(*a.GCD), 1, 999)

	ts := fp.Timestamps
	c.boolp("timestamps answered", ts.Answered, true)
	if ts.RateHz == nil {
		t.Errorf("timestamp rate: not measured (%s)", ts.Why)
	} else {
		c.within("timestamp rate (Hz)", *ts.RateHz, 950, 1050)
	}
	c.eq("nominal timestamp rate", ts.NominalHz, 1000)
	c.within("4-tuples compared", float64(ts.Compared), 8, 10)
	c.eq("tsecr wrong", ts.TSecrWrong, 0)
	c.within("tsecr checked", float64(ts.TSecrChecked), 12, 20)

	c.boolp("sack", fp.SACK.Supported, true)
	c.boolp("fast open", fp.FastOpen.Supported, false)

	r := fp.Retransmission
	if len(r.AtMS) != 2 {
		t.Errorf("syn-ack retransmissions: got %v (%s), want two, at ~1 s and ~3 s", r.AtMS, r.Why)
	} else {
		c.within("first retransmission (ms)", r.AtMS[0], 700, 1600)
		c.within("second retransmission (ms)", r.AtMS[1], 2600, 3500)
	}
	c.boolp("syn cookies", fp.SYNCookies.InUse, false)

	ch := fp.ChallengeACK
	c.eq("challenge rsts", ch.RSTs, challengeRSTs)
	c.within("challenge acks", float64(ch.ACKs), 2, 4)
	c.within("challenge ack min gap (ms)", ch.MinGapMS, 450, 850)
	c.boolp("alive after the rst train", ch.AliveAfter, true)
	c.contains("challenge summary", ch.Summary, "per ~")

	c.eq("syns sent", fp.SYNs, 14)
	if len(fp.Notes) > 0 {
		t.Errorf("notes: got %q, want none", fp.Notes)
	}
}

// adjacent returns ports[0], ports[0]+1, ... as long as ports.
func adjacent(ports []uint16) []uint16 {
	out := make([]uint16, len(ports))
	for i := range ports {
		out[i] = ports[0] + uint16(i)
	}
	return out
}

// recorder counts the SYNs synprobe sends.
type recorder struct{ syns atomic.Int32 }

func (r *recorder) WritePacket(_ time.Time, data []byte) error {
	var f probe.Frame
	if f.Decode(data) == nil && f.Has(probe.LayerTCP) && f.IP.Src == lab.ProbeAddr4 && f.TCP.Flags&(probe.SYN|probe.ACK) == probe.SYN {
		r.syns.Add(1)
	}
	return nil
}

// TestGVisor asserts what gVisor's netstack really does. Where it differs
// from Linux (see TestLinux): its SYN-ACK window is 28672 or 29184, varying
// between runs (Linux 65535);
// its RSTs go without DF and with a fresh random IP ID (Linux: DF, ID 0);
// every DF packet has ID 0, so a connection's IP IDs are zero too (Linux
// counts per connection); it has no ECN; its timestamp offset is per host
// pair, so every 4-tuple sees one clock (Linux 6.18: per 4-tuple); and it
// retransmits a SYN-ACK with its first TSval (Linux puts the current one).
func TestGVisor(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("ipv6=%v", v6), func(t *testing.T) {
			tg := labtest.Start(t, lab.StackGVisor, nil)
			target := tg.Open
			if v6 {
				target = tg.Open6
			}
			fp := measure(t, tg, target, Config{ClosedPort: tg.Closed.Port()}, probe.DialConfig{})
			checkCommon(t, fp, v6)
			c := check{t}
			if w := fp.SYNACK.Window; w == nil || (*w != 28672 && *w != 29184) {
				t.Errorf("window: got %v, want 28672 or 29184", w)
			}
			c.intp("window scale", fp.SYNACK.WScale, 8)
			if w := fp.Nmap.WIN; w != "W1=7000%W2=7000%W3=7000%W4=7000%W5=7000%W6=7000" && w != "W1=7200%W2=7200%W3=7200%W4=7200%W5=7200%W6=7200" {
				t.Errorf("nmap win: got %s, want all 7000 or all 7200", w)
			}
			c.boolp("ecn", fp.ECN.Supported, false)
			c.boolp("per-4-tuple timestamp offsets", fp.Timestamps.PerTupleOffsets, false)
			c.boolp("retransmission repeats the tsval", fp.Timestamps.RetransSameTSval, true)
			if fp.Timestamps.UptimeS == nil {
				t.Errorf("implied uptime: not measured (%s)", fp.Timestamps.UptimeWhy)
			}
			if v6 {
				return
			}
			c.boolp("df on syn-ack", fp.DF.SYNACK, true)
			c.boolp("df on rst", fp.DF.RST, false)
			c.eq("ip id of syn-acks", fp.IPID.SYNACK.Behaviour, IPIDZero)
			c.eq("ip id of rsts", fp.IPID.RST.Behaviour, IPIDRandom)
			c.eq("ip id in a connection", fp.IPID.Connection.Behaviour, IPIDZero)
		})
	}
}

// TestPaceAndShape: every SYN waits for the pacer (the SYNs seen leaving
// equal the pacer's calls), the whole works under the audit's default rate
// of 20 SYNs per second, and the JSON and text have the documented shape.
func TestPaceAndShape(t *testing.T) {
	tg := labtest.Start(t, lab.StackGVisor, nil)
	var rec recorder
	var calls atomic.Int32
	var mu sync.Mutex
	next := time.Now()
	pace := func(ctx context.Context) error {
		calls.Add(1)
		mu.Lock()
		at := next
		if now := time.Now(); at.Before(now) {
			at = now
		}
		next = at.Add(50 * time.Millisecond)
		mu.Unlock()
		select {
		case <-time.After(time.Until(at)):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	fp := measure(t, tg, tg.Open, Config{Pace: pace}, probe.DialConfig{Recorder: &rec})
	if got, want := int(calls.Load()), int(rec.syns.Load()); got != want || got != fp.SYNs {
		t.Errorf("pacer called %d times, %d SYNs seen leaving, %d SYNs counted: want all equal", got, want, fp.SYNs)
	}
	c := check{t}
	c.eq("syn-ack retransmissions", len(fp.Retransmission.AtMS), 2)
	c.eq("one-4-tuple samples", len(fp.ISN.OneTuple.Samples), 4)
	c.eq("nmap probes answered", len(fp.ISN.Adjacent.ISNs), 6)
	// Without a closed port the RSTs come from the open port.
	c.eq("rst ip ids", len(fp.IPID.RST.Values), rstProbes)

	b, err := json.Marshal(fp)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"target", "duration_ms", "syns_sent", "ttl", "df", "ip_id", "syn_ack", "nmap_seq", "isn",
		"timestamps", "ecn", "sack", "fast_open", "syn_ack_retransmission", "syn_cookies", "challenge_ack"} {
		if _, ok := m[key]; !ok {
			t.Errorf("json: no key %q in %s", key, b)
		}
	}
	var text strings.Builder
	fp.WriteText(&text)
	lines := strings.Split(strings.TrimSpace(text.String()), "\n")
	if len(lines) > 20 {
		t.Errorf("text: %d lines, want one screen (20 at most)", len(lines))
	}
	for _, want := range []string{"stack fingerprint", "ttl", "ip id", "nmap ops", "isn", "timestamps", "syn cookies", "challenge ack"} {
		c.contains("text", text.String(), want)
	}
}

// TestUnanswered: a closed port and a silent host leave every value
// unmeasured with a reason, and nothing is inferred from the silence.
func TestUnanswered(t *testing.T) {
	tests := []struct {
		name   string
		tamper *lab.Tamper
		closed bool
		why    string
	}{
		{"closed port", nil, true, "answered the SYN with R."},
		{"silent host", &lab.Tamper{ToProbe: func([]byte) [][]byte { return nil }}, false, "no reply within 300ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg := labtest.Start(t, lab.StackGVisor, tt.tamper)
			target := tg.Open
			if tt.closed {
				target = tg.Closed
			}
			fp := measure(t, tg, target, Config{Timeout: 300 * time.Millisecond}, probe.DialConfig{})
			c := check{t}
			for name, why := range map[string]string{
				"ttl": fp.TTL.Why, "syn-ack": fp.SYNACK.Why, "isn one 4-tuple": fp.ISN.OneTuple.Why,
				"timestamps": fp.Timestamps.Why, "ecn": fp.ECN.Why, "sack": fp.SACK.Why, "fast open": fp.FastOpen.Why,
				"retransmission": fp.Retransmission.Why, "syn cookies": fp.SYNCookies.Why, "challenge ack": fp.ChallengeACK.Why,
				"nmap probe 1": fp.Nmap.Probes[0].Why,
			} {
				c.contains(name+" why", why, tt.why)
			}
			c.contains("adjacent isn why", fp.ISN.Adjacent.Why, "0 SYN-ACKs")
			if fp.SYNCookies.InUse != nil || fp.ECN.Supported != nil || fp.Retransmission.AtMS != nil {
				t.Errorf("values inferred without an answer: cookies %v, ecn %v, retransmissions %v", fp.SYNCookies.InUse, fp.ECN.Supported, fp.Retransmission.AtMS)
			}
			if tt.closed {
				c.intp("rst ttl", fp.TTL.RST, 64)
				c.eq("rst ip ids", len(fp.IPID.RST.Values), rstProbes)
			}
		})
	}
}

// Faulty responders: gVisor with its frames rewritten. Each shows that the
// measurement notices the behaviour it exists to measure.

// synACKs applies fn to the SYN-ACKs the stack sends.
func synACKs(fn func(f *probe.Frame) bool) *lab.Tamper {
	return &lab.Tamper{ToProbe: labtest.TamperTCP(func(f *probe.Frame) bool {
		if f.TCP.Flags.Has(probe.SYN | probe.ACK) {
			return fn(f)
		}
		return true
	})}
}

// neverRetransmits passes each SYN-ACK once: a stack that keeps no state
// for half-open connections, as with SYN cookies.
func neverRetransmits() *lab.Tamper {
	var mu sync.Mutex
	seen := map[string]bool{}
	return synACKs(func(f *probe.Frame) bool {
		mu.Lock()
		defer mu.Unlock()
		key := fmt.Sprint(f.TCP.DstPort, f.TCP.Seq)
		if seen[key] {
			return false
		}
		seen[key] = true
		return true
	})
}

// counterISN replaces the stack's ISNs by a global counter that moves by
// 64000 per connection (the old BSD way), translating sequence numbers
// both ways so that connections still work.
func counterISN() *lab.Tamper {
	var mu sync.Mutex
	next := uint32(1000)
	fake := map[string]uint32{}      // port and real ISN -> fake ISN
	offset := map[uint16]probe.Seq{} // port -> fake - real
	return &lab.Tamper{
		ToProbe: labtest.TamperTCP(func(f *probe.Frame) bool {
			mu.Lock()
			defer mu.Unlock()
			port := f.TCP.DstPort
			if f.TCP.Flags.Has(probe.SYN | probe.ACK) {
				key := fmt.Sprint(port, f.TCP.Seq)
				if _, ok := fake[key]; !ok {
					fake[key] = next
					next += 64000
				}
				offset[port] = probe.Seq(fake[key]) - f.TCP.Seq
			}
			f.TCP.Seq += offset[port]
			return true
		}),
		ToTarget: labtest.TamperTCP(func(f *probe.Frame) bool {
			mu.Lock()
			defer mu.Unlock()
			if f.TCP.Flags&probe.ACK != 0 {
				f.TCP.Ack -= offset[f.TCP.SrcPort]
			}
			return true
		}),
	}
}

// exactRST rewrites every RST that is one past the exact sequence number
// into the exact one: a stack without RFC 5961's check, which any
// in-window RST resets.
func exactRST() *lab.Tamper {
	var mu sync.Mutex
	exact := map[uint16]probe.Seq{} // port -> the seq a RST must carry
	return &lab.Tamper{
		ToProbe: labtest.TamperTCP(func(f *probe.Frame) bool {
			if f.TCP.Flags.Has(probe.SYN | probe.ACK) {
				mu.Lock()
				exact[f.TCP.DstPort] = f.TCP.Ack
				mu.Unlock()
			}
			return true
		}),
		ToTarget: labtest.TamperTCP(func(f *probe.Frame) bool {
			mu.Lock()
			defer mu.Unlock()
			if want, ok := exact[f.TCP.SrcPort]; ok && f.TCP.Flags == probe.RST && f.TCP.Seq == want+1 {
				f.TCP.Seq = want
			}
			return true
		}),
	}
}

func TestFaultyResponders(t *testing.T) {
	tests := []struct {
		name   string
		tamper *lab.Tamper
		check  func(t *testing.T, fp *Fingerprint)
	}{
		{"never retransmits looks like SYN cookies", neverRetransmits(), func(t *testing.T, fp *Fingerprint) {
			c := check{t}
			c.eq("retransmissions", len(fp.Retransmission.AtMS), 0)
			c.boolp("syn cookies", fp.SYNCookies.InUse, true)
			c.contains("evidence", strings.Join(fp.SYNCookies.Evidence, "; "), "no SYN-ACK retransmission within")
			if len(fp.SYNCookies.Evidence) != 1 {
				t.Errorf("evidence: got %q, want only the missing retransmission (the ISN still runs on a clock)", fp.SYNCookies.Evidence)
			}
		}},
		{"TSecr echoed wrong", synACKs(func(f *probe.Frame) bool {
			for i, o := range f.TCP.Options {
				if v, e, ok := o.Timestamps(); ok {
					f.TCP.Options[i] = probe.TimestampsOption(v, e+5)
				}
			}
			return true
		}), func(t *testing.T, fp *Fingerprint) {
			c := check{t}
			c.within("tsecr checked", float64(fp.Timestamps.TSecrChecked), 12, 20)
			c.eq("tsecr wrong", fp.Timestamps.TSecrWrong, fp.Timestamps.TSecrChecked)
			c.contains("tsecr example", fp.Timestamps.TSecrExample, "got TSecr")
		}},
		{"fixed IP ID", &lab.Tamper{ToProbe: labtest.TamperTCP(func(f *probe.Frame) bool {
			f.IP.ID = 0x1234
			return true
		})}, func(t *testing.T, fp *Fingerprint) {
			c := check{t}
			for name, s := range map[string]IPIDSeries{"syn-ack": fp.IPID.SYNACK, "rst": fp.IPID.RST, "connection": fp.IPID.Connection} {
				c.eq(name+" ip id", s.Behaviour, IPIDConstant)
				if len(s.Values) > 0 {
					c.eq(name+" ip id value", s.Values[0], 0x1234)
				}
			}
		}},
		{"ISN from a global counter", counterISN(), func(t *testing.T, fp *Fingerprint) {
			c := check{t}
			a := fp.ISN.Adjacent
			if a.GCD == nil || a.RandomBits == nil {
				t.Fatalf("adjacent ISNs: not measured (%s)", a.Why)
			}
			// Other probe connections run meanwhile and move the counter
			// too: the step is 64000 times the connections in between.
			c.eq("gcd", *a.GCD, 64000)
			c.within("random bits", *a.RandomBits, 0, 4)
			// The challenge connection still worked through the translation.
			c.boolp("alive after the rst train", fp.ChallengeACK.AliveAfter, true)
		}},
		{"timestamp offset per 4-tuple", synACKs(func(f *probe.Frame) bool {
			for i, o := range f.TCP.Options {
				if v, e, ok := o.Timestamps(); ok {
					f.TCP.Options[i] = probe.TimestampsOption(v+uint32(f.TCP.DstPort)*2654435761, e)
				}
			}
			return true
		}), func(t *testing.T, fp *Fingerprint) {
			c := check{t}
			c.boolp("per-4-tuple offsets", fp.Timestamps.PerTupleOffsets, true)
			if fp.Timestamps.UptimeS != nil {
				t.Errorf("implied uptime: got %v s, want none", *fp.Timestamps.UptimeS)
			}
			c.contains("uptime why", fp.Timestamps.UptimeWhy, "own clock offset")
			c.eq("nominal rate (one 4-tuple keeps its clock)", fp.Timestamps.NominalHz, 1000)
		}},
		{"no RFC 5961 check on RSTs", exactRST(), func(t *testing.T, fp *Fingerprint) {
			c := check{t}
			c.eq("challenge acks", fp.ChallengeACK.ACKs, 0)
			c.boolp("alive after the rst train", fp.ChallengeACK.AliveAfter, false)
			c.contains("summary", fp.ChallengeACK.Summary, "reset it")
		}},
		{"Fast Open cookie", synACKs(func(f *probe.Frame) bool {
			f.TCP.DataOffset = 0 // room for the new option
			f.TCP.Options = append(f.TCP.Options, probe.NOPOption(), probe.NOPOption(), probe.FastOpenOption([]byte{1, 2, 3, 4, 5, 6, 7, 8}))
			return true
		}), func(t *testing.T, fp *Fingerprint) {
			c := check{t}
			c.boolp("fast open", fp.FastOpen.Supported, true)
			c.contains("fast open detail", fp.FastOpen.Detail, "a cookie of 8 bytes")
		}},
		{"TTL 61 without DF", &lab.Tamper{ToProbe: labtest.TamperTCP(func(f *probe.Frame) bool {
			f.IP.TTL, f.IP.Flags = 61, 0
			return true
		})}, func(t *testing.T, fp *Fingerprint) {
			c := check{t}
			c.intp("ttl", fp.TTL.SYNACK, 61)
			c.intp("initial ttl", fp.TTL.Initial, 64)
			c.intp("hops", fp.TTL.Hops, 3)
			c.boolp("df on syn-ack", fp.DF.SYNACK, false)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg := labtest.Start(t, lab.StackGVisor, tt.tamper)
			fp := measure(t, tg, tg.Open, Config{ClosedPort: tg.Closed.Port()}, probe.DialConfig{})
			tt.check(t, fp)
		})
	}
}

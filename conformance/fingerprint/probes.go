package fingerprint

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"synprobe/probe"
)

// Timing of the measurements. The retransmission schedule is the slowest
// part; everything else runs beside it.
const (
	// retransWatch is how long the SYN-ACK retransmission schedule is
	// watched after the first SYN-ACK (a Linux retransmits at 1 s and 3 s).
	retransWatch = 3500 * time.Millisecond
	// retransEnough is how many retransmissions end the watch early.
	retransEnough = 2
	// oneTupleSpacing is the time between the SYNs on one 4-tuple.
	oneTupleSpacing = 800 * time.Millisecond
	// nmapSpacing is the least time between nmap's SEQ probes, as nmap.
	nmapSpacing = 100 * time.Millisecond
	// challengeInterval and challengeRSTs shape the RST train (1.1 s).
	challengeInterval = 100 * time.Millisecond
	challengeRSTs     = 12
	// rstProbes is how many bare ACKs draw RSTs for the IP ID series.
	rstProbes = 5
)

// Window values synprobe advertises, as a current Linux does.
const (
	linuxSYNWindow = 64240
	linuxWScale    = 7
	ackWindow      = 502
)

// cookieMSS is the MSS the one-4-tuple series offers once instead of the
// path's: Linux and gVisor encode 536 and 1460 as different classes in a
// SYN cookie, so the ISN moves by a few units only if a cookie answered.
const cookieMSS = 536

// measurer holds what every measurement shares.
type measurer struct {
	p     *probe.Prober
	cfg   Config
	v4    bool
	mss   uint16
	start time.Time
	ts0   uint32
	syns  atomic.Int32

	mu        sync.Mutex
	disturbed []string
}

// tsNow is synprobe's own timestamp clock: 1 ms ticks, as Linux.
func (m *measurer) tsNow() uint32 { return m.ts0 + uint32(time.Since(m.start).Milliseconds()) }

// ip returns the IP fields synprobe sends with: DF and a per-connection
// incrementing ID, like current stacks.
func (m *measurer) ip(s *probe.Session) probe.IP {
	if !m.v4 {
		return probe.IP{}
	}
	return probe.IP{Flags: probe.IPFlagDF, ID: s.NextIPID()}
}

// linuxSYN is a SYN with what a current Linux offers.
func (m *measurer) linuxSYN(isn probe.Seq, mss uint16) probe.TCP {
	return probe.TCP{Seq: isn, Flags: probe.SYN, Window: linuxSYNWindow, Options: []probe.Option{
		probe.MSSOption(mss), probe.SACKPermittedOption(), probe.TimestampsOption(m.tsNow(), 0),
		probe.NOPOption(), probe.WScaleOption(linuxWScale),
	}}
}

func (m *measurer) open(port uint16) (*probe.Session, error) {
	return m.p.Open(probe.SessionConfig{Remote: m.cfg.Target, LocalPort: port})
}

// synAnswer is a SYN and what it drew.
type synAnswer struct {
	port  uint16
	sent  *probe.Sent
	reply *probe.Reply // the SYN-ACK; nil with why set
	why   string
}

// synack returns the SYN-ACK's TCP header, nil without one.
func (a *synAnswer) synack() *probe.TCP {
	if a == nil || a.reply == nil {
		return nil
	}
	return &a.reply.Frame.TCP
}

// syn paces, sends the SYN t on s and waits for the target's answer. A
// SYN-ACK is returned in the answer; anything else (RST, ICMP, silence)
// leaves reply nil and says why.
func (m *measurer) syn(ctx context.Context, s *probe.Session, t probe.TCP) synAnswer {
	if err := m.pace(ctx); err != nil {
		return synAnswer{port: s.Local().Port(), why: err.Error()}
	}
	return m.sendSYN(ctx, s, t)
}

// pace waits for the pacer's leave to send a SYN.
func (m *measurer) pace(ctx context.Context) error {
	if m.cfg.Pace == nil {
		return nil
	}
	if err := m.cfg.Pace(ctx); err != nil {
		return fmt.Errorf("not sent: %w", err)
	}
	return nil
}

// sendSYN is syn for a caller that has already paced.
func (m *measurer) sendSYN(ctx context.Context, s *probe.Session, t probe.TCP) synAnswer {
	a := synAnswer{port: s.Local().Port()}
	f := probe.Frame{IP: m.ip(s), TCP: t}
	sent, err := s.Send(&f)
	if err != nil {
		a.why = "the SYN could not be sent: " + err.Error()
		return a
	}
	m.syns.Add(1)
	a.sent = sent
	deadline := time.Now().Add(m.cfg.Timeout)
	for {
		r, err := recv(ctx, s, deadline)
		if err != nil {
			a.why = err.Error()
			return a
		}
		fr := &r.Frame
		switch {
		case fr.Has(probe.LayerICMP):
			a.why = fmt.Sprintf("the path answered with ICMP type %d code %d from %v", fr.ICMP.Type, fr.ICMP.Code, fr.IP.Src)
			return a
		case !fr.Has(probe.LayerTCP):
			continue
		case fr.TCP.Flags&probe.RST != 0:
			a.why = "the target answered the SYN with " + fr.TCP.Flags.String() + " (port closed?)"
			return a
		case fr.TCP.Flags.Has(probe.SYN|probe.ACK) && fr.TCP.Ack == t.Seq.Add(1):
			a.reply = r
			return a
		}
	}
}

// errSilence says that nothing came before the deadline.
var errSilence = errors.New("no reply")

// recv returns the next frame for s before deadline: errSilence when none
// came (naming the wait), the context's error when it ended first.
func recv(ctx context.Context, s *probe.Session, deadline time.Time) (*probe.Reply, error) {
	wait := time.Until(deadline)
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	r, err := s.Recv(dctx)
	switch {
	case err == nil:
		return r, nil
	case ctx.Err() != nil:
		return nil, fmt.Errorf("stopped: %w", ctx.Err())
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("%w within %v", errSilence, wait.Round(time.Millisecond))
	}
	return nil, err
}

// reset sends a RST with seq, so that the target keeps no state of a
// probe connection. It is sent after every SYN, answered or not: a
// SYN-ACK that comes too late must not leave a half-open connection, and
// a target that has none drops the RST.
func (m *measurer) reset(s *probe.Session, seq probe.Seq) {
	f := probe.Frame{IP: m.ip(s), TCP: probe.TCP{Seq: seq, Flags: probe.RST}}
	_, _ = s.Send(&f) // best effort: the session is ending anyway
}

// checkLocalHost records frames the local kernel sent on s behind
// synprobe's back (no RST guard): they change the target's state, and
// what follows is then not the target's doing. It returns the problem, or
// "".
func (m *measurer) checkLocalHost(s *probe.Session) string {
	frames := s.LocalHostFrames()
	if len(frames) == 0 {
		return ""
	}
	var flags []string
	for _, f := range frames {
		flags = append(flags, f.Frame.TCP.Flags.String())
	}
	why := fmt.Sprintf("disturbed by the local host: its kernel sent %s on synprobe's port %d (no RST guard?)", strings.Join(flags, ", "), s.Local().Port())
	m.mu.Lock()
	m.disturbed = append(m.disturbed, why)
	m.mu.Unlock()
	return why
}

// sleepUntil waits until t or the end of ctx.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stopped: %w", ctx.Err())
	}
}

// retransResult is the Linux-like SYN's answer and its retransmissions.
type retransResult struct {
	first   synAnswer
	retrans []*probe.Reply
	watched time.Duration
	why     string
	// disturbed is set when the local host reset the connection.
	disturbed bool
}

// retransmission sends a SYN with Linux's options, never acknowledges the
// SYN-ACK, and records every copy of it until two retransmissions came or
// retransWatch has passed.
func (m *measurer) retransmission(ctx context.Context) retransResult {
	var res retransResult
	s, err := m.open(0)
	if err != nil {
		res.first.why, res.why = err.Error(), err.Error()
		return res
	}
	defer s.Close()
	isn := probe.Seq(rand.Uint32())
	res.first = m.syn(ctx, s, m.linuxSYN(isn, m.mss))
	if res.first.sent != nil {
		defer m.reset(s, isn.Add(1))
	}
	if res.first.reply == nil {
		res.why = "no SYN-ACK: " + res.first.why
		return res
	}
	peer := res.first.reply.Frame.TCP.Seq
	begin := time.Now()
	deadline := begin.Add(retransWatch)
	for len(res.retrans) < retransEnough {
		r, err := recv(ctx, s, deadline)
		if err != nil {
			if !errors.Is(err, errSilence) {
				res.why = err.Error()
			}
			break
		}
		t := &r.Frame.TCP
		if r.Frame.Has(probe.LayerTCP) && t.Flags.Has(probe.SYN|probe.ACK) && t.Seq == peer && t.Ack == isn.Add(1) {
			res.retrans = append(res.retrans, r)
		}
	}
	res.watched = time.Since(begin)
	if why := m.checkLocalHost(s); why != "" {
		res.why, res.disturbed = why, true
	}
	return res
}

// oneTupleResult is the series of SYNs on one 4-tuple.
type oneTupleResult struct {
	port    uint16
	answers []synAnswer
	mss     []uint16
	why     string
}

// oneTuple sends SYNs from one source port with one client ISN,
// oneTupleSpacing apart, resetting the target's half-open connection after
// each SYN-ACK. The third SYN offers cookieMSS instead of the path's MSS.
func (m *measurer) oneTuple(ctx context.Context) oneTupleResult {
	var res oneTupleResult
	s, err := m.open(0)
	if err != nil {
		res.why = err.Error()
		return res
	}
	defer s.Close()
	res.port = s.Local().Port()
	isn := probe.Seq(rand.Uint32())
	begin := time.Now()
	for i, mss := range []uint16{m.mss, m.mss, cookieMSS, m.mss} {
		if err := sleepUntil(ctx, begin.Add(time.Duration(i)*oneTupleSpacing)); err != nil {
			res.why = err.Error()
			break
		}
		a := m.syn(ctx, s, m.linuxSYN(isn, mss))
		if a.sent != nil {
			m.reset(s, isn.Add(1))
		}
		res.answers = append(res.answers, a)
		res.mss = append(res.mss, mss)
		if a.reply == nil && i == 0 {
			res.why = "no SYN-ACK: " + a.why
			break
		}
	}
	return res
}

// nmapProbe is one of nmap's six SEQ probes: its window and options,
// byte for byte as nmap sends them (osscan2.cc).
type nmapProbe struct {
	window  uint16
	options []probe.Option
}

// nmapTSval is the TSval nmap's probes carry.
const nmapTSval = 0xFFFFFFFF

var nmapProbes = [6]nmapProbe{
	{1, []probe.Option{probe.WScaleOption(10), probe.NOPOption(), probe.MSSOption(1460), probe.TimestampsOption(nmapTSval, 0), probe.SACKPermittedOption()}},
	{63, []probe.Option{probe.MSSOption(1400), probe.WScaleOption(0), probe.SACKPermittedOption(), probe.TimestampsOption(nmapTSval, 0), probe.EOLOption()}},
	{4, []probe.Option{probe.TimestampsOption(nmapTSval, 0), probe.NOPOption(), probe.NOPOption(), probe.WScaleOption(5), probe.NOPOption(), probe.MSSOption(640)}},
	{4, []probe.Option{probe.SACKPermittedOption(), probe.TimestampsOption(nmapTSval, 0), probe.WScaleOption(10), probe.EOLOption()}},
	{16, []probe.Option{probe.MSSOption(536), probe.SACKPermittedOption(), probe.TimestampsOption(nmapTSval, 0), probe.WScaleOption(10), probe.EOLOption()}},
	{512, []probe.Option{probe.MSSOption(265), probe.SACKPermittedOption(), probe.TimestampsOption(nmapTSval, 0)}},
}

// adjacentSessions opens n sessions on adjacent source ports where it can
// (a first port from the allocator, then the ones above it), and on any
// free ports where it cannot. adjacent says which it got.
func (m *measurer) adjacentSessions(n int) (ss []*probe.Session, adjacent bool, err error) {
	for try := 0; try < 4; try++ {
		first, err := m.open(0)
		if err != nil {
			return nil, false, err
		}
		ss = []*probe.Session{first}
		base := int(first.Local().Port())
		for i := 1; i < n && base+n-1 <= 65535; i++ {
			s, err := m.open(uint16(base + i))
			if err != nil {
				break
			}
			ss = append(ss, s)
		}
		if len(ss) == n {
			return ss, true, nil
		}
		for _, s := range ss {
			s.Close()
		}
	}
	ss = nil
	for i := 0; i < n; i++ {
		s, err := m.open(0)
		if err != nil {
			for _, s := range ss {
				s.Close()
			}
			return nil, false, err
		}
		ss = append(ss, s)
	}
	return ss, false, nil
}

// nmapResult is the answers to nmap's six probes, in order.
type nmapResult struct {
	answers  [6]synAnswer
	adjacent bool
	why      string
}

// nmapSeq sends nmap's six SEQ probes from adjacent ports, nmapSpacing
// apart (or further, as the pacer allows), each answer awaited on its own.
func (m *measurer) nmapSeq(ctx context.Context) nmapResult {
	var res nmapResult
	ss, adjacent, err := m.adjacentSessions(len(nmapProbes))
	if err != nil {
		res.why = err.Error()
		for i := range res.answers {
			res.answers[i].why = err.Error()
		}
		return res
	}
	res.adjacent = adjacent
	var wg sync.WaitGroup
	prev := time.Time{}
	for i, np := range nmapProbes {
		s := ss[i]
		if err := sleepUntil(ctx, prev.Add(nmapSpacing)); err != nil {
			res.answers[i] = synAnswer{port: s.Local().Port(), why: err.Error()}
			s.Close()
			continue
		}
		// Pace here, in probe order, so that the probes leave in order.
		if err := m.pace(ctx); err != nil {
			res.answers[i] = synAnswer{port: s.Local().Port(), why: err.Error()}
			s.Close()
			continue
		}
		prev = time.Now()
		isn := probe.Seq(rand.Uint32())
		t := probe.TCP{Seq: isn, Flags: probe.SYN, Window: np.window, Options: np.options}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.Close()
			res.answers[i] = m.sendSYN(ctx, s, t)
			if res.answers[i].sent != nil {
				m.reset(s, isn.Add(1))
			}
		}()
	}
	wg.Wait()
	return res
}

// single sends one SYN built by build on a fresh session and resets the
// half-open connection it makes.
func (m *measurer) single(ctx context.Context, build func(isn probe.Seq) probe.TCP) synAnswer {
	s, err := m.open(0)
	if err != nil {
		return synAnswer{why: err.Error()}
	}
	defer s.Close()
	isn := probe.Seq(rand.Uint32())
	a := m.syn(ctx, s, build(isn))
	if a.sent != nil {
		m.reset(s, isn.Add(1))
	}
	return a
}

// rstResult is the RSTs drawn by bare ACKs.
type rstResult struct {
	port    uint16 // the target port
	replies []*probe.Reply
	why     string
}

// rsts sends bare ACKs (no connection exists) to the closed port, or the
// open one when none is known, and collects the RSTs. No SYN is sent.
func (m *measurer) rsts(ctx context.Context) rstResult {
	target := m.cfg.Target
	if m.cfg.ClosedPort != 0 {
		target = netip.AddrPortFrom(target.Addr(), m.cfg.ClosedPort)
	}
	res := rstResult{port: target.Port()}
	s, err := m.p.Open(probe.SessionConfig{Remote: target})
	if err != nil {
		res.why = err.Error()
		return res
	}
	defer s.Close()
	for range rstProbes {
		ack := probe.Seq(rand.Uint32())
		f := probe.Frame{IP: m.ip(s), TCP: probe.TCP{Seq: probe.Seq(rand.Uint32()), Ack: ack, Flags: probe.ACK, Window: ackWindow}}
		if _, err := s.Send(&f); err != nil {
			res.why = "an ACK could not be sent: " + err.Error()
			return res
		}
		deadline := time.Now().Add(m.cfg.Timeout)
		for {
			r, err := recv(ctx, s, deadline)
			if err != nil {
				res.why = fmt.Sprintf("no RST to a bare ACK to port %d: %v", target.Port(), err)
				return res
			}
			if r.Frame.Has(probe.LayerTCP) && r.Frame.TCP.Flags&probe.RST != 0 && r.Frame.TCP.Seq == ack {
				res.replies = append(res.replies, r)
				break
			}
		}
	}
	return res
}

// challengeResult is the challenge-ACK measurement.
type challengeResult struct {
	c       ChallengeACK
	replies []*probe.Reply // every segment of the established connection
	synack  *probe.Reply
}

// challenge opens a connection (no timestamps, so that no PAWS check
// stands between the RSTs and the RFC 5961 rules), sends challengeRSTs RSTs
// with seq one past the exact one, challengeInterval apart, counts the
// challenge ACKs, checks that the connection is still there, and resets
// it.
func (m *measurer) challenge(ctx context.Context) challengeResult {
	var res challengeResult
	res.c.IntervalMS = millis(challengeInterval)
	s, err := m.open(0)
	if err != nil {
		res.c.Why = err.Error()
		return res
	}
	defer s.Close()
	isn := probe.Seq(rand.Uint32())
	syn := probe.TCP{Seq: isn, Flags: probe.SYN, Window: linuxSYNWindow, Options: []probe.Option{
		probe.MSSOption(m.mss), probe.SACKPermittedOption(), probe.NOPOption(), probe.WScaleOption(linuxWScale),
	}}
	a := m.syn(ctx, s, syn)
	if a.reply == nil {
		if a.sent != nil {
			m.reset(s, isn.Add(1))
		}
		res.c.Why = "no SYN-ACK: " + a.why
		return res
	}
	res.synack = a.reply
	sndNxt, rcvNxt := isn.Add(1), a.reply.Frame.TCP.Seq.Add(1)
	send := func(t probe.TCP) error {
		t.Window = ackWindow
		f := probe.Frame{IP: m.ip(s), TCP: t}
		_, err := s.Send(&f)
		return err
	}
	if err := send(probe.TCP{Seq: sndNxt, Ack: rcvNxt, Flags: probe.ACK}); err != nil {
		res.c.Why = "the ACK completing the handshake could not be sent: " + err.Error()
		m.reset(s, sndNxt)
		return res
	}
	defer m.reset(s, sndNxt)

	// Whatever came before the RST train (a window update) is no
	// challenge ACK; replies are then collected as they come.
	for s.Pending() > 0 {
		if r, err := s.Recv(ctx); err == nil && r.Frame.Has(probe.LayerTCP) {
			res.replies = append(res.replies, r)
		}
	}
	var first time.Time
	var challengeAt []time.Time
	collect := func(until time.Time) error {
		for {
			r, err := recv(ctx, s, until)
			if err != nil {
				if errors.Is(err, errSilence) {
					return nil
				}
				return err
			}
			if !r.Frame.Has(probe.LayerTCP) {
				continue
			}
			res.replies = append(res.replies, r)
			t := &r.Frame.TCP
			if t.Flags&(probe.SYN|probe.RST|probe.FIN) == 0 && t.Flags&probe.ACK != 0 && t.Ack == sndNxt && len(t.Payload) == 0 {
				challengeAt = append(challengeAt, r.Time)
			}
		}
	}
	begin := time.Now()
	for i := 0; i < challengeRSTs; i++ {
		if err := sleepUntil(ctx, begin.Add(time.Duration(i)*challengeInterval)); err != nil {
			res.c.Why = err.Error()
			return res
		}
		f := probe.Frame{IP: m.ip(s), TCP: probe.TCP{Seq: sndNxt.Add(1), Flags: probe.RST}}
		sent, err := s.Send(&f)
		if err != nil {
			res.c.Why = "a RST could not be sent: " + err.Error()
			return res
		}
		if i == 0 {
			first = sent.Time
		}
		res.c.RSTs++
		res.c.SpanMS = millis(sent.Time.Sub(first))
		next := begin.Add(time.Duration(i+1) * challengeInterval)
		if i == challengeRSTs-1 {
			next = time.Now().Add(min(m.cfg.Timeout, 300*time.Millisecond))
		}
		if err := collect(next); err != nil {
			res.c.Why = err.Error()
			return res
		}
	}
	for _, at := range challengeAt {
		res.c.AtMS = append(res.c.AtMS, millis(at.Sub(first)))
	}
	res.c.ACKs = len(challengeAt)
	for i := 1; i < len(challengeAt); i++ {
		gap := millis(challengeAt[i].Sub(challengeAt[i-1]))
		if i == 1 || gap < res.c.MinGapMS {
			res.c.MinGapMS = gap
		}
	}

	// Is the connection still there? One byte below SND.NXT (the SYN's
	// sequence number, already received) is old data: a live connection
	// acknowledges it at once and hands nothing to the application, and
	// no stack rate-limits that ACK; a connection that is gone answers
	// with a RST.
	if err := send(probe.TCP{Seq: sndNxt.Add(^uint32(0)), Ack: rcvNxt, Flags: probe.ACK, Payload: []byte{0}}); err == nil {
		deadline := time.Now().Add(m.cfg.Timeout)
		for {
			r, err := recv(ctx, s, deadline)
			if err != nil {
				break
			}
			if !r.Frame.Has(probe.LayerTCP) {
				continue
			}
			res.replies = append(res.replies, r)
			if r.Frame.TCP.Flags&probe.RST != 0 {
				res.c.AliveAfter = ptr(false)
				break
			}
			if r.Frame.TCP.Flags&probe.ACK != 0 {
				res.c.AliveAfter = ptr(true)
				break
			}
		}
	}
	if why := m.checkLocalHost(s); why != "" {
		res.c = ChallengeACK{IntervalMS: res.c.IntervalMS, Why: why}
		return res
	}
	res.c.Summary = challengeSummary(&res.c)
	return res
}

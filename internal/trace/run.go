package trace

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"sync"
	"time"

	"synprobe/probe"
)

// Defaults of Config.
const (
	DefaultMaxHops = 30
	DefaultTries   = 2
	DefaultWait    = time.Second
	// DefaultRate is conformance.DefaultRate (SYNs per second to one
	// target), repeated here: the conformance runner imports this package.
	DefaultRate = 20
)

// ipIDTag is the high byte of the IPv4 ID of every trace probe; the low
// byte is the TTL, so that a quote names the TTL it was sent with.
const ipIDTag = 0x5300

// controlTTL is the TTL of the control probe, which must reach the target.
const controlTTL = 64

// The probe's SYN as Linux sends it (TRACE.md P1).
const (
	synWindow = 64240
	synMSS    = 1460 // IPv4 over Ethernet
	synMSS6   = 1440 // IPv6 over Ethernet
	synWScale = 7
)

// mssFor is the MSS a Linux host offers over Ethernet.
func mssFor(v6 bool) uint16 {
	if v6 {
		return synMSS6
	}
	return synMSS
}

func (c *Config) defaults() error {
	if !c.Target.IsValid() {
		return errors.New("trace: no target")
	}
	if c.FirstHop <= 0 {
		c.FirstHop = 1
	}
	if c.MaxHops <= 0 {
		c.MaxHops = DefaultMaxHops
	}
	if c.MaxHops > 255 || c.FirstHop > c.MaxHops {
		return fmt.Errorf("trace: hops %d to %d: want 1 <= first <= max <= 255", c.FirstHop, c.MaxHops)
	}
	if c.Tries <= 0 {
		c.Tries = DefaultTries
	}
	if c.Wait <= 0 {
		c.Wait = DefaultWait
	}
	if c.Rate <= 0 {
		c.Rate = DefaultRate
	}
	if c.AltPort == 0 {
		c.AltPort = c.Target.Port() + 2
		if c.ClosedPort != 0 {
			c.AltPort = c.ClosedPort + 1
		}
	}
	if c.Families == nil {
		c.Families = Families
	}
	for _, f := range c.Families {
		if !knownFamily(f) {
			return fmt.Errorf("trace: probe family %q: want one of %v", f, Families)
		}
	}
	return nil
}

func knownFamily(f Family) bool {
	for _, g := range Families {
		if f == g {
			return true
		}
	}
	return false
}

// has reports whether the trace sends family f.
func (c *Config) has(f Family) bool {
	for _, g := range c.Families {
		if g == f {
			return true
		}
	}
	return false
}

// pacer spaces the probes that can reach the target (Config.Rate): those
// that expire at a router elicit only its ICMP, and are not paced.
type pacer struct {
	every time.Duration
	next  time.Time
}

func (p *pacer) wait(ctx context.Context) error {
	now := time.Now()
	if d := p.next.Sub(now); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		now = p.next
	}
	p.next = now.Add(p.every)
	return nil
}

// hopState is what came back for one TTL of a walk.
type hopState struct {
	reply   *probe.Reply
	kind    string // time-exceeded, unreachable, icmp T/C
	quote   *probe.QuotedPacket
	qerr    error
	rtt     time.Duration
	byOrder bool // matched by arrival order (IP ID and TSval rewritten)
	answers int
}

// walk is one probe family's walk over the TTLs: one 5-tuple, one ISN.
type walk struct {
	v6   bool
	port uint16 // the target port
	fam  Family
	name string // family, or conn/a ... conn/d
	sess *probe.Session
	// frame is the probe as sent at controlTTL; per TTL only the TTL and
	// the IP ID (IPv6: the TSval) change.
	frame    probe.Frame
	ov       []probe.Override
	sumValid bool
	tsBase   uint32
	hasTS    bool
	// expectTCP: the target answers this probe (not badsum, not the
	// out-of-state walks, whose answers are the target's choice).
	expectTCP bool
	// matchQuote tells this walk's quotes from those of other walks on
	// the same session (conn); nil takes every quote.
	matchQuote func(q *probe.QuotedPacket) bool

	sent    map[int]*probe.Sent
	sentAt  map[int]time.Time
	hops    map[int]*hopState
	tcp     []*probe.Reply
	control *probe.Sent
	// reach is the first TTL that can reach the target (from the
	// control's reply TTL); 0 when unknown.
	reach int
	// controlReplies is how many TCP answers came before the walk: the
	// walk waits for answers of its own.
	controlReplies int
	// handshakeTSval is the TSval of the handshake's ACK on a conn walk's
	// connection (0: none): that ACK has the walk's seq and no data, and
	// a reflector must not take it for the walk's probe.
	handshakeTSval uint32
}

func (w *walk) frameFor(ttl int) probe.Frame {
	f := w.frame
	f.TCP.Options = append([]probe.Option(nil), w.frame.TCP.Options...)
	f.IP.TTL = uint8(ttl)
	if w.v6 {
		if w.hasTS {
			for i, o := range f.TCP.Options {
				if o.Kind == probe.OptionTimestamps {
					_, ecr, _ := o.Timestamps()
					f.TCP.Options[i] = probe.TimestampsOption(w.tsBase+uint32(ttl), ecr)
				}
			}
		}
	} else {
		f.IP.ID = ipIDTag | uint16(ttl)
	}
	return f
}

// tracer runs the walks of one trace.
type tracer struct {
	p     *probe.Prober
	cfg   Config
	v6    bool
	pace  pacer
	mu    sync.Mutex
	walks []*walk
	// active takes the TCP segments of a session that several walks share.
	active map[*probe.Session]*walk
	notify chan struct{}
}

func (t *tracer) signal() {
	select {
	case t.notify <- struct{}{}:
	default:
	}
}

// Run traces the path to cfg.Target with the families cfg names: a
// control SYN at TTL 64 first (the answered control, and the hop distance
// from its reply's TTL), then every TTL of every family at once, paced
// only where a probe can reach the target (cfg.Rate), waiting no longer
// than it takes every TTL to be answered or cfg.Wait, cfg.Tries rounds.
// The conn family runs after the others: it needs a connection.
func Run(ctx context.Context, p *probe.Prober, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if cfg.Target.Addr().Is4() != p.Path().Source.Is4() {
		return nil, fmt.Errorf("trace %v: the path's source %v is of another address family", cfg.Target, p.Path().Source)
	}
	t := &tracer{p: p, cfg: cfg, v6: cfg.Target.Addr().Is6(), notify: make(chan struct{}, 1), active: map[*probe.Session]*walk{}}
	t.pace.every = time.Duration(float64(time.Second) / cfg.Rate)
	started := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopWatch := p.WatchICMP(t.stray)
	defer stopWatch()

	var synWalks []*walk
	for _, f := range cfg.Families {
		if f == FamilyConn {
			continue
		}
		w, err := t.open(ctx, f)
		if err != nil {
			t.closeAll()
			return nil, err
		}
		synWalks = append(synWalks, w)
	}
	var extra []*walk
	if cfg.ClosedPort != 0 && cfg.has(FamilySYN) {
		w, err := t.open(ctx, familyClosed)
		if err != nil {
			t.closeAll()
			return nil, err
		}
		extra = append(extra, w)
	}
	if err := t.walkSYNs(ctx, synWalks, extra); err != nil {
		t.closeAll()
		return nil, err
	}
	var conn *connWalks
	if cfg.has(FamilyConn) {
		var err error
		conn, err = t.walkConn(ctx, t.reachOf(synWalks))
		if err != nil && ctx.Err() != nil {
			t.closeAll()
			return nil, err
		}
		if err != nil && conn == nil {
			conn = &connWalks{err: err}
		} else if err != nil {
			conn.err = err
		}
	}
	t.cleanup(ctx)
	t.closeAll()
	r := t.result(conn)
	r.Duration = time.Since(started)
	if cfg.Reflector != nil {
		t.reflect(ctx, r, started, conn)
	}
	r.finish()
	return r, ctx.Err()
}

// open starts a family's session and builds its probe.
func (t *tracer) open(ctx context.Context, f Family) (*walk, error) {
	remote := t.cfg.Target
	switch f {
	case FamilyAlt:
		remote = netip.AddrPortFrom(remote.Addr(), t.cfg.AltPort)
	case familyClosed:
		remote = netip.AddrPortFrom(remote.Addr(), t.cfg.ClosedPort)
	}
	s, err := t.p.Open(probe.SessionConfig{Remote: remote})
	if err != nil {
		return nil, fmt.Errorf("trace: open %s probe: %w", f, err)
	}
	w := newWalk(f, string(f), s, t.v6)
	w.frame = synFrame(f, t.v6)
	w.tsBase = tsBase()
	w.hasTS = true
	w.frame.TCP.Options[2] = probe.TimestampsOption(w.tsBase, 0)
	w.sumValid = f != FamilyBadSum
	w.expectTCP = f != FamilyBadSum
	if f == FamilyBadSum {
		w.ov = []probe.Override{{Field: probe.FieldTCPChecksumAdd, Value: 0x5350}}
	}
	t.mu.Lock()
	t.walks = append(t.walks, w)
	t.mu.Unlock()
	go t.read(ctx, s)
	return w, nil
}

func newWalk(f Family, name string, s *probe.Session, v6 bool) *walk {
	var port uint16
	if s != nil {
		port = s.Remote().Port()
	}
	return &walk{v6: v6, fam: f, name: name, sess: s, port: port, sent: map[int]*probe.Sent{}, sentAt: map[int]time.Time{}, hops: map[int]*hopState{}}
}

// tsBase is a TSval with room for a TTL in its low byte (IPv6 carries the
// hop limit there).
func tsBase() uint32 { return rand.Uint32()&^0xff | 0x100 }

// flowLabel is a family's IPv6 flow label: fixed for its walk, so that
// ECMP hashes every TTL onto one path.
func flowLabel() uint32 { return rand.Uint32()&0xfffff | 1 }

// synFrame is a family's SYN (TRACE.md "Probes sent per hop"), without
// addresses and TTL.
func synFrame(f Family, v6 bool) probe.Frame {
	fr := probe.Frame{
		IP: probe.IP{Flags: probe.IPFlagDF},
		TCP: probe.TCP{
			Seq: probe.Seq(rand.Uint32()), Flags: probe.SYN, Window: synWindow,
			Options: []probe.Option{probe.MSSOption(mssFor(v6)), probe.SACKPermittedOption(), probe.TimestampsOption(1, 0), probe.NOPOption(), probe.WScaleOption(synWScale)},
		},
	}
	if v6 {
		fr.IP.Flags = 0
		fr.IP.FlowLabel = flowLabel()
	}
	switch f {
	case FamilyECN:
		fr.TCP.Flags |= probe.ECE | probe.CWR
		fr.IP.TOS = 0x28 // DSCP AF11, not-ECT
	case FamilyExotic:
		fr.TCP.Options = append(fr.TCP.Options, probe.FastOpenOption(nil), probe.Option{Kind: probe.OptionExperimental1, Data: []byte{0x53, 0x50}})
	case FamilySYNData:
		fr.TCP.Payload = []byte("synprobe trace\r\n")
	}
	return fr
}

// read hands a session's replies to the walks.
func (t *tracer) read(ctx context.Context, s *probe.Session) {
	for {
		r, err := s.Recv(ctx)
		if err != nil {
			return
		}
		t.handle(s, r)
	}
}

// stray takes the ICMP errors no session matched (a box rewrote the source
// port): the quoted sequence number names the walk.
func (t *tracer) stray(r *probe.Reply) {
	q, err := r.Frame.ICMP.QuotedPacket()
	if err != nil || !q.Covers(probe.QuotedTCPSeq) || q.IP.Dst != t.cfg.Target.Addr() {
		return
	}
	t.mu.Lock()
	var s *probe.Session
	for _, w := range t.walks {
		if w.frame.TCP.Seq == q.TCP.Seq && w.sess.Remote().Port() == q.TCP.DstPort {
			s = w.sess
			break
		}
	}
	t.mu.Unlock()
	if s != nil {
		t.handle(s, r)
	}
}

func (t *tracer) handle(s *probe.Session, r *probe.Reply) {
	if r.FromLocalHost || r.DecodeErr != nil && !r.Frame.Has(probe.LayerICMP) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.signal()
	if r.Frame.Has(probe.LayerICMP) {
		q, qerr := r.Frame.ICMP.QuotedPacket()
		for _, w := range t.walks {
			if w.sess != s || w.matchQuote != nil && (qerr != nil || !w.matchQuote(&q)) {
				continue
			}
			w.addICMP(r, q, qerr, t.v6)
			return
		}
		return
	}
	if !r.Frame.Has(probe.LayerTCP) {
		return
	}
	// TCP from the target: to the walk that takes the session's segments
	// (conn: the in-window walk), else the session's only walk.
	if w := t.active[s]; w != nil {
		w.tcp = append(w.tcp, r)
		return
	}
	for _, w := range t.walks {
		if w.sess == s {
			w.tcp = append(w.tcp, r)
			return
		}
	}
}

// addICMP records an ICMP error for the TTL its quote names: the IPv4 ID,
// else the TSval (IPv6), else the lowest TTL sent that has no answer
// (arrival order).
func (w *walk) addICMP(r *probe.Reply, q probe.QuotedPacket, qerr error, v6 bool) {
	ttl := 0
	if qerr == nil {
		if !v6 && q.IP.ID&0xff00 == ipIDTag {
			ttl = int(q.IP.ID & 0xff)
		}
		if v6 && w.hasTS {
			if v, _, ok := q.TCP.Timestamps(); ok && v-w.tsBase < 256 {
				ttl = int(v - w.tsBase)
			}
		}
		if _, ok := w.sentAt[ttl]; !ok {
			ttl = 0
		}
	}
	byOrder := false
	if ttl == 0 {
		byOrder = true
		ttls := make([]int, 0, len(w.sentAt))
		for k := range w.sentAt {
			ttls = append(ttls, k)
		}
		sort.Ints(ttls)
		for _, k := range ttls {
			if w.hops[k] == nil && k != controlTTL {
				ttl = k
				break
			}
		}
		if ttl == 0 {
			return
		}
	}
	if h := w.hops[ttl]; h != nil {
		h.answers++
		return
	}
	h := &hopState{reply: r, byOrder: byOrder, answers: 1, kind: icmpKind(&r.Frame)}
	if qerr == nil {
		h.quote = &q
	} else {
		h.qerr = qerr
	}
	if at, ok := w.sentAt[ttl]; ok {
		h.rtt = max(0, r.Time.Sub(at))
	}
	w.hops[ttl] = h
}

func icmpKind(f *probe.Frame) string {
	c := &f.ICMP
	if f.IP.Version == 6 || f.IP.Src.Is6() {
		switch c.Type {
		case probe.ICMPv6TimeExceeded:
			return "time-exceeded"
		case probe.ICMPv6DestUnreachable:
			return "unreachable"
		}
	} else {
		switch c.Type {
		case probe.ICMPv4TimeExceeded:
			return "time-exceeded"
		case probe.ICMPv4DestUnreachable:
			return "unreachable"
		}
	}
	return fmt.Sprintf("icmp %d/%d", c.Type, c.Code)
}

// send sends the walk's probe with ttl; probes that can reach the target
// wait for the pacer.
func (t *tracer) send(ctx context.Context, w *walk, ttl int, paced bool) error {
	if paced {
		wait := t.pace.wait
		if t.cfg.Pace != nil {
			wait = t.cfg.Pace
		}
		if err := wait(ctx); err != nil {
			return fmt.Errorf("trace: pace %s probe: %w", w.name, err)
		}
	}
	f := w.frameFor(ttl)
	t.mu.Lock()
	w.sentAt[ttl] = time.Now()
	t.mu.Unlock()
	sent, err := w.sess.Send(&f, w.ov...)
	if err != nil {
		return fmt.Errorf("trace: send %s probe with TTL %d: %w", w.name, ttl, err)
	}
	t.mu.Lock()
	if ttl == controlTTL {
		w.control = sent
	} else {
		w.sent[ttl] = sent
		w.sentAt[ttl] = sent.Time
	}
	t.mu.Unlock()
	return nil
}

// distance is how many hops away the sender of a reply is, from the IP TTL
// it arrived with and the usual initial TTLs (64, 128, 255).
func distance(ttl uint8) int {
	for _, init := range []int{64, 128, 255} {
		if int(ttl) <= init {
			return init - int(ttl) + 1
		}
	}
	return 1
}

// familyClosed is the control SYN to Config.ClosedPort, sent with the
// others at TTL 64 and not walked: a SYN-ACK from a closed port says a box
// answers for every port.
const familyClosed Family = "closed"

// walkSYNs sends the controls (and extra, controls that are not walked),
// then every TTL of every walk, in rounds.
func (t *tracer) walkSYNs(ctx context.Context, walks, extra []*walk) error {
	if len(walks) == 0 {
		return nil
	}
	// Controls: the syn family's (and the alt port's) SYN at TTL 64.
	var controls []*walk
	for _, w := range walks {
		if w.fam == FamilySYN || w.fam == FamilyAlt {
			controls = append(controls, w)
		}
	}
	if len(controls) == 0 {
		controls = walks[:1]
	}
	for _, w := range append(controls[:len(controls):len(controls)], extra...) {
		if err := t.send(ctx, w, controlTTL, true); err != nil {
			return err
		}
	}
	t.waitFor(ctx, t.cfg.Wait, func() bool {
		for _, w := range append(controls[:len(controls):len(controls)], extra...) {
			if len(w.tcp) == 0 {
				return false
			}
		}
		return true
	})
	t.mu.Lock()
	reach, top := 0, 0
	for _, w := range controls {
		if len(w.tcp) > 0 {
			w.reach = distance(w.tcp[0].Frame.IP.TTL)
			top = max(top, w.reach)
		}
	}
	for _, w := range controls {
		if w.fam == FamilySYN && w.reach > 0 {
			reach = w.reach
		}
	}
	if reach == 0 {
		reach = top
	}
	for _, w := range walks {
		if w.reach == 0 {
			w.reach = reach
		}
	}
	t.mu.Unlock()
	last := t.cfg.MaxHops
	if top > 0 {
		return t.rounds(ctx, walks, min(last, top+1))
	}
	// No control answered (a filtered target): walk the controls alone
	// first, every probe paced, to learn where answers stop, and the other
	// families only one hop beyond.
	if err := t.rounds(ctx, controls, last); err != nil {
		return err
	}
	t.mu.Lock()
	hi := 0
	for _, w := range controls {
		for ttl := range w.hops {
			hi = max(hi, ttl)
		}
	}
	t.mu.Unlock()
	return t.rounds(ctx, walks, min(last, hi+1))
}

// rounds sends TTLs FirstHop..last of walks, Tries times for the TTLs
// still silent, and waits for each round's answers.
func (t *tracer) rounds(ctx context.Context, walks []*walk, last int) error {
	t.mu.Lock()
	for _, w := range walks {
		w.controlReplies = len(w.tcp)
	}
	t.mu.Unlock()
	for try := 0; try < t.cfg.Tries; try++ {
		n := 0
		for ttl := t.cfg.FirstHop; ttl <= last; ttl++ {
			for _, w := range walks {
				t.mu.Lock()
				need := w.needs(ttl, t.cfg.FirstHop)
				paced := w.reach == 0 || ttl >= w.reach
				t.mu.Unlock()
				if !need {
					continue
				}
				if err := t.send(ctx, w, ttl, paced); err != nil {
					return err
				}
				n++
			}
		}
		if n == 0 {
			return nil
		}
		t.waitFor(ctx, t.cfg.Wait, func() bool {
			for _, w := range walks {
				if !w.complete(t.cfg.FirstHop, last) {
					return false
				}
			}
			return true
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// needs reports whether TTL ttl is still to be sent (or sent again).
func (w *walk) needs(ttl, first int) bool {
	if _, sent := w.sentAt[ttl]; !sent {
		return true
	}
	if w.hops[ttl] != nil {
		return false
	}
	if w.reach > 0 && ttl >= w.reach {
		return w.expectTCP && len(w.tcp) <= w.controlReplies
	}
	return true
}

// complete: every TTL before the target answered, and the target too
// (when it answers this probe). Without a known distance it never is: the
// round waits its whole time.
func (w *walk) complete(first, last int) bool {
	if w.reach == 0 {
		return false
	}
	for ttl := first; ttl <= last; ttl++ {
		if ttl < w.reach {
			if w.hops[ttl] == nil {
				return false
			}
			continue
		}
		if w.expectTCP && len(w.tcp) <= w.controlReplies && w.hops[ttl] == nil {
			return false
		}
	}
	return true
}

// waitFor waits until done (checked under t.mu) or d passes.
func (t *tracer) waitFor(ctx context.Context, d time.Duration, done func() bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		t.mu.Lock()
		ok := done()
		t.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-t.notify:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// cleanup resets the half-open connections the SYN walks left (the
// target answered SYN-ACK): a RST at the SYN-ACK's ack, the target's
// RCV.NXT. Linux (6.x) takes a RST in SYN-RECEIVED only there (RFC 5961
// 3.2): one at the SYN's seq+1+len for a SYN whose data was not taken
// (syndata without Fast Open) left the connection half-open for a minute.
func (t *tracer) cleanup(ctx context.Context) {
	type reset struct {
		w   *walk
		seq probe.Seq
	}
	t.mu.Lock()
	var rst []reset
	for _, w := range t.walks {
		if w.fam == FamilyConn {
			continue
		}
		for _, r := range w.tcp {
			if ft := &r.Frame.TCP; ft.Flags&(probe.SYN|probe.ACK) == probe.SYN|probe.ACK {
				rst = append(rst, reset{w, ft.Ack})
				break
			}
		}
	}
	t.mu.Unlock()
	for _, r := range rst {
		f := probe.Frame{IP: probe.IP{TTL: controlTTL, Flags: r.w.frame.IP.Flags, FlowLabel: r.w.frame.IP.FlowLabel},
			TCP: probe.TCP{Seq: r.seq, Flags: probe.RST, Window: 0}}
		if ctx.Err() == nil {
			r.w.sess.Send(&f)
		}
	}
}

func (t *tracer) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := map[*probe.Session]bool{}
	for _, w := range t.walks {
		if !seen[w.sess] {
			seen[w.sess] = true
			w.sess.Close()
		}
	}
}

// reachOf is the hop distance the SYN walks found (0: unknown).
func (t *tracer) reachOf(walks []*walk) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	best := 0
	for _, w := range walks {
		if w.fam == FamilyAlt {
			best = max(best, w.reach)
		}
	}
	for _, w := range walks {
		if w.fam == FamilySYN && w.reach > 0 {
			return max(w.reach, best)
		}
	}
	return best
}

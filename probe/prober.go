package probe

import (
	"bytes"
	"container/list"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// PortSource hands out local source ports (see PortAllocator). A port the
// prober is done with rests (quarantine) before it is released; a source
// that also has a method Rest(port uint16), as PortAllocator does, is told
// when the rest begins.
type PortSource interface {
	Allocate() (uint16, error)
	Reserve(port uint16) error
	Release(port uint16)
}

// PortGuard keeps the local kernel from answering on synprobe's ports (see
// Guard).
type PortGuard interface {
	Protect(port uint16, ttl time.Duration) error
}

// Recorder receives every frame the prober sees, in both directions (a pcap
// writer).
type Recorder interface {
	WritePacket(ts time.Time, data []byte) error
}

// ProberConfig assembles a Prober from its parts.
type ProberConfig struct {
	Link Link
	Path Path
	// Ports allocates source ports; nil allocates from a default range
	// with no knowledge of the host (fine for in-process stacks).
	Ports PortSource
	// Guard, if set, protects every session's port.
	Guard PortGuard
	// Recorder, if set, gets every frame.
	Recorder Recorder
}

// quarantine is how long a released port rests before reuse, so that a new
// session never meets segments or state of an old one at the target (a run
// that needs more ports than the range holds reuses the longest-resting
// ones sooner).
const quarantine = 60 * time.Second

// guardTTL bounds how long a port stays protected if synprobe dies without
// removing its guard; sessions refresh it.
const guardTTL = 10 * time.Minute

// echoWait is how long Send waits to see its frame leave, for a send time
// taken by the same clock as the replies.
const echoWait = 50 * time.Millisecond

// A frame whose echo has not been seen is remembered beyond echoWait, so
// that an echo that comes late (a loaded host reads its socket late) is
// still recognised as synprobe's own frame and never taken for one the
// local kernel sent behind synprobe's back. What is remembered is bounded:
// for unechoedFor at most, and unechoedBytes of frames at most, the oldest
// forgotten first. The bytes bound is the receive buffer's default: an echo
// further behind than a full buffer of frames would have been dropped by
// the kernel and counted.
const (
	unechoedFor   = 30 * time.Second
	unechoedBytes = defaultRecvBuffer
)

// Prober owns a link to one target host and the sessions that share it. It
// reads every frame from the link in one goroutine and hands each to the
// session it belongs to, by 4-tuple or by the connection an ICMP error
// quotes.
type Prober struct {
	link     Link
	path     Path
	ports    PortSource
	guard    PortGuard
	recorder Recorder

	mu       sync.Mutex
	sessions map[sessionKey]*Session
	// pending holds the frames sent whose echo has not been seen, by hash;
	// unechoed holds the same frames in the order they were written, for
	// forgetting the oldest, and unechoedSize their bytes.
	pending      map[uint64][]*pendingSend
	unechoed     list.List
	unechoedSize int
	resting      []restingPort
	// restingKeys are the 4-tuples of the sessions whose ports rest: what
	// the target still sends on them is answered as a closed port would
	// (answerClosed).
	restingKeys map[sessionKey]struct{}
	recordErr   error

	// notes are facts about the setup for reports (the guard in use).
	notes []string
	// closers are released after the link, on Close (the guard).
	closers []io.Closer

	handshakes handshakeCounts

	// watchers get the ICMP errors quoting TCP that match no session (see
	// WatchICMP).
	watchers  map[int]func(*Reply)
	nextWatch int

	seed      maphash.Seed
	undecoded atomic.Uint64
	// tcpHeard counts the TCP segments from the far end (TCPHeard).
	tcpHeard atomic.Uint64
	// closedAnswers counts the RSTs answerClosed sent.
	closedAnswers atomic.Uint64
	unmatched     atomic.Uint64
	lateEchoes    atomic.Uint64
	// superFrames counts super-frames split into segments; unsplit those
	// that could not be (handed on whole).
	superFrames atomic.Uint64
	unsplit     atomic.Uint64
	// keepSuperFrames is a test hook: it hands super-frames on whole, as
	// synprobe did before it split them.
	keepSuperFrames atomic.Bool
	done            chan struct{}
	closeOnce       sync.Once
	readerDone      chan struct{}
}

type sessionKey struct {
	remote netip.AddrPort
	local  uint16
}

type restingPort struct {
	key   sessionKey
	until time.Time
}

type pendingSend struct {
	data    []byte
	hash    uint64
	written time.Time
	seen    chan time.Time // buffered: the reader never blocks on it
	elem    *list.Element  // in Prober.unechoed
	// gaveUp is set when Send stopped waiting (after echoWait): the echo,
	// if it comes, is late.
	gaveUp bool
}

// NewProber starts a prober on cfg.Link. Close it to stop its reader and
// close the link.
func NewProber(cfg ProberConfig) *Prober {
	p := &Prober{
		link:       cfg.Link,
		path:       cfg.Path,
		ports:      cfg.Ports,
		guard:      cfg.Guard,
		recorder:   cfg.Recorder,
		sessions:   make(map[sessionKey]*Session),
		pending:    make(map[uint64][]*pendingSend),
		seed:       maphash.MakeSeed(),
		done:       make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	if p.ports == nil {
		p.ports = newSimplePorts()
	}
	go p.read()
	return p
}

// Path returns the path the prober sends on.
func (p *Prober) Path() Path { return p.path }

// Link returns the prober's link.
func (p *Prober) Link() Link { return p.link }

// Stats returns the link's counters plus frames the prober could not use.
func (p *Prober) Stats() ProberStats {
	ls, _ := p.link.Stats()
	return ProberStats{LinkStats: ls, Undecodable: p.undecoded.Load(), Unmatched: p.unmatched.Load(), LateEchoes: p.lateEchoes.Load(),
		SuperFrames: p.superFrames.Load(), UnsplitSuperFrames: p.unsplit.Load(), ClosedAnswers: p.closedAnswers.Load()}
}

// ProberStats are a prober's counters.
type ProberStats struct {
	LinkStats
	// Undecodable counts frames that passed the filter but whose TCP ports
	// could not be read.
	Undecodable uint64
	// Unmatched counts frames for no open session (late replies).
	Unmatched uint64
	// LateEchoes counts synprobe's own frames seen leaving after Send had
	// stopped waiting for them (echoWait): recognised, and dropped.
	LateEchoes uint64
	// SuperFrames counts frames that stood for several segments (GRO,
	// TSO/GSO) and were split into them; UnsplitSuperFrames those that
	// could not be split (not a whole TCP segment), handed on whole.
	SuperFrames        uint64
	UnsplitSuperFrames uint64
	// ClosedAnswers counts the RSTs sent for segments that came on the
	// 4-tuple of a session that had ended (see answerClosed).
	ClosedAnswers uint64
}

// TCPHeard counts the TCP segments that came from the far end (any
// port, any session or none): zero means no TCP stack answered anything.
func (p *Prober) TCPHeard() uint64 { return p.tcpHeard.Load() }

// Notes are facts about the prober's setup worth a line in a report.
func (p *Prober) Notes() []string {
	notes := append([]string(nil), p.notes...)
	if a, ok := p.ports.(interface{ Unreserved() (uint64, error) }); ok {
		if n, err := a.Unreserved(); n > 0 {
			notes = append(notes, fmt.Sprintf("%d source ports were used without a reservation across processes (%v): another synprobe on this host could have used them at the same time", n, err))
		}
	}
	return notes
}

// Close stops the prober, closes its link, every session and the guard. It
// returns the first error met recording frames or closing the guard.
func (p *Prober) Close() error {
	p.closeOnce.Do(func() {
		close(p.done)
		p.link.Close()
		<-p.readerDone
		p.mu.Lock()
		for _, s := range p.sessions {
			s.closed.Store(true)
			s.signal()
		}
		p.sessions = map[sessionKey]*Session{}
		for _, c := range p.closers {
			if err := c.Close(); err != nil && p.recordErr == nil {
				p.recordErr = err
			}
		}
		p.mu.Unlock()
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.recordErr
}

// SessionConfig describes a probe connection.
type SessionConfig struct {
	Remote netip.AddrPort
	// LocalPort is the source port; 0 allocates one.
	LocalPort uint16
}

// Open starts a session: it allocates (or reserves) a source port, protects
// it with the guard and registers the 4-tuple. Nothing is sent.
func (p *Prober) Open(cfg SessionConfig) (*Session, error) {
	if !cfg.Remote.Addr().IsValid() || cfg.Remote.Addr().Is4() != p.path.Source.Is4() {
		return nil, fmt.Errorf("open session to %v: the path's source %v is of another address family", cfg.Remote, p.path.Source)
	}
	select {
	case <-p.done:
		return nil, fmt.Errorf("open session to %v: %w", cfg.Remote, ErrLinkClosed)
	default:
	}
	p.releaseRested(time.Now())
	port := cfg.LocalPort
	if port == 0 {
		var err error
		port, err = p.ports.Allocate()
		for errors.Is(err, ErrNoFreePort) && p.releaseOldest() {
			port, err = p.ports.Allocate()
		}
		if err != nil {
			return nil, fmt.Errorf("open session to %v: %w", cfg.Remote, err)
		}
	} else if err := p.ports.Reserve(port); err != nil {
		return nil, fmt.Errorf("open session to %v: source port %d: %w", cfg.Remote, port, err)
	}
	if p.guard != nil {
		if err := p.guard.Protect(port, guardTTL); err != nil {
			p.ports.Release(port)
			return nil, fmt.Errorf("open session to %v: protect source port %d: %w", cfg.Remote, port, err)
		}
	}
	s := &Session{
		p:      p,
		local:  netip.AddrPortFrom(p.path.Source, port),
		remote: cfg.Remote,
		notify: make(chan struct{}, 1),
	}
	key := sessionKey{cfg.Remote, port}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, dup := p.sessions[key]; dup {
		p.ports.Release(port)
		return nil, fmt.Errorf("open session to %v: source port %d is already in use by another session", cfg.Remote, port)
	}
	p.sessions[key] = s
	return s, nil
}

func (p *Prober) closeSession(s *Session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := sessionKey{s.remote, s.local.Port()}
	if p.sessions[key] == s {
		delete(p.sessions, key)
		p.resting = append(p.resting, restingPort{key, time.Now().Add(quarantine)})
		if p.restingKeys == nil {
			p.restingKeys = map[sessionKey]struct{}{}
		}
		p.restingKeys[key] = struct{}{}
		if r, ok := p.ports.(interface{ Rest(port uint16) }); ok {
			r.Rest(s.local.Port())
		}
	}
}

// releaseOldest hands out the port that has rested longest before its
// time: a run fast enough to use every port of the range reuses ports after
// less than the full rest, rather than failing. It reports whether there
// was one.
func (p *Prober) releaseOldest() bool {
	p.mu.Lock()
	if len(p.resting) == 0 {
		p.mu.Unlock()
		return false
	}
	port := p.resting[0].key.local
	delete(p.restingKeys, p.resting[0].key)
	p.resting = p.resting[1:]
	p.mu.Unlock()
	// Releasing may close a socket (PortAllocator): not under p.mu, which
	// the reader takes for every frame.
	p.ports.Release(port)
	return true
}

// releaseRested hands back the ports whose rest is over. Ports rest in the
// order they were closed, for the same time: those rested form the front
// of the list.
func (p *Prober) releaseRested(now time.Time) {
	p.mu.Lock()
	n := 0
	for n < len(p.resting) && now.After(p.resting[n].until) {
		n++
	}
	rested := p.resting[:n:n]
	p.resting = p.resting[n:]
	for _, r := range rested {
		delete(p.restingKeys, r.key)
	}
	p.mu.Unlock()
	for _, r := range rested {
		p.ports.Release(r.key.local)
	}
}

func (p *Prober) hash(b []byte) uint64 { return maphash.Bytes(p.seed, b) }

// send writes a frame and returns the time it was seen leaving (the
// kernel's timestamp when the link shows outgoing frames, else the time
// just before the write: a busy host may return from the write after the
// reply came, and no reply may seem to come before its cause). It waits echoWait at most; the frame stays remembered
// afterwards (see unechoedFor), so that a late echo is still known as ours.
func (p *Prober) send(frame []byte) (time.Time, error) {
	ps, err := p.write(frame)
	if err != nil {
		return time.Time{}, err
	}
	t := time.NewTimer(echoWait)
	defer t.Stop()
	select {
	case ts := <-ps.seen:
		return ts, nil
	case <-t.C:
	case <-p.done:
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case ts := <-ps.seen: // seen while the timer fired
		return ts, nil
	default:
	}
	ps.gaveUp = true
	return ps.written, nil
}

// write writes a frame, remembered as synprobe's until its echo comes
// (or it is forgotten, see addPendingLocked).
func (p *Prober) write(frame []byte) (*pendingSend, error) {
	ps := &pendingSend{data: frame, hash: p.hash(frame), written: time.Now(), seen: make(chan time.Time, 1)}
	p.mu.Lock()
	p.addPendingLocked(ps)
	p.mu.Unlock()
	if err := p.link.WriteFrame(frame); err != nil {
		p.mu.Lock()
		p.removePendingLocked(ps)
		p.mu.Unlock()
		return nil, err
	}
	return ps, nil
}

// addPendingLocked remembers a frame about to be written, and forgets the
// oldest unechoed frames beyond the bounds.
func (p *Prober) addPendingLocked(ps *pendingSend) {
	p.pending[ps.hash] = append(p.pending[ps.hash], ps)
	ps.elem = p.unechoed.PushBack(ps)
	p.unechoedSize += len(ps.data)
	for e := p.unechoed.Front(); e != nil; e = p.unechoed.Front() {
		old := e.Value.(*pendingSend)
		if old == ps || p.unechoedSize <= unechoedBytes && ps.written.Sub(old.written) <= unechoedFor {
			break
		}
		p.removePendingLocked(old)
	}
}

func (p *Prober) removePendingLocked(ps *pendingSend) {
	if ps.elem == nil {
		return
	}
	p.unechoed.Remove(ps.elem)
	ps.elem = nil
	p.unechoedSize -= len(ps.data)
	bucket := p.pending[ps.hash]
	for i, q := range bucket {
		if q == ps {
			bucket = append(bucket[:i], bucket[i+1:]...)
			break
		}
	}
	if len(bucket) == 0 {
		delete(p.pending, ps.hash)
	} else {
		p.pending[ps.hash] = bucket
	}
}

// matchPending reports whether an outgoing frame is one synprobe sent, and
// hands its timestamp to the sender (if it still waits).
func (p *Prober) matchPending(c Capture) bool {
	h := p.hash(c.Data)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ps := range p.pending[h] {
		if bytes.Equal(ps.data, c.Data) {
			if ps.gaveUp {
				p.lateEchoes.Add(1)
			} else {
				ps.seen <- c.Time
			}
			p.removePendingLocked(ps)
			return true
		}
	}
	return false
}

func (p *Prober) read() {
	defer close(p.readerDone)
	for {
		c, err := p.link.ReadFrame()
		if err != nil {
			if errors.Is(err, ErrLinkClosed) {
				return
			}
			select {
			case <-p.done:
				return
			default:
			}
			continue
		}
		if c.GSOSize == 0 || p.keepSuperFrames.Load() {
			p.handle(c)
			continue
		}
		// A super-frame is split before anything sees it: the sessions, so
		// that every rule judges the segments the target sent, never the
		// local host's offloads; and the recorder, so that a pcap shows
		// what the wire carried, and synprobe analyze of it judges what the
		// live run judged.
		pieces, err := SplitSuperFrame(c)
		if err != nil {
			p.unsplit.Add(1)
			p.handle(c)
			continue
		}
		p.superFrames.Add(1)
		for _, piece := range pieces {
			p.handle(piece)
		}
	}
}

// handle records a frame, and hands it to its sender (an echo of a frame
// synprobe sent) or its session.
func (p *Prober) handle(c Capture) {
	p.record(c)
	if c.Outgoing && p.matchPending(c) {
		return
	}
	p.dispatch(c)
}

func (p *Prober) record(c Capture) {
	if p.recorder == nil {
		return
	}
	if err := p.recorder.WritePacket(c.Time, c.Data); err != nil {
		p.mu.Lock()
		if p.recordErr == nil {
			p.recordErr = fmt.Errorf("record frames: %w", err)
		}
		p.mu.Unlock()
	}
}

// dispatch hands a frame to its session.
func (p *Prober) dispatch(c Capture) {
	r := &Reply{Data: c.Data, Time: c.Time, FromLocalHost: c.Outgoing}
	r.DecodeErr = r.Frame.Decode(c.Data)
	if c.ChecksumPartial && r.Frame.Checksum == ChecksumInvalid {
		r.Frame.Checksum = ChecksumNotFinal
	}
	var key sessionKey
	switch {
	case r.Frame.Has(LayerTCP) && c.Outgoing:
		key = sessionKey{r.Frame.Dst(), r.Frame.TCP.SrcPort}
	case r.Frame.Has(LayerTCP):
		key = sessionKey{r.Frame.Src(), r.Frame.TCP.DstPort}
		p.tcpHeard.Add(1)
	case r.Frame.Has(LayerICMP) && r.Frame.ICMP.IsError(r.Frame.IP.Version == 6):
		q, err := r.Frame.ICMP.Quote()
		if err != nil || q.Protocol != ProtocolTCP {
			p.undecoded.Add(1)
			return
		}
		key = sessionKey{q.Dst, q.Src.Port()}
	default:
		p.undecoded.Add(1)
		return
	}
	p.mu.Lock()
	s := p.sessions[key]
	_, resting := p.restingKeys[key]
	p.mu.Unlock()
	if s == nil && r.Frame.Has(LayerICMP) && p.toWatchers(r) {
		return
	}
	if s == nil {
		p.unmatched.Add(1)
		if resting && !c.Outgoing && r.Frame.Has(LayerTCP) && r.DecodeErr == nil {
			p.answerClosed(&r.Frame)
		}
		return
	}
	s.deliver(r)
}

// WatchICMP calls fn, in the prober's reader, for every ICMP error quoting
// TCP that matches no session: a box that rewrites the source port (NAT
// that does not translate the ICMP back) makes routers beyond it quote a
// port no session has. Trace matches those by the quoted sequence number.
// Dial with DialConfig.AnyQuotedPort for the link to pass them at all. fn
// must not block; stop ends the watch.
func (p *Prober) WatchICMP(fn func(r *Reply)) (stop func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.watchers == nil {
		p.watchers = map[int]func(*Reply){}
	}
	id := p.nextWatch
	p.nextWatch++
	p.watchers[id] = fn
	return func() {
		p.mu.Lock()
		delete(p.watchers, id)
		p.mu.Unlock()
	}
}

// toWatchers hands r to the ICMP watchers; it reports whether there was one.
func (p *Prober) toWatchers(r *Reply) bool {
	p.mu.Lock()
	fns := make([]func(*Reply), 0, len(p.watchers))
	for _, fn := range p.watchers {
		fns = append(fns, fn)
	}
	p.mu.Unlock()
	for _, fn := range fns {
		fn(r)
	}
	return len(fns) > 0
}

// simplePorts hands out ports from a fixed range with no knowledge of the
// host: enough for an in-process stack, where no local kernel competes.
type simplePorts struct {
	mu    sync.Mutex
	next  uint16
	inUse map[uint16]bool
}

func newSimplePorts() *simplePorts {
	return &simplePorts{next: 40000 + uint16(time.Now().UnixNano()%20000), inUse: map[uint16]bool{}}
}

func (sp *simplePorts) Allocate() (uint16, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for i := 0; i < 30000; i++ {
		port := sp.next
		sp.next++
		if sp.next < 30000 || sp.next > 60000 {
			sp.next = 30000
		}
		if !sp.inUse[port] {
			sp.inUse[port] = true
			return port, nil
		}
	}
	return 0, ErrNoFreePort
}

func (sp *simplePorts) Reserve(port uint16) error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.inUse[port] {
		return errors.New("in use")
	}
	sp.inUse[port] = true
	return nil
}

func (sp *simplePorts) Release(port uint16) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	delete(sp.inUse, port)
}

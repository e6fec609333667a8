package conformance

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"time"

	"synprobe/internal/plural"
	"synprobe/probe"
)

// Application is what the target's application does, learned by a few
// connections before the checks: whether it accepts connections, speaks
// first, answers the request, closes after answering, and what it does
// with bytes it does not expect. Checks account for it instead of reading
// it as the stack's behaviour (see the package documentation).
type Application struct {
	// Accepts is false when the listener completes no connection: SYNs to
	// the port go unanswered (its accept queue is full: the application
	// does not accept), or a RST says nothing listens. AcceptsWhy says
	// which.
	Accepts    bool   `json:"accepts"`
	AcceptsWhy string `json:"accepts_why,omitempty"`
	// Closed is set when a RST answered the SYNs: nothing listens on the
	// port, and no scenario of a listener can be judged there.
	Closed bool `json:"closed,omitempty"`
	// SpeaksFirst is set when the application sent data before synprobe
	// sent any: Greeting says how much, how soon and what came after.
	SpeaksFirst bool     `json:"speaks_first"`
	Greeting    Reaction `json:"greeting"`
	// Request is the request the checks send where they need the
	// application to answer (--request), as a Go string literal; Answer is
	// what came back.
	Request string   `json:"request"`
	Answer  Reaction `json:"answer"`
	// Unexpected is what the application does with bytes it cannot parse
	// (NUL bytes).
	Unexpected Reaction `json:"unexpected_input"`
	// Filler is the data the checks send where only the stack matters,
	// as a Go string literal: the first of several candidates the
	// application ignored (no answer, no close); FillerReaction is what it
	// did with it.
	Filler         string   `json:"filler"`
	FillerReaction Reaction `json:"filler_reaction"`

	filler fillerKind
}

// Reaction is what the application did after synprobe sent something (or,
// for Greeting, after the handshake).
type Reaction struct {
	// Bytes is how many bytes it sent within the watch; First is the
	// first of them, quoted and cut.
	Bytes int    `json:"bytes"`
	First string `json:"first,omitempty"`
	// AfterMS is when the first byte (or the close) came.
	AfterMS float64 `json:"after_ms,omitempty"`
	// Then is what it did with the connection: "open", "closed" (its
	// FIN), "reset" (a RST) or "" when the connection never opened.
	Then string `json:"then,omitempty"`
}

// The connection states after a Reaction.
const (
	ThenOpen   = "open"
	ThenClosed = "closed"
	ThenReset  = "reset"
)

// Quiet reports whether the application neither answered nor closed.
func (r Reaction) Quiet() bool { return r.Bytes == 0 && r.Then == ThenOpen }

func (r Reaction) String() string {
	var s string
	switch {
	case r.Then == "":
		return "unknown (no connection)"
	case r.Bytes > 0:
		s = fmt.Sprintf("%d bytes (%s)", r.Bytes, r.First)
	default:
		s = "nothing"
	}
	switch r.Then {
	case ThenClosed:
		s += ", then closes"
	case ThenReset:
		s += ", then resets"
	}
	return s
}

// Summary is the application in one line, for the text report's header.
func (a *Application) Summary() string {
	if !a.Accepts {
		return "does not accept connections: " + a.AcceptsWhy
	}
	var parts []string
	if a.SpeaksFirst {
		parts = append(parts, fmt.Sprintf("speaks first (%s after %.0f ms)", a.Greeting, a.Greeting.AfterMS))
	}
	parts = append(parts, fmt.Sprintf("answers %s with %s", clipText(a.Request, 28), a.Answer))
	parts = append(parts, "unexpected input: "+a.Unexpected.String())
	if a.FillerReaction.Quiet() {
		parts = append(parts, "ignores "+clipText(a.Filler, 20)+" (the checks' data)")
	} else {
		parts = append(parts, "no data it ignores: "+clipText(a.Filler, 20)+" gets "+a.FillerReaction.String())
	}
	return strings.Join(parts, "; ")
}

func clipText(s string, n int) string {
	if len(s) > n {
		return s[:n] + `..."`
	}
	return s
}

// DefaultRequest asks for n bytes: the lab's application and web servers
// answer it (a real web server with a "not found" page).
func DefaultRequest(n int) []byte {
	return []byte(fmt.Sprintf("GET /%d HTTP/1.0\r\nHost: synprobe\r\n\r\n", n))
}

// fillerKind is a candidate for the checks' data. Each is a byte stream
// that common protocols buffer without acting on, in a short run:
// line-based ones (HTTP, SMTP, SSH's version line, Redis, memcached) wait
// for the end of a line of letters; TLS waits for the rest of a record
// whose header announces 16 KiB; some protocols skip empty lines.
type fillerKind int

const (
	fillerLetters fillerKind = iota
	fillerTLS
	fillerCRLF
	fillerNUL
	numFillers
)

var tlsRecordHeader = []byte{0x16, 0x03, 0x01, 0x3f, 0xff}

func (k fillerKind) bytes(off, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		j := off + i
		switch k {
		case fillerLetters:
			b[i] = "SYNPROBE"[j%8]
		case fillerTLS:
			if j < len(tlsRecordHeader) {
				b[i] = tlsRecordHeader[j]
			}
		case fillerCRLF:
			b[i] = "\r\n"[j%2]
		}
	}
	return b
}

func (k fillerKind) String() string { return quote(k.bytes(0, 16)) }

// ProfileConfig says how to profile the application.
type ProfileConfig struct {
	Target netip.AddrPort
	// Request is what the checks send to make the application answer;
	// nil: DefaultRequest.
	Request []byte
	// Pace is called before every SYN (the run's per-target rate).
	Pace func(context.Context) error
	// Timeout bounds the wait for a SYN-ACK and for an answer.
	Timeout time.Duration
}

// How long the profile watches: for a greeting after the handshake, and
// for a reaction to data. A reaction that comes later is met by the
// checks themselves, and attributed when it comes.
const (
	// profileAnswer is how much the profile's request asks for.
	profileAnswer = 20000

	greetingWait = 300 * time.Millisecond
	reactionWait = 400 * time.Millisecond
	answerQuiet  = 300 * time.Millisecond
)

// Profile learns what the target's application does (see Application) and
// whether the listener keeps state for half-open connections, with a few
// connections run at once, each paced.
func Profile(ctx context.Context, p *probe.Prober, cfg ProfileConfig) *Facts {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Pace == nil {
		cfg.Pace = func(context.Context) error { return nil }
	}
	app := &Application{}
	f := &Facts{App: app, Request: cfg.Request}
	app.Request = fmt.Sprintf("%q", f.RequestBytes(profileAnswer))

	var wg sync.WaitGroup
	var mu sync.Mutex
	var opened, silent, refused int
	var refusedHow string
	var closed int
	var greeting Reaction
	fillers := make([]Reaction, numFillers)
	run := func(fn func(pc *profConn) bool) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pc, how := openProfConn(ctx, p, cfg)
			mu.Lock()
			switch how {
			case "":
				opened++
			case "silent":
				silent++
			default:
				refused++
				refusedHow = how
				if strings.HasPrefix(how, portClosed) {
					closed++
				}
			}
			mu.Unlock()
			if pc == nil {
				return
			}
			defer pc.close()
			if how != "" {
				return
			}
			g := pc.watch(greetingWait, greetingWait)
			mu.Lock()
			if g.Bytes > 0 || g.Then != ThenOpen {
				greeting = g
			}
			mu.Unlock()
			fn(pc)
		}()
	}
	for k := fillerLetters; k < numFillers; k++ {
		run(func(pc *profConn) bool {
			pc.send(k.bytes(0, 10))
			pc.send(k.bytes(10, 10))
			r := pc.watch(reactionWait, reactionWait)
			mu.Lock()
			fillers[k] = r
			mu.Unlock()
			return true
		})
	}
	run(func(pc *profConn) bool {
		pc.send(f.RequestBytes(profileAnswer))
		r := pc.watch(cfg.Timeout, answerQuiet)
		mu.Lock()
		app.Answer = r
		mu.Unlock()
		return true
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		f.SYNCookies, f.SYNCookiesKnown = synCookies(ctx, p, cfg)
	}()
	wg.Wait()

	switch {
	case opened == 0 && refused > 0:
		app.AcceptsWhy, app.Closed = refusedHow, closed == refused && silent == 0
	case opened == 0:
		app.AcceptsWhy = fmt.Sprintf("no SYN-ACK to %s, each sent up to three times: the listener's accept queue is full (the application does not accept connections), or a filter drops SYNs to this port", plural.N(silent, "SYN", "SYNs"))
	case silent > 0:
		app.AcceptsWhy = fmt.Sprintf("the listener stopped answering SYNs after %s: its accept queue is full (the application does not accept connections)", plural.N(opened, "connection", "connections"))
	default:
		app.Accepts = true
	}
	app.Greeting = greeting
	app.SpeaksFirst = greeting.Bytes > 0
	app.Unexpected = fillers[fillerNUL]
	// The first candidate the application ignored; else one it answered
	// without closing (an echo); else the first.
	app.filler = fillerLetters
	chosen := false
	for k := fillerLetters; k < numFillers && !chosen; k++ {
		if fillers[k].Quiet() {
			app.filler, chosen = k, true
		}
	}
	for k := fillerLetters; k < numFillers && !chosen; k++ {
		if fillers[k].Then == ThenOpen {
			app.filler, chosen = k, true
		}
	}
	app.Filler = app.filler.String()
	app.FillerReaction = fillers[app.filler]
	return f
}

// portClosed starts what the profile says of a SYN a RST answered.
const portClosed = "port closed"

// profConn is one connection of the profile.
type profConn struct {
	ctx context.Context
	c   *Conn
	ts0 uint32
}

// openProfConn opens a connection: SYN (paced), SYN-ACK, ACK. how is ""
// when it opened, "silent" when nothing came, or what refused it; pc is
// nil when no session could be had.
func openProfConn(ctx context.Context, p *probe.Prober, cfg ProfileConfig) (pc *profConn, how string) {
	for attempt := 0; attempt < 2; attempt++ {
		if err := cfg.Pace(ctx); err != nil {
			return nil, "interrupted"
		}
		s, err := p.Open(probe.SessionConfig{Remote: cfg.Target})
		if err != nil {
			return nil, err.Error()
		}
		pc = &profConn{ctx: ctx, c: NewConn(s), ts0: rand.Uint32() >> 1}
		syn := probe.Frame{IP: pc.c.IPv4(), TCP: probe.TCP{Seq: probe.Seq(rand.Uint32()), Flags: probe.SYN, Window: 64240,
			Options: []probe.Option{probe.MSSOption(1460), probe.SACKPermittedOption(), probe.TimestampsOption(pc.ts0, 0), probe.NOPOption(), probe.WScaleOption(7)}}}
		sent, err := pc.c.Send(&syn)
		if err != nil {
			return pc, err.Error()
		}
		// Sent again while unanswered: an application that accepts one
		// connection at a time has its queue full for a while.
		r, _, err := pc.c.AwaitSYNACK(ctx, &syn, nil, sent.Time, time.Now().Add(cfg.Timeout))
		switch {
		case errors.Is(err, ErrSilence):
			return pc, "silent"
		case err != nil:
			return pc, err.Error()
		case r.Frame.Has(probe.LayerICMP):
			return pc, fmt.Sprintf("the path answered the SYN with ICMP type %d code %d from %v", r.Frame.ICMP.Type, r.Frame.ICMP.Code, r.Frame.IP.Src)
		case !r.Frame.Has(probe.LayerTCP):
			return pc, "the SYN was answered with a frame that is not TCP"
		}
		t := &r.Frame.TCP
		if attempt == 0 && pc.c.Stale(t, true) {
			pc.c.ResetStale(t)
			pc.c.S.Close()
			continue
		}
		pc.c.Observe(t)
		if t.Flags&probe.RST != 0 {
			return pc, fmt.Sprintf("%s: the SYN was answered with %s (nothing listens on port %d)", portClosed, t.Flags, cfg.Target.Port())
		}
		if !t.Flags.Has(probe.SYN | probe.ACK) {
			return pc, "the SYN was answered with " + t.Flags.String()
		}
		pc.segment(probe.ACK, nil)
		return pc, ""
	}
	return pc, "a stale connection answered twice"
}

// segment sends the next in-sequence segment.
func (pc *profConn) segment(flags probe.Flags, data []byte) {
	c := pc.c
	t := probe.TCP{Seq: c.SNDNXT, Ack: c.RCVNXT, Flags: flags, Window: 502, Payload: data}
	if c.TS.Enabled {
		t.Options = []probe.Option{probe.NOPOption(), probe.NOPOption(), probe.TimestampsOption(pc.ts0+uint32(time.Since(c.Start).Milliseconds()), c.TS.LastReceived)}
	}
	f := probe.Frame{IP: c.IPv4(), TCP: t}
	c.Send(&f)
}

func (pc *profConn) send(data []byte) {
	if !pc.c.PeerReset {
		pc.segment(probe.PSH|probe.ACK, data)
	}
}

// watch collects what the application sends for up to d, acknowledging
// it, until it closes or resets, or (once it sent something) falls quiet
// for quiet.
func (pc *profConn) watch(d, quiet time.Duration) Reaction {
	c := pc.c
	r := Reaction{Then: ThenOpen}
	if c.PeerReset {
		r.Then = ThenReset
		return r
	}
	if c.HavePeerFIN {
		r.Then = ThenClosed
		return r
	}
	start := time.Now()
	deadline := start.Add(d)
	var first []byte
	for {
		until := deadline
		if r.Bytes > 0 {
			until = time.Now().Add(quiet)
			if until.After(deadline) {
				until = deadline
			}
		}
		rep, err := c.Recv(pc.ctx, until)
		if err != nil {
			break
		}
		if !rep.Frame.Has(probe.LayerTCP) {
			continue
		}
		t := &rep.Frame.TCP
		sh := c.Attribute(t, false, false)
		c.Observe(t)
		if t.Flags&probe.RST != 0 {
			r.Then = ThenReset
			if r.AfterMS == 0 {
				r.AfterMS = msSince(start, rep.Time)
			}
			break
		}
		if sh.Data > 0 {
			if r.Bytes == 0 {
				r.AfterMS = msSince(start, rep.Time)
			}
			r.Bytes += sh.Data
			if len(first) < 24 {
				first = append(first, t.Payload[:min(len(t.Payload), 24-len(first))]...)
			}
		}
		if sh.Any() {
			c.Absorb(sh)
			c.ACKApplication()
		}
		if t.Flags&probe.FIN != 0 {
			r.Then = ThenClosed
			if r.AfterMS == 0 {
				r.AfterMS = msSince(start, rep.Time)
			}
			break
		}
	}
	if len(first) > 0 {
		r.First = quote(first)
	}
	return r
}

// msSince is t after start in milliseconds; a segment that came before
// the watch started counts as at its start.
func msSince(start, t time.Time) float64 {
	return float64(max(t.Sub(start), 0).Microseconds()) / 1000
}

func (pc *profConn) close() {
	pc.c.Release()
	pc.c.S.Close()
}

// synCookies tells whether SYN cookies answer the listener's SYNs: it opens
// a half-open connection, resets it (RFC 9293 3.10.7.4: a RST in
// SYN-RECEIVED removes it), then sends the ACK that would have completed
// it, with one byte. A listener that keeps state has forgotten it and
// answers with a RST (RFC 9293 3.10.7.2); one that answers SYNs with
// cookies keeps nothing to forget, finds the cookie valid and opens the
// connection: it acknowledges the byte.
func synCookies(ctx context.Context, p *probe.Prober, cfg ProfileConfig) (cookies, known bool) {
	if err := cfg.Pace(ctx); err != nil {
		return false, false
	}
	s, err := p.Open(probe.SessionConfig{Remote: cfg.Target})
	if err != nil {
		return false, false
	}
	defer s.Close()
	c := NewConn(s)
	defer c.Release()
	isn := probe.Seq(rand.Uint32())
	syn := probe.Frame{IP: c.IPv4(), TCP: probe.TCP{Seq: isn, Flags: probe.SYN, Window: 64240, Options: []probe.Option{probe.MSSOption(1460)}}}
	if _, err := c.Send(&syn); err != nil {
		return false, false
	}
	r, err := c.Recv(ctx, time.Now().Add(cfg.Timeout))
	if err != nil || !r.Frame.Has(probe.LayerTCP) || !r.Frame.TCP.Flags.Has(probe.SYN|probe.ACK) || r.Frame.TCP.Ack != isn+1 {
		return false, false
	}
	c.Observe(&r.Frame.TCP)
	rst := probe.Frame{IP: c.IPv4(), TCP: probe.TCP{Seq: isn + 1, Flags: probe.RST}}
	if _, err := c.S.Send(&rst); err != nil {
		return false, false
	}
	// The RST must be processed before the ACK comes.
	time.Sleep(20 * time.Millisecond)
	ack := probe.Frame{IP: c.IPv4(), TCP: probe.TCP{Seq: isn + 1, Ack: c.RCVNXT, Flags: probe.ACK | probe.PSH, Window: 64240, Payload: []byte("S")}}
	if _, err := c.Send(&ack); err != nil {
		return false, false
	}
	deadline := time.Now().Add(cfg.Timeout / 2)
	for {
		r, err := c.Recv(ctx, deadline)
		if err != nil || !r.Frame.Has(probe.LayerTCP) {
			return false, false
		}
		t := &r.Frame.TCP
		c.Observe(t)
		switch {
		case t.Flags&probe.RST != 0:
			return false, true
		case t.Flags&probe.ACK != 0 && t.Ack == isn+2:
			return true, true
		}
	}
}

package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"synprobe/conformance/report"
	"synprobe/probe"
	"synprobe/probe/pcap"
)

// Options tune an analysis. The zero value is the default.
type Options struct {
	// OnlyFailures keeps in the report only the results that are not
	// passing: fail, warn and error. Connections that pass (or are info)
	// are still counted in the summary, and their steps are never turned
	// into text, which makes a large capture much cheaper.
	OnlyFailures bool
	// OnResult, when set, receives each connection's result as soon as the
	// connection is judged (when it closes, goes idle, or the capture
	// ends), in that order, instead of the report keeping it: memory then
	// stays bounded by the open connections whatever the capture holds.
	// OnlyFailures applies to it too. It is called on the goroutine that
	// runs the analysis.
	OnResult func(report.Result)
	// MaxSteps bounds the steps of one result (default 64): a connection
	// that breaks a rule on every segment lists the first ones and counts
	// the rest (its verdict counts them all).
	MaxSteps int
	// IdleTimeout reports a connection that has seen no segment for this
	// long, in capture time, before the capture ends, and frees its state
	// (default 5 minutes; negative: never). A later segment on it starts a
	// new connection, judged from the middle.
	IdleTimeout time.Duration
	// Linger is how long, in capture time, a closed connection's 4-tuple
	// remembers it, so that retransmissions after the close (the last
	// FIN again, a second RST) are not taken for a new connection
	// (default 60 s, the Linux TIME-WAIT). At most 65536 closed
	// connections are remembered at once.
	Linger time.Duration
	// MaxOpen bounds the connections followed at once (default 65536,
	// about 3 KiB each), so that a capture of a SYN flood cannot take the
	// memory of a million connections. When a new connection would pass
	// it, the sixteenth of the open ones quiet longest are judged before
	// their end, as idle ones are, and their state freed; a later segment
	// of one starts a new connection, judged from the middle.
	MaxOpen int
}

const (
	defaultMaxSteps    = 64
	defaultIdleTimeout = 5 * time.Minute
	defaultLinger      = 60 * time.Second
	defaultMaxOpen     = 1 << 16
	maxTombstones      = 1 << 16
	maxOffloadHosts    = 1024
)

// Stats counts what an analysis read.
type Stats struct {
	// Format is the capture's format: "pcap (microsecond, little-endian)",
	// "pcapng".
	Format string
	// Packets is the number of packets read.
	Packets uint64
	// TCP is the number of TCP segments judged (malformed ones included).
	TCP uint64
	// NonTCP counts packets that are not TCP: other IP protocols, and
	// frames that carry no IP at all (ARP, LLDP, ...).
	NonTCP uint64
	// Fragments counts IP fragments: they are not reassembled, and the
	// segments in them are not judged.
	Fragments uint64
	// Truncated counts packets cut short by the capture's snapshot
	// length. Their headers are judged as far as they go (checksums are
	// not); those cut inside the TCP header are not judged.
	Truncated uint64
	// Malformed counts TCP segments with a damaged header (judged as
	// such, but not used to follow their connection).
	Malformed uint64
	// Undecodable counts packets whose link or IP header could not be
	// taken apart, and TCP segments too short for a TCP header.
	Undecodable uint64
	// UnsupportedLink counts packets of link types analyze cannot take
	// apart.
	UnsupportedLink uint64
	// Connections counts the connections judged.
	Connections uint64
	// AfterClose counts segments that arrived for a connection already
	// closed (retransmissions of its last segments), absorbed unjudged.
	AfterClose uint64
	// Crowded counts connections judged before their end because more
	// than Options.MaxOpen were open at once.
	Crowded uint64
	// First and Last are the capture times of the first and last packet.
	First, Last time.Time
}

// Analyzer judges the TCP connections of a stream of captured packets. Feed
// it with Read (a whole capture file) or Packet (one packet at a time),
// then call Finish. An Analyzer is not safe for concurrent use.
type Analyzer struct {
	name  string
	opt   Options
	start time.Time

	frame probe.Frame
	stats Stats

	conns map[connKey]*conn
	free  []*conn
	// scratch is makeRoom's.
	scratch []lastSeen
	// closed remembers connections that closed, for Options.Linger;
	// tombs holds their keys in the order they closed.
	closed   map[connKey]tombstone
	tombs    []tomb
	tombHead int
	tombGen  uint64

	// offloadHosts are addresses all of whose segments on some
	// connection had bad checksums: the capture was taken on them.
	offloadHosts map[netip.Addr]bool

	texts     texts // for the texts of results
	results   []keptResult
	summary   report.Summary
	now       time.Time
	nextSweep time.Time
	damage    error
	finished  bool
}

type tomb struct {
	key connKey
	gen uint64
	at  time.Time
}

type keptResult struct {
	first int // packet number of the connection's first segment
	res   report.Result
}

// NewAnalyzer returns an analyzer for a capture called name (a file name,
// "-" for standard input).
func NewAnalyzer(name string, opt Options) *Analyzer {
	if opt.MaxSteps <= 0 {
		opt.MaxSteps = defaultMaxSteps
	}
	if opt.IdleTimeout == 0 {
		opt.IdleTimeout = defaultIdleTimeout
	}
	if opt.Linger <= 0 {
		opt.Linger = defaultLinger
	}
	if opt.MaxOpen <= 0 {
		opt.MaxOpen = defaultMaxOpen
	}
	return &Analyzer{
		name: name, opt: opt, start: time.Now(),
		conns:        make(map[connKey]*conn),
		closed:       make(map[connKey]tombstone),
		offloadHosts: make(map[netip.Addr]bool),
		summary:      report.Summary{},
	}
}

// Analyze reads the capture r (pcap or pcapng) and judges every TCP
// connection in it. The report's Command is "analyze" and its
// Target.Address is name. The report is finished: its Summary counts every
// connection, the ones Options.OnlyFailures or Options.OnResult left out of
// Results included (so do not call its Finish again), and its Notes say
// what was read (see Stats).
//
// A damaged capture still gives the report of everything read before the
// damage, with an error that wraps the *pcap.FormatError naming its byte
// offset. A cancelled ctx gives the report so far and ctx's error.
func Analyze(ctx context.Context, r io.Reader, name string, opt Options) (*report.Report, error) {
	a := NewAnalyzer(name, opt)
	err := a.Read(ctx, r)
	return a.Finish(), err
}

// Read reads a whole capture and judges its packets. It returns an error
// that wraps the *pcap.FormatError of a damaged capture, the source's
// error, or ctx's; the packets read before it are judged all the same.
func (a *Analyzer) Read(ctx context.Context, r io.Reader) error {
	pr, err := pcap.NewReader(r)
	if err != nil {
		a.damage = err
		return fmt.Errorf("read capture %s: %w", a.name, err)
	}
	a.stats.Format = pr.Format()
	var rec pcap.Record
	for n := 0; ; n++ {
		if n&4095 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if err := pr.Next(&rec); err != nil {
			if err == io.EOF {
				return nil
			}
			a.damage = err
			return fmt.Errorf("read capture %s: %w", a.name, err)
		}
		a.Packet(&rec)
	}
}

// Packet judges one captured packet; packets are numbered from 1 in the
// order they are given.
func (a *Analyzer) Packet(rec *pcap.Record) {
	a.stats.Packets++
	pkt := int(a.stats.Packets)
	ts := rec.Time
	if !ts.IsZero() {
		if a.stats.First.IsZero() {
			a.stats.First = ts
			a.nextSweep = ts.Add(a.opt.IdleTimeout / 2)
		}
		if ts.After(a.now) {
			a.now = ts
			a.stats.Last = ts
			a.expire()
		}
	}
	f := &a.frame
	supported, err := decodeLink(f, rec.LinkType, rec.Data)
	if !supported {
		a.stats.UnsupportedLink++
		return
	}
	if f.Truncated || len(rec.Data) < rec.OrigLen {
		a.stats.Truncated++
	}
	if f.Has(probe.LayerIP) && f.IP.IsFragment() {
		a.stats.Fragments++
		return
	}
	switch {
	case f.Has(probe.LayerTCP):
		// A damaged header whose fixed part was readable is judged.
	case err != nil:
		if !(f.Truncated && f.Has(probe.LayerIP) && f.IP.Protocol == probe.ProtocolTCP) {
			a.stats.Undecodable++
		}
		return
	case !f.Has(probe.LayerIP) || f.IP.Protocol != probe.ProtocolTCP:
		a.stats.NonTCP++
		return
	default:
		// TCP cut by the snapshot length before its fixed header ends.
		if !f.Truncated {
			a.stats.Undecodable++
		}
		return
	}
	a.stats.TCP++
	if err != nil {
		a.stats.Malformed++
	}
	a.segment(pkt, ts, err)
}

// segment hands the TCP segment in a.frame to its connection.
func (a *Analyzer) segment(pkt int, ts time.Time, decodeErr error) {
	f := &a.frame
	t := &f.TCP
	key, srcLo := keyOf(f)
	c := a.conns[key]
	switch {
	case c == nil && len(a.closed) > 0:
		if tb, ok := a.closed[key]; ok {
			if decodeErr == nil && tb.absorbs(f, srcLo) {
				a.stats.AfterClose++
				return
			}
			delete(a.closed, key) // the 4-tuple is used again
		}
	case c != nil && decodeErr == nil && c.newIncarnation(t, srcLo):
		a.finalize(c, endReplaced)
		c = nil
	}
	if c == nil {
		a.makeRoom()
		c = a.newConn(key, srcLo, f, pkt, ts)
		a.conns[key] = c
	}
	c.segment(a, pkt, ts, f, srcLo, decodeErr)
	if c.closed {
		a.finalize(c, endClosed)
	}
}

func (a *Analyzer) newConn(key connKey, srcLo bool, f *probe.Frame, pkt int, ts time.Time) *conn {
	var c *conn
	if n := len(a.free); n > 0 {
		c, a.free = a.free[n-1], a.free[:n-1]
		c.reset()
	} else {
		c = &conn{}
	}
	c.init(key, srcLo, f, pkt, ts, a.opt.MaxSteps)
	a.stats.Connections++
	return c
}

// makeRoom judges early the connections quiet longest, a sixteenth of
// Options.MaxOpen, when one more would pass Options.MaxOpen. Picking them
// from a copy of the packet numbers keeps the cost to a few operations per
// connection made, and nothing on the path of a segment.
func (a *Analyzer) makeRoom() {
	if len(a.conns) < a.opt.MaxOpen {
		return
	}
	open := a.scratch[:0]
	for _, c := range a.conns {
		open = append(open, lastSeen{c.lastPkt, c})
	}
	slices.SortFunc(open, func(x, y lastSeen) int { return x.pkt - y.pkt })
	quiet := open[:max(1, len(open)-a.opt.MaxOpen+1, a.opt.MaxOpen/16)]
	slices.SortFunc(quiet, func(x, y lastSeen) int { return x.c.firstPkt - y.c.firstPkt })
	for _, q := range quiet {
		a.stats.Crowded++
		a.finalize(q.c, endCrowded)
	}
	clear(open)
	a.scratch = open[:0]
}

// lastSeen is an open connection and the number of its last packet.
type lastSeen struct {
	pkt int
	c   *conn
}

// expire forgets closed connections past their linger time and reports
// connections idle for too long. now has just advanced.
func (a *Analyzer) expire() {
	for a.tombHead < len(a.tombs) {
		tb := &a.tombs[a.tombHead]
		if len(a.tombs)-a.tombHead <= maxTombstones && a.now.Sub(tb.at) < a.opt.Linger {
			break
		}
		if a.closed[tb.key].gen == tb.gen {
			delete(a.closed, tb.key)
		}
		a.tombHead++
	}
	if a.tombHead > 1024 && a.tombHead*2 > len(a.tombs) {
		n := copy(a.tombs, a.tombs[a.tombHead:])
		a.tombs, a.tombHead = a.tombs[:n], 0
	}
	if a.opt.IdleTimeout > 0 && !a.now.Before(a.nextSweep) {
		a.nextSweep = a.now.Add(a.opt.IdleTimeout / 2)
		var idle []*conn
		for _, c := range a.conns {
			if !c.last.IsZero() && a.now.Sub(c.last) >= a.opt.IdleTimeout {
				idle = append(idle, c)
			}
		}
		slices.SortFunc(idle, func(x, y *conn) int { return x.firstPkt - y.firstPkt })
		for _, c := range idle {
			a.finalize(c, endIdle)
		}
	}
}

// finalize judges a connection, hands its result on, and frees its state.
// A connection that closed leaves a tombstone for Options.Linger.
func (a *Analyzer) finalize(c *conn, why endReason) {
	c.end = why
	c.checksumVerdicts(a)
	v := c.verdict()
	a.summary[v]++
	keep := !a.opt.OnlyFailures || (v != report.Pass && v != report.Info && v != report.Skip)
	if keep {
		res := c.result(&a.texts)
		if a.opt.OnResult != nil {
			a.opt.OnResult(res)
		} else {
			a.results = append(a.results, keptResult{first: c.firstPkt, res: res})
		}
	}
	if why == endClosed {
		a.tombGen++
		a.closed[c.key] = c.tombstone(a.tombGen)
		a.tombs = append(a.tombs, tomb{key: c.key, gen: a.tombGen, at: c.last})
	}
	if a.conns[c.key] == c {
		delete(a.conns, c.key)
	}
	c.release()
	if len(a.free) < 1024 {
		a.free = append(a.free, c)
	}
}

// Stats returns the counts so far.
func (a *Analyzer) Stats() Stats { return a.stats }

// Finish judges the connections still open (their close is not in the
// capture) and returns the report. Call it once.
func (a *Analyzer) Finish() *report.Report {
	if !a.finished {
		a.finished = true
		why := endEOF
		if a.damage != nil {
			why = endDamage
		}
		var open []*conn
		for _, c := range a.conns {
			open = append(open, c)
		}
		slices.SortFunc(open, func(x, y *conn) int { return x.firstPkt - y.firstPkt })
		for _, c := range open {
			a.finalize(c, why)
		}
		clear(a.conns)
		clear(a.closed)
		a.tombs, a.free = nil, nil
	}
	rep := &report.Report{
		Command:    "analyze",
		Target:     report.Target{Address: a.name},
		Started:    a.start,
		DurationMS: report.Millis(time.Since(a.start)),
		Summary:    report.Summary{},
	}
	for v, n := range a.summary {
		rep.Summary[v] = n
	}
	slices.SortStableFunc(a.results, func(x, y keptResult) int { return x.first - y.first })
	rep.Results = make([]report.Result, len(a.results))
	for i := range a.results {
		rep.Results[i] = a.results[i].res
	}
	rep.Notes = a.notes()
	return rep
}

// notes describes what was read, for the report.
func (a *Analyzer) notes() []string {
	s := &a.stats
	var notes []string
	format := s.Format
	if format == "" {
		format = "no capture"
	}
	notes = append(notes, fmt.Sprintf("read %s (%s): %s in %s", plural(s.Packets, "packet"), format, plural(s.TCP, "TCP segment"), plural(s.Connections, "connection")))
	var skipped []string
	add := func(n uint64, what string) {
		if n > 0 {
			skipped = append(skipped, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(s.NonTCP, "not TCP")
	add(s.Fragments, "IP fragments (not reassembled, not judged)")
	add(s.Truncated, "cut by the snapshot length (judged as far as their headers go)")
	add(s.Malformed, "TCP segments with a damaged header")
	add(s.Undecodable, "undecodable")
	add(s.UnsupportedLink, "of link types analyze cannot take apart")
	add(s.AfterClose, "segments after their connection closed (retransmissions, not judged)")
	if len(skipped) > 0 {
		notes = append(notes, "packets: "+strings.Join(skipped, ", "))
	}
	if s.Crowded > 0 {
		notes = append(notes, fmt.Sprintf("%s judged before their end: more than %d were open at once, the most followed", plural(s.Crowded, "connection"), a.opt.MaxOpen))
	}
	if !s.First.IsZero() {
		notes = append(notes, fmt.Sprintf("capture time: %s to %s (%v)", s.First.Format(time.RFC3339Nano), s.Last.Format(time.RFC3339Nano), s.Last.Sub(s.First)))
	}
	if a.damage != nil {
		var fe *pcap.FormatError
		msg := a.damage.Error()
		if errors.As(a.damage, &fe) {
			msg = fe.Error()
		}
		notes = append(notes, fmt.Sprintf("the capture is damaged (%s): everything before the damage is judged", msg))
	}
	if a.opt.OnlyFailures {
		notes = append(notes, "only connections that did not pass are listed; the summary counts them all")
	}
	return notes
}

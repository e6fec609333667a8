package reflector

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"synprobe/internal/netns"
	"synprobe/probe"
)

// Defaults and bounds of a Config.
const (
	DefaultMaxRecords = 65536
	DefaultExpiry     = 2 * time.Minute
	// MaxMaxRecords bounds MaxRecords: about 250 bytes a record, 256 MiB.
	MaxMaxRecords = 1 << 20
	// MaxReportClients is how many report clients are served at once;
	// more are disconnected at once.
	MaxReportClients = 16
	// MaxProbeConns is how many connections to the listen port are kept
	// open at once; more are closed as they are accepted.
	MaxProbeConns = 256
	// ReportReadTimeout bounds the wait for a request line, and
	// ReportWriteTimeout the writing of the answer.
	ReportReadTimeout  = 5 * time.Second
	ReportWriteTimeout = 10 * time.Second
	// ProbeIdleTimeout closes a probe connection that sent nothing for
	// that long.
	ProbeIdleTimeout = 30 * time.Second
)

// ErrNotLocal is the cause of a Start error when the listen address is on
// no interface of the namespace (an environment problem, like
// probe.ErrPermission).
var ErrNotLocal = errors.New("address is not on any interface here")

// Config describes a reflector.
type Config struct {
	// Listen is the probed address and port: an ordinary TCP listener runs
	// there, and the segments to and from it are recorded. The address
	// must be a specific one (not 0.0.0.0 or ::) on an Ethernet interface.
	Listen netip.AddrPort
	// ReportPort is the report port, on Listen's address; 0 means Listen's
	// port + 1.
	ReportPort uint16
	// Allow are the report clients answered; none means nobody is.
	Allow []netip.Prefix
	// MaxRecords bounds the records kept (the oldest are overwritten); 0
	// means DefaultMaxRecords.
	MaxRecords int
	// Expiry is how long a record is kept; 0 means DefaultExpiry.
	Expiry time.Duration
	// CaptureOnly records Listen without listening there: a server of
	// the host's own answers on it (the reflector then sees the real
	// service's traffic). Without it the reflector listens itself, and the
	// port must be free.
	CaptureOnly bool
	// Interface captures on this interface instead of the one holding
	// Listen's address.
	Interface string
	// NetNS is the network namespace (a descriptor, internal/netns) to
	// listen and capture in; 0 is the current one.
	NetNS int
	// Logf, if set, gets one line per notable event (refused clients,
	// capture errors, queries).
	Logf func(format string, args ...any)
}

func (c *Config) check() error {
	a := c.Listen.Addr()
	switch {
	case !c.Listen.IsValid():
		return errors.New("no listen address")
	case a.IsUnspecified():
		return fmt.Errorf("listen address %v: want a specific address, not a wildcard (the reflector binds the given address only)", a)
	case a.Is4In6():
		return fmt.Errorf("listen address %v: an IPv4-mapped IPv6 address; give it as IPv4", a)
	case a.IsMulticast():
		return fmt.Errorf("listen address %v: a multicast address", a)
	case c.Listen.Port() == 0:
		return fmt.Errorf("listen address %v: want a port from 1 to 65535", c.Listen)
	case c.ReportPort == 0 && c.Listen.Port() == 65535:
		return fmt.Errorf("listen port 65535 has no next port for reports: give a report port")
	case c.ReportPort == c.Listen.Port():
		return fmt.Errorf("report port %d is the listen port", c.ReportPort)
	case c.MaxRecords < 0 || c.MaxRecords > MaxMaxRecords:
		return fmt.Errorf("max records %d: want 1 to %d", c.MaxRecords, MaxMaxRecords)
	case c.Expiry < 0:
		return fmt.Errorf("expiry %v is negative", c.Expiry)
	}
	for _, p := range c.Allow {
		if !p.IsValid() {
			return fmt.Errorf("allow list: invalid prefix %v", p)
		}
	}
	return nil
}

// Stats are a reflector's counters.
type Stats struct {
	Captured     uint64 // segments recorded
	Undecodable  uint64 // frames that passed the filter but are no whole TCP header
	KernelDrops  uint64 // frames the capture socket lost
	Kept         int    // records kept now
	Overwritten  uint64 // records overwritten before they expired
	ProbeConns   uint64 // connections accepted on the listen port
	ProbeRefused uint64 // of them, closed at once (too many open)
	Queries      uint64 // requests answered
	BadRequests  uint64 // requests refused as malformed
	Refused      uint64 // report clients not in the allow list
	Busy         uint64 // report clients turned away (too many at once)
}

// Server is a running reflector.
type Server struct {
	cfg       Config
	listen    netip.AddrPort
	report    netip.AddrPort
	iface     string
	link      *probe.PacketLink
	probeLn   net.Listener
	reportLn  net.Listener
	store     *store
	reportSem chan struct{}
	probeSem  chan struct{}

	wg        sync.WaitGroup
	closeOnce sync.Once
	closed    chan struct{}
	failed    chan error // the capture's fatal error, at most one

	mu    sync.Mutex // guards conns
	conns map[net.Conn]bool

	captured, undecodable, probeConns, probeRefused atomic.Uint64
	queries, badRequests, refused, busy             atomic.Uint64
}

// Start starts a reflector: the capture first, so that the first
// connection's segments are recorded, then the listeners. Close stops it.
// Errors name the step; the cause is probe.ErrPermission without the
// privilege to capture and ErrNotLocal when the address is not here.
func Start(cfg Config) (*Server, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("start reflector: %w", err)
	}
	if cfg.MaxRecords == 0 {
		cfg.MaxRecords = DefaultMaxRecords
	}
	if cfg.Expiry == 0 {
		cfg.Expiry = DefaultExpiry
	}
	if cfg.ReportPort == 0 {
		cfg.ReportPort = cfg.Listen.Port() + 1
	}
	s := &Server{
		cfg:       cfg,
		listen:    cfg.Listen,
		report:    netip.AddrPortFrom(cfg.Listen.Addr(), cfg.ReportPort),
		store:     newStore(cfg.MaxRecords, cfg.Expiry),
		reportSem: make(chan struct{}, MaxReportClients),
		probeSem:  make(chan struct{}, MaxProbeConns),
		closed:    make(chan struct{}),
		failed:    make(chan error, 1),
		conns:     map[net.Conn]bool{},
	}
	prog, err := portFilter(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("start reflector: %w", err)
	}
	s.iface = cfg.Interface
	if s.iface == "" {
		if s.iface, err = interfaceOf(cfg.NetNS, cfg.Listen.Addr()); err != nil {
			return nil, fmt.Errorf("start reflector on %v: %w", cfg.Listen, err)
		}
	}
	s.link, err = probe.OpenPacketLink(probe.PacketLinkConfig{NetNS: cfg.NetNS, Interface: s.iface, RawFilter: prog})
	if err != nil {
		return nil, fmt.Errorf("start reflector: capture: %w", err)
	}
	err = netns.Do(cfg.NetNS, func() error {
		var err error
		if !cfg.CaptureOnly {
			if s.probeLn, err = listenTCP(s.listen); err != nil {
				return err
			}
		}
		s.reportLn, err = listenTCP(s.report)
		return err
	})
	if err != nil {
		if s.probeLn != nil {
			s.probeLn.Close()
		}
		s.link.Close()
		return nil, fmt.Errorf("start reflector: %w", err)
	}
	s.wg.Add(2)
	go s.capture()
	go s.acceptReports()
	if s.probeLn != nil {
		s.wg.Add(1)
		go s.acceptProbes()
	}
	return s, nil
}

func listenTCP(ap netip.AddrPort) (net.Listener, error) {
	network := "tcp4"
	if ap.Addr().Is6() {
		network = "tcp6"
	}
	ln, err := net.Listen(network, ap.String())
	if err != nil {
		if isAddrNotAvail(err) {
			return nil, fmt.Errorf("listen on %v: %w", ap, ErrNotLocal)
		}
		return nil, fmt.Errorf("listen on %v: %w", ap, err)
	}
	return ln, nil
}

// interfaceOf names the interface in namespace ns that holds addr.
func interfaceOf(ns int, addr netip.Addr) (string, error) {
	var name string
	err := netns.Do(ns, func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return fmt.Errorf("list interfaces: %w", err)
		}
		for _, ifi := range ifs {
			addrs, err := ifi.Addrs()
			if err != nil {
				continue
			}
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == addr.WithZone("") {
						name = ifi.Name
						return nil
					}
				}
			}
		}
		return fmt.Errorf("find interface of %v: %w", addr, ErrNotLocal)
	})
	return name, err
}

// Listen is the address and port listened on and recorded.
func (s *Server) Listen() netip.AddrPort { return s.listen }

// Report is the report service's address and port.
func (s *Server) Report() netip.AddrPort { return s.report }

// Interface is the interface captured on.
func (s *Server) Interface() string { return s.iface }

// Stats reports the counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Captured:     s.captured.Load(),
		Undecodable:  s.undecodable.Load(),
		Kept:         s.store.len(time.Now()),
		ProbeConns:   s.probeConns.Load(),
		ProbeRefused: s.probeRefused.Load(),
		Queries:      s.queries.Load(),
		BadRequests:  s.badRequests.Load(),
		Refused:      s.refused.Load(),
		Busy:         s.busy.Load(),
	}
	s.store.mu.Lock()
	st.Overwritten = s.store.overwritten
	s.store.mu.Unlock()
	if ls, err := s.link.Stats(); err == nil {
		st.KernelDrops = ls.Drops
	}
	return st
}

// Failed delivers the error that stopped the capture, if it stops before
// Close.
func (s *Server) Failed() <-chan error { return s.failed }

// Close stops the reflector: the listeners, every open connection and the
// capture, and waits for its goroutines.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		err = s.reportLn.Close()
		if s.probeLn != nil {
			err = errors.Join(s.probeLn.Close(), err)
		}
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		if lerr := s.link.Close(); lerr != nil {
			err = errors.Join(err, lerr)
		}
		s.wg.Wait()
		if err != nil {
			err = fmt.Errorf("close reflector on %v: %w", s.listen, err)
		}
	})
	return err
}

// Serve runs a reflector until ctx is done, then closes it.
func Serve(ctx context.Context, cfg Config) error {
	s, err := Start(cfg)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return s.Close()
	case err := <-s.failed:
		return errors.Join(err, s.Close())
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// track registers an open connection so that Close can close it; it
// reports false when the server is closing.
func (s *Server) track(c net.Conn, on bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !on {
		delete(s.conns, c)
		return true
	}
	select {
	case <-s.closed:
		return false
	default:
	}
	s.conns[c] = true
	return true
}

// capture records every frame the filter passes until the link closes.
func (s *Server) capture() {
	defer s.wg.Done()
	var f probe.Frame
	for {
		c, err := s.link.ReadFrame()
		if err != nil {
			if errors.Is(err, probe.ErrLinkClosed) {
				return
			}
			s.logf("capture on %s stopped: %v", s.iface, err)
			s.failed <- fmt.Errorf("reflector capture on %s: %w", s.iface, err)
			return
		}
		pieces, err := probe.SplitSuperFrame(c)
		if err != nil {
			pieces = []probe.Capture{c} // recorded whole: its headers are still true
		}
		for _, p := range pieces {
			r, err := newRecord(p, &f)
			if err != nil {
				s.undecodable.Add(1)
				continue
			}
			s.store.add(r)
			s.captured.Add(1)
		}
	}
}

// acceptProbes accepts connections on the listen port and reads them
// until the peer stops: the kernel does the TCP, the reflector only keeps
// the connection open and its receive window moving.
func (s *Server) acceptProbes() {
	defer s.wg.Done()
	for {
		c, err := s.probeLn.Accept()
		if err != nil {
			if s.isClosed() {
				return
			}
			s.logf("accept on %v: %v", s.listen, err)
			time.Sleep(10 * time.Millisecond) // out of descriptors: let some close
			continue
		}
		s.probeConns.Add(1)
		select {
		case s.probeSem <- struct{}{}:
		default:
			s.probeRefused.Add(1)
			c.Close()
			continue
		}
		if !s.track(c, true) {
			c.Close()
			<-s.probeSem
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.probeSem }()
			defer s.track(c, false)
			defer c.Close()
			buf := make([]byte, 4096)
			for {
				c.SetReadDeadline(time.Now().Add(ProbeIdleTimeout))
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}()
	}
}

func (s *Server) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

func (s *Server) allowed(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range s.cfg.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// acceptReports serves report clients.
func (s *Server) acceptReports() {
	defer s.wg.Done()
	for {
		c, err := s.reportLn.Accept()
		if err != nil {
			if s.isClosed() {
				return
			}
			s.logf("accept on report port %v: %v", s.report, err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		var peer netip.AddrPort
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			peer = ta.AddrPort()
		}
		if !s.allowed(peer.Addr()) {
			n := s.refused.Add(1)
			// Counted, and logged sparingly: a scan must not flood the log.
			if n <= 10 || n%100 == 0 {
				s.logf("report: refused %v, not in the allow list (%d refused so far)", peer, n)
			}
			closeAbruptly(c)
			continue
		}
		select {
		case s.reportSem <- struct{}{}:
		default:
			s.busy.Add(1)
			s.logf("report: %v turned away, %d clients already served", peer, MaxReportClients)
			c.Close()
			continue
		}
		if !s.track(c, true) {
			c.Close()
			<-s.reportSem
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.reportSem }()
			defer s.track(c, false)
			defer c.Close()
			s.serveReport(c, peer)
		}()
	}
}

// closeAbruptly closes c with a RST instead of a FIN where it can: a
// refused client learns nothing but that it was refused.
func closeAbruptly(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// serveReport answers one request.
func (s *Server) serveReport(c net.Conn, peer netip.AddrPort) {
	c.SetReadDeadline(time.Now().Add(ReportReadTimeout))
	br := bufio.NewReaderSize(io.LimitReader(c, MaxRequestLen), MaxRequestLen)
	line, err := br.ReadSlice('\n')
	bw := bufio.NewWriterSize(c, 64<<10)
	c.SetWriteDeadline(time.Now().Add(ReportWriteTimeout))
	var req Request
	switch {
	case err == nil:
		req, err = parseRequest(line[:len(line)-1])
	case errors.Is(err, bufio.ErrBufferFull), errors.Is(err, io.EOF) && len(line) == MaxRequestLen:
		err = requestErr("longer than %d bytes", MaxRequestLen-1)
	case errors.Is(err, io.EOF):
		err = requestErr("no complete line (a request ends with a newline)")
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			err = requestErr("no request line within %v", ReportReadTimeout)
		} else {
			return // the client went away
		}
	}
	if err == nil && req.Port != 0 && req.Port != s.listen.Port() {
		err = requestErr("port: this reflector records port %d only", s.listen.Port())
	}
	if err != nil {
		s.badRequests.Add(1)
		s.logf("report: %v: %v", peer, err)
		writeLine(bw, wireError{Type: lineError, Error: err.Error()})
		if bw.Flush() == nil {
			drain(c)
		}
		return
	}
	s.queries.Add(1)
	now := time.Now()
	recs, truncated, st := s.store.find(now, req, MaxAnswerRecords)
	for _, f := range recs {
		r := &f.rec
		writeLine(bw, wireRecord{
			Type:          lineRecord,
			N:             r.n,
			Time:          r.time.UTC().Format(time.RFC3339Nano),
			AgeUS:         now.Sub(r.time).Microseconds(),
			Dir:           r.dir.String(),
			Header:        hex.EncodeToString(r.header),
			PayloadLen:    r.payloadLen,
			PayloadSHA256: hex.EncodeToString(r.digest[:]),
			IPChecksum:    checksumName(r.ipSum),
			TCPChecksum:   checksumName(r.tcpSum),
			Match:         f.match.names(),
		})
	}
	end := wireEnd{
		Type:        lineEnd,
		V:           ProtocolVersion,
		Port:        s.listen.Port(),
		Records:     len(recs),
		Truncated:   truncated,
		Kept:        st.kept,
		Capacity:    s.cfg.MaxRecords,
		ExpiryMS:    s.cfg.Expiry.Milliseconds(),
		Overwritten: st.overwritten,
	}
	if st.kept > 0 {
		end.OldestAgeUS = now.Sub(st.oldest).Microseconds()
	}
	if ls, err := s.link.Stats(); err == nil {
		end.KernelDrops = ls.Drops
	}
	writeLine(bw, end)
	if err := bw.Flush(); err != nil {
		s.logf("report: %v: write answer: %v", peer, err)
	}
}

// drain ends the answer to a bad request: closing a socket with unread
// bytes in it sends a RST, which could overtake the error line. The rest
// of the request is read (bounded, for a second) after the FIN is sent.
func drain(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	io.CopyN(io.Discard, c, 64<<10)
}

// writeLine writes v as one JSON line; a write error shows at Flush.
func writeLine(w *bufio.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return // the wire types always marshal
	}
	w.Write(b)
	w.WriteByte('\n')
}

package targets

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"synprobe/internal/exclude"
)

// MaxLineLength bounds one line of a targets file (an nmap -oG line lists
// every port of a host).
const MaxLineLength = 1 << 20

// MaxCIDRBits bounds the host bits of a CIDR target: 2^32 addresses, an
// IPv4 /0 or an IPv6 /96. A larger IPv6 prefix cannot be walked.
const MaxCIDRBits = 32

// LookupFunc resolves a host name, as net.Resolver.LookupNetIP does.
type LookupFunc func(ctx context.Context, network, host string) ([]netip.Addr, error)

// Options says how a Reader reads and filters.
type Options struct {
	// Name names the input in errors ("FILE:LINE: ...").
	Name string
	// DefaultPort is the port of lines that name none (HOST, CIDR, a zmap
	// row without sport); 0 makes such lines an error.
	DefaultPort uint16
	// Exclude, if set, drops the addresses it matches (counted per
	// reason).
	Exclude *exclude.List
	// Shard keeps only the targets of one shard; the zero Shard keeps all.
	Shard Shard
	// Done, if set, drops the targets it holds (a resumed run).
	Done *Done
	// Lookup resolves host names; nil makes a name an error.
	Lookup LookupFunc
	// Context bounds name lookups; nil is context.Background().
	Context context.Context
}

// Stats counts what a Reader read and what it dropped.
type Stats struct {
	// Lines is the number of lines read.
	Lines int
	// Targets is the number of targets Next returned.
	Targets uint64
	// Excluded counts the addresses each exclusion reason dropped.
	Excluded map[string]uint64
	// OtherShard counts the targets of other shards.
	OtherShard uint64
	// Done counts the targets a previous run did (Options.Done).
	Done uint64
	// NotOpen counts the ports of scan outputs that were not open TCP
	// ports (closed, filtered, UDP, a masscan banner line).
	NotOpen uint64
}

// ExcludedTotal is the number of excluded addresses.
func (s Stats) ExcludedTotal() uint64 {
	var n uint64
	for _, c := range s.Excluded {
		n += c
	}
	return n
}

// LineError is a line the Reader could not read.
type LineError struct {
	Name string
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Name, e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// Reader streams targets. It is not safe for concurrent use.
type Reader struct {
	br    *bufio.Reader
	opt   Options
	stats Stats
	line  int
	err   error

	// pending are targets of the current line not returned yet (an nmap
	// line lists many ports), before the filters.
	pending []netip.AddrPort
	// cidr is the CIDR being walked: what remains of it after the
	// exclusions, the next address, and the port.
	cidr     []netip.Prefix
	cidrNext netip.Addr
	cidrPort uint16

	// zmap is the column layout of a zmap CSV header, once one was read.
	zmap *zmapColumns
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader, opt Options) *Reader {
	if opt.Name == "" {
		opt.Name = "targets"
	}
	if opt.Context == nil {
		opt.Context = context.Background()
	}
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), opt: opt, stats: Stats{Excluded: map[string]uint64{}}}
}

// Stats returns the counts so far.
func (r *Reader) Stats() Stats {
	s := r.stats
	s.Excluded = make(map[string]uint64, len(r.stats.Excluded))
	for k, v := range r.stats.Excluded {
		s.Excluded[k] = v
	}
	return s
}

// Next returns the next target that passes the filters; io.EOF at the end,
// a *LineError for a line it cannot read (the Reader stops there).
func (r *Reader) Next() (netip.AddrPort, error) {
	for {
		if r.err != nil {
			return netip.AddrPort{}, r.err
		}
		if ap, ok := r.nextCandidate(); ok {
			if r.keep(ap) {
				r.stats.Targets++
				return ap, nil
			}
			continue
		}
		if err := r.readLine(); err != nil {
			r.err = err
		}
	}
}

// nextCandidate returns the next target of the current line, before the
// shard and resume filters.
func (r *Reader) nextCandidate() (netip.AddrPort, bool) {
	if len(r.pending) > 0 {
		ap := r.pending[0]
		r.pending = r.pending[1:]
		return ap, true
	}
	for len(r.cidr) > 0 {
		p := r.cidr[0]
		if !r.cidrNext.IsValid() {
			r.cidrNext = p.Addr()
		}
		if !p.Contains(r.cidrNext) {
			r.cidr = r.cidr[1:]
			r.cidrNext = netip.Addr{}
			continue
		}
		a := r.cidrNext
		r.cidrNext = a.Next()
		if !r.cidrNext.IsValid() { // the last address of the space
			r.cidr = r.cidr[1:]
		}
		return netip.AddrPortFrom(a, r.cidrPort), true
	}
	return netip.AddrPort{}, false
}

// keep applies the shard and resume filters (exclusions were applied when
// the line was read).
func (r *Reader) keep(ap netip.AddrPort) bool {
	if !r.opt.Shard.Has(ap) {
		r.stats.OtherShard++
		return false
	}
	if r.opt.Done.Has(ap) {
		r.stats.Done++
		return false
	}
	return true
}

// readLine reads one line into pending or cidr; io.EOF at the end.
func (r *Reader) readLine() error {
	raw, err := r.br.ReadSlice('\n')
	for errors.Is(err, bufio.ErrBufferFull) {
		// A line longer than the buffer: gather it, within bounds.
		buf := append([]byte(nil), raw...)
		for errors.Is(err, bufio.ErrBufferFull) {
			raw, err = r.br.ReadSlice('\n')
			buf = append(buf, raw...)
			if len(buf) > MaxLineLength {
				return &LineError{r.opt.Name, r.line + 1, fmt.Errorf("line longer than %d bytes", MaxLineLength)}
			}
		}
		raw = buf
	}
	if len(raw) == 0 && err != nil {
		if err == io.EOF {
			return io.EOF
		}
		return fmt.Errorf("read %s: %w", r.opt.Name, err)
	}
	if err != nil && err != io.EOF {
		return fmt.Errorf("read %s: %w", r.opt.Name, err)
	}
	r.line++
	r.stats.Lines++
	if perr := r.parseLine(string(bytes.TrimSpace(raw))); perr != nil {
		return &LineError{r.opt.Name, r.line, perr}
	}
	return nil
}

// parseLine recognises a line's format and queues its targets.
func (r *Reader) parseLine(s string) error {
	switch {
	case s == "", s[0] == '#', s == "[", s == "]", s == "],":
		return nil // blank, comment, the brackets of a JSON array (masscan -oJ)
	case s[0] == '{':
		return r.parseJSON(strings.TrimSuffix(s, ","))
	case strings.HasPrefix(s, "Host:"):
		return r.parseNmap(s)
	}
	if f := strings.Fields(s); len(f) >= 4 && isMasscanState(f[0]) {
		return r.parseMasscanList(f)
	}
	if strings.Contains(s, ",") || s == "saddr" {
		return r.parseZmap(s)
	}
	if strings.Contains(s, "/") {
		return r.parseCIDR(s)
	}
	return r.parseHostPort(s)
}

// add queues one address and port, unless an exclusion drops it.
func (r *Reader) add(a netip.Addr, port uint16) {
	a = a.Unmap()
	if r.opt.Exclude != nil {
		if rule, ok := r.opt.Exclude.Match(a); ok {
			r.stats.Excluded[rule.Reason]++
			return
		}
	}
	r.pending = append(r.pending, netip.AddrPortFrom(a, port))
}

// parseAddr reads an address of a scan output (no names, no zones).
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q: an address with a zone cannot be a target", s)
	}
	return a.Unmap(), nil
}

// parsePort reads a port from 1 to 65535.
func parsePort(s string) (uint16, error) {
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return uint16(p), nil
}

// defaultPort is the port of a line without one.
func (r *Reader) defaultPort(what string) (uint16, error) {
	if r.opt.DefaultPort == 0 {
		return 0, fmt.Errorf("%s names no port: give HOST:PORT, or --port for every line without one", what)
	}
	return r.opt.DefaultPort, nil
}

// parseHostPort reads HOST:PORT, [V6]:PORT, or a bare HOST with the
// default port; HOST is an address or, with a resolver, a name.
func (r *Reader) parseHostPort(s string) error {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Addr().Zone() != "" {
			return fmt.Errorf("%q: an address with a zone cannot be a target", s)
		}
		if ap.Port() == 0 {
			return fmt.Errorf("%q: port 0 cannot be a target", s)
		}
		r.add(ap.Addr(), ap.Port())
		return nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return fmt.Errorf("%q: an address with a zone cannot be a target", s)
		}
		port, err := r.defaultPort(fmt.Sprintf("%q", s))
		if err != nil {
			return err
		}
		r.add(a, port)
		return nil
	}
	host, portText, err := net.SplitHostPort(s)
	var port uint16
	if err == nil {
		if port, err = parsePort(portText); err != nil {
			return fmt.Errorf("%q: %v", s, err)
		}
	} else {
		host = s
	}
	if !isHostName(host) {
		return fmt.Errorf("%q is not HOST:PORT, HOST, CIDR or a line of masscan, nmap -oG, zmap or synprobe sweep output", s)
	}
	if port == 0 {
		if port, err = r.defaultPort(fmt.Sprintf("%q", s)); err != nil {
			return err
		}
	}
	if r.opt.Lookup == nil {
		return fmt.Errorf("%q: host names are not resolved here; give an address", host)
	}
	addrs, err := r.opt.Lookup(r.opt.Context, "ip", host)
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("cannot resolve %q: %v", host, err)
	}
	a := addrs[0]
	for _, x := range addrs {
		if x.Unmap().Is4() {
			a = x // IPv4 first, as the single-target commands do
			break
		}
	}
	r.add(a, port)
	return nil
}

// isHostName reports whether s looks like a DNS name (letters, digits,
// hyphens, dots, underscores).
func isHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// parseCIDR starts walking a CIDR with the default port, less the
// exclusions (counted here, for the whole prefix).
func (r *Reader) parseCIDR(s string) error {
	p, err := exclude.ParsePrefix(s)
	if err != nil {
		return err
	}
	if host := p.Addr().BitLen() - p.Bits(); host > MaxCIDRBits {
		return fmt.Errorf("%s has 2^%d addresses: at most 2^%d can be walked (an IPv6 /%d)", p, host, MaxCIDRBits, 128-MaxCIDRBits)
	}
	port, err := r.defaultPort(p.String())
	if err != nil {
		return err
	}
	rest := []netip.Prefix{p}
	if r.opt.Exclude != nil {
		set := r.opt.Exclude.Apply(rest)
		for reason, n := range set.Excluded {
			r.stats.Excluded[reason] += n
		}
		rest = set.Prefixes
	}
	r.cidr, r.cidrNext, r.cidrPort = rest, netip.Addr{}, port
	return nil
}

func isMasscanState(s string) bool {
	switch s {
	case "open", "closed", "banner":
		return true
	}
	return false
}

// parseMasscanList reads a masscan -oL line: "open tcp 80 10.0.0.1 1700000000".
func (r *Reader) parseMasscanList(f []string) error {
	port, err := parsePort(f[2])
	if err != nil {
		return fmt.Errorf("masscan line: %v", err)
	}
	a, err := parseAddr(f[3])
	if err != nil {
		return fmt.Errorf("masscan line: %v", err)
	}
	if f[0] != "open" || f[1] != "tcp" {
		r.stats.NotOpen++
		return nil
	}
	r.add(a, port)
	return nil
}

// parseNmap reads an nmap -oG line: "Host: 10.0.0.1 (name)\tPorts: 80/open/tcp//http///, ...".
// A line without ports (Status: Up) has no targets.
func (r *Reader) parseNmap(s string) error {
	fields := strings.Split(s, "\t")
	hostField := strings.Fields(strings.TrimPrefix(fields[0], "Host:"))
	if len(hostField) == 0 {
		return errors.New("nmap -oG line: no address after \"Host:\"")
	}
	a, err := parseAddr(hostField[0])
	if err != nil {
		return fmt.Errorf("nmap -oG line: %v", err)
	}
	for _, f := range fields[1:] {
		ports, ok := strings.CutPrefix(strings.TrimSpace(f), "Ports:")
		if !ok {
			continue
		}
		for _, entry := range strings.Split(ports, ",") {
			parts := strings.Split(strings.TrimSpace(entry), "/")
			if len(parts) < 3 {
				return fmt.Errorf("nmap -oG line: port entry %q is not PORT/STATE/PROTO/... (nmap's form)", strings.TrimSpace(entry))
			}
			port, err := parsePort(parts[0])
			if err != nil {
				return fmt.Errorf("nmap -oG line: %v", err)
			}
			if parts[1] != "open" || parts[2] != "tcp" {
				r.stats.NotOpen++
				continue
			}
			r.add(a, port)
		}
	}
	return nil
}

// zmapColumns are the columns of zmap's CSV output that name a target.
type zmapColumns struct {
	n                             int
	saddr, sport, success, repeat int
}

// parseZmap reads zmap's CSV output: a header naming saddr (and sport,
// success, repeat when asked for with -f), then rows. In zmap's terms the
// responder is the source: saddr is the target, sport its port.
func (r *Reader) parseZmap(s string) error {
	cols := strings.Split(s, ",")
	for i := range cols {
		cols[i] = strings.TrimSpace(cols[i])
	}
	if containsString(cols, "saddr") { // a header: no row holds that word
		z := &zmapColumns{n: len(cols), saddr: -1, sport: -1, success: -1, repeat: -1}
		for i, c := range cols {
			switch c {
			case "saddr":
				z.saddr = i
			case "sport":
				z.sport = i
			case "success":
				z.success = i
			case "repeat":
				z.repeat = i
			}
		}
		r.zmap = z
		return nil
	}
	z := r.zmap
	if z == nil {
		return errors.New("a CSV line with no zmap header naming saddr before it")
	}
	if len(cols) != z.n {
		return fmt.Errorf("zmap CSV row has %d fields, its header %d", len(cols), z.n)
	}
	if z.success >= 0 && !isTrue(cols[z.success]) || z.repeat >= 0 && isTrue(cols[z.repeat]) {
		r.stats.NotOpen++
		return nil
	}
	a, err := parseAddr(cols[z.saddr])
	if err != nil {
		return fmt.Errorf("zmap CSV row: saddr: %v", err)
	}
	var port uint16
	if z.sport >= 0 {
		if port, err = parsePort(cols[z.sport]); err != nil {
			return fmt.Errorf("zmap CSV row: sport: %v", err)
		}
	} else if port, err = r.defaultPort("a zmap row without sport"); err != nil {
		return err
	}
	r.add(a, port)
	return nil
}

func isTrue(s string) bool { return s == "1" || s == "true" }

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// scanJSON is a JSON line of masscan -oJ/-oD or of synprobe sweep.
type scanJSON struct {
	// masscan: {"ip": "10.0.0.1", "ports": [{"port": 80, "proto": "tcp", "status": "open"}]}
	IP    string `json:"ip"`
	Ports []struct {
		Port   int    `json:"port"`
		Proto  string `json:"proto"`
		Status string `json:"status"`
	} `json:"ports"`
	// synprobe sweep: {"addr": "10.0.0.1", "port": 80, "state": "open"}
	Addr  string `json:"addr"`
	Port  int    `json:"port"`
	State string `json:"state"`
}

// parseJSON reads a masscan or sweep JSON line.
func (r *Reader) parseJSON(s string) error {
	if strings.Join(strings.Fields(s), "") == "{finished:1}" {
		return nil // masscan's (not quite JSON) end of file
	}
	var j scanJSON
	if err := json.Unmarshal([]byte(s), &j); err != nil {
		return fmt.Errorf("not a JSON object of masscan -oJ or synprobe sweep: %v", err)
	}
	switch {
	case j.IP != "":
		a, err := parseAddr(j.IP)
		if err != nil {
			return fmt.Errorf("masscan JSON: ip: %v", err)
		}
		for _, p := range j.Ports {
			if p.Port < 1 || p.Port > 65535 {
				return fmt.Errorf("masscan JSON: port %d is not from 1 to 65535", p.Port)
			}
			if p.Proto != "" && p.Proto != "tcp" || p.Status != "" && p.Status != "open" {
				r.stats.NotOpen++
				continue
			}
			r.add(a, uint16(p.Port))
		}
		return nil
	case j.Addr != "":
		a, err := parseAddr(j.Addr)
		if err != nil {
			return fmt.Errorf("sweep JSON: addr: %v", err)
		}
		if j.Port < 1 || j.Port > 65535 {
			return fmt.Errorf("sweep JSON: port %d is not from 1 to 65535", j.Port)
		}
		if j.State != "open" {
			r.stats.NotOpen++
			return nil
		}
		r.add(a, uint16(j.Port))
		return nil
	}
	return errors.New(`a JSON object with neither "ip" (masscan -oJ) nor "addr" (synprobe sweep)`)
}

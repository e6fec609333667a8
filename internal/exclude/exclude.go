package exclude

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strings"
)

// Rule excludes one prefix for a reason.
type Rule struct {
	Prefix netip.Prefix
	Reason string
}

// List is an ordered list of exclusions. The zero List excludes nothing.
type List struct {
	rules []Rule
}

// Reasons of the default exclusions.
const (
	ReasonThisNetwork   = "this network (RFC 791)"
	ReasonLoopback      = "loopback"
	ReasonLinkLocal     = "link-local"
	ReasonMulticast     = "multicast"
	ReasonReserved      = "reserved (RFC 1112)"
	ReasonUnspecified   = "unspecified"
	ReasonDocumentation = "documentation range (--allow-documentation to sweep it)"
)

var defaults = []Rule{
	{netip.MustParsePrefix("0.0.0.0/8"), ReasonThisNetwork},
	{netip.MustParsePrefix("127.0.0.0/8"), ReasonLoopback},
	{netip.MustParsePrefix("169.254.0.0/16"), ReasonLinkLocal},
	{netip.MustParsePrefix("224.0.0.0/4"), ReasonMulticast},
	{netip.MustParsePrefix("240.0.0.0/4"), ReasonReserved},
	{netip.MustParsePrefix("::/128"), ReasonUnspecified},
	{netip.MustParsePrefix("::1/128"), ReasonLoopback},
	{netip.MustParsePrefix("fe80::/10"), ReasonLinkLocal},
	{netip.MustParsePrefix("ff00::/8"), ReasonMulticast},
}

// Documentation holds the documentation ranges: RFC 5737, RFC 3849 and
// RFC 9637.
var Documentation = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("3fff::/20"),
}

// Default is the list every sweep starts from; allowDocumentation leaves
// the documentation ranges out of it (synprobe lab implies it).
func Default(allowDocumentation bool) *List {
	l := &List{rules: append([]Rule(nil), defaults...)}
	if !allowDocumentation {
		for _, p := range Documentation {
			l.rules = append(l.rules, Rule{p, ReasonDocumentation})
		}
	}
	return l
}

// Rules returns the list's rules in order.
func (l *List) Rules() []Rule { return append([]Rule(nil), l.rules...) }

// Add excludes p for reason.
func (l *List) Add(p netip.Prefix, reason string) {
	l.rules = append(l.rules, Rule{p.Masked(), reason})
}

// Match reports the first rule that excludes a.
func (l *List) Match(a netip.Addr) (Rule, bool) {
	a = a.Unmap()
	for _, r := range l.rules {
		if r.Prefix.Contains(a) {
			return r, true
		}
	}
	return Rule{}, false
}

// ParsePrefix reads a target or an exclusion: a CIDR (host bits are
// dropped, as zmap and masscan do) or a single address.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or a CIDR prefix", s)
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: a prefix has no zone", s)
		}
		return netip.PrefixFrom(p.Addr().Unmap(), unmappedBits(p)).Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or a CIDR prefix", s)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q: sweep targets have no zone", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func unmappedBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(p.Bits()-96, 0)
	}
	return p.Bits()
}

// ReadBlocklist adds the prefixes of a zmap blocklist: one address or CIDR
// per line; '#' starts a comment, blank lines are skipped. name is the
// file's name, for errors and for the reason ("in FILE").
func (l *List) ReadBlocklist(r io.Reader, name string) error {
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		p, err := ParsePrefix(text)
		if err != nil {
			return fmt.Errorf("read blocklist %s:%d: %w", name, line, err)
		}
		l.Add(p, "excluded by "+name)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read blocklist %s: %w", name, err)
	}
	return nil
}

// Set is what remains of target prefixes after a List's exclusions.
type Set struct {
	// Prefixes are the remaining targets, disjoint, in the targets' order.
	Prefixes []netip.Prefix
	// Excluded counts the addresses each reason took away (each address
	// counts once, for the first rule that matches it).
	Excluded map[string]uint64
}

// Size is the number of addresses in s, saturated at MaxUint64.
func (s *Set) Size() uint64 {
	var n uint64
	for _, p := range s.Prefixes {
		n = satAdd(n, Size(p))
	}
	return n
}

// ExcludedTotal is the number of excluded addresses.
func (s *Set) ExcludedTotal() uint64 {
	var n uint64
	for _, c := range s.Excluded {
		n = satAdd(n, c)
	}
	return n
}

// Apply removes l's exclusions from targets. Targets that overlap each
// other are swept once: a later target's addresses already covered by an
// earlier one are dropped silently.
func (l *List) Apply(targets []netip.Prefix) Set {
	s := Set{Excluded: map[string]uint64{}}
	var seen []netip.Prefix
	for _, t := range targets {
		rest := []netip.Prefix{t.Masked()}
		for _, p := range seen {
			rest = subtractAll(rest, p)
		}
		seen = append(seen, t.Masked())
		for _, r := range l.rules {
			before := sizeAll(rest)
			rest = subtractAll(rest, r.Prefix)
			if n := before - sizeAll(rest); n > 0 {
				s.Excluded[r.Reason] = satAdd(s.Excluded[r.Reason], n)
			}
		}
		s.Prefixes = append(s.Prefixes, rest...)
	}
	return s
}

// Size is the number of addresses in p, saturated at MaxUint64.
func Size(p netip.Prefix) uint64 {
	host := p.Addr().BitLen() - p.Bits()
	if host >= 64 {
		return math.MaxUint64
	}
	return 1 << host
}

func sizeAll(ps []netip.Prefix) uint64 {
	var n uint64
	for _, p := range ps {
		n = satAdd(n, Size(p))
	}
	return n
}

func satAdd(a, b uint64) uint64 {
	if a+b < a {
		return math.MaxUint64
	}
	return a + b
}

func subtractAll(ps []netip.Prefix, e netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		out = subtract(out, p, e)
	}
	return out
}

// subtract appends p minus e to out. Two prefixes that overlap nest, so
// either e covers p, or p is halved until its halves are e's or clear of it.
func subtract(out []netip.Prefix, p, e netip.Prefix) []netip.Prefix {
	if p.Addr().Is4() != e.Addr().Is4() || !p.Overlaps(e) {
		return append(out, p)
	}
	if e.Bits() <= p.Bits() {
		return out // e covers p
	}
	lo := netip.PrefixFrom(p.Addr(), p.Bits()+1)
	hi := netip.PrefixFrom(nextHalf(p), p.Bits()+1)
	out = subtract(out, lo, e)
	return subtract(out, hi, e)
}

// nextHalf is the first address of p's upper half.
func nextHalf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	bit := p.Bits() // the bit that is 1 in the upper half
	b[bit/8] |= 0x80 >> (bit % 8)
	a, _ := netip.AddrFromSlice(b)
	return a
}

package script

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Input limits: a script is a hand-written text of a few kilobytes, and
// the limits keep a huge or endless input (a wrong file, /dev/zero) from
// taking the machine's memory and time.
const (
	// DefaultMaxSize is the largest script, in bytes.
	DefaultMaxSize = 1 << 20
	// DefaultMaxLineLength is the longest line, in bytes: room for a 32 KiB
	// payload in hex.
	DefaultMaxLineLength = 64 << 10
	// DefaultMaxEvents is the most timed lines a script may have.
	DefaultMaxEvents = 20000
)

// ParseConfig is what ParseWith needs beyond the script: packetdrill's
// symbols and the input limits (0: the default).
type ParseConfig struct {
	// Defines are packetdrill's -D NAME=VALUE symbols: a word of the
	// script that is NAME (and no keyword) stands for VALUE, an integer, a
	// "string", a `command` or a word, as in packetdrill. They override
	// the script's own --define=NAME=VALUE lines.
	Defines map[string]string
	// MaxSize, MaxLineLength and MaxEvents bound the script (bytes, bytes
	// per line, timed lines).
	MaxSize       int
	MaxLineLength int
	MaxEvents     int
}

func (c ParseConfig) withDefaults() ParseConfig {
	if c.MaxSize <= 0 {
		c.MaxSize = DefaultMaxSize
	}
	if c.MaxLineLength <= 0 {
		c.MaxLineLength = DefaultMaxLineLength
	}
	if c.MaxEvents <= 0 {
		c.MaxEvents = DefaultMaxEvents
	}
	return c
}

// ParseDefine splits "NAME=VALUE" as packetdrill's -D takes it; the
// error names what is wrong.
func ParseDefine(s string) (name, value string, err error) {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return "", "", fmt.Errorf("bad definition %s: want NAME=VALUE", strconv.Quote(cut(s, 40)))
	}
	if !isSymbolName(name) {
		return "", "", fmt.Errorf("bad symbol name %s: a name is letters, digits and '_'", strconv.Quote(cut(name, 40)))
	}
	return name, value, nil
}

func isSymbolName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isWordChar(s[i]) {
			return false
		}
	}
	return true
}

// symbolLike reports whether a word looks like a symbol meant to be
// defined: upper-case letters, digits and '_', as -D names are written.
func symbolLike(b []byte) bool {
	if len(b) == 0 || !isLetter(b[0]) {
		return false
	}
	upper := false
	for _, c := range b {
		switch {
		case !isWordChar(c), 'a' <= c && c <= 'z':
			return false
		case 'A' <= c && c <= 'Z':
			upper = true
		}
	}
	return upper
}

// symbol is a defined symbol and the token it stands for.
type symbol struct {
	name string
	text []byte
	kind tokKind
}

// symbols are the symbols of one parse.
type symbols struct {
	index map[string]int32 // name: 1-based index in list
	list  []symbol
	fixed map[string]bool // given in ParseConfig: the script cannot change them
}

// keywords are packetdrill's reserved words (its lexer matches them
// before symbols) and synprobe's own: they are never symbols.
var keywords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`sa_family sin_port sin_addr msg_name msg_iov msg_flags
		msg_control cmsg_data cmsg_level cmsg_type ee_errno ee_origin ee_type ee_code ee_info
		ee_data scm_sec scm_nsec fd u32 u64 ptr events revents onoff linger htons ipv4 ipv6
		icmp udp GREv0 gre raw sum off key seq none checksum present encap psp spi mpls label
		tc ttl inet_addr inet6_addr ack eol ecr mss mtu nop sack sackOK md5 TS FO FOEXP ECN
		e0b e1b ceb tos flowlabel flags Flags val win urg wscale ect01 ect0 ect1 noecn ce id
		df nodf bad tcpsum ipsum doff reserved iplen ihl ipver`) {
		m[w] = true
	}
	return m
}()

// newSymbols makes the symbol table from ParseConfig.Defines.
func newSymbols(defs map[string]string) (*symbols, string) {
	s := &symbols{index: map[string]int32{}, fixed: map[string]bool{}}
	names := make([]string, 0, len(defs))
	for n := range defs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !isSymbolName(n) {
			return nil, fmt.Sprintf("bad symbol name %s: a name is letters, digits and '_'", strconv.Quote(cut(n, 40)))
		}
		s.define(n, defs[n])
		s.fixed[n] = true
	}
	return s, ""
}

// define sets name to value unless the caller fixed it; packetdrill's
// command line wins over the script's --define lines.
func (s *symbols) define(name, value string) {
	if s.fixed[name] || keywords[name] {
		return
	}
	sym := symbol{name: name, text: []byte(value), kind: tWord}
	switch {
	case len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"':
		sym.kind = tString
	case len(value) >= 2 && value[0] == '`' && value[len(value)-1] == '`':
		sym.kind = tBack
	case value == "":
		// strtol reads nothing as 0, and so packetdrill.
		sym.kind, sym.text = tInt, []byte("0")
	default:
		// An integer as C's strtol reads it (decimal, 0x hex, 0 octal).
		if v, err := strconv.ParseInt(value, 0, 64); err == nil && v >= 0 && !strings.ContainsAny(value, "_oObB") {
			if len(value) > 2 && (value[1] == 'x' || value[1] == 'X') {
				sym.kind = tHex
			} else {
				sym.kind, sym.text = tInt, []byte(strconv.FormatInt(v, 10))
			}
		}
	}
	if k, ok := s.index[name]; ok {
		s.list[k-1] = sym
		return
	}
	s.list = append(s.list, sym)
	s.index[name] = int32(len(s.list))
}

// value returns a defined symbol's value as an option value: a string's
// or a command's contents, else the value as written.
func (s *symbols) value(name string) (string, bool) {
	k, ok := s.index[name]
	if !ok {
		return "", false
	}
	sym := s.list[k-1]
	if sym.kind == tString || sym.kind == tBack {
		return string(sym.text[1 : len(sym.text)-1]), true
	}
	return string(sym.text), true
}

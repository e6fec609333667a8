package script

import (
	"bytes"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"synprobe/probe"
)

// maxMsgLen bounds an error message, in characters.
const maxMsgLen = 400

// maxErrors is how many problems Parse reports before it gives up.
const maxErrors = 20

// ignoredReason is why shell commands and code blocks are only recorded.
const ignoredReason = "never executed: synprobe runs nothing on any host"

// maxTime bounds event times: no probe waits for days, and the bound keeps
// every sum of times far from overflowing a time.Duration.
const maxTime = 1_000_000 * time.Second

// Parse parses a script with the default ParseConfig. file names it in
// errors and in Meta.Name. On any problem it returns a nil Script and an
// ErrorList of every problem it found (up to maxErrors), each a
// *SyntaxError. It never panics.
func Parse(file string, src []byte) (*Script, error) {
	return ParseWith(file, src, ParseConfig{})
}

// ParseWith is Parse with symbols and limits.
func ParseWith(file string, src []byte, cfg ParseConfig) (s *Script, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, ErrorList{{File: file, Line: 1, Col: 1, Msg: fmt.Sprintf("internal error in the script parser: %v (please report it)", r)}}
		}
	}()
	return parse(file, src, cfg)
}

// parse is ParseWith without the safety net, so that fuzzing finds panics.
func parse(file string, src []byte, cfg ParseConfig) (*Script, error) {
	cfg = cfg.withDefaults()
	p := &parser{file: file, src: src, lx: newLexer(src), cfg: cfg}
	p.s = &Script{
		File:   file,
		Config: Config{ToleranceUsecs: 4000, TolerancePercent: 12.5},
	}
	if err := p.checkSize(); err != nil {
		return nil, err
	}
	p.s.Events = make([]Event, 0, min(estimateEvents(src), cfg.MaxEvents))
	syms, bad := newSymbols(cfg.Defines)
	if bad != "" {
		return nil, ErrorList{{File: file, Line: 1, Col: 1, Msg: bad}}
	}
	p.lx.syms = syms
	p.look = p.lx.next()
	for len(p.errs)+len(p.lx.errs) <= maxErrors && !p.stop {
		toks := p.nextStatement()
		if toks == nil {
			break
		}
		p.statement(toks)
	}
	for _, e := range p.lx.errs {
		p.errAt(e.pos, "%s", e.msg)
	}
	p.metadata()
	if len(p.s.Events) == 0 && len(p.errs) == 0 && p.s.Unsupported == "" {
		p.errAt(int32(len(src)), "the script has no events: it needs at least one timed line such as '0 < S 0:0(0) win 65535'")
	}
	if p.s.Meta.Name == "" {
		p.s.Meta.Name = strings.TrimSuffix(filepath.Base(file), ".pkt")
		if file == "" {
			p.s.Meta.Name = ""
		}
	}
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool {
			a, b := p.errs[i], p.errs[j]
			return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
		})
		if len(p.errs) > maxErrors {
			last := p.errs[maxErrors]
			p.errs = append(p.errs[:maxErrors], &SyntaxError{File: file, Line: last.Line, Col: last.Col, Msg: "too many errors; stopping here", Source: last.Source})
		}
		return nil, p.errs
	}
	return p.s, nil
}

// parser holds the state of one Parse.
type parser struct {
	file       string
	src        []byte
	lx         lexer
	lineStarts []int32 // built on the first error
	errs       ErrorList
	s          *Script

	// The statement being parsed, and the first token of the next one.
	cur  []token
	i    int
	look token

	cfg ParseConfig
	// stop ends the parse at once (a limit was reached).
	stop bool

	stack []byte // scratch: open brackets
	buf   []byte // scratch: collapsed text
	opts  []OptionSpec

	// firstEvent is the line of the first timed line, 0 before it.
	firstEvent int
	// last is the earliest time the previous timed line can happen at;
	// lastLine its line.
	last     time.Duration
	lastLine int
	// shift is the time of ignored timed lines (commands, code blocks)
	// still to be added to the next relative event, so that dropping them
	// does not move the events after them: shiftAbs means "absolute".
	shift    time.Duration
	shiftSet bool
	shiftAbs bool
}

// bailout unwinds the parse of one statement after its first error.
type bailout struct{}

// errAt records a problem at byte offset pos.
func (p *parser) errAt(pos int32, format string, args ...any) {
	line, col, source := p.position(int(pos))
	// Messages quote what was written: make it safe to print, and short.
	msg := cut(fmt.Sprintf(format, args...), maxMsgLen)
	p.errs = append(p.errs, &SyntaxError{File: p.file, Line: line, Col: col, Msg: msg, Source: source})
}

// fail records a problem at token t and abandons the statement.
func (p *parser) fail(t token, format string, args ...any) {
	p.errAt(t.pos, format, args...)
	panic(bailout{})
}

// undefined fails at a word that looks like a symbol nobody defined (upper
// case, as -D names are written) where a value is needed.
func (p *parser) undefined(t token) {
	if t.kind != tWord || t.sym != 0 || !symbolLike(p.bytes(t)) {
		return
	}
	n := p.show(t)
	p.fail(t, "undefined symbol '%s': give its value with --define %s=VALUE (packetdrill's -D) or a '--define=%s=VALUE' line at the top of the script", n, n, n)
}

// unsupported records that the script needs what a remote black box
// cannot do (the first such line names it) and abandons the statement:
// the script parses, and runs as skip.
func (p *parser) unsupported(t token, format string, args ...any) {
	if p.s.Unsupported == "" {
		p.s.Unsupported = fmt.Sprintf("not supported by a remote black box: %s (line %d)", fmt.Sprintf(format, args...), t.line)
	}
	panic(bailout{})
}

// checkSize applies the limits on the script's size and its lines' length.
func (p *parser) checkSize() error {
	if len(p.src) > p.cfg.MaxSize {
		return ErrorList{{File: p.file, Line: 1, Col: 1, Msg: fmt.Sprintf("the script is larger than the limit of %d bytes (--max-script-size)", p.cfg.MaxSize)}}
	}
	start := 0
	for start <= len(p.src) {
		end := start
		if i := bytes.IndexByte(p.src[start:], '\n'); i >= 0 {
			end = start + i
		} else {
			end = len(p.src)
		}
		if end-start > p.cfg.MaxLineLength {
			p.errAt(int32(start+p.cfg.MaxLineLength), "line is %d bytes, longer than the limit of %d (--max-line-length)", end-start, p.cfg.MaxLineLength)
			return p.errs
		}
		start = end + 1
	}
	return nil
}

// failAt is fail at a byte offset.
func (p *parser) failAt(pos int32, format string, args ...any) {
	p.errAt(pos, format, args...)
	panic(bailout{})
}

// position turns a byte offset into a line, a column (in runes) and the
// text of the line.
func (p *parser) position(pos int) (line, col int, source string) {
	if p.lineStarts == nil {
		p.lineStarts = append(p.lineStarts, 0)
		for i, c := range p.src {
			if c == '\n' {
				p.lineStarts = append(p.lineStarts, int32(i+1))
			}
		}
	}
	if pos > len(p.src) {
		pos = len(p.src)
	}
	l := sort.Search(len(p.lineStarts), func(i int) bool { return int(p.lineStarts[i]) > pos }) - 1
	start := int(p.lineStarts[l])
	end := start
	for end < len(p.src) && p.src[end] != '\n' {
		end++
	}
	text := strings.TrimSuffix(string(p.src[start:end]), "\r")
	return l + 1, utf8.RuneCount(p.src[start:pos]) + 1, strings.ToValidUTF8(text, "\uFFFD")
}

// bytes returns a token's text: the source's, or a symbol's value.
func (p *parser) bytes(t token) []byte {
	if t.sym > 0 {
		return p.lx.syms.list[t.sym-1].text
	}
	return p.src[t.pos:t.end]
}

// text returns a token's text (see bytes).
func (p *parser) text(t token) string { return string(p.bytes(t)) }

// show is a token's text for a message: cut short and safe to print.
func (p *parser) show(t token) string { return cut(p.text(t), 40) }

// is reports whether t's text is s (without allocating).
func (p *parser) is(t token, s string) bool { return string(p.bytes(t)) == s }

// isPunct reports whether t is the single character c.
func (p *parser) isPunct(t token, c byte) bool {
	return t.kind == tPunct && p.src[t.pos] == c
}

// describe names a token in a message: 'win', or end of line.
func (p *parser) describe(t token) string {
	if t.kind == tEOF {
		return "end of line"
	}
	s := p.text(t)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + "..."
	}
	d := "'" + cut(s, 40) + "'"
	if t.sym > 0 {
		d = "'" + p.lx.syms.list[t.sym-1].name + "' (defined as " + d + ")"
	}
	return d
}

// peek returns the next token of the statement, or an EOF token just
// after its last one.
func (p *parser) peek() token { return p.peekAt(0) }

func (p *parser) peekAt(k int) token {
	if p.i+k < len(p.cur) {
		return p.cur[p.i+k]
	}
	end := int32(0)
	if len(p.cur) > 0 {
		end = p.cur[len(p.cur)-1].end
	}
	return token{pos: end, end: end, kind: tEOF}
}

func (p *parser) next() token {
	t := p.peek()
	if p.i < len(p.cur) {
		p.i++
	}
	return t
}

// expectPunct consumes the character c or fails with "expected c what".
func (p *parser) expectPunct(c byte, what string) token {
	t := p.next()
	if !p.isPunct(t, c) {
		p.fail(t, "expected '%c' %s, found %s", c, what, p.describe(t))
	}
	return t
}

// expectEnd fails unless the statement is over.
func (p *parser) expectEnd(what string) {
	if t := p.peek(); t.kind != tEOF {
		p.fail(t, "expected end of line %s, found %s", what, p.describe(t))
	}
}

// estimateEvents guesses how many events src holds from the lines that
// start like one, so that Events is allocated once.
func estimateEvents(src []byte) int {
	n := 0
	for i := 0; i < len(src); i++ {
		if i == 0 || src[i-1] == '\n' {
			for i < len(src) && (src[i] == ' ' || src[i] == '\t') {
				i++
			}
			if i < len(src) && (isDigit(src[i]) || src[i] == '+' || src[i] == '*' || src[i] == '.') {
				n++
			}
		}
	}
	return n
}

// nextStatement lexes the next statement: a line, and the lines after it
// while a bracket is open. An open bracket does not swallow a line that
// plainly starts a new event, so that a missing '>' is reported on its own
// line. It returns nil at the end of the script.
func (p *parser) nextStatement() []token {
	t := p.look
	if t.kind == tEOF {
		return nil
	}
	toks := p.cur[:0]
	stack := p.stack[:0]
	timeOnly := true
	for {
		toks = append(toks, t)
		if t.kind == tPunct {
			switch c := p.src[t.pos]; c {
			case '(', '[', '{':
				stack = append(stack, c)
			case ')', ']', '}':
				if n := len(stack); n > 0 && stack[n-1] == opener(c) {
					stack = stack[:n-1]
				}
			case '<':
				// After the time, '<' is the direction, not an option list.
				if !timeOnly {
					stack = append(stack, c)
				}
			case '>':
				if n := len(stack); n > 0 && stack[n-1] == '<' {
					stack = stack[:n-1]
				}
			}
		}
		if timeOnly && !p.isTimeToken(t) {
			timeOnly = false
		}
		t = p.lx.next()
		if t.kind == tEOF || t.nl && (len(stack) == 0 || p.startsEvent(t)) {
			break
		}
	}
	p.look, p.cur, p.stack = t, toks, stack
	return toks
}

func opener(c byte) byte {
	switch c {
	case ')':
		return '('
	case ']':
		return '['
	case '}':
		return '{'
	}
	return '<'
}

func (p *parser) isTimeToken(t token) bool {
	switch t.kind {
	case tInt, tFloat:
		return true
	case tPunct:
		c := p.src[t.pos]
		return c == '+' || c == '*' || c == '~' || c == '-'
	}
	return false
}

// startsEvent reports whether the line that starts with token first looks
// like the start of an event or a header option (used only to end a
// statement with an unclosed bracket). It looks ahead a few tokens and
// puts the lexer back.
func (p *parser) startsEvent(first token) bool {
	if first.kind == tOption {
		return true
	}
	saved := p.lx
	defer func() { p.lx = saved }()
	var ahead [8]token
	ahead[0] = first
	n := 1
	at := func(j int) token {
		for n <= j {
			ahead[n] = p.lx.next()
			n++
		}
		return ahead[j]
	}
	j := 0
	if p.isPunct(at(j), '+') {
		j++
	}
	if t := at(j); t.kind != tInt && t.kind != tFloat && !p.isPunct(t, '*') {
		return false
	}
	j++
	if p.isPunct(at(j), '~') {
		j++
		if p.isPunct(at(j), '+') {
			j++
		}
		j++
	}
	a := at(j)
	if a.nl {
		return false
	}
	switch {
	case p.isPunct(a, '<'), p.isPunct(a, '>'), a.kind == tBack, a.kind == tCode, a.kind == tEllipsis:
		return true
	case a.kind == tWord:
		b := at(j + 1)
		return p.isPunct(b, '(') && !b.nl
	}
	return false
}

// collapse appends the text of toks with every gap (whitespace, comments,
// newlines) written as one space.
func (p *parser) collapse(b []byte, toks []token) []byte {
	for i, t := range toks {
		if i > 0 && t.space {
			b = append(b, ' ')
		}
		s := p.bytes(t)
		if t.kind == tBack || t.kind == tCode {
			b = appendCollapsed(b, s)
		} else {
			b = append(b, s...)
		}
	}
	return b
}

// appendCollapsed appends s with each run of whitespace as one space.
func appendCollapsed(b, s []byte) []byte {
	sp := false
	for _, c := range s {
		if isSpace(c) {
			sp = true
			continue
		}
		if sp {
			b = append(b, ' ')
			sp = false
		}
		b = append(b, c)
	}
	return b
}

func (p *parser) collapsed(toks []token) string {
	p.buf = p.collapse(p.buf[:0], toks)
	return string(p.buf)
}

// statement parses one statement: header options, an untimed command, or
// an event.
func (p *parser) statement(toks []token) {
	for _, t := range toks {
		if t.kind == tBad {
			return // already reported by the lexer
		}
	}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(bailout); !ok {
				panic(r)
			}
		}
	}()
	p.cur, p.i = toks, 0
	first := toks[0]
	switch {
	case first.kind == tOption:
		p.headerOptions()
	case first.kind == tBack || first.kind == tCode:
		p.next()
		p.expectEnd("after the " + kindName(first.kind))
		p.s.Ignored = append(p.s.Ignored, Note{Line: int(first.line), Text: p.collapsed(toks), Reason: ignoredReason})
	case p.isTimeToken(first) && !p.isPunct(first, '~'):
		p.event()
	default:
		hint := ""
		if p.isPunct(first, '<') || p.isPunct(first, '>') {
			hint = " (every event starts with its time, e.g. '+0 < S 0:0(0) win 65535')"
		}
		p.fail(first, "expected a time (such as '0', '0.100', '+0.1' or '*') to start an event, found %s%s", p.describe(first), hint)
	}
}

func kindName(k tokKind) string {
	if k == tCode {
		return "%{ }% code block"
	}
	return "`command`"
}

// event parses a timed line.
func (p *parser) event() {
	first := p.peek()
	tm := p.time()
	ev := Event{Line: int(first.line), Time: tm}
	var blockEnd token
	if t := p.peek(); t.kind == tEllipsis {
		blockEnd = p.next()
		if tm.Kind == Any || tm.Range {
			p.fail(t, "a blocking system call ('start...end') needs a plain start time")
		}
		et := p.peek()
		if p.isPunct(et, '+') {
			p.fail(et, "the end of a blocking call is written without '+': '+0...0.100' (it is relative to the same point as the start)")
		}
		end := p.timeValue()
		if end < tm.Start {
			p.fail(et, "the blocking call ends (%s) before it starts (%s)", fmtSec(end), fmtSec(tm.Start))
		}
		ev.Time.End = end
	}
	if p.firstEvent == 0 {
		p.firstEvent = ev.Line
	}
	act := p.peek()
	ignored := false
	switch {
	case p.isPunct(act, '<') || p.isPunct(act, '>'):
		if blockEnd.end != 0 {
			p.fail(blockEnd, "'start...end' (a blocking call) is only for system calls")
		}
		ev.Packet = p.packetLine()
	case act.kind == tWord && p.isPunct(p.peekAt(1), '('):
		ev.Syscall = p.syscall()
		ev.Syscall.Blocking = blockEnd.end != 0
	case act.kind == tBack || act.kind == tCode:
		if blockEnd.end != 0 {
			p.fail(blockEnd, "'start...end' (a blocking call) is only for system calls")
		}
		p.next()
		p.expectEnd("after the " + kindName(act.kind))
		ignored = true
	default:
		p.fail(act, "expected '<', '>', a system call, a `command` or a %%{ }%% block after the time, found %s", p.describe(act))
	}
	if len(p.s.Events) >= p.cfg.MaxEvents {
		p.stop = true
		p.fail(first, "more than %d events: the limit (--max-events) is reached", p.cfg.MaxEvents)
	}
	outbound := ev.Packet != nil && ev.Packet.Dir == Outbound
	if tm.Kind == Any && !outbound {
		p.fail(first, "time '*' (any time) is only for outbound packet lines ('>')")
	}
	if tm.Range && !outbound {
		p.fail(first, "a time range is only for outbound packet lines ('>')")
	}
	if ev.Packet != nil && ev.Packet.Silence && (tm.Kind == Any || tm.Range) {
		p.fail(first, "'> none' (silence) needs a plain time: nothing may arrive until then")
	}
	p.timeline(&ev.Time, blockEnd.end != 0, first, ev.Line, ignored)
	if ignored {
		p.s.Ignored = append(p.s.Ignored, Note{Line: ev.Line, Text: p.collapsed(p.cur), Reason: ignoredReason})
		return
	}
	ev.Text = p.collapsed(p.cur)
	p.s.Events = append(p.s.Events, ev)
}

// timeline accounts for the ignored timed lines before an event, and
// checks that absolute times do not go backwards.
func (p *parser) timeline(tm *Time, blocking bool, at token, line int, ignored bool) {
	if !ignored {
		if p.shiftSet && tm.Kind == Relative {
			tm.Start += p.shift
			if tm.Range || blocking {
				tm.End += p.shift
			}
			if p.shiftAbs {
				tm.Kind = Absolute
			}
		}
		p.shiftSet = false
	}
	var t time.Duration
	switch tm.Kind {
	case Absolute:
		if tm.Start < p.last {
			p.errAt(at.pos, "time goes backwards: %s is earlier than %s, the time of the event on line %d", fmtSec(tm.Start), fmtSec(p.last), p.lastLine)
		}
		t = tm.Start
	case Relative:
		t = p.last + tm.Start
	case Any:
		t = p.last
	}
	if ignored {
		switch {
		case tm.Kind == Absolute:
			p.shift, p.shiftAbs = tm.Start, true
		case p.shiftSet:
			p.shift += tm.Start
		default:
			p.shift, p.shiftAbs = tm.Start, false
		}
		p.shiftSet = true
	}
	p.last, p.lastLine = t, line
}

func fmtSec(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
}

// time parses an event's time: "0.1", "+0.1", "*", "0.1~0.2", "+0~+0.04".
func (p *parser) time() Time {
	t := p.peek()
	var tm Time
	switch {
	case p.isPunct(t, '*'):
		p.next()
		return Time{Kind: Any}
	case p.isPunct(t, '-'):
		p.fail(t, "negative time: times count from the start of the script (absolute) or from the previous event ('+0.1')")
	case p.isPunct(t, '+'):
		p.next()
		tm.Kind = Relative
	default:
		tm.Kind = Absolute
	}
	tm.Start = p.timeValue()
	if tl := p.peek(); p.isPunct(tl, '~') {
		p.next()
		plus := p.peek()
		if p.isPunct(plus, '+') {
			p.next()
			if tm.Kind != Relative {
				p.fail(plus, "an absolute time range ends with an absolute time: '0.1~0.2' (or write '+0.1~+0.2')")
			}
		} else if tm.Kind == Relative {
			p.fail(plus, "a relative time range needs '+' on both ends: '+0.1~+0.2'")
		}
		endTok := p.peek()
		tm.End = p.timeValue()
		tm.Range = true
		if tm.End < tm.Start {
			p.fail(endTok, "time range is backwards: it ends (%s) before it starts (%s)", fmtSec(tm.End), fmtSec(tm.Start))
		}
	}
	return tm
}

// timeValue parses a number of seconds: "0", "0.100", ".1".
func (p *parser) timeValue() time.Duration {
	t := p.next()
	if p.isPunct(t, '-') {
		p.fail(t, "negative time: times count from the start of the script (absolute) or from the previous event ('+0.1')")
	}
	if t.kind != tInt && t.kind != tFloat {
		p.fail(t, "expected a time in seconds (such as '0', '0.100' or '.1'), found %s", p.describe(t))
	}
	if n := p.peek(); p.isPunct(n, '.') && !n.space {
		p.fail(t, "'%s.' is not a valid time: write '%s' or '%s.0'", p.show(t), p.show(t), p.show(t))
	}
	d, ok := parseSeconds(p.bytes(t))
	if !ok {
		p.fail(t, "time %s is too large (at most %d seconds)", p.show(t), int64(maxTime/time.Second))
	}
	return d
}

// parseSeconds converts "12", "0.100" or ".1" to a duration, exactly to
// the nanosecond (digits past the ninth are dropped).
func parseSeconds(s []byte) (time.Duration, bool) {
	var sec, frac int64
	i := 0
	for ; i < len(s) && s[i] != '.'; i++ {
		sec = sec*10 + int64(s[i]-'0')
		if sec > int64(maxTime/time.Second) {
			return 0, false
		}
	}
	if i < len(s) {
		scale := int64(1e8)
		for _, c := range s[i+1:] {
			frac += int64(c-'0') * scale
			scale /= 10
		}
	}
	d := time.Duration(sec)*time.Second + time.Duration(frac)
	return d, d <= maxTime
}

// number parses a decimal or 0x hex number up to max.
func (p *parser) number(t token, what string, max uint64) uint32 {
	if t.kind != tInt && t.kind != tHex {
		p.undefined(t)
		p.fail(t, "expected a number for %s, found %s", what, p.describe(t))
	}
	v, ok := parseUint(p.bytes(t))
	if !ok || v > max {
		p.fail(t, "%s %s is out of range (0 to %d)", what, p.show(t), max)
	}
	return uint32(v)
}

// parseUint parses decimal digits or 0x and hex digits; ok is false on
// overflow past 32 bits (every field fits in 32).
func parseUint(s []byte) (v uint64, ok bool) {
	base := uint64(10)
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		base, s = 16, s[2:]
	}
	for _, c := range s {
		var d uint64
		switch {
		case isDigit(c):
			d = uint64(c - '0')
		case 'a' <= c && c <= 'f':
			d = uint64(c-'a') + 10
		case 'A' <= c && c <= 'F':
			d = uint64(c-'A') + 10
		}
		v = v*base + d
		if v > 0xffffffff {
			return 0, false
		}
	}
	return v, true
}

// value parses "N" or, where star is allowed (outbound lines), "*".
func (p *parser) value(kw token, what string, max uint64, dir Direction) Num {
	t := p.next()
	if p.isPunct(t, '*') {
		if dir != Outbound {
			p.fail(t, "'%s *' is only for outbound lines ('>'): synprobe must know what to send", what)
		}
		return Num{Set: true, Any: true}
	}
	if t.kind != tInt && t.kind != tHex {
		p.undefined(t)
		p.fail(t, "expected a number after '%s', found %s", p.show(kw), p.describe(t))
	}
	return Num{Set: true, Value: p.number(t, what, max)}
}

// hexBytes decodes hex digits ("0a0b"), with or without a 0x prefix; on
// failure it says why, to follow the name of what was written.
func hexBytes(s []byte) ([]byte, string) {
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s = s[2:]
	}
	if len(s)%2 != 0 {
		return nil, "has an odd number of hex digits"
	}
	b := make([]byte, len(s)/2)
	for i := range b {
		hi, ok1 := hexVal(s[2*i])
		lo, ok2 := hexVal(s[2*i+1])
		if !ok1 || !ok2 {
			return nil, "is not hex"
		}
		b[i] = hi<<4 | lo
	}
	return b, ""
}

func hexVal(c byte) (byte, bool) {
	switch {
	case isDigit(c):
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// packetLine parses what follows the time on a packet line.
func (p *parser) packetLine() *Packet {
	dirTok := p.next()
	pk := &Packet{Dir: Inbound}
	if p.isPunct(dirTok, '>') {
		pk.Dir = Outbound
	}
	t := p.peek()
	if t.kind == tWord && p.is(t, "none") {
		if pk.Dir == Inbound {
			p.fail(t, "'none' (silence) is only for outbound lines: '+0.5 > none'")
		}
		p.next()
		p.expectEnd("after '> none' (silence takes nothing else)")
		pk.Silence = true
		return pk
	}
	if t.kind == tWord && t.sym == 0 {
		switch p.text(t) {
		case "ipv4", "ipv6", "gre", "GREv0", "mpls":
			p.unsupported(t, "an encapsulation prefix ('%s ... :'): synprobe sends and sees plain IP and TCP", p.show(t))
		}
	}
	if p.isPunct(t, '[') || p.isPunct(t, '(') {
		p.ipInfo(pk)
		t = p.peek()
	}
	if t.kind == tWord && t.sym == 0 {
		switch p.text(t) {
		case "encap":
			p.unsupported(t, "an encapsulated segment ('encap %s'): synprobe sends and sees plain TCP", p.show(p.peekAt(1)))
		case "udp":
			p.unsupported(t, "a UDP packet: synprobe tests TCP")
		case "icmp":
			p.icmpLine(pk)
			return pk
		case "none":
			p.fail(t, "'> none' (silence) takes nothing else: no IP information")
		}
	}
	if (t.kind == tInt || t.kind == tHex) && p.isPunct(p.peekAt(1), '>') {
		p.unsupported(t, "explicit ports ('%s>%s'): synprobe picks its own port, and the target's comes from --target", p.show(t), p.show(p.peekAt(2)))
	}
	p.segment(pk, false)
	return pk
}

// atEnd reports whether t ends the segment being parsed: the end of the
// line, or the ']' that closes an ICMP line's quoted segment.
func (p *parser) atEnd(t token, quote bool) bool {
	return t.kind == tEOF || quote && p.isPunct(t, ']')
}

// segment parses the TCP part of a packet line, from the flags on: the
// whole rest of the line, or (quote) an ICMP line's quoted segment up to
// its ']', which it leaves for the caller.
func (p *parser) segment(pk *Packet, quote bool) {
	endName := "end of line"
	if quote {
		endName = "']' (the end of the quoted segment)"
	}
	p.flags(pk)
	p.seqNumbers(pk)
	after := "after the sequence numbers"
	want := "'ack', 'win', 'urg', '<'"
	var seen [3]token // ack, win, urg
	names := [3]string{"ack", "win", "urg"}
	for {
		kw := p.peek()
		if kw.kind != tWord {
			break
		}
		idx := -1
		for i, n := range names {
			if p.is(kw, n) {
				idx = i
			}
		}
		if idx < 0 {
			break
		}
		p.next()
		if seen[idx].end != 0 {
			p.fail(kw, "'%s' given twice", names[idx])
		}
		for j := idx + 1; j < 3; j++ {
			if seen[j].end != 0 {
				p.fail(kw, "'%s' must come before '%s' (packetdrill's order is ack, win, urg)", names[idx], names[j])
			}
		}
		seen[idx] = kw
		switch idx {
		case 0:
			pk.Ack = p.value(kw, "ack", 0xffffffff, pk.Dir)
			after, want = "after the ack number", "'win', 'urg', '<'"
		case 1:
			pk.Win = p.value(kw, "win", 0xffff, pk.Dir)
			after, want = "after the window", "'urg', '<'"
		case 2:
			pk.Urg = p.value(kw, "urg", 0xffff, pk.Dir)
			after, want = "after the urgent pointer", "'<'"
		}
	}
	if t := p.peek(); !(p.atEnd(t, quote) || t.kind == tString || t.kind == tHex || p.isPunct(t, '<') || p.isPunct(t, '{')) {
		p.undefined(t)
		p.fail(t, "expected %s or %s %s, found %s%s", want, endName, after, p.describe(t), p.didYouMean(t, "ack", "win", "urg"))
	}
	if pk.Dir == Inbound && !pk.Win.Set {
		t := p.peek()
		p.fail(t, "inbound lines need 'win N' (the window synprobe sends) after the sequence numbers and ack, found %s", p.describe(t))
	}
	var optOpen token
	if t := p.peek(); p.isPunct(t, '<') {
		optOpen = t
		p.optionList(pk)
		after, want = "after the options", "a payload (\"...\" or 0x...), '{'"
	}
	var payTok token
	if t := p.peek(); t.kind == tString || t.kind == tHex {
		payTok = t
		p.payload(pk, p.next())
		after, want = "after the payload", "'{'"
	}
	hasOverrides := false
	if t := p.peek(); p.isPunct(t, '{') {
		p.overrides(pk)
		hasOverrides = true
		after, want = "after the overrides", ""
	}
	if t := p.peek(); !p.atEnd(t, quote) {
		p.undefined(t)
		hint := p.didYouMean(t, "ack", "win", "urg")
		if want == "" {
			p.fail(t, "expected %s %s, found %s%s", endName, after, p.describe(t), hint)
		}
		p.fail(t, "expected %s or %s %s, found %s%s", want, endName, after, p.describe(t), hint)
	}
	// Semantic checks that need the whole line.
	if pk.Dir == Inbound && pk.Options.Kind == Listed && !hasOverrides {
		total, raw := 0, false
		for _, o := range pk.Options.List {
			total += optionLen(o.Option)
			raw = raw || o.Option.Wire != nil
		}
		if total%4 != 0 && !raw {
			p.fail(optOpen, "TCP options are not padded correctly: they take %d bytes, not a multiple of 4 (add nop or eol)", total)
		}
	}
	if payTok.end != 0 && !pk.LenAny {
		n := len(pk.Payload)
		switch {
		case pk.Dir == Inbound && uint32(n) != pk.Len:
			p.fail(payTok, "the payload is %d bytes but the sequence numbers say %d: %d:%d(%d)", n, pk.Len, pk.Seq, pk.End, pk.Len)
		case pk.Dir == Outbound && uint32(n) > pk.Len:
			p.fail(payTok, "the payload prefix is %d bytes, longer than the %d the sequence numbers say: %d:%d(%d)", n, pk.Len, pk.Seq, pk.End, pk.Len)
		}
	}
}

// flags parses the TCP flags: "S", "S.", ".", "FP.", "-", AccECN "S.5".
func (p *parser) flags(pk *Packet) {
	first := p.peek()
	if first.kind == tEOF || p.isPunct(first, ']') {
		p.fail(first, "expected TCP flags (such as 'S', 'S.', '.', 'F.', 'R' or '-'), found %s", p.describe(first))
	}
	// The flags are every token up to the next gap: "S." lexes as S and '.'.
	j := p.i + 1
	for j < len(p.cur) && !p.cur[j].space && !p.isPunct(p.cur[j], ']') {
		j++
	}
	last := p.cur[j-1]
	toks := p.cur[p.i:j]
	p.i = j
	s := p.src[first.pos:last.end]
	for _, t := range toks {
		if t.sym > 0 {
			// A symbol stands for flags too, as in packetdrill.
			s = nil
			for _, t := range toks {
				s = append(s, p.bytes(t)...)
			}
			break
		}
	}
	fs := cut(string(s), 40) // for messages
	if strings.ContainsRune(string(s), ':') {
		p.fail(first, "expected TCP flags (such as 'S', 'S.', '.', 'F.', 'R' or '-') before the sequence numbers, found '%s'", fs)
	}
	if string(s) == "-" {
		return
	}
	var ecnLetter, ace byte
	for k := 0; k < len(s); {
		c := s[k]
		var f probe.Flags
		switch c {
		case 'F':
			f = probe.FIN
		case 'S':
			f = probe.SYN
		case 'R':
			f = probe.RST
		case 'P':
			f = probe.PSH
		case '.':
			f = probe.ACK
		case 'U':
			f = probe.URG
		case 'E':
			f = probe.ECE
		case 'W':
			f = probe.CWR
		case 'A':
		case '0', '1', '2', '3', '4', '5', '6', '7':
		case '-':
			p.failAt(first.pos+int32(k), "'-' means no flags and stands alone: '%s'", fs)
		default:
			_, size := utf8.DecodeRune(s[k:])
			p.failAt(first.pos+int32(k), "invalid TCP flag '%s' in '%s' (flags are F S R P . U E W A, one AccECN digit 0-7, or - for none)",
				cut(string(s[k:k+size]), 1), cut(string(s), 40))
		}
		pos := first.pos + int32(k)
		switch {
		case c >= '0' && c <= '7':
			if ace != 0 {
				p.failAt(pos, "only one AccECN digit is allowed in '%s'", fs)
			}
			if ecnLetter != 0 {
				p.failAt(pos, "AccECN digit '%c' cannot be combined with '%c' in '%s': the digit sets AE, CWR and ECE", c, ecnLetter, fs)
			}
			ace = c
			d := c - '0'
			pk.AE = d&4 != 0
			if d&2 != 0 {
				pk.Flags |= probe.CWR
			}
			if d&1 != 0 {
				pk.Flags |= probe.ECE
			}
		case c == 'A' || c == 'E' || c == 'W':
			if ace != 0 {
				p.failAt(pos, "'%c' cannot be combined with the AccECN digit '%c' in '%s': the digit sets AE, CWR and ECE", c, ace, fs)
			}
			if c == 'A' && pk.AE || f != 0 && pk.Flags&f != 0 {
				p.failAt(pos, "flag '%c' given twice in '%s'", c, fs)
			}
			ecnLetter = c
			if c == 'A' {
				pk.AE = true
			}
			pk.Flags |= f
		default:
			if pk.Flags&f != 0 {
				p.failAt(pos, "flag '%c' given twice in '%s'", c, fs)
			}
			pk.Flags |= f
		}
		k++
	}
}

// seqNumbers parses "start:end(len)" or "start:*(*)".
func (p *parser) seqNumbers(pk *Packet) {
	start := p.next()
	if start.kind != tInt && start.kind != tHex {
		p.fail(start, "expected the sequence numbers 'start:end(length)' after the flags, found %s", p.describe(start))
	}
	pk.Seq = p.number(start, "sequence number", 0xffffffff)
	p.expectPunct(':', "between the start and end sequence numbers")
	endTok := p.next()
	endAny := p.isPunct(endTok, '*')
	if !endAny {
		if endTok.kind != tInt && endTok.kind != tHex {
			p.fail(endTok, "expected the end sequence number after ':', found %s", p.describe(endTok))
		}
		pk.End = p.number(endTok, "end sequence number", 0xffffffff)
	}
	p.expectPunct('(', "before the payload length")
	lenTok := p.next()
	lenAny := p.isPunct(lenTok, '*')
	if !lenAny {
		if lenTok.kind != tInt && lenTok.kind != tHex {
			p.fail(lenTok, "expected the payload length inside '( )', found %s", p.describe(lenTok))
		}
		pk.Len = p.number(lenTok, "payload length", 0xffff)
	}
	closeTok := p.expectPunct(')', "after the payload length")
	if endAny != lenAny {
		bad := endTok
		if !lenAny {
			bad = lenTok
		}
		p.fail(bad, "write 'start:*(*)' for any payload length: end and length are both '*' or both numbers")
	}
	if endAny {
		if pk.Dir != Outbound {
			p.fail(endTok, "'start:*(*)' (any payload length) is only for outbound lines ('>'): synprobe must know what to send")
		}
		pk.LenAny = true
		return
	}
	if want := pk.Seq + pk.Len; pk.End != want {
		p.fail(endTok, "inconsistent sequence numbers: %s: end should be %d", cut(string(p.src[start.pos:closeTok.end]), 40), want)
	}
}

// ipInfo parses "[ect0]", "(tos 0x10)", "[ttl 64, df, id 7]".
func (p *parser) ipInfo(pk *Packet) {
	open := p.next()
	closer := byte(']')
	if p.isPunct(open, '(') {
		closer = ')'
	}
	ip := &pk.IP
	var ecnTok, tosTok token
	seen := map[string]bool{}
	for {
		w := p.next()
		if w.kind != tWord {
			p.fail(w, "expected IP information (noecn, ect0, ect1, ce, ect01, tos, ttl, flowlabel, id, df or nodf), found %s", p.describe(w))
		}
		name := p.text(w)
		key := name
		switch name {
		case "noecn", "ect0", "ect1", "ce", "ect01":
			key = "ecn"
		case "df", "nodf":
			key = "df"
		}
		if seen[key] {
			p.fail(w, "'%s': %s given twice in the IP information", cut(name, 40), key)
		}
		seen[key] = true
		switch name {
		case "noecn":
			ip.ECN, ecnTok = ECNNotECT, w
		case "ect0":
			ip.ECN, ecnTok = ECNECT0, w
		case "ect1":
			ip.ECN, ecnTok = ECNECT1, w
		case "ce":
			ip.ECN, ecnTok = ECNCE, w
		case "ect01":
			if pk.Dir != Outbound {
				p.fail(w, "'ect01' (ECT(0) or ECT(1)) is only for outbound lines ('>'): synprobe must know what to send")
			}
			ip.ECN, ecnTok = ECNECT01, w
		case "tos":
			ip.TOS, tosTok = p.value(w, "tos", 0xff, pk.Dir), w
		case "ttl":
			ip.TTL = p.value(w, "ttl", 0xff, pk.Dir)
		case "flowlabel":
			ip.FlowLabel = p.value(w, "flowlabel", 0xfffff, pk.Dir)
		case "id":
			ip.ID = p.value(w, "id", 0xffff, pk.Dir)
		case "df":
			ip.DF = Num{Set: true, Value: 1}
		case "nodf":
			ip.DF = Num{Set: true}
		default:
			p.fail(w, "unknown IP information '%s' (noecn, ect0, ect1, ce, ect01, tos, ttl, flowlabel, id, df, nodf)%s", cut(name, 40),
				p.didYouMean(w, "noecn", "ect0", "ect1", "ect01", "tos", "ttl", "flowlabel", "df", "nodf"))
		}
		t := p.next()
		if p.isPunct(t, ',') {
			continue
		}
		if p.isPunct(t, closer) {
			break
		}
		p.fail(t, "expected ',' or '%c' in the IP information, found %s", closer, p.describe(t))
	}
	if ecnTok.end != 0 && tosTok.end != 0 {
		p.fail(ecnTok, "'tos' sets the ECN bits too: give either tos or '%s'", p.show(ecnTok))
	}
}

// icmpLine parses "icmp TYPE [CODE] [from ADDR] [mtu N] [QUOTE]", QUOTE
// being "[seq:end(len)]" or, on outbound lines, a segment written like an
// outbound TCP line: "[S 0:0(0) win * <mss 1200,...>]".
func (p *parser) icmpLine(pk *Packet) {
	p.next() // icmp
	ic := &ICMP{}
	pk.ICMP = ic
	tt := p.next()
	if tt.kind != tWord {
		p.fail(tt, "expected an ICMP type (such as 'unreachable', 'packet_too_big' or 'type_3') after 'icmp', found %s", p.describe(tt))
	}
	ic.Type = p.text(tt)
	var ct token
	if t := p.peek(); t.kind == tWord && !p.is(t, "mtu") && !p.is(t, "id") && !p.is(t, "from") {
		ct = p.next()
		ic.Code = p.text(ct)
	}
	if te, ce := checkICMPNames(ic.Type, ic.Code); te != "" {
		p.undefined(tt)
		p.fail(tt, "%s", te)
	} else if ce != "" {
		p.undefined(ct)
		p.fail(ct, "%s", ce)
	}
	if t := p.peek(); t.kind == tWord && p.is(t, "from") {
		p.next()
		if pk.Dir != Outbound {
			p.fail(t, "'from' is only for outbound ICMP lines ('> icmp ... from ADDR'): synprobe sends its ICMP from its own address")
		}
		ic.From = p.address(t)
	}
	if t := p.peek(); t.kind == tWord && p.is(t, "mtu") {
		p.next()
		ok, max := icmpMTUAllowed(ic.Type, ic.Code)
		if !ok {
			p.fail(t, "'mtu' is only for 'unreachable frag_needed' (IPv4) or 'packet_too_big' (IPv6)")
		}
		ic.MTU = p.value(t, "mtu", uint64(max), pk.Dir)
	}
	if t := p.peek(); t.kind == tWord && p.is(t, "id") {
		p.unsupported(t, "an ICMP echo ('id N'): synprobe sends ICMP errors about TCP segments")
	}
	if t := p.peek(); p.isPunct(t, '[') {
		p.quote(pk)
	}
	if t := p.peek(); t.kind != tEOF {
		want := "'from', 'mtu', '[quoted segment]'"
		if ic.From.IsValid() {
			want = "'mtu', '[quoted segment]'"
		}
		if pk.Dir == Inbound {
			want = "'mtu', '[seq:end(len)]'"
		}
		if ic.MTU.Set {
			want = "'[quoted segment]'"
			if pk.Dir == Inbound {
				want = "'[seq:end(len)]'"
			}
		}
		if ic.Echoed != nil || ic.Quote != nil {
			p.fail(t, "expected end of line after the quoted segment, found %s", p.describe(t))
		}
		p.fail(t, "expected %s or end of line after the ICMP type and code, found %s", want, p.describe(t))
	}
}

// quote parses an ICMP line's quoted segment: "[seq:end(len)]", or (on
// outbound lines) "[[ip info] FLAGS seq:end(len) [ack N] [win N] ...]".
func (p *parser) quote(pk *Packet) {
	ic := pk.ICMP
	open := p.next()
	if w := p.peek(); w.kind == tWord && (p.is(w, "udp") || p.is(w, "raw")) {
		p.unsupported(w, "an ICMP message quoting a %s packet: synprobe tests TCP", p.show(w))
	}
	if t := p.peek(); (t.kind == tInt || t.kind == tHex) && p.isPunct(p.peekAt(1), ':') {
		if e := p.peekAt(2); p.isPunct(e, '*') {
			p.fail(e, "'[seq:end(len)]' takes numbers: for any length write the quoted segment with its flags, e.g. '[. 1:*(*)]'")
		}
		var seg Packet
		seg.Dir = Inbound // the echoed form has numbers, never '*'
		p.seqNumbers(&seg)
		p.expectPunct(']', "after the quoted segment '[seq:end(len)]'")
		ic.Echoed = &EchoedSegment{Seq: seg.Seq, End: seg.End, Len: seg.Len}
		return
	}
	if pk.Dir != Outbound {
		t := p.peek()
		p.fail(t, "an inbound ICMP line quotes '[seq:end(len)]' (the segment of the target's it is about), found %s: a quoted segment with flags is for outbound ICMP lines ('>')", p.describe(t))
	}
	q := &Packet{Dir: Outbound}
	if t := p.peek(); p.isPunct(t, '(') || p.isPunct(t, '[') {
		p.ipInfo(q)
	}
	if t := p.peek(); t.kind == tEOF {
		p.failAt(open.pos, "unclosed '[': the quoted segment ends with ']'")
	}
	p.segment(q, true)
	p.expectPunct(']', "after the quoted segment")
	ic.Quote = q
}

// address parses "from"'s address: IPv4 or IPv6, or a symbol defined as
// one. The address is the tokens up to the next gap or '['.
func (p *parser) address(kw token) netip.Addr {
	first := p.peek()
	if first.kind == tEOF {
		p.fail(first, "expected an address after '%s' (such as '10.0.0.1' or 'fd00::1'), found end of line", p.show(kw))
	}
	var text []byte
	for k := 0; ; k++ {
		t := p.peek()
		if t.kind == tEOF || k > 0 && (t.space || p.isPunct(t, '[')) {
			break
		}
		p.next()
		if t.sym > 0 {
			text = append(text, p.bytes(t)...)
		} else {
			text = append(text, p.src[t.pos:t.end]...)
		}
	}
	a, err := netip.ParseAddr(string(text))
	if err != nil || a.Zone() != "" {
		p.undefined(first)
		p.fail(first, "'%s' after '%s' is not an IP address (write e.g. '10.0.0.1' or 'fd00::1')", cut(string(text), 40), p.show(kw))
	}
	return a.Unmap()
}

// optionList parses "<...>" or "<mss 1460,sackOK,...>".
func (p *parser) optionList(pk *Packet) {
	open := p.next()
	if t := p.peek(); t.kind == tEllipsis {
		p.next()
		p.expectPunct('>', "after '<...'")
		if pk.Dir != Outbound {
			p.fail(open, "'<...>' (any options) is only for outbound lines ('>'): synprobe must know what to send")
		}
		pk.Options.Kind = AnyOptions
		return
	}
	if t := p.peek(); p.isPunct(t, '>') {
		p.fail(t, "empty option list: leave it out (no options) or write '<...>' (any options, outbound lines)")
	}
	p.opts = p.opts[:0]
	total := 0
	more := false
	for {
		o := p.option(pk.Dir)
		total += optionLen(o.Option)
		p.opts = append(p.opts, o)
		t := p.next()
		if p.isPunct(t, ',') {
			if e := p.peek(); e.kind == tEllipsis {
				// "<mss 1200,...>": these options first, then any.
				p.next()
				if pk.Dir != Outbound {
					p.fail(e, "'...' after options (any options may follow) is only for outbound lines and quoted segments ('>'): synprobe must know what to send")
				}
				p.expectPunct('>', "after '...' (it ends the option list: '<mss 1200,...>')")
				more = true
				break
			}
			continue
		}
		if p.isPunct(t, '>') {
			break
		}
		p.fail(t, "expected ',' or '>' after the option, found %s", p.describe(t))
	}
	if total > 40 {
		p.fail(open, "the TCP options take %d bytes, more than the 40 a TCP header can hold", total)
	}
	pk.Options = OptionList{Kind: Listed, List: slices.Clone(p.opts), More: more}
}

// optionLen is the number of bytes o takes in a segment.
func optionLen(o probe.Option) int {
	switch {
	case o.Wire != nil:
		return len(o.Wire)
	case o.Kind == probe.OptionEOL || o.Kind == probe.OptionNOP:
		return 1
	}
	return 2 + len(o.Data)
}

var optionNames = []string{"nop", "eol", "mss", "wscale", "sackOK", "sack", "TS", "FO", "FOEXP", "md5", "ECN", "raw"}

// option parses one option of a list.
func (p *parser) option(dir Direction) OptionSpec {
	w := p.next()
	if w.kind != tWord {
		p.fail(w, "expected a TCP option (%s), found %s", strings.Join(optionNames, ", "), p.describe(w))
	}
	var spec OptionSpec
	switch p.text(w) {
	case "nop":
		spec.Option = probe.NOPOption()
	case "eol":
		spec.Option = probe.EOLOption()
	case "mss":
		v := p.value(w, "mss", 0xffff, dir)
		spec.Option, spec.AnyValue = probe.MSSOption(uint16(v.Value)), v.Any
	case "wscale":
		v := p.value(w, "wscale", 0xff, dir)
		spec.Option, spec.AnyValue = probe.WScaleOption(uint8(v.Value)), v.Any
	case "sackOK":
		spec.Option = probe.SACKPermittedOption()
	case "sack":
		var blocks []probe.SACKBlock
		for {
			t := p.peek()
			if t.kind != tInt && t.kind != tHex {
				break
			}
			p.next()
			l := p.number(t, "SACK left edge", 0xffffffff)
			p.expectPunct(':', "between the edges of a SACK block")
			r := p.number(p.next(), "SACK right edge", 0xffffffff)
			blocks = append(blocks, probe.SACKBlock{Left: probe.Seq(l), Right: probe.Seq(r)})
		}
		if len(blocks) == 0 {
			t := p.peek()
			p.fail(t, "expected SACK blocks 'left:right' (separated by spaces) after 'sack', found %s", p.describe(t))
		}
		spec.Option = probe.SACKOption(blocks...)
	case "TS":
		valTok := p.next()
		if valTok.kind != tWord || !p.is(valTok, "val") {
			p.fail(valTok, "expected 'val' after 'TS' ('TS val N ecr N'), found %s", p.describe(valTok))
		}
		val := p.value(valTok, "TS val", 0xffffffff, dir)
		ecrTok := p.next()
		if ecrTok.kind != tWord || !p.is(ecrTok, "ecr") {
			p.fail(ecrTok, "expected 'ecr' after the TS value ('TS val N ecr N'), found %s", p.describe(ecrTok))
		}
		ecr := p.value(ecrTok, "TS ecr", 0xffffffff, dir)
		spec.Option = probe.TimestampsOption(val.Value, ecr.Value)
		spec.AnyVal, spec.AnyEcr = val.Any, ecr.Any
	case "FO", "FOEXP":
		exp := p.is(w, "FOEXP")
		var cookie []byte
		if t := p.peek(); p.isPunct(t, '*') {
			p.next()
			if dir != Outbound {
				p.fail(t, "'%s *' is only for outbound lines ('>'): synprobe must know what to send", p.show(w))
			}
			spec.AnyValue = true
		} else if t.kind == tWord || t.kind == tInt || t.kind == tHex {
			p.next()
			b, bad := hexBytes(p.bytes(t))
			if bad != "" {
				p.undefined(t)
				p.fail(t, "TCP Fast Open cookie %s %s", p.describe(t), bad)
			}
			cookie = b
		}
		if exp {
			spec.Option = probe.ExpFastOpenOption(cookie)
		} else {
			spec.Option = probe.FastOpenOption(cookie)
		}
	case "md5":
		t := p.next()
		if t.kind != tWord && t.kind != tInt && t.kind != tHex {
			p.fail(t, "expected the MD5 digest in hex after 'md5', found %s", p.describe(t))
		}
		b, bad := hexBytes(p.bytes(t))
		if bad != "" {
			p.undefined(t)
			p.fail(t, "MD5 digest %s %s", p.describe(t), bad)
		}
		if len(b) > 16 {
			p.fail(t, "MD5 digest is %d bytes, more than 16", len(b))
		}
		spec.Option = probe.Option{Kind: probe.OptionMD5, Data: b}
	case "ECN":
		spec.Option = p.accECN()
	case "raw":
		t := p.next()
		if t.kind != tWord && t.kind != tInt && t.kind != tHex {
			p.fail(t, "expected the option's bytes in hex after 'raw' ('raw 0x020405b4'), found %s", p.describe(t))
		}
		b, bad := hexBytes(p.bytes(t))
		if bad != "" {
			p.undefined(t)
			p.fail(t, "raw option bytes %s %s", p.describe(t), bad)
		}
		if len(b) == 0 {
			p.fail(t, "raw option needs at least one byte (its kind)")
		}
		spec.Option = probe.RawOption(b)
	default:
		p.fail(w, "unknown TCP option '%s' (options: %s)%s", p.show(w), strings.Join(optionNames, ", "), p.didYouMean(w, optionNames...))
	}
	return spec
}

// accECN parses the fields of an AccECN option after "ECN": "e0b N [ceb
// N [e1b N]]" (kind 172) or "e1b N [ceb N [e0b N]]" (kind 174), as in
// packetdrill.
func (p *parser) accECN() probe.Option {
	first := p.next()
	if first.kind != tWord || !p.is(first, probe.AccECNE0B) && !p.is(first, probe.AccECNE1B) {
		p.fail(first, "expected 'e0b' or 'e1b' after 'ECN' ('ECN e1b 1 ceb 0 e0b 1'), found %s", p.describe(first))
	}
	order := [3]string{probe.AccECNE0B, probe.AccECNCEB, probe.AccECNE1B}
	e1b := p.is(first, probe.AccECNE1B)
	if e1b {
		order[0], order[2] = probe.AccECNE1B, probe.AccECNE0B
	}
	var counters []uint32
	for i, name := range order {
		if i > 0 {
			t := p.peek()
			if t.kind != tWord || !p.is(t, name) {
				if t.kind == tWord && slices.Contains(order[:], p.text(t)) {
					p.fail(t, "AccECN fields go in the order %s: found '%s'", strings.Join(order[:], ", "), p.show(t))
				}
				break
			}
			p.next()
		}
		counters = append(counters, p.number(p.next(), "AccECN "+name, 0xffffff))
	}
	return probe.AccECNOption(e1b, counters...)
}

// payload parses a quoted string or 0x hex bytes.
func (p *parser) payload(pk *Packet, t token) {
	if t.kind == tString {
		s, err := strconv.Unquote(p.text(t))
		if err != nil {
			p.fail(t, "bad payload string %s: write it as a Go string (\\r, \\n, \\x00, \\\")", p.describe(t))
		}
		pk.Payload = []byte(s)
		return
	}
	b, bad := hexBytes(p.bytes(t))
	if bad != "" {
		p.fail(t, "payload %s %s", p.describe(t), bad)
	}
	pk.Payload = b
}

var overrideNames = []string{"tcpsum", "ipsum", "doff", "reserved", "iplen", "ihl", "ipver"}

// overrides parses "{tcpsum bad, doff 4}" (inbound lines).
func (p *parser) overrides(pk *Packet) {
	open := p.next()
	if pk.Dir != Inbound {
		p.fail(open, "'{...}' overrides are only for inbound lines ('<'): they damage what synprobe sends")
	}
	if t := p.peek(); p.isPunct(t, '}') {
		p.fail(t, "empty override list: leave it out or write e.g. '{tcpsum bad}'")
	}
	var seen [8]bool
	for {
		w := p.next()
		if w.kind != tWord {
			p.fail(w, "expected an override (%s), found %s", strings.Join(overrideNames, ", "), p.describe(w))
		}
		idx := slices.Index(overrideNames, p.text(w))
		if idx < 0 {
			p.fail(w, "unknown override '%s' (overrides: %s)%s", p.show(w), strings.Join(overrideNames, ", "), p.didYouMean(w, overrideNames...))
		}
		if seen[idx] {
			p.fail(w, "'%s' given twice", p.show(w))
		}
		seen[idx] = true
		ov := func(f probe.Field, max uint64) {
			v := p.next()
			pk.Overrides = append(pk.Overrides, probe.Override{Field: f, Value: p.number(v, p.text(w), max)})
		}
		sum := func(set, add probe.Field) {
			if t := p.peek(); t.kind == tWord && p.is(t, "bad") {
				p.next()
				pk.Overrides = append(pk.Overrides, probe.Override{Field: add, Value: 1})
				return
			}
			ov(set, 0xffff)
		}
		switch overrideNames[idx] {
		case "tcpsum":
			sum(probe.FieldTCPChecksum, probe.FieldTCPChecksumAdd)
		case "ipsum":
			sum(probe.FieldIPChecksum, probe.FieldIPChecksumAdd)
		case "doff":
			ov(probe.FieldTCPDataOffset, 15)
		case "reserved":
			pk.Reserved = uint8(p.number(p.next(), "reserved", 15))
		case "iplen":
			ov(probe.FieldIPTotalLength, 0xffff)
		case "ihl":
			ov(probe.FieldIPHeaderLength, 15)
		case "ipver":
			ov(probe.FieldIPVersion, 15)
		}
		t := p.next()
		if p.isPunct(t, ',') {
			continue
		}
		if p.isPunct(t, '}') {
			return
		}
		p.fail(t, "expected ',' or '}' after the override, found %s", p.describe(t))
	}
}

// syscall parses "NAME(args) = result".
func (p *parser) syscall() *Syscall {
	name := p.next()
	open := p.next()
	sc := &Syscall{Name: p.text(name)}
	start := p.i
	stack := append(p.stack[:0], '(')
	for len(stack) > 0 {
		t := p.next()
		if t.kind == tEOF {
			p.fail(open, "unclosed '(' in the arguments of %s()", sc.Name)
		}
		if t.kind != tPunct {
			continue
		}
		switch c := p.src[t.pos]; c {
		case '(', '[', '{':
			stack = append(stack, c)
		case ')', ']', '}':
			if top := stack[len(stack)-1]; top != opener(c) {
				p.fail(t, "expected '%c' to close '%c', found '%c'", closer(top), top, c)
			}
			stack = stack[:len(stack)-1]
		}
	}
	p.stack = stack
	sc.Args = p.collapsed(p.cur[start : p.i-1])
	if t := p.next(); !p.isPunct(t, '=') {
		p.fail(t, "expected '=' and the result after %s(...), found %s", sc.Name, p.describe(t))
	}
	rest := p.cur[p.i:]
	if len(rest) == 0 {
		t := p.peek()
		p.fail(t, "expected the result after '=' (such as '0' or '-1 ECONNREFUSED (Connection refused)'), found end of line")
	}
	depth := 0
	for _, t := range rest {
		if p.isPunct(t, '(') {
			depth++
		} else if p.isPunct(t, ')') {
			if depth--; depth < 0 {
				p.fail(t, "unbalanced ')' in the result of %s()", sc.Name)
			}
		}
	}
	if depth != 0 {
		t := p.peekAt(len(rest))
		p.fail(t, "unclosed '(' in the result of %s()", sc.Name)
	}
	sc.Result = p.collapsed(rest)
	p.i = len(p.cur)
	return sc
}

func closer(c byte) byte {
	switch c {
	case '(':
		return ')'
	case '[':
		return ']'
	case '{':
		return '}'
	}
	return '>'
}

// packetdrill's options that synprobe accepts and ignores, and why.
var ignoredOptions = func() map[string]string {
	m := map[string]string{}
	remote := "packetdrill option --%s has no meaning for a remote target"
	for _, n := range []string{
		"bind_port", "connect_port", "remote_ip", "local_ip", "gateway_ip", "netmask_ip",
		"speed", "mtu", "init_scripts", "wire_client", "wire_server", "wire_server_ip",
		"wire_server_at", "wire_server_port", "wire_client_dev", "wire_server_dev",
		"so_filename", "so_flags", "is_anyip", "send_omit_free", "psp_udp_port",
		"local_linklocal_ip", "gateway_linklocal_ip", "tcp_md5_secret", "udp_encapsulation",
		"tun_dev", "persistent_tun_dev", "no_cleanup",
	} {
		m[n] = fmt.Sprintf(remote, n)
	}
	unused := "packetdrill option --%s is not used by synprobe"
	for _, n := range []string{
		"tcp_ts_ecr_scaled", "tcp_ts_tick_usecs", "strict_segments", "non_fatal",
		"code_command", "code_format", "code_sockopt", "dry_run", "debug", "verbose",
	} {
		m[n] = fmt.Sprintf(unused, n)
	}
	return m
}()

// headerOptions parses a line of "--name[=value]" options.
func (p *parser) headerOptions() {
	for {
		t := p.next()
		if t.kind == tEOF {
			return
		}
		if t.kind != tOption {
			p.fail(t, "expected another --option or end of line, found %s", p.describe(t))
		}
		raw := p.text(t)
		name, value, hasValue := strings.Cut(raw[2:], "=")
		valPos := t.pos + int32(3+len(name))
		if p.firstEvent != 0 {
			p.fail(t, "header option --%s must come before the first event (line %d)", name, p.firstEvent)
		}
		if strings.HasPrefix(value, "\"") {
			v, err := strconv.Unquote(value)
			if err != nil {
				p.failAt(valPos, "bad quoted value for --%s", name)
			}
			value = v
		}
		if v, ok := p.lx.syms.value(value); ok && name != "define" {
			value = v
		}
		line := int(t.line)
		p.s.Options = append(p.s.Options, HeaderOption{Line: line, Name: name, Value: value})
		need := func(form string) {
			if !hasValue || value == "" {
				p.fail(t, "--%s needs a value: --%s=%s", name, name, form)
			}
		}
		cfg := &p.s.Config
		switch name {
		case "tolerance_usecs":
			need("4000")
			n, err := strconv.Atoi(value)
			if err != nil || n < 0 {
				p.failAt(valPos, "--tolerance_usecs wants a whole number of microseconds (0 or more), found '%s'", cut(value, 40))
			}
			cfg.ToleranceUsecs = n
		case "tolerance_percent":
			need("12.5")
			f, err := strconv.ParseFloat(value, 64)
			if err != nil || !(f >= 0 && f <= 100) {
				p.failAt(valPos, "--tolerance_percent wants a percentage from 0 to 100, found '%s'", cut(value, 40))
			}
			cfg.TolerancePercent = f
		case "ip_version":
			need("ipv4")
			switch value {
			case "ipv4", "ipv4-mapped-ipv6", "ipv4_mapped_ipv6":
				cfg.IPVersion = 4
			case "ipv6":
				cfg.IPVersion = 6
			default:
				p.failAt(valPos, "--ip_version wants ipv4, ipv6 or ipv4-mapped-ipv6, found '%s'", cut(value, 40))
			}
		case "define":
			need("NAME=VALUE")
			sym, val, err := ParseDefine(value)
			if err != nil {
				p.failAt(valPos, "--define: %v", err)
			}
			p.lx.syms.define(sym, val)
		case "mss":
			need("1460")
			n, err := strconv.Atoi(value)
			if err != nil || n <= 0 || n > 0xffff {
				p.failAt(valPos, "--mss wants a segment size from 1 to 65535, found '%s'", cut(value, 40))
			}
			cfg.MSS = n
		default:
			reason, ok := ignoredOptions[name]
			if !ok {
				known := make([]string, 0, len(ignoredOptions)+4)
				known = append(known, "tolerance_usecs", "tolerance_percent", "ip_version", "mss", "define")
				for k := range ignoredOptions {
					known = append(known, k)
				}
				hint := ""
				if m := nearest(name, known); m != "" {
					hint = fmt.Sprintf(" (did you mean --%s?)", m)
				}
				p.fail(t, "unknown option --%s%s", name, hint)
			}
			p.s.Ignored = append(p.s.Ignored, Note{Line: line, Text: raw, Reason: reason})
		}
	}
}

// metadata applies the "// @key value" comments.
func (p *parser) metadata() {
	m := &p.s.Meta
	seen := map[string]int32{}
	for _, c := range p.lx.meta {
		if len(p.errs) > maxErrors {
			return
		}
		single := c.key == "name" || c.key == "rfc" || c.key == "level"
		if single {
			if l, dup := seen[c.key]; dup {
				p.errAt(c.pos, "@%s given twice (first on line %d)", c.key, l)
				continue
			}
			seen[c.key] = c.line
		}
		switch c.key {
		case "name", "description", "rfc", "level", "needs", "tags":
			if c.value == "" {
				p.errAt(c.pos, "@%s needs a value", c.key)
				continue
			}
		}
		switch c.key {
		case "name":
			m.Name = c.value
		case "description":
			if m.Description != "" {
				m.Description += " "
			}
			m.Description += c.value
		case "rfc":
			f := strings.Fields(c.value)
			if _, err := strconv.ParseUint(f[0], 10, 16); err != nil {
				p.errAt(c.pos, "@rfc wants an RFC number and optionally a section, e.g. '@rfc 9293 3.10.7.2', found '%s'", c.value)
				continue
			}
			m.RFC = strings.Join(f, " ")
		case "level":
			switch strings.ToLower(c.value) {
			case "must":
				m.Level = "MUST"
			case "should":
				m.Level = "SHOULD"
			case "info":
				m.Level = "info"
			default:
				p.errAt(c.pos, "@level wants MUST, SHOULD or info, found '%s'", c.value)
			}
		case "needs":
			m.Needs = append(m.Needs, strings.Fields(c.value)...)
		case "tags":
			m.Tags = append(m.Tags, strings.Fields(c.value)...)
		default:
			hint := ""
			if n := nearest(c.key, []string{"name", "description", "rfc", "level", "needs", "tags"}); n != "" {
				hint = fmt.Sprintf(" (did you mean @%s?)", n)
			}
			p.errAt(c.pos, "unknown metadata key '@%s' (keys: @name, @description, @rfc, @level, @needs, @tags)%s", c.key, hint)
		}
	}
}

// didYouMean suggests the keyword nearest to t's text, if one is close.
func (p *parser) didYouMean(t token, words ...string) string {
	if t.kind != tWord {
		return ""
	}
	if m := nearest(p.text(t), words); m != "" {
		return fmt.Sprintf(" (did you mean '%s'?)", m)
	}
	return ""
}

// nearest returns the word within a small edit distance of s, or "".
func nearest(s string, words []string) string {
	best, bestD := "", 3
	if len(s) <= 3 {
		bestD = 2
	}
	for _, w := range words {
		if w == s {
			continue
		}
		if d := editDistance(s, w, bestD); d < bestD {
			best, bestD = w, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, or limit when it
// is at least limit.
func editDistance(a, b string, limit int) int {
	if len(a) > 64 || len(b) > 64 || abs(len(a)-len(b)) >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			c = min(c, prev[j]+1, cur[j-1]+1)
			cur[j] = c
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// cut shortens s to at most n runes, with "..." at the end when cut, and
// makes it safe to print: invalid UTF-8, control characters and terminal
// escapes are written as Go escapes (\x1b, \n).
func cut(s string, n int) string {
	var b strings.Builder
	k := 0
	for _, r := range s {
		if k >= n {
			b.WriteString("...")
			break
		}
		if r == utf8.RuneError || !unicode.IsPrint(r) && r != ' ' {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
		k++
	}
	return b.String()
}

package script

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// tokKind is the kind of a token.
type tokKind uint8

const (
	tEOF      tokKind = iota
	tInt              // 123
	tHex              // 0x1f
	tFloat            // 0.100, .1
	tWord             // S, win, ect0, type_3, 1234abcd (packetdrill's WORD)
	tString           // "..." (with its quotes)
	tBack             // `...` (with its backquotes)
	tCode             // %{ ... }%
	tOption           // --name or --name=value (the whole thing)
	tEllipsis         // ...
	tPunct            // any other single character
	tBad              // a lexical error, already reported
)

// token is one token of the source. Tokens refer to the source by offset
// so that lexing allocates nothing per token.
type token struct {
	pos, end int32 // byte offsets in the source
	line     int32 // 1-based line of pos
	kind     tokKind
	// nl: a newline outside any comment comes between the previous token
	// and this one, so this token is the first of its line.
	nl bool
	// space: whitespace or a comment separates it from the previous token.
	space bool
	// sym, when not 0, says the token is a defined symbol (-D NAME=VALUE):
	// its text is symbols.list[sym-1].text, not the source's.
	sym int32
}

// metaComment is a "// @key value" comment.
type metaComment struct {
	pos   int32 // of the '@'
	line  int32
	key   string
	value string
}

type lexError struct {
	pos int32
	msg string
}

// lexer produces the tokens of a script one at a time. Comments are
// dropped, except metadata comments, which it collects. It is a plain
// value: copying it saves its state, for lookahead.
type lexer struct {
	src   []byte
	i     int
	line  int32
	sawNL bool // a newline outside comments since the last token
	space bool // a gap since the last token
	meta  []metaComment
	errs  []lexError
	// syms holds the defined symbols; shared by the copies made for
	// lookahead, which never define any.
	syms *symbols
}

// maxLexErrors bounds the work on garbage input; the parser reports at
// most maxErrors anyway.
const maxLexErrors = 4 * maxErrors

func newLexer(src []byte) lexer {
	lx := lexer{src: src, line: 1, sawNL: true}
	if len(src) >= 3 && src[0] == 0xef && src[1] == 0xbb && src[2] == 0xbf {
		lx.i = 3 // a UTF-8 byte order mark, as some editors write
	}
	return lx
}

func (lx *lexer) errorf(pos int, msg string) {
	if len(lx.errs) < maxLexErrors {
		lx.errs = append(lx.errs, lexError{int32(pos), msg})
	}
}

func isDigit(c byte) bool  { return '0' <= c && c <= '9' }
func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' }
func isWordChar(c byte) bool {
	return isLetter(c) || isDigit(c)
}
func isHexDigit(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// token makes the token src[pos:end] of the given kind.
func (lx *lexer) token(kind tokKind, pos, end int, line int32) token {
	t := token{pos: int32(pos), end: int32(end), line: line, kind: kind, nl: lx.sawNL, space: lx.space}
	lx.sawNL, lx.space = false, false
	lx.i = end
	return t
}

// next returns the next token; at the end, a tEOF token (with nl set).
func (lx *lexer) next() token {
	src := lx.src
	n := len(src)
	for lx.i < n {
		i := lx.i
		c := src[i]
		switch {
		case c == '\n':
			lx.line++
			lx.sawNL, lx.space = true, true
			lx.i++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			lx.space = true
			lx.i++
		case c == '/' && i+1 < n && src[i+1] == '/':
			j := i + 2
			for j < n && src[j] != '\n' {
				j++
			}
			lx.comment(i+2, j)
			lx.space = true
			lx.i = j
		case c == '/' && i+1 < n && src[i+1] == '*':
			j := i + 2
			line := lx.line
			for j < n && !(src[j] == '*' && j+1 < n && src[j+1] == '/') {
				if src[j] == '\n' {
					line++
				}
				j++
			}
			if j >= n {
				lx.errorf(i, "unterminated /* comment: it needs a closing */")
				lx.i = n
				break
			}
			lx.line = line
			lx.space = true
			lx.i = j + 2
		case c == '#':
			// Not a comment in packetdrill; drop the rest of the line so
			// that it yields one error, not one per word.
			lx.errorf(i, "'#' does not start a comment in packetdrill scripts: write // or /* */")
			j := i
			for j < n && src[j] != '\n' {
				j++
			}
			return lx.token(tBad, i, j, lx.line)
		case isDigit(c) || c == '.' && i+1 < n && isDigit(src[i+1]):
			return lx.number(i)
		case isLetter(c):
			j := i
			for j < n && isWordChar(src[j]) {
				j++
			}
			return lx.word(lx.token(tWord, i, j, lx.line))
		case c == '"':
			j := i + 1
			for j < n && src[j] != '"' && src[j] != '\n' {
				if src[j] == '\\' && j+1 < n && src[j+1] != '\n' {
					j++
				}
				j++
			}
			if j >= n || src[j] != '"' {
				lx.errorf(i, "unterminated string: it needs a closing \" on the same line")
				return lx.token(tBad, i, j, lx.line)
			}
			return lx.token(tString, i, j+1, lx.line)
		case c == '`':
			return lx.block(i, i+1, "`", tBack, "unterminated `command`: it needs a closing `")
		case c == '%' && i+1 < n && src[i+1] == '{':
			return lx.block(i, i+2, "}%", tCode, "unterminated %{ code block: it needs a closing }%")
		case c == '-' && i+2 < n && src[i+1] == '-' && isWordChar(src[i+2]):
			return lx.option(i)
		case c == '.' && i+2 < n && src[i+1] == '.' && src[i+2] == '.':
			return lx.token(tEllipsis, i, i+3, lx.line)
		default:
			size := 1
			if c >= utf8.RuneSelf {
				_, size = utf8.DecodeRune(src[i:])
			}
			return lx.token(tPunct, i, i+size, lx.line)
		}
	}
	return token{pos: int32(n), end: int32(n), line: lx.line, kind: tEOF, nl: true, space: true}
}

// number lexes "123", "0x1f", "0.100", ".1"; a run that mixes digits and
// letters ("1234abcd") is a word, as in packetdrill.
func (lx *lexer) number(i int) token {
	src := lx.src
	n := len(src)
	j := i
	for j < n && isWordChar(src[j]) {
		j++
	}
	kind := tInt
	for k := i; k < j; k++ {
		if !isDigit(src[k]) {
			kind = tWord
			break
		}
	}
	if kind == tWord && j-i > 2 && src[i] == '0' && (src[i+1] == 'x' || src[i+1] == 'X') {
		kind = tHex
		for k := i + 2; k < j; k++ {
			if !isHexDigit(src[k]) {
				kind = tWord
				break
			}
		}
	}
	// A fraction: "0.100", ".1"; but not "0...1" (an ellipsis) nor "1."
	// (an error the time parser names).
	if kind == tInt && j+1 < n && src[j] == '.' && isDigit(src[j+1]) {
		kind = tFloat
		j++
		for j < n && isDigit(src[j]) {
			j++
		}
	}
	t := lx.token(kind, i, j, lx.line)
	if kind == tWord {
		return lx.word(t)
	}
	return t
}

// word replaces a word that names a defined symbol by its value, as
// packetdrill's lexer does; keywords are never symbols.
func (lx *lexer) word(t token) token {
	if lx.syms == nil || len(lx.syms.index) == 0 {
		return t
	}
	k, ok := lx.syms.index[string(lx.src[t.pos:t.end])]
	if !ok {
		return t
	}
	t.sym = k
	t.kind = lx.syms.list[k-1].kind
	return t
}

// block lexes a command or code block from start to the closing delimiter
// (body starts at body); it may span lines.
func (lx *lexer) block(start, body int, closing string, kind tokKind, unterminated string) token {
	src := lx.src
	line := lx.line
	rel := bytes.Index(src[body:], []byte(closing))
	if rel < 0 {
		lx.errorf(start, unterminated)
		return lx.token(tBad, start, len(src), line)
	}
	end := body + rel + len(closing)
	for _, c := range src[body:end] {
		if c == '\n' {
			lx.line++
		}
	}
	return lx.token(kind, start, end, line)
}

// option lexes "--name", "--name=value" or "--name="quoted value"".
func (lx *lexer) option(i int) token {
	src := lx.src
	n := len(src)
	j := i + 2
	for j < n && isWordChar(src[j]) {
		j++
	}
	if j >= n || src[j] != '=' {
		return lx.token(tOption, i, j, lx.line)
	}
	j++
	if j < n && src[j] == '"' {
		k := j + 1
		for k < n && src[k] != '"' && src[k] != '\n' {
			if src[k] == '\\' && k+1 < n && src[k+1] != '\n' {
				k++
			}
			k++
		}
		if k >= n || src[k] != '"' {
			lx.errorf(j, "unterminated string: it needs a closing \" on the same line")
			return lx.token(tBad, i, k, lx.line)
		}
		return lx.token(tOption, i, k+1, lx.line)
	}
	// Up to a gap, but a quoted part may hold spaces: --define=CC="reno
	// cubic", --define=CMD=`sysctl -q x=1`. An unterminated one is an
	// error here: lexed on, its quote would swallow the lines after it.
	for j < n && !isSpace(src[j]) {
		if q := src[j]; q == '"' || q == '`' {
			k := j + 1
			for k < n && src[k] != q && src[k] != '\n' {
				if q == '"' && src[k] == '\\' && k+1 < n && src[k+1] != '\n' {
					k++
				}
				k++
			}
			if k >= n || src[k] != q {
				lx.errorf(j, fmt.Sprintf("unterminated %c in the option's value: it needs a closing %c on the same line", q, q))
				return lx.token(tBad, i, k, lx.line)
			}
			j = k
		}
		j++
	}
	return lx.token(tOption, i, j, lx.line)
}

// comment looks at the text of a // comment (src[start:end]) for a
// metadata key.
func (lx *lexer) comment(start, end int) {
	src := lx.src
	i := start
	for i < end && (src[i] == ' ' || src[i] == '\t') {
		i++
	}
	if i >= end || src[i] != '@' {
		return
	}
	at := i
	i++
	k := i
	for k < end && isWordChar(src[k]) {
		k++
	}
	lx.meta = append(lx.meta, metaComment{
		pos:   int32(at),
		line:  lx.line,
		key:   string(src[i:k]),
		value: strings.ToValidUTF8(strings.TrimSpace(string(src[k:end])), "\uFFFD"),
	})
}

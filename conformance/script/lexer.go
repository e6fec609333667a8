package script

import (
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
}

// metaComment is a "// @key value" comment.
type metaComment struct {
	pos   int32 // of the '@'
	line  int32
	key   string
	value string
}

// lexer splits a script into tokens. Comments are dropped, except the
// metadata comments, which it collects.
type lexer struct {
	src  []byte
	toks []token
	meta []metaComment
	errs []lexError
}

type lexError struct {
	pos int32
	msg string
}

// maxLexErrors bounds the work on garbage input; the parser reports at
// most maxErrors anyway.
const maxLexErrors = 4 * maxErrors

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

// lex tokenizes the whole source.
func (lx *lexer) lex() {
	src := lx.src
	n := len(src)
	line := int32(1)
	sawNL, space := true, false
	lx.toks = make([]token, 0, n/4+1)
	emit := func(kind tokKind, pos, end int, startLine int32) {
		lx.toks = append(lx.toks, token{pos: int32(pos), end: int32(end), line: startLine, kind: kind, nl: sawNL, space: space})
		sawNL, space = false, false
	}
	for i := 0; i < n; {
		c := src[i]
		switch {
		case c == '\n':
			line++
			sawNL, space = true, true
			i++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			space = true
			i++
		case c == '/' && i+1 < n && src[i+1] == '/':
			j := i + 2
			for j < n && src[j] != '\n' {
				j++
			}
			lx.comment(i+2, j, line)
			space = true
			i = j
		case c == '/' && i+1 < n && src[i+1] == '*':
			j := i + 2
			for j < n && !(src[j] == '*' && j+1 < n && src[j+1] == '/') {
				if src[j] == '\n' {
					line++
				}
				j++
			}
			if j >= n {
				lx.errorf(i, "unterminated /* comment: it needs a closing */")
				i = n
				break
			}
			space = true
			i = j + 2
		case c == '#':
			// Not a comment in packetdrill; drop the rest of the line so
			// that it yields one error, not one per word.
			lx.errorf(i, "'#' does not start a comment in packetdrill scripts: write // or /* */")
			j := i
			for j < n && src[j] != '\n' {
				j++
			}
			emit(tBad, i, j, line)
			i = j
		case isDigit(c) || c == '.' && i+1 < n && isDigit(src[i+1]):
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
			if kind == tWord && j-i > 2 && c == '0' && (src[i+1] == 'x' || src[i+1] == 'X') {
				kind = tHex
				for k := i + 2; k < j; k++ {
					if !isHexDigit(src[k]) {
						kind = tWord
						break
					}
				}
			}
			// A fraction: "0.100", ".1"; but not "0...1" (an ellipsis)
			// nor "1." (an error the time parser names).
			if (kind == tInt || j == i) && j+1 < n && src[j] == '.' && isDigit(src[j+1]) {
				kind = tFloat
				j++
				for j < n && isDigit(src[j]) {
					j++
				}
			}
			emit(kind, i, j, line)
			i = j
		case isLetter(c):
			j := i
			for j < n && isWordChar(src[j]) {
				j++
			}
			emit(tWord, i, j, line)
			i = j
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
				emit(tBad, i, j, line)
				i = j
				break
			}
			emit(tString, i, j+1, line)
			i = j + 1
		case c == '`':
			start := line
			j := i + 1
			for j < n && src[j] != '`' {
				if src[j] == '\n' {
					line++
				}
				j++
			}
			if j >= n {
				lx.errorf(i, "unterminated `command`: it needs a closing `")
				emit(tBad, i, j, start)
				i = j
				break
			}
			emit(tBack, i, j+1, start)
			i = j + 1
		case c == '%' && i+1 < n && src[i+1] == '{':
			start := line
			j := i + 2
			for j < n && !(src[j] == '}' && j+1 < n && src[j+1] == '%') {
				if src[j] == '\n' {
					line++
				}
				j++
			}
			if j >= n {
				lx.errorf(i, "unterminated %{ code block: it needs a closing }%")
				emit(tBad, i, j, start)
				i = j
				break
			}
			emit(tCode, i, j+2, start)
			i = j + 2
		case c == '-' && i+2 < n && src[i+1] == '-' && isWordChar(src[i+2]):
			j := i + 2
			for j < n && isWordChar(src[j]) {
				j++
			}
			if j < n && src[j] == '=' {
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
						emit(tBad, i, k, line)
						i = k
						break
					}
					j = k + 1
				} else {
					for j < n && !isSpace(src[j]) {
						j++
					}
				}
			}
			emit(tOption, i, j, line)
			i = j
		case c == '.' && i+2 < n && src[i+1] == '.' && src[i+2] == '.':
			emit(tEllipsis, i, i+3, line)
			i += 3
		default:
			size := 1
			if c >= utf8.RuneSelf {
				_, size = utf8.DecodeRune(src[i:])
			}
			emit(tPunct, i, i+size, line)
			i += size
		}
	}
	lx.toks = append(lx.toks, token{pos: int32(n), end: int32(n), line: line, kind: tEOF, nl: true, space: true})
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// comment looks at the text of a // comment (src[start:end]) for a
// metadata key.
func (lx *lexer) comment(start, end int, line int32) {
	i := start
	for i < end && (lx.src[i] == ' ' || lx.src[i] == '\t') {
		i++
	}
	if i >= end || lx.src[i] != '@' {
		return
	}
	at := i
	i++
	k := i
	for k < end && isWordChar(lx.src[k]) {
		k++
	}
	lx.meta = append(lx.meta, metaComment{
		pos:   int32(at),
		line:  line,
		key:   string(lx.src[i:k]),
		value: strings.TrimSpace(string(lx.src[k:end])),
	})
}

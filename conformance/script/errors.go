package script

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SyntaxError is a problem with a script: a syntax error or a semantic one
// (a value out of range, a wildcard on an inbound line, time going
// backwards), always at the offending token.
type SyntaxError struct {
	File      string
	Line, Col int // 1-based; Col counts characters (runes), not bytes
	Msg       string
	// Source is the offending line as written (without its newline).
	Source string
}

// Error formats the problem as "file:line:col: msg", then the line and a
// caret under the column, so that a person sees where at a glance.
func (e *SyntaxError) Error() string {
	head := e.Head()
	if e.Source == "" && e.Col <= 1 {
		return head
	}
	line, caret := excerpt(e.Source, e.Col)
	return head + "\n    " + line + "\n    " + caret
}

// Head is the problem in one line: "file:line:col: msg".
func (e *SyntaxError) Head() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(SafeName(e.File))
		b.WriteByte(':')
	}
	b.WriteString(strconv.Itoa(e.Line))
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(e.Col))
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// SafeName returns a file name as it can be printed: quoted (Go syntax)
// when it holds control characters, terminal escapes or invalid UTF-8.
func SafeName(name string) string {
	for _, r := range name {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.Quote(name)
		}
	}
	return name
}

// excerptWidth is how much of a long line an error shows, in characters.
const excerptWidth = 72

// excerpt returns the part of line an error shows (about excerptWidth
// characters around column col, "..." where cut) made safe to print
// (control characters and terminal escapes as Go escapes, tabs kept),
// and the blanks that put a caret under the column.
func excerpt(line string, col int) (shown, caret string) {
	runes := []rune(line)
	col-- // 0-based
	from := 0
	if len(runes) > excerptWidth && col > excerptWidth/2 {
		from = min(col-excerptWidth/2, len(runes)-excerptWidth)
		from = max(from, 0)
	}
	to := min(len(runes), from+excerptWidth)
	var sb, cb strings.Builder
	if from > 0 {
		sb.WriteString("...")
		cb.WriteString("   ")
	}
	for i := from; i < to; i++ {
		r := runes[i]
		w := string(r)
		if r == utf8.RuneError || !unicode.IsPrint(r) && r != ' ' && r != '\t' {
			q := strconv.QuoteRune(r)
			w = q[1 : len(q)-1]
		}
		sb.WriteString(w)
		if i < col {
			// Copy tabs so that the caret lines up however wide a tab is shown.
			if r == '\t' {
				cb.WriteByte('\t')
			} else {
				cb.WriteString(strings.Repeat(" ", utf8.RuneCountInString(w)))
			}
		}
	}
	if to < len(runes) {
		sb.WriteString("...")
	}
	for i := max(len(runes), from); i < col; i++ {
		cb.WriteByte(' ')
	}
	cb.WriteByte('^')
	return sb.String(), cb.String()
}

// ErrorList is every problem Parse found, in source order (at most
// maxErrors of them, then a last "too many errors").
type ErrorList []*SyntaxError

// Error formats every problem, one after the other.
func (l ErrorList) Error() string {
	switch len(l) {
	case 0:
		return "no errors"
	case 1:
		return l[0].Error()
	}
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Summary is the first problem in one line, "file:line:col: msg", and how
// many more there are.
func (l ErrorList) Summary() string {
	if len(l) == 0 {
		return "no errors"
	}
	s := l[0].Head()
	if len(l) > 1 {
		s += fmt.Sprintf(" (and %d more problems)", len(l)-1)
	}
	return s
}

// Unwrap lets errors.As find a *SyntaxError in the list.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

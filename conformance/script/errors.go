package script

import (
	"strconv"
	"strings"
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
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	b.WriteString(strconv.Itoa(e.Line))
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(e.Col))
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Source == "" && e.Col <= 1 {
		return b.String()
	}
	b.WriteString("\n    ")
	b.WriteString(e.Source)
	b.WriteString("\n    ")
	// Copy tabs so that the caret lines up however wide a tab is shown.
	n := 1
	for _, r := range e.Source {
		if n >= e.Col {
			break
		}
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
		n++
	}
	for ; n < e.Col; n++ {
		b.WriteByte(' ')
	}
	b.WriteByte('^')
	return b.String()
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

// Unwrap lets errors.As find a *SyntaxError in the list.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

package probe

import (
	"errors"
	"fmt"
)

// Sentinel causes carried by a *DecodeError; test with errors.Is.
var (
	// ErrTruncated: the data ends before the header or the length it claims.
	ErrTruncated = errors.New("truncated")
	// ErrBadLength: a length field is impossible (below a minimum, or
	// inconsistent with another length).
	ErrBadLength = errors.New("bad length")
	// ErrBadVersion: the IP version nibble does not match the EtherType.
	ErrBadVersion = errors.New("bad version")
)

// DecodeError says what is wrong with a frame and where.
type DecodeError struct {
	Layer  string // "ethernet", "ipv4", "ipv6", "tcp", "icmp"
	Field  string // the header field at fault, e.g. "data offset"
	Offset int    // byte offset of the field from the start of the frame
	Err    error  // ErrTruncated, ErrBadLength or ErrBadVersion
	Detail string // the numbers, e.g. "3 words, below the minimum of 5"
}

func (e *DecodeError) Error() string {
	msg := fmt.Sprintf("%s: %s: %v at byte %d", e.Layer, e.Field, e.Err, e.Offset)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

func (e *DecodeError) Unwrap() error { return e.Err }

func decodeErr(layer, field string, off int, err error, format string, args ...any) *DecodeError {
	return &DecodeError{Layer: layer, Field: field, Offset: off, Err: err, Detail: fmt.Sprintf(format, args...)}
}

// OptionError says why a TCP option area could not be parsed to its end.
// The options before the damage are still decoded.
type OptionError struct {
	Kind   OptionKind
	Offset int // byte offset of the option from the start of the frame
	Reason string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("tcp option %s at byte %d: %s", e.Kind, e.Offset, e.Reason)
}

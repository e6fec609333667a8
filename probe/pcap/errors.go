package pcap

import (
	"errors"
	"fmt"
)

// ErrTruncated is wrapped by the *FormatError returned when the stream ends
// in the middle of a header, record or block: the usual state of a capture
// whose writer was killed. Everything before the damage has been returned.
var ErrTruncated = errors.New("capture truncated")

// FormatError reports a stream that is not a well-formed capture, naming the
// place of the damage.
type FormatError struct {
	// Format is "pcap" or "pcapng", or "capture" when the stream was not
	// recognised as either.
	Format string
	// Part names what is damaged: "file header", "record" (pcap) or
	// "block" (pcapng).
	Part string
	// Offset is the byte offset in the stream where that part begins.
	Offset int64
	// Reason says what is wrong with it.
	Reason string
	// Err is ErrTruncated when the stream ended too early, else nil.
	Err error
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("%s: %s at byte %d: %s", e.Format, e.Part, e.Offset, e.Reason)
}

// Unwrap returns ErrTruncated for a truncated capture, so that
// errors.Is(err, ErrTruncated) tells truncation from corruption.
func (e *FormatError) Unwrap() error { return e.Err }

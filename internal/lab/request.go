package lab

import "bytes"

const (
	// DefaultResponseSize is the body size for "GET /x" when x is not a
	// number.
	DefaultResponseSize = 2000
	// MaxResponseSize caps the body size a request can ask for.
	MaxResponseSize = 1 << 20
	// maxRequestSize bounds what the application buffers for one request:
	// a peer that never sends "\r\n\r\n" must not grow memory without end.
	maxRequestSize = 8 << 10
)

// endOfRequest ends an HTTP/1.0-style request head.
var endOfRequest = []byte("\r\n\r\n")

// requestScanner finds complete requests in a byte stream that arrives in
// pieces of any size. It gives the same answers however the stream is split.
type requestScanner struct {
	buf []byte
	// discarding is set while skipping the rest of a request longer than
	// maxRequestSize.
	discarding bool
}

// Feed adds the next piece of the stream and returns the body size asked
// for by each request it completed, in order. Requests that are not
// "GET /..." or are too long are ignored.
func (r *requestScanner) Feed(p []byte) []int {
	r.buf = append(r.buf, p...)
	var sizes []int
	for {
		i := bytes.Index(r.buf, endOfRequest)
		if i < 0 {
			break
		}
		head := r.buf[:i]
		r.buf = r.buf[i+len(endOfRequest):]
		if r.discarding || len(head) > maxRequestSize {
			r.discarding = false
			continue
		}
		if n, ok := parseRequestHead(head); ok {
			sizes = append(sizes, n)
		}
	}
	// Bytes beyond the last three cannot be part of a terminator still to
	// come; once more than maxRequestSize of them have piled up the request
	// is too long, whatever follows.
	if keep := len(endOfRequest) - 1; len(r.buf)-keep > maxRequestSize {
		r.buf = append(r.buf[:0], r.buf[len(r.buf)-keep:]...)
		r.discarding = true
	}
	if len(r.buf) == 0 {
		r.buf = nil // let a large drained buffer go
	}
	return sizes
}

// parseRequestHead reads the request line of one request head (without the
// final empty line) and returns the body size it asks for. ok is false for
// anything but GET.
func parseRequestHead(head []byte) (size int, ok bool) {
	// Empty lines before a request line are ignored (RFC 9112 section 2.2).
	for bytes.HasPrefix(head, []byte("\r\n")) {
		head = head[2:]
	}
	line, _, _ := bytes.Cut(head, []byte("\r\n"))
	target, found := bytes.CutPrefix(line, []byte("GET /"))
	if !found {
		return 0, false
	}
	target, _, _ = bytes.Cut(target, []byte(" "))
	return responseSize(target), true
}

// responseSize reads the decimal path of "GET /N", saturating at
// MaxResponseSize; anything else asks for DefaultResponseSize.
func responseSize(digits []byte) int {
	if len(digits) == 0 {
		return DefaultResponseSize
	}
	n := 0
	for _, c := range digits {
		if c < '0' || c > '9' {
			return DefaultResponseSize
		}
		if n <= MaxResponseSize {
			n = n*10 + int(c-'0')
		}
	}
	return min(n, MaxResponseSize)
}
